import XCTest

@testable import Server
@testable import Store

/// The cost columns against figures worked out by hand.
///
/// Runs (seconds): none seed 0: shared 585, raw 30 → raw costs 615 s = 10.25 min; none seed 1:
/// shared 645, raw 30 → 11.25 min. ema seed 0: shared 600, raw 30, ema@0.9 45 → raw 10.5 min,
/// ema@0.9 11.25 min; ema seed 1: shared 630, raw 30, ema@0.9 60 → raw 11 min, ema@0.9 12 min.
/// top-1: none raw 0.90, 0.92; ema raw the same; ema@0.9 0.91, 0.935 (Δ 0.01, 0.015).
final class CostColumnsTests: XCTestCase {
    let values = [
        FinalValue(runID: 1, variant: "none", seed: 0, weights: "raw", value: 0.90),
        FinalValue(runID: 2, variant: "none", seed: 1, weights: "raw", value: 0.92),
        FinalValue(runID: 3, variant: "ema", seed: 0, weights: "raw", value: 0.90),
        FinalValue(runID: 3, variant: "ema", seed: 0, weights: "ema@0.9", value: 0.91),
        FinalValue(runID: 4, variant: "ema", seed: 1, weights: "raw", value: 0.92),
        FinalValue(runID: 4, variant: "ema", seed: 1, weights: "ema@0.9", value: 0.935),
    ]
    let costs = [
        RunCost(runID: 1, weights: "", seconds: 585), RunCost(runID: 1, weights: "raw", seconds: 30),
        RunCost(runID: 2, weights: "", seconds: 645), RunCost(runID: 2, weights: "raw", seconds: 30),
        RunCost(runID: 3, weights: "", seconds: 600), RunCost(runID: 3, weights: "raw", seconds: 30),
        RunCost(runID: 3, weights: "ema@0.9", seconds: 45),
        RunCost(runID: 4, weights: "", seconds: 630), RunCost(runID: 4, weights: "raw", seconds: 30),
        RunCost(runID: 4, weights: "ema@0.9", seconds: 60),
    ]

    func rows(_ costs: [RunCost]) -> [String: CostColumns.Cost] {
        var rows = Comparison.compare(values, baseline: "none", variants: ["none", "ema"], metric: "test/top1")
        CostColumns.annotate(&rows, values: values, costs: costs, baseline: "none")
        return Dictionary(uniqueKeysWithValues: rows.map { ("\($0.variant) \($0.weights)", $0.cost) })
    }

    func testAWeightSetCostsTheSharedPartsRawsAndItsOwn() {
        let run = ["": 606.0, "raw": 30, "ema@0.9": 42]
        XCTAssertEqual(CostColumns.seconds(of: "raw", in: run), 636)
        XCTAssertEqual(CostColumns.seconds(of: "ema@0.9", in: run), 678)
        XCTAssertNil(CostColumns.seconds(of: "swa", in: run))
        XCTAssertNil(CostColumns.seconds(of: "raw", in: ["raw": 30]))  // no shared row: unknown
    }

    func testRowsCostsExtrasAndGains() throws {
        let r = rows(costs)
        let ema = try XCTUnwrap(r["ema ema@0.9"])
        XCTAssertEqual(ema.minutes, 11.625)  // (11.25 + 12) / 2
        XCTAssertEqual(ema.extraMinutes, 0.875)  // ((11.25 − 10.25) + (12 − 11.25)) / 2
        XCTAssertEqual(ema.gainPerExtraMinute!, 0.0125 / 0.875, accuracy: 1e-12)  // Δ 0.0125 per 0.875 min
        // ema · raw: 10.5 and 11 min, paired extras +0.25 and −0.25: no extra, no gain.
        let emaRaw = try XCTUnwrap(r["ema raw"])
        XCTAssertEqual(emaRaw.minutes, 10.75)
        XCTAssertEqual(emaRaw.extraMinutes, 0)
        XCTAssertNil(emaRaw.gainPerExtraMinute)
        let baseline = try XCTUnwrap(r["none raw"])
        XCTAssertEqual(baseline.minutes, 10.75)
        XCTAssertEqual(baseline.extraMinutes, 0)
        XCTAssertNil(baseline.gainPerExtraMinute)
    }

    func testUnknownCostsStayUnknown() throws {
        // Nothing measured (runs older than the cost columns): every column null.
        XCTAssertEqual(rows([])["ema ema@0.9"], CostColumns.Cost())
        // Seed 1's EMA run unmeasured: seed 0 alone (11.25 min, extra 1, Δ 0.0125 over both seeds).
        let partial = rows(costs.filter { $0.runID != 4 })["ema ema@0.9"]!
        XCTAssertEqual(partial.minutes, 11.25)
        XCTAssertEqual(partial.extraMinutes, 1)
        XCTAssertEqual(partial.gainPerExtraMinute!, 0.0125, accuracy: 1e-12)
        // The baseline unmeasured: a cost but no extra, so no gain.
        let noBaseline = rows(costs.filter { $0.runID > 2 })["ema ema@0.9"]!
        XCTAssertEqual(noBaseline.minutes, 11.625)
        XCTAssertNil(noBaseline.extraMinutes)
        XCTAssertNil(noBaseline.gainPerExtraMinute)
    }

    /// A shared run (one per seed for none, ema and ema-warmup): each variant's set is looked up
    /// under the run's own name (`ema@0.9~ema-warmup`), and the extra of `ema` is its set's own part.
    func testASharedRunsRelabelledSetCostsItsOwnPart() throws {
        let shared = [
            FinalValue(runID: 7, variant: "none", seed: 0, weights: "raw", value: 0.90),
            FinalValue(runID: 7, variant: "ema", seed: 0, weights: "ema@0.9", value: 0.91),
            FinalValue(
                runID: 7, variant: "ema-warmup", seed: 0, weights: "ema@0.9", value: 0.92, runWeights: "ema@0.9~ema-warmup"),
        ]
        let runCosts = [
            RunCost(runID: 7, weights: "", seconds: 600), RunCost(runID: 7, weights: "raw", seconds: 30),
            RunCost(runID: 7, weights: "ema@0.9", seconds: 6), RunCost(runID: 7, weights: "ema@0.9~ema-warmup", seconds: 12),
        ]
        var rows = Comparison.compare(shared, baseline: "none", variants: ["none", "ema", "ema-warmup"], metric: "test/top1")
        CostColumns.annotate(&rows, values: shared, costs: runCosts, baseline: "none")
        let byName = Dictionary(uniqueKeysWithValues: rows.map { ("\($0.variant) \($0.weights)", $0.cost) })
        XCTAssertEqual(byName["none raw"]?.minutes, 10.5)
        XCTAssertEqual(try XCTUnwrap(byName["ema ema@0.9"]?.extraMinutes), 0.1, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(byName["ema-warmup ema@0.9"]?.extraMinutes), 0.2, accuracy: 1e-12)
    }

    func testGainNeedsAPositiveExtraAndAFiniteDelta() {
        XCTAssertEqual(CostColumns.gain(deltaMean: -0.01, extraMinutes: 0.5), -0.02)
        XCTAssertNil(CostColumns.gain(deltaMean: 0.01, extraMinutes: 0))
        XCTAssertNil(CostColumns.gain(deltaMean: 0.01, extraMinutes: -1))
        XCTAssertNil(CostColumns.gain(deltaMean: nil, extraMinutes: 1))
        XCTAssertNil(CostColumns.gain(deltaMean: .nan, extraMinutes: 1))
        XCTAssertNil(CostColumns.gain(deltaMean: 0.01, extraMinutes: nil))
    }
}
