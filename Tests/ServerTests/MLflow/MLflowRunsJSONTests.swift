import Experiments
import Foundation
import Store
import XCTest

@testable import Server

/// runs/search's byte writer against the tree encoder every other MLflow body goes through.
final class MLflowRunsJSONTests: XCTestCase {
    func testSameBytesAsTheViewEncoder() throws {
        let path = NSTemporaryDirectory() + "mlflow-runs-json-\(UUID().uuidString).sqlite"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try TrackingStore(path: path)
        let experiment = try store.mlflowCreateExperiment(name: "json", tags: [], nowMS: 1_764_000_000_000)
        let finished = try store.mlflowCreateRun(
            experiment: experiment, name: "quoted \"run\" ✓", userID: "ana\\b", startTimeMS: 1_764_000_000_123,
            tags: [("mlflow.note", "line\nbreak"), ("polyak.variant", "ema")], codeVersion: "test")
        try store.mlflowLogParamsAndTags(run: finished, params: [("lr", "0.1"), ("ünïcode", "\u{1}ctrl")], tags: [])
        try store.logBatch(
            run: finished,
            [
                MetricPoint(key: "loss", step: 3, value: .nan, time: 1_764_000_001.5),
                MetricPoint(key: "top1", weights: "ema@0.999", step: 7, value: -.infinity, time: 1_764_000_002),
                MetricPoint(key: "top5", step: 9, value: 0.123456789012345, time: 1_764_000_003.25),
            ], policy: .refuse)
        try store.mlflowUpdateRun(finished, status: .completed, endTimeMS: 1_764_000_009_000, name: nil)
        _ = try store.mlflowCreateRun(
            experiment: experiment, name: nil, userID: "", startTimeMS: 1_764_000_000_000, tags: [], codeVersion: "test")

        let views = try store.mlflowRuns(experiments: [experiment]).map(MLflowRunView.init)
        XCTAssertEqual(views.count, 2)
        XCTAssertNil(views.first { $0.info.runID != String(finished) }?.info.endTime, "one run without an end time")
        for token in [nil, MLflowSearch.token(2)] {
            let tree = try ViewEncoder.bytes(MLflowPage(name: "runs", items: views, nextPageToken: token))
            let bytes = MLflowRunsJSON.page(views, nextPageToken: token)
            XCTAssertEqual(String(decoding: bytes, as: UTF8.self), String(decoding: tree, as: UTF8.self))
        }
        XCTAssertEqual(
            String(decoding: MLflowRunsJSON.page([], nextPageToken: nil), as: UTF8.self),
            String(
                decoding: try ViewEncoder.bytes(MLflowPage<MLflowRunView>(name: "runs", items: [], nextPageToken: nil)),
                as: UTF8.self))
    }
}
