import Experiments
import XCTest

@testable import Training

/// Which widths the sweep at the end of `polyak train` evaluates.
final class PostHocSweepPlanTests: XCTestCase {
    func testTheDefaultAddsTheTrackedWidthsAndTheRunsEMADecays() {
        // At 1 000 steps: ema@0.99 is σ_rel √0.99 / 0.01 / 1000 = 0.0994987 (→ 0.0995), ema@0.98
        // 0.0494975 (→ 0.0495), and ema@0.999 0.9995, wider than any power function: left out.
        let emas = [EMASpec(decays: [0.99, 0.98]), EMASpec(decays: [0.999])]
        let widths = PostHocSweepPlan.widths(PostHocSpec(), emaSpecs: emas, steps: 1000)
        XCTAssertEqual(
            widths,
            [
                0.01, 0.012, 0.015, 0.019, 0.024, 0.029, 0.036, 0.045, 0.0495, 0.05, 0.056, 0.069, 0.085, 0.0995, 0.1, 0.11,
                0.13, 0.16, 0.2, 0.25,
            ])
        XCTAssertEqual(PostHocSweepPlan.widths(PostHocSpec(), emaSpecs: [], steps: 1000).count, 18)
    }

    func testAListedSweepIsTakenAsItIsAndAnEmptyOneMeansNone() {
        XCTAssertEqual(
            PostHocSweepPlan.widths(PostHocSpec(sweep: [0.2, 0.03]), emaSpecs: [EMASpec(decays: [0.99])], steps: 1000),
            [0.2, 0.03])
        XCTAssertEqual(PostHocSweepPlan.widths(PostHocSpec(sweep: []), emaSpecs: [], steps: 1000), [])
    }

    func testTheSpecsMappingIsTheInverseOfTheClassicalDecay() {
        for (sigma, steps) in [(0.05, 10_000), (0.1, 480), (0.013, 77)] {
            let d = PowerFunctionEMA.classicalDecay(sigmaRel: sigma, steps: steps)
            XCTAssertEqual(PostHocSpec.sigmaRel(emaDecay: d, steps: steps), sigma, accuracy: 1e-9)
            XCTAssertEqual(
                PostHocSpec.sigmaRel(emaDecay: d, steps: steps), PowerFunctionEMA.sigmaRel(classicalDecay: d, steps: steps),
                accuracy: 1e-12)
        }
    }
}
