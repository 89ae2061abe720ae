import XCTest

final class KernelsTestsPlaceholder: XCTestCase {}
