import XCTest

@testable import Server

/// The seed advisor against hand-checked Student-t quantiles (t(0.975, 2) = 4.3027,
/// t(0.80, 2) = 1.0607; t(0.975, 9) = 2.2622, t(0.80, 9) = 0.8834).
final class SeedAdvisorTests: XCTestCase {
    func testQuantilesMatchTheTables() {
        XCTAssertEqual(Statistics.tQuantile(0.975, df: 2), 4.3027, accuracy: 1e-4)
        XCTAssertEqual(Statistics.tQuantile(0.80, df: 2), 1.0607, accuracy: 1e-4)
        XCTAssertEqual(Statistics.tQuantile(0.975, df: 9), 2.2622, accuracy: 1e-4)
        XCTAssertEqual(Statistics.tQuantile(0.80, df: 9), 0.8834, accuracy: 1e-4)
    }

    func testMinimumDetectableEffectAndSeedsNeeded() {
        // n = 3, s_Δ = 0.002: (4.3027 + 1.0607) · 0.002 / √3 = 0.006193
        XCTAssertEqual(SeedAdvisor.minimumDetectableEffect(spread: 0.002, n: 3)!, 0.006193, accuracy: 1e-6)
        // n = 10: (2.2622 + 0.8834) · 0.002 / √10 = 0.001989 ≤ 0.002, and n = 9 is not enough
        XCTAssertEqual(SeedAdvisor.minimumDetectableEffect(spread: 0.002, n: 10)!, 0.001989, accuracy: 1e-6)
        XCTAssertGreaterThan(SeedAdvisor.minimumDetectableEffect(spread: 0.002, n: 9)!, 0.002)
        XCTAssertEqual(SeedAdvisor.seedsNeeded(spread: 0.002), 10)
        XCTAssertEqual(SeedAdvisor.seedsNeeded(spread: 0), 2)
        XCTAssertEqual(SeedAdvisor.seedsNeeded(spread: 1), SeedAdvisor.maximumSeeds + 1)
        XCTAssertNil(SeedAdvisor.minimumDetectableEffect(spread: 0.002, n: 1))
        XCTAssertNil(SeedAdvisor.seedsNeeded(spread: .nan))
    }

    func testSentences() {
        XCTAssertEqual(
            SeedAdvisor.sentence(n: 3, spread: 0.002),
            "with 3 seeds, differences under 0.6 pt cannot be told from noise; 10 seeds would resolve 0.2 pt")
        XCTAssertEqual(
            SeedAdvisor.sentence(n: 12, spread: 0.002),
            "with 12 seeds, differences of 0.2 pt and more show; 0.2 pt is resolved")
        XCTAssertEqual(
            SeedAdvisor.sentence(n: 3, spread: 0),
            "the 3 seeds give exactly the same Δ: there is no seed-to-seed noise to resolve")
        XCTAssertNil(SeedAdvisor.sentence(n: 1, spread: nil))
    }
}
