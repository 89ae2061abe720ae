import XCTest

@testable import Server
@testable import Store

/// The EMA-length sweep's statistics against hand-checked numbers (t(0.975, 2) = 4.3027).
final class PostHocSweepStatsTests: XCTestCase {
    func point(_ run: Int64, _ sigma: Double, _ top1: Double?, bn: String = "synthesized") -> PostHocPoint {
        PostHocPoint(
            runID: run, sigmaRel: sigma, batchNorm: bn, decay: 0.99, weights: "phema@\(sigma)", step: 100, top1: top1, top5: nil,
            loss: nil)
    }

    func testMeansIntervalsPairedDeltasAndTheBestWidth() throws {
        // Baseline runs 1–3 (seeds 0, 1, 2), raw top-1 0.80, 0.82, 0.81; the post-hoc variant's runs 4–6.
        let members: [String: [PostHocSweepStats.Member]] = [
            "none": [.init(run: 1, seed: 0), .init(run: 2, seed: 1), .init(run: 3, seed: 2)],
            "ph": [.init(run: 4, seed: 0), .init(run: 5, seed: 1), .init(run: 6, seed: 2)],
        ]
        let raw: [Int64: Double] = [1: 0.80, 2: 0.82, 3: 0.81, 4: 0.5]
        let points = [
            point(4, 0.05, 0.81), point(5, 0.05, 0.85), point(6, 0.05, 0.83),
            point(4, 0.1, 0.84), point(5, 0.1, 0.84), point(6, 0.1, 0.85),
            point(4, 0.2, nil),  // a NaN evaluation is left out
            point(4, 0.05, 0.9, bn: "precise"),
        ]
        let series = PostHocSweepStats.sweep(points, members: members, rawTop1: raw, baseline: "none", variants: ["none", "ph"])
        XCTAssertEqual(series.map(\.variant), ["ph", "ph"])
        XCTAssertEqual(series.map(\.batchNorm), ["synthesized", "precise"])
        let s = series[0]
        XCTAssertEqual(s.points.map(\.sigmaRel), [0.05, 0.1])

        // σ 0.05: mean 0.83, std 0.02, half-width 4.3027 · 0.02 / √3 = 0.049683;
        // Δ 0.01, 0.03, 0.02: mean 0.02, std 0.01, half-width 0.024842.
        let a = s.points[0]
        XCTAssertEqual(a.summary.n, 3)
        XCTAssertEqual(a.summary.mean, 0.83, accuracy: 1e-12)
        XCTAssertEqual(a.summary.std!, 0.02, accuracy: 1e-12)
        XCTAssertEqual(a.summary.ci95!.low, 0.83 - 0.049683, accuracy: 1e-5)
        XCTAssertEqual(a.summary.ci95!.high, 0.83 + 0.049683, accuracy: 1e-5)
        XCTAssertEqual(a.delta!.mean, 0.02, accuracy: 1e-12)
        XCTAssertEqual(a.delta!.ci95!.low, 0.02 - 0.024842, accuracy: 1e-5)
        XCTAssertEqual(a.decay, 0.99, accuracy: 1e-12)

        // σ 0.1: mean 0.843333, std 0.0057735, half-width 0.014342; Δ 0.04, 0.02, 0.04: mean
        // 0.033333, std 0.011547, half-width 0.028685. The best width.
        let b = s.points[1]
        XCTAssertEqual(b.summary.mean, 0.843333, accuracy: 1e-6)
        XCTAssertEqual(b.summary.ci95!.high - b.summary.mean, 0.014342, accuracy: 1e-5)
        XCTAssertEqual(b.delta!.mean, 0.033333, accuracy: 1e-6)
        XCTAssertEqual(b.delta!.ci95!.high - b.delta!.mean, 0.028685, accuracy: 1e-5)
        XCTAssertEqual(s.best?.sigmaRel, 0.1)

        // One precise point: n = 1, no interval; its Δ pairs with seed 0 (0.9 − 0.8).
        let p = series[1].points[0]
        XCTAssertEqual(p.summary.n, 1)
        XCTAssertNil(p.summary.ci95)
        XCTAssertEqual(p.delta!.mean, 0.1, accuracy: 1e-12)
    }

