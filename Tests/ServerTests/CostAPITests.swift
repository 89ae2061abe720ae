import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Store
import XCTest

@testable import Server

/// A trainer summary's `timing` through `TrainerOutput` into the store, and out again as the run's
/// `timing`, the compare rows' cost columns (JSON and CSV) and the pages, against figures by hand.
final class CostAPITests: XCTestCase {
    func summary(train: Double, checkpoint: Double, sets: [String: TrainerEvent.Summary.Timing.WeightSet]) -> TrainerEvent {
        .summary(
            .init(
                status: .completed, reason: nil, steps: 100, wallSeconds: 700, imagesPerSecond: 100,
                timing: .init(
                    trainSeconds: train, evalSeconds: sets.mapValues(\.evalSeconds), batchNormSeconds: 0,
                    split: .init(
                        wallSeconds: 700, setupSeconds: 50, teacherSeconds: 0, checkpointSeconds: checkpoint, perWeights: sets))))
    }

    func testTimingIsStoredAndShownAndPricesTheCompareRows() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        let store = try TrackingStore(path: folder.db)
        let (experiment, runs) = try store.createExperiment(
            name: "costs", baseJSON: "{}", variantsJSON: #"[{"name":"none"},{"name":"ema"}]"#, seedsJSON: "[0]",
            baseline: "none",
            runs: ["none", "ema"].map {
                NewRun(experiment: "costs", variant: $0, seed: 0, status: .completed, specJSON: "{}", codeVersion: "t")
            })
        let none = runs[0].id, ema = runs[1].id
        try store.logBatch(
            run: none, [MetricPoint(key: "test/top1", weights: "raw", step: 1, value: 0.90, time: 0)], policy: .refuse)
        try store.logBatch(
            run: ema,
            [
                MetricPoint(key: "test/top1", weights: "raw", step: 1, value: 0.90, time: 0),
                MetricPoint(key: "test/top1", weights: "ema@0.9", step: 1, value: 0.92, time: 0),
            ], policy: .refuse)
        // none: shared 500 + 50 + 10 = 560 s, raw 10 + 5 = 15 s → raw costs 575 s.
        // ema: shared 510 + 50 + 12 = 572 s, raw 15 s, ema@0.9 10 + 20 + 5 = 35 s → ema@0.9 costs 622 s.
        let raw = TrainerEvent.Summary.Timing.WeightSet(evalSeconds: 10, exportSeconds: 5)
        let lines: [(Int64, TrainerEvent)] = [
            (none, summary(train: 500, checkpoint: 10, sets: ["raw": raw])),
            (
                ema,
                summary(
                    train: 510, checkpoint: 12,
                    sets: ["raw": raw, "ema@0.9": .init(evalSeconds: 10, averagingSeconds: 20, exportSeconds: 5)])
            ),
        ]
        for (run, event) in lines {
            var output = TrainerOutput(
                runID: run, store: store, hub: EventHub(), directory: folder.data, logger: Logger(label: "t"))
            output.consume(ArraySlice(Array((event.line + "\n").utf8)))
            output.finish()
        }
        XCTAssertEqual(try store.costs(run: ema).map(\.seconds), [572, 35, 15])  // "", "ema@0.9", "raw"

        try await app.test(.live) { client in
            let run = try await client.json(.get, "/api/runs/\(ema)")
            XCTAssertEqual(run["timing"]?["shared_s"]?.doubleValue, 572)
            XCTAssertEqual(run["timing"]?["per_weights"]?["ema@0.9"]?["averaging_s"]?.doubleValue, 20)
            XCTAssertEqual(run["timing"], run["summary"]?["timing"])
            let page = String(buffer: try await client.call(.get, "/runs/\(ema)").body)
            XCTAssertTrue(page.contains("Where the time went"), page)
            XCTAssertTrue(page.contains("<td>ema@0.9</td>"), page)

            let compare = try await client.json(.get, "/api/experiments/\(experiment.id)/compare")
            let rows = try XCTUnwrap(compare["rows"])
            XCTAssertEqual(rows.count, 3)  // none raw, ema raw, ema ema@0.9
            XCTAssertEqual(rows[0]?["cost_minutes"]?.doubleValue ?? 0, 575.0 / 60, accuracy: 1e-12)
            XCTAssertEqual(rows[0]?["extra_minutes"]?.doubleValue, 0)
            XCTAssertEqual(rows[0]?["gain_per_extra_minute"], .null)
            let emaRow = try XCTUnwrap(rows[2])
            XCTAssertEqual(emaRow["weights"]?.stringValue, "ema@0.9")
            XCTAssertEqual(emaRow["cost_minutes"]?.doubleValue ?? 0, 622.0 / 60, accuracy: 1e-12)
            XCTAssertEqual(emaRow["extra_minutes"]?.doubleValue ?? 0, 47.0 / 60, accuracy: 1e-12)
            XCTAssertEqual(emaRow["gain_per_extra_minute"]?.doubleValue ?? 0, 0.02 / (47.0 / 60), accuracy: 1e-9)  // 0.02553

            let csv = String(buffer: try await client.call(.get, "/api/experiments/\(experiment.id)/compare.csv").body)
            let table = csv.split(separator: "\r\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            XCTAssertEqual(table[0].suffix(3), ["cost_minutes", "extra_minutes", "gain_per_extra_minute"])
            XCTAssertEqual(Double(table[3][table[0].count - 2])!, 47.0 / 60, accuracy: 1e-12)
            XCTAssertEqual(table[1].last, "")  // the baseline: no gain

            let experimentPage = String(buffer: try await client.call(.get, "/experiments/\(experiment.id)").body)
            XCTAssertTrue(experimentPage.contains("Δ per extra min"), experimentPage)
            XCTAssertTrue(experimentPage.contains("+2.55 pp/min"), experimentPage)
        }
    }
}
