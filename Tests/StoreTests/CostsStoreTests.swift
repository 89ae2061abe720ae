import Foundation
import XCTest

@testable import Store

/// The `run_costs` table (migration 0006): written per run, replaced whole, read per experiment
/// for completed runs only, and gone with its run.
final class CostsStoreTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("costs-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func testCostsRoundTripPerExperimentAndGoWithTheirRun() throws {
        let path = folder.appendingPathComponent("polyak.sqlite").path
        _ = try TrackingStore.migrate(path: path)
        let store = try TrackingStore(path: path)
        let (experiment, runs) = try store.createExperiment(
            name: "e", baseJSON: "{}", variantsJSON: "[]", seedsJSON: "[0, 1]", baseline: "none",
            runs: [0, 1].map { NewRun(variant: "ema", seed: $0, specJSON: "{}", codeVersion: "test") })
        let (a, b) = (runs[0].id, runs[1].id)
        try store.saveCosts(run: a, shared: 600.25, perWeights: ["raw": 30, "ema@0.9": 42.5])
        // A summary read again replaces the rows whole: the set that is no longer there goes.
        try store.saveCosts(run: a, shared: 601, perWeights: ["raw": 31, "ema@0.99": 43])
        try store.saveCosts(run: b, shared: 10, perWeights: ["raw": 1, "bad": .nan])
        XCTAssertEqual(
            try store.costs(run: a),
            [
                RunCost(runID: a, weights: "", seconds: 601), RunCost(runID: a, weights: "ema@0.99", seconds: 43),
                RunCost(runID: a, weights: "raw", seconds: 31),
            ])
        // Only completed runs count in an experiment's comparison.
        XCTAssertEqual(try store.experimentCosts(experiment.id), [])
        _ = try store.setStatus(a, .completed)
        XCTAssertEqual(try store.experimentCosts(experiment.id).map(\.runID), [a, a, a])
        _ = try store.setStatus(b, .completed)
        // The NaN is not stored.
        XCTAssertEqual(try store.experimentCosts(experiment.id).filter { $0.runID == b }.map(\.weights), ["", "raw"])
        try store.deleteRun(a)
        XCTAssertEqual(try store.costs(run: a), [])
        XCTAssertEqual(try store.experimentCosts(experiment.id).map(\.runID), [b, b])
    }
}
