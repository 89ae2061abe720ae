import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// MLflow's routes over real HTTP without the client: the refusals it would give (codes, statuses,
/// wording), the batch caps, the placement of runs, and artifact paths that try to leave the run folder.
final class MLflowRoutesTests: XCTestCase {
    let api = "/api/2.0/mlflow"

    /// `{"error_code", "message"}` with `status`, and the message holding `words`.
    func assertMLflowError(
        _ r: TestResponse, _ status: HTTPResponse.Status, _ code: String, _ words: String..., line: UInt = #line
    ) throws {
        let text = String(buffer: r.body)
        XCTAssertEqual(r.status, status, text, line: line)
        let body = try JSONValue.parse(text)
        XCTAssertEqual(body["error_code"]?.stringValue, code, text, line: line)
        for w in words { XCTAssertTrue(body["message"]?.stringValue?.contains(w) == true, "\(w) not in \(text)", line: line) }
    }

    func testRefusalsAreMLflowsAndNothingIsHalfStored() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            try assertMLflowError(
                try await client.call(.get, "\(api)/runs/get?run_id=42"), .notFound, "RESOURCE_DOES_NOT_EXIST",
                "Run with id=42 not found")
            try assertMLflowError(
                try await client.call(.get, "\(api)/experiments/get?experiment_id=abc"), .notFound, "RESOURCE_DOES_NOT_EXIST")
            try assertMLflowError(
                try await client.call(.post, "\(api)/experiments/create", #"{"name": ""}"#), .badRequest,
                "INVALID_PARAMETER_VALUE")
            try assertMLflowError(
                try await client.call(.post, "\(api)/experiments/create", "[1]"), .badRequest, "BAD_REQUEST", "JSON object")
            let created = try await client.json(.post, "\(api)/experiments/create", #"{"name": "e"}"#)
            let experiment = try XCTUnwrap(created["experiment_id"]?.stringValue)
            try assertMLflowError(
                try await client.call(.post, "\(api)/experiments/create", #"{"name": "e"}"#), .badRequest,
                "RESOURCE_ALREADY_EXISTS")
            let run = try await client.json(
                .post, "\(api)/runs/create",
                #"{"experiment_id": "\#(experiment)", "tags": [{"key": "polyak.variant", "value": "a"}]}"#)
            let id = try XCTUnwrap(run["run"]?["info"]?["run_id"]?.stringValue)
            XCTAssertEqual(run["run"]?["info"]?["run_name"]?.stringValue, "run-\(id)")
            try assertMLflowError(
                try await client.call(
                    .post, "\(api)/runs/set-tag", #"{"run_id": "\#(id)", "key": "polyak.seed", "value": "-1"}"#), .badRequest,
                "INVALID_PARAMETER_VALUE", "polyak.seed")
            // Past a cap, or with a changed param: nothing of the batch is kept.
            let points = (0...1000).map { #"{"key": "m", "value": 1, "timestamp": 1, "step": \#($0)}"# }.joined(separator: ",")
            try assertMLflowError(
                try await client.call(.post, "\(api)/runs/log-batch", #"{"run_id": "\#(id)", "metrics": [\#(points)]}"#),
                .badRequest, "INVALID_PARAMETER_VALUE", "at most 1000 metrics. Got 1001 metrics.")
            _ = try await client.json(.post, "\(api)/runs/log-parameter", #"{"run_id": "\#(id)", "key": "lr", "value": "0.1"}"#)
            try assertMLflowError(
                try await client.call(
                    .post, "\(api)/runs/log-batch",
                    #"{"run_id": "\#(id)", "metrics": [{"key": "m", "value": "NaN", "timestamp": "5", "step": "2"}], "params": [{"key": "lr", "value": "0.2"}]}"#
                ), .badRequest, "INVALID_PARAMETER_VALUE", "Changing param values is not allowed")
            try assertMLflowError(
                try await client.call(.post, "\(api)/runs/log-metric", #"{"run_id": "\#(id)", "key": "m", "value": 1}"#),
                .badRequest, "INVALID_PARAMETER_VALUE", "timestamp")
            let history = try await client.json(.get, "\(api)/metrics/get-history?run_id=\(id)&metric_key=m")
            XCTAssertEqual(history["metrics"]?.count, 0)
            // Protobuf's spellings: int64 as strings, NaN as a string; the point reads back exactly.
            _ = try await client.json(
                .post, "\(api)/runs/log-batch",
                #"{"run_id": "\#(id)", "metrics": [{"key": "m:swa", "value": "NaN", "timestamp": "5", "step": "2"}]}"#)
            let swa = try await client.json(.get, "\(api)/metrics/get-history?run_id=\(id)&metric_key=m:swa")
            XCTAssertEqual(swa["metrics"]?[0], ["key": "m:swa", "value": "NaN", "timestamp": 5, "step": 2])
            let polyak = try await client.json(.get, "/api/runs/\(id)/metrics?weights=swa")
            XCTAssertEqual(polyak["points"]?[0]?["key"]?.stringValue, "m")
            try assertMLflowError(
                try await client.call(
                    .post, "\(api)/runs/search", #"{"experiment_ids": ["\#(experiment)"], "filter": "params.lr ~ 1"}"#),
                .badRequest, "INVALID_PARAMETER_VALUE", "at position 10")
            try assertMLflowError(
                try await client.call(.post, "\(api)/runs/search", #"{"experiment_ids": ["\#(experiment)"], "page_token": "x"}"#),
                .badRequest, "INVALID_PARAMETER_VALUE", "page token")
            // Soft delete of an experiment: it takes no new runs, and comes back on restore.
            _ = try await client.json(.post, "\(api)/experiments/delete", #"{"experiment_id": "\#(experiment)"}"#)
            let deleted = try await client.json(.get, "\(api)/experiments/get?experiment_id=\(experiment)")
            XCTAssertEqual(deleted["experiment"]?["lifecycle_stage"]?.stringValue, "deleted")
            try assertMLflowError(
                try await client.call(.post, "\(api)/runs/create", #"{"experiment_id": "\#(experiment)"}"#), .badRequest,
                "INVALID_PARAMETER_VALUE", "'active' state")
            _ = try await client.json(.post, "\(api)/experiments/restore", #"{"experiment_id": "\#(experiment)"}"#)
            _ = try await client.json(
                .post, "\(api)/experiments/update", #"{"experiment_id": "\#(experiment)", "new_name": "f"}"#)
            let renamed = try await client.json(.get, "\(api)/experiments/get-by-name?experiment_name=f")
            XCTAssertEqual(renamed["experiment"]?["lifecycle_stage"]?.stringValue, "active")
            XCTAssertEqual(renamed["experiment"]?["experiment_id"]?.stringValue, experiment)
            // The run is placed: its experiment lists the variant and takes it as the baseline.
            let e = try await client.json(.get, "/api/experiments/\(experiment)")
            XCTAssertEqual(e["baseline"]?.stringValue, "a")
            XCTAssertEqual(e["runs"]?[0]?["variant"]?.stringValue, "a")
        }
    }

    func testArtifactPathsStayInTheRunFolder() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            let run = try await client.json(.post, "\(api)/runs/create", "{}")
            let id = try XCTUnwrap(run["run"]?["info"]?["run_id"]?.stringValue)
            XCTAssertEqual(run["run"]?["info"]?["artifact_uri"]?.stringValue, "mlflow-artifacts:/\(id)/artifacts")
            let files = "/api/2.0/mlflow-artifacts/artifacts"
            let text: HTTPFields = [.contentType: "text/plain"]
            let up = try await client.call(.put, "\(files)/\(id)/artifacts/sub/a.txt", "hello", headers: text)
            XCTAssertEqual(up.status, .ok, String(buffer: up.body))
            let down = try await client.call(.get, "\(files)/\(id)/artifacts/sub/a.txt")
            XCTAssertEqual(String(buffer: down.body), "hello")
            let list = try await client.json(.get, "\(files)?path=\(id)/artifacts")
            XCTAssertEqual(list["files"], [["path": "sub", "is_dir": true]])
            for bad in ["\(id)/artifacts/../../../../etc/passwd", "\(id)/artifacts/%2e%2e/x", "\(id)/artifacts/./a"] {
                let r = try await client.call(.put, "\(files)/\(bad)", "x", headers: text)
                try assertMLflowError(r, .badRequest, "INVALID_PARAMETER_VALUE", "Invalid artifact path")
            }
            // A symlink inside the folder that points out of it is not followed, for reads or writes.
            let runFolder = folder.data + "/runs/\(id)/artifacts"
            try FileManager.default.createSymbolicLink(atPath: runFolder + "/out", withDestinationPath: folder.url.path)
            try "secret".write(toFile: folder.url.path + "/secret.txt", atomically: true, encoding: .utf8)
            try assertMLflowError(
                try await client.call(.get, "\(files)/\(id)/artifacts/out/secret.txt"), .badRequest, "INVALID_PARAMETER_VALUE",
                "leaves the run's folder")
            try assertMLflowError(
                try await client.call(.put, "\(files)/\(id)/artifacts/out/new.txt", "x", headers: text), .badRequest,
                "INVALID_PARAMETER_VALUE", "leaves the run's folder")
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.url.path + "/new.txt"))
            try assertMLflowError(
                try await client.call(.get, "\(files)/999/artifacts/a.txt"), .notFound, "RESOURCE_DOES_NOT_EXIST")
            // MLflow's default experiment (no variants yet) and the run render; the run page links the upload.
            let experiment = try XCTUnwrap(run["run"]?["info"]?["experiment_id"]?.stringValue)
            let byAjax = try await client.json(.get, "/ajax-api/2.0/mlflow/experiments/get?experiment_id=0")
            XCTAssertEqual(byAjax["experiment"]?["experiment_id"]?.stringValue, experiment)
            XCTAssertEqual(byAjax["experiment"]?["name"]?.stringValue, "Default")
            let experimentPage = try await client.call(.get, "/experiments/\(experiment)")
            XCTAssertEqual(experimentPage.status, .ok)
            let page = try await client.call(.get, "/runs/\(id)")
            XCTAssertTrue(String(buffer: page.body).contains("\(files)/\(id)/artifacts/sub/a.txt"), String(buffer: page.body))
        }
    }
}
