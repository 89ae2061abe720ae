import XCTest

final class DatasetsTestsPlaceholder: XCTestCase {}
