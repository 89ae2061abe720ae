import Datasets
import Foundation
import XCTest

@testable import Training

/// Power-function EMA and post-hoc synthesis against the reference implementation's numbers
/// (NVlabs/edm2 `training/phema.py`, evaluated with numpy 2 in float64) and against their own
/// definitions on simulated training trajectories.
final class PowerFunctionEMATests: XCTestCase {
    typealias P = PowerFunctionEMA

    func testExponentOfEachWidthMatchesTheReferenceRoots() {
        // std_to_exp(0.05), (0.10), (0.20): np.roots([1, 7, 16 - t, 12 - t]).real.max()
        let vectors: [(Double, Double)] = [(0.05, 16.972198602303447), (0.10, 6.937203937601809), (0.2, 1.8262137798958404)]
        for (sigma, gamma) in vectors {
            XCTAssertEqual(P.gamma(sigmaRel: sigma), gamma, accuracy: 1e-9 * gamma, "σ_rel \(sigma)")
            XCTAssertEqual(P.sigmaRel(gamma: P.gamma(sigmaRel: sigma)), sigma, accuracy: 1e-12)
        }
        XCTAssertEqual(P.gamma(sigmaRel: P.widestSigmaRel), 0, accuracy: 1e-9)
    }

    func testInnerProductAndCoefficientsMatchTheReference() throws {
        let g05 = P.gamma(sigmaRel: 0.05), g10 = P.gamma(sigmaRel: 0.10), g07 = P.gamma(sigmaRel: 0.07)
        // power_function_correlation(100, 0.05, 400, 0.10)
        XCTAssertEqual(P.innerProduct((100, g05), (400, g10)), 9.533063886440162e-07, accuracy: 1e-18)
        // solve_posthoc_coefficients over snapshots at 100…400 × {0.05, 0.10}, target (400, 0.07)
        let snapshots: [(t: Double, gamma: Double)] = [100.0, 200, 300, 400].flatMap { t in [(t, g05), (t, g10)] }
        let expected = [
            1.8701727360593473e-08, -4.5939870751597374e-07, 8.350739349474476e-05, -0.000568048060587111,
            0.010685739328585214, -0.04392123564681016, 0.43456714018574366, 0.5991533374965539,
        ]
        let x = try P.coefficients(snapshots: snapshots, target: (400, g07))
        for (got, want) in zip(x, expected) { XCTAssertEqual(got, want, accuracy: 1e-9) }
        XCTAssertEqual(x.reduce(0, +), 1, accuracy: 1e-12)
    }

    func testASnapshotsOwnProfileIsSynthesisedAsThatSnapshotAlone() throws {
        let g05 = P.gamma(sigmaRel: 0.05), g10 = P.gamma(sigmaRel: 0.10)
        let snapshots: [(t: Double, gamma: Double)] = stride(from: 50.0, through: 1000, by: 50).flatMap { t in
            [(t, g05), (t, g10)]
        }
        let x = try P.coefficients(snapshots: snapshots, target: (1000, g10))
        for (i, c) in x.enumerated() { XCTAssertEqual(c, i == x.count - 1 ? 1 : 0, accuracy: 1e-6, "snapshot \(i)") }
    }

    func testTrackingAveragesStepsWithPowerFunctionWeights() {
        // With β_t = (1 − 1/t)^(γ+1), step τ's weight in the profile at T is exactly
        // (1 − β_τ)·(τ/T)^(γ+1): the telescoping product of the later decays.
        let gamma = P.gamma(sigmaRel: 0.10), steps = 500
        var rng = Xoshiro256(seed: 3)
        let values = (0..<steps).map { _ in rng.nextDouble(in: -1, 1) }
        var tracked = 0.0
        for t in 1...steps { tracked += (1 - P.beta(step: t, gamma: gamma)) * (values[t - 1] - tracked) }
        var closedForm = 0.0, totalWeight = 0.0
        for tau in 1...steps {
            let w = (1 - P.beta(step: tau, gamma: gamma)) * pow(Double(tau) / Double(steps), gamma + 1)
            closedForm += w * values[tau - 1]
            totalWeight += w
        }
        XCTAssertEqual(tracked, closedForm, accuracy: 1e-12)
        XCTAssertEqual(totalWeight, 1, accuracy: 1e-12)
        XCTAssertEqual(P.beta(step: 1, gamma: gamma), 0)
    }

    /// The paper's use: two widths tracked with snapshots, a third width synthesised after the
    /// fact, compared with that width tracked directly on the same trajectory.
    func testASynthesisedWidthMatchesTheSameWidthTrackedDirectly() throws {
        let widths = [0.05, 0.10, 0.07], steps = 4000, every = 40, dims = 64
        let gammas = widths.map { P.gamma(sigmaRel: $0) }
        var rng = Xoshiro256(seed: 7)
        var weights = [Double](repeating: 0, count: dims)  // a noisy walk toward a moving optimum
        var profiles = [[Double]](repeating: weights, count: 3)
        var snapshots: [(t: Double, gamma: Double, values: [Double])] = []
        for t in 1...steps {
            for d in 0..<dims {
                let optimum = sin(Double(d) + Double(t) / 900)
                weights[d] += 0.01 * (optimum - weights[d]) + 0.05 * rng.nextDouble(in: -1, 1)
            }
            for p in 0..<3 {
                let w = 1 - P.beta(step: t, gamma: gammas[p])
                for d in 0..<dims { profiles[p][d] += w * (weights[d] - profiles[p][d]) }
            }
            if t % every == 0 { for p in 0..<2 { snapshots.append((Double(t), gammas[p], profiles[p])) } }
        }
        let x = try P.coefficients(snapshots: snapshots.map { ($0.t, $0.gamma) }, target: (Double(steps), gammas[2]))
        var worst = 0.0, spread = 0.0
        for d in 0..<dims {
            var synthesised = 0.0
            for (c, s) in zip(x, snapshots) { synthesised += c * s.values[d] }
            worst = max(worst, abs(synthesised - profiles[2][d]))
            spread = max(spread, abs(profiles[0][d] - profiles[1][d]))
        }
        // The synthesis error must be tiny against how much the two tracked widths differ (measured: 8e-6 of it).
        XCTAssertLessThan(worst, 1e-4 * spread, "worst \(worst), spread between tracked widths \(spread)")
    }

    func testClassicalDecaysMapToWidthsBothWays() {
        XCTAssertEqual(P.classicalDecay(sigmaRel: 0.05, steps: 10_000), 0.998, accuracy: 5e-6)
        XCTAssertEqual(P.classicalDecay(sigmaRel: 0.10, steps: 10_000), 0.999, accuracy: 5e-6)
        for d in [0.99, 0.998, 0.9999] {
            XCTAssertEqual(
                P.classicalDecay(sigmaRel: P.sigmaRel(classicalDecay: d, steps: 4690), steps: 4690), d, accuracy: 1e-12)
        }
    }
}
