import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// `runs/log-batch` over real HTTP on the byte-level reader: what is stored (keys switching
/// between weight sets, an escaped key, params and tags), and each refusal leaving nothing behind.
final class MLflowLogBatchTests: XCTestCase {
    let api = "/api/2.0/mlflow"

    func testABatchIsStoredExactlyAndARefusedOneLeavesNothing() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let run = try await client.json(.post, "\(api)/runs/create", "{}")
            let id = try XCTUnwrap(run["run"]?["info"]?["run_id"]?.stringValue)
            // Keys alternate (the reader's key cache is refilled each time); one is written with an escape.
            let metrics = (0..<6).map { i in
                let key = [#""loss""#, #""top1:ema@0.99""#, #""lo\u0073s""#][i % 3]
                return
                    #"{"timestamp": "\#(1_764_000_000_000 + i)", "value": \#(i % 2 == 0 ? "\"NaN\"" : "0.5"), "key": \#(key), "step": \#(i)}"#
            }
            let ok = try await client.call(
                .post, "\(api)/runs/log-batch",
                #"{"run_id": "\#(id)", "metrics": [\#(metrics.joined(separator: ","))], "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "polyak.variant", "value": "ema"}, {"key": "polyak.seed", "value": "3"}]}"#
            )
            XCTAssertEqual(ok.status, .ok, String(buffer: ok.body))
            XCTAssertEqual(String(buffer: ok.body), "{}")
            let loss = try await client.json(.get, "\(api)/metrics/get-history?run_id=\(id)&metric_key=loss")
            XCTAssertEqual(
                loss["metrics"],
                [
                    ["key": "loss", "value": "NaN", "timestamp": 1_764_000_000_000, "step": 0],
                    ["key": "loss", "value": "NaN", "timestamp": 1_764_000_000_002, "step": 2],
                    ["key": "loss", "value": 0.5, "timestamp": 1_764_000_000_003, "step": 3],
                    ["key": "loss", "value": 0.5, "timestamp": 1_764_000_000_005, "step": 5],
                ])
            let ema = try await client.json(.get, "/api/runs/\(id)/metrics?weights=ema@0.99")
            XCTAssertEqual(ema["points"]?.count, 2)
            let got = try await client.json(.get, "\(api)/runs/get?run_id=\(id)")
            XCTAssertEqual(got["run"]?["data"]?["params"], [["key": "lr", "value": "0.1"]])
            let polyak = try await client.json(.get, "/api/runs/\(id)")
            XCTAssertEqual(polyak["variant"]?.stringValue, "ema")
            XCTAssertEqual(polyak["seed"]?.intValue, 3)

            // A bad point late in the batch, bad JSON, a missing run: refused, nothing of the batch kept.
            let late =
                #"{"run_id": "\#(id)", "metrics": [{"key": "new", "value": 1, "timestamp": 1}, {"key": "new", "value": "x", "timestamp": 1, "step": 1}]}"#
            try assertRefused(
                try await client.call(.post, "\(api)/runs/log-batch", late), .badRequest, "INVALID_PARAMETER_VALUE",
                #"Invalid value "x" for parameter 'metrics[1].value' supplied: Please specify value as a valid double (64-bit floating point)"#
            )
            try assertRefused(
                try await client.call(.post, "\(api)/runs/log-batch", #"{"run_id": "\#(id)", "metrics": [{"key": "new",}]}"#),
                .badRequest, "BAD_REQUEST", "Malformed JSON body: is not valid JSON (line 1, column")
            try assertRefused(
                try await client.call(
                    .post, "\(api)/runs/log-batch", #"{"metrics": [{"key": "new", "value": 1, "timestamp": 1}]}"#),
                .badRequest, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'.")
            try assertRefused(
                try await client.call(.post, "\(api)/runs/log-batch", #"{"run_id": "99"}"#), .notFound,
                "RESOURCE_DOES_NOT_EXIST", "Run with id=99 not found")
            let new = try await client.json(.get, "\(api)/metrics/get-history?run_id=\(id)&metric_key=new")
            XCTAssertEqual(new["metrics"]?.count, 0)

            // A deleted run and a run Polyak trains take no batch.
            _ = try await client.json(.post, "\(api)/runs/delete", #"{"run_id": "\#(id)"}"#)
            try assertRefused(
                try await client.call(.post, "\(api)/runs/log-batch", #"{"run_id": "\#(id)"}"#), .badRequest,
                "INVALID_PARAMETER_VALUE", "The run \(id) must be in the 'active' state. Current state is deleted.")
            let own = try await client.json(.post, "/api/runs", #"{"name": "own"}"#, expect: .created)
            let ownID = try XCTUnwrap(own["id"]?.intValue)
            try assertRefused(
                try await client.call(.post, "/ajax-api/2.0/mlflow/runs/log-batch", #"{"run_id": "\#(ownID)"}"#), .badRequest,
                "INVALID_PARAMETER_VALUE", "run \(ownID) is trained by Polyak itself")
        }
    }

    func assertRefused(
        _ r: TestResponse, _ status: HTTPResponse.Status, _ code: String, _ message: String, line: UInt = #line
    ) throws {
        let text = String(buffer: r.body)
        XCTAssertEqual(r.status, status, text, line: line)
        let body = try JSONValue.parse(text)
        XCTAssertEqual(body["error_code"]?.stringValue, code, text, line: line)
        XCTAssertTrue(body["message"]?.stringValue?.hasPrefix(message) == true, "\(message) does not begin \(text)", line: line)
    }
}
