import XCTest

final class ExperimentsTestsPlaceholder: XCTestCase {}
