import XCTest

final class NetworkTestsPlaceholder: XCTestCase {}
