import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import XCTest

@testable import Server

/// The service layer over real HTTP: "run again" reachable from the API and the page alike, and
/// the views' field order and number forms as the spec writes them.
final class ServiceTests: XCTestCase {
    /// `POST /api/runs/{id}/rerun`: 201 with the new run in `GET /api/runs/{id}`'s shape, the next
    /// unused seed of its experiment, same variant; the page's button reaches the same service.
    func testRerunFromTheAPIAndFromThePage() async throws {
        let folder = try TempFolder()
        // Nothing starts: the runs stay queued and the answer is about storing, not training.
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let created = try await client.json(
                .post, "/api/experiments",
                #"{"name": "again", "variants": ["none", "swa"], "seeds": [0, 4], "base": {"optim": {"epochs": 2}}}"#,
                expect: .created)
            let experimentID = try XCTUnwrap(created["id"]?.intValue)
            let runs = try XCTUnwrap(
                created["runs"].flatMap { v -> [JSONValue]? in
                    if case .array(let items) = v { return items }
                    return nil
                })
            // swa trains apart (ema would share none's run: SharedRunsTests reruns such a run).
            let emaSeed0 = try XCTUnwrap(runs.first { $0["variant"]?.stringValue == "swa" && $0["seed"]?.intValue == 0 })
            let sourceID = try XCTUnwrap(emaSeed0["id"]?.intValue)

            let response = try await client.call(.post, "/api/runs/\(sourceID)/rerun")
            XCTAssertEqual(response.status, .created, String(buffer: response.body))
            let rerun = try JSONValue.parse(String(buffer: response.body))
            let newID = try XCTUnwrap(rerun["id"]?.intValue)
            XCTAssertNotEqual(newID, sourceID)
            XCTAssertEqual(rerun["seed"]?.intValue, 5, "one past the experiment's largest seed (4)")
            XCTAssertEqual(rerun["name"]?.stringValue, "swa-seed5")
            XCTAssertEqual(rerun["variant"]?.stringValue, "swa")
            XCTAssertEqual(rerun["experiment_id"]?.intValue, experimentID)
            XCTAssertEqual(rerun["status"]?.stringValue, "queued")
            XCTAssertEqual(rerun["spec"]?["seed"]?.intValue, 5)
            XCTAssertEqual(rerun["spec"]?["optim"]?["epochs"]?.intValue, 2, "the source run's spec, not the defaults")
            let source = try await client.json(.get, "/api/runs/\(sourceID)")
            XCTAssertEqual(rerun["spec"]?["averaging"], source["spec"]?["averaging"])

            // The same shape as GET /api/runs/{id}: the same keys in the same order.
            let shown = try await client.call(.get, "/api/runs/\(newID)")
            XCTAssertEqual(Self.topLevelKeys(String(buffer: shown.body)), Self.topLevelKeys(String(buffer: response.body)))
            XCTAssertEqual(
                Self.topLevelKeys(String(buffer: response.body)),
                [
                    "id", "name", "experiment", "experiment_id", "variant", "seed", "status", "external", "notes", "tags",
                    "strategies", "code_version", "created_at", "started_at", "ended_at", "error", "progress", "spec", "summary",
                    "warnings", "timing", "latest", "slurm_job_id", "slurm_state",
                ])
            let listed = try await client.json(.get, "/api/experiments/\(experimentID)")
            XCTAssertEqual(listed["runs"]?.count, 5, "the new run belongs to the experiment")

            // The page's button: the same service, a redirect to the new run, the next seed again.
            let page = try await client.call(.post, "/runs/\(sourceID)/again")
            XCTAssertEqual(page.status, .seeOther)
            let location = try XCTUnwrap(page.headers[.location])
            let pageRunID = try XCTUnwrap(Int(location.dropFirst("/runs/".count)))
            let pageRun = try await client.json(.get, "/api/runs/\(pageRunID)")
            XCTAssertEqual(pageRun["seed"]?.intValue, 6)

            // An external run trains elsewhere; a missing run is a 404; neither stores anything.
            let external = try await client.json(.post, "/api/runs?launch=false", #"{"name": "outside"}"#, expect: .created)
            let externalID = try XCTUnwrap(external["id"]?.intValue)
            try assertError(
                try await client.call(.post, "/api/runs/\(externalID)/rerun"), .conflict, field: nil, contains: "is external")
            try assertError(try await client.call(.post, "/api/runs/999999/rerun"), .notFound, field: nil, contains: "999999")
            try assertError(try await client.call(.post, "/api/runs/x/rerun"), .badRequest, field: "id")
            let all = try await client.json(.get, "/api/runs")
            XCTAssertEqual(all["runs"]?.count, 7)
        }
    }

    /// Small bodies come out in the spec's field order with the wire forms of numbers: integral
    /// values without a fraction, nulls written out, the error shape `{status, message, field}`.
    func testViewsKeepTheSpecsFieldOrder() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let health = String(buffer: try await client.call(.get, "/api/health").body)
            XCTAssertEqual(
                health,
                #"{"status":"ok","version":"test","schema_version":\#(TrackingStore.schemaVersion),"queue_length":0,"running":0,"max_concurrent":0}"#
            )
            let error = String(buffer: try await client.call(.get, "/api/runs/7").body)
            XCTAssertEqual(error, #"{"error":{"status":404,"message":"run 7 does not exist","field":null}}"#)
            let run = try await client.json(.post, "/api/runs?launch=false", #"{"name": "x"}"#, expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            let batch = #"{"metrics": [{"key": "a/b", "step": 1, "value": "NaN"}, {"key": "a/b", "step": 2, "value": -0.0}]}"#
            let logged = String(buffer: try await client.call(.post, "/api/runs/\(id)/metrics", batch).body)
            XCTAssertEqual(logged, #"{"inserted":2,"unchanged":0}"#)
            let shown = String(buffer: try await client.call(.get, "/api/runs/\(id)").body)
            XCTAssertTrue(shown.contains(#""latest":{"raw":{"a/b":{"step":2,"epoch":null,"value":0}}}"#), shown)
            XCTAssertTrue(shown.hasPrefix(#"{"id":\#(id),"name":"x","experiment":null,"experiment_id":null,"#), shown)
        }
    }

    /// Key order of a JSON object's top level, read from its text.
    static func topLevelKeys(_ text: String) -> [String] {
        var keys: [String] = []
        var depth = 0, inString = false, escaped = false, current = "", expectKey = false
        for ch in text {
            if inString {
                if escaped { escaped = false; current.append(ch); continue }
                if ch == "\\" { escaped = true; continue }
                if ch == "\"" {
                    inString = false
                    if expectKey && depth == 1 { keys.append(current) }
                    expectKey = false
                } else {
                    current.append(ch)
                }
                continue
            }
            switch ch {
            case "\"":
                inString = true
                current = ""
            case "{", "[":
                depth += 1
                expectKey = ch == "{" && depth == 1
            case "}", "]": depth -= 1
            case ",": expectKey = depth == 1
            default: break
            }
        }
        return keys
    }
}