    func testWithoutBaselineRunsThereIsNoDelta() {
        let members: [String: [PostHocSweepStats.Member]] = ["ph": [.init(run: 4, seed: 0)]]
        let series = PostHocSweepStats.sweep(
            [point(4, 0.05, 0.81)], members: members, rawTop1: [:], baseline: "none", variants: ["none", "ph"])
        XCTAssertEqual(series.count, 1)
        XCTAssertNil(series[0].points[0].delta)
        XCTAssertEqual(series[0].best?.sigmaRel, 0.05)
    }

    func testTiesGoToTheNarrowerWidth() {
        let members: [String: [PostHocSweepStats.Member]] = ["ph": [.init(run: 4, seed: 0)]]
        let series = PostHocSweepStats.sweep(
            [point(4, 0.05, 0.8), point(4, 0.1, 0.8), point(4, 0.02, 0.7)], members: members, rawTop1: [:], baseline: "none",
            variants: ["ph"])
        XCTAssertEqual(series[0].best?.sigmaRel, 0.05)
    }

    func testEMADecaysAsWidths() {
        // √0.99 / 0.01 / 1000 = 0.0994987; every 2 doubles it; a repeated set is listed once.
        let marks = PostHocSweepStats.emaMarks(
            [(0.99, 1, "ema@0.99"), (0.999, 2, "ema@0.999"), (0.99, 1, "ema@0.99")], steps: 1000)
        XCTAssertEqual(marks.map(\.weights), ["ema@0.99", "ema@0.999"])
        XCTAssertEqual(marks[0].sigmaRel, 0.0994987, accuracy: 1e-6)
        XCTAssertEqual(marks[1].sigmaRel, 2 * 0.999.squareRoot() / 0.001 / 1000, accuracy: 1e-9)
    }
}

/// Which runs stand for which variant once variants share runs.
final class PostHocSweepMembersTests: XCTestCase {
    func run(_ id: Int64, seed: Int64, variant: String, shares: [WeightShare] = []) -> RunRecord {
        var r = RunRecord(
            id: id, experimentID: 1, experiment: "e", variant: variant, seed: seed, name: nil, notes: "", tags: [],
            strategies: [], external: false, status: .completed, specJSON: "{}", codeVersion: "v", createdAt: 0, startedAt: nil,
            endedAt: nil, error: nil, progressJSON: nil, summaryJSON: nil, warningsJSON: "[]")
        r.shares = shares
        return r
    }

    /// A shared none + ema + ph run: every variant it serves may pair on its raw weights, but its
    /// sweep is only `ph`'s (the variant that reads a `phema@` set); a separate run is its variant's.
    func testASharedRunsSweepBelongsToTheVariantThatAskedForIt() {
        let shared = run(
            7, seed: 0, variant: "none",
            shares: [
                .init(variant: "none", weights: "raw", runWeights: "raw"),
                .init(variant: "ema", weights: "ema@0.99", runWeights: "ema@0.99"),
                .init(variant: "ph", weights: "phema@0.05", runWeights: "phema@0.05"),
            ])
        let members = PostHocSweepStats.members([shared, run(8, seed: 0, variant: "swa")])
        XCTAssertEqual(members["none"], [.init(run: 7, seed: 0, ownsSweep: false)])
        XCTAssertEqual(members["ema"], [.init(run: 7, seed: 0, ownsSweep: false)])
        XCTAssertEqual(members["ph"], [.init(run: 7, seed: 0, ownsSweep: true)])
        XCTAssertEqual(members["swa"], [.init(run: 8, seed: 0)])
        let points = [
            PostHocPoint(
                runID: 7, sigmaRel: 0.05, batchNorm: "precise", decay: 0.99, weights: "phema@0.05", step: 10, top1: 0.9,
                top5: nil, loss: nil)
        ]
        let series = PostHocSweepStats.sweep(
            points, members: members, rawTop1: [7: 0.85], baseline: "none", variants: ["none", "ema", "ph", "swa"])
        XCTAssertEqual(series.map(\.variant), ["ph"])
        XCTAssertEqual(series[0].points[0].delta?.mean ?? .nan, 0.05, accuracy: 1e-12)
    }
}
