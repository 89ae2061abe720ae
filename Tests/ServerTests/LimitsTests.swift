import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import XCTest

@testable import Server

/// Every cap of Limits.swift over real HTTP: the status, a message naming the cap and its value,
/// and nothing of the refused request stored.
final class LimitsTests: XCTestCase {
    func testTextCapsOnRunsAndForms() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            func quoted(_ s: String) -> String { JSONValue.string(s).text() }
            let long = String(repeating: "n", count: Limits.nameCharacters + 1)
            try assertError(
                try await client.call(.post, "/api/runs?launch=false", #"{"name": \#(quoted(long))}"#), .badRequest,
                field: "name", contains: "name cap is \(Limits.nameCharacters) characters")
            try assertError(
                try await client.call(.post, "/api/runs", #"{"name": \#(quoted(long))}"#), .badRequest,
                field: "name", contains: "name cap is 200")
            try assertError(
                try await client.call(.post, "/api/experiments", #"{"name": \#(quoted(long)), "variants": ["none"]}"#),
                .badRequest, field: "name", contains: "name cap is 200")
            try assertError(
                try await client.call(
                    .post, "/api/experiments",
                    #"{"name": "x", "variants": [{"name": \#(quoted(long)), "preset": "none"}]}"#),
                .badRequest, field: "variants[0].name", contains: "name cap is 200")
            let manyTags = JSONValue.array((0...Limits.tagsPerRun).map { .string("t\($0)") }).text()
            try assertError(
                try await client.call(.post, "/api/runs?launch=false", #"{"tags": \#(manyTags)}"#), .badRequest,
                field: "tags", contains: "cap is \(Limits.tagsPerRun) tags per run")
            let listed1 = try await client.json(.get, "/api/runs")
            XCTAssertEqual(listed1["runs"]?.count, 0)

            let run = try await client.json(.post, "/api/runs?launch=false", #"{"name": "ok"}"#, expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            let longTag = String(repeating: "t", count: Limits.tagCharacters + 1)
            try assertError(
                try await client.call(.patch, "/api/runs/\(id)", #"{"tags": ["a", \#(quoted(longTag))]}"#), .badRequest,
                field: "tags[1]", contains: "tag cap is \(Limits.tagCharacters) characters")
            try assertError(
                try await client.call(.patch, "/api/runs/\(id)", #"{"tags": \#(manyTags)}"#), .badRequest, field: "tags",
                contains: "cap is 64 tags per run")
            let notes = String(repeating: "é", count: Limits.notesBytes / 2)  // exactly the cap in UTF-8
            try assertError(
                try await client.call(.patch, "/api/runs/\(id)", #"{"name": "changed", "notes": \#(quoted(notes + "x"))}"#),
                .badRequest, field: "notes", contains: "notes cap is \(Limits.notesBytes) bytes")
            try assertError(
                try await client.call(.patch, "/api/runs/\(id)", #"{"name": \#(quoted(long))}"#), .badRequest, field: "name",
                contains: "name cap is 200")
            var stored = try await client.json(.get, "/api/runs/\(id)")
            XCTAssertEqual(stored["name"]?.stringValue, "ok", "a refused PATCH changes nothing")
            let atCaps = try await client.json(
                .patch, "/api/runs/\(id)",
                #"""
                {"name": \#(quoted(String(long.dropLast()))), "notes": \#(quoted(notes)),
                 "tags": \#(JSONValue.array((1...Limits.tagsPerRun).map { .string(String(format: "%03d", $0) + String(repeating: "x", count: 97)) }).text())}
                """#)
            XCTAssertEqual(atCaps["notes"]?.stringValue?.utf8.count, Limits.notesBytes)

            // The run page's form: the same caps, as an error page; nothing stored.
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            let page = try await client.call(.post, "/runs/\(id)/edit", "name=" + long, headers: form)
            XCTAssertEqual(page.status, .badRequest)
            XCTAssertTrue(String(buffer: page.body).contains("name cap is 200 characters"))
            let tagsForm = try await client.call(.post, "/runs/\(id)/edit", "name=x&tags=" + longTag, headers: form)
            XCTAssertEqual(tagsForm.status, .badRequest)
            XCTAssertTrue(String(buffer: tagsForm.body).contains("tag cap is 100 characters"))
            stored = try await client.json(.get, "/api/runs/\(id)")
            XCTAssertEqual(stored["name"]?.stringValue, String(long.dropLast()))
        }
    }

    func testBodyCapOnEveryRoute() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let run = try await client.json(.post, "/api/runs?launch=false", "{}", expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            let big = "{\"name\": \"" + String(repeating: "x", count: Limits.bodyBytes) + "\"}"
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            for (method, path) in [
                (HTTPRequest.Method.post, "/api/runs"), (.post, "/api/experiments"), (.patch, "/api/runs/\(id)"),
                (.post, "/api/runs/\(id)/cancel"), (.delete, "/api/runs/\(id)"), (.get, "/api/health"),
            ] {
                try assertError(
                    try await client.call(method, path, big), .contentTooLarge, field: nil,
                    contains: "body cap is \(Limits.bodyBytes) bytes")
            }
            for path in ["/experiments", "/runs/\(id)/edit", "/runs/\(id)/cancel", "/runs/\(id)/again"] {
                let r = try await client.call(
                    .post, path, "name=" + String(repeating: "x", count: Limits.bodyBytes), headers: form)
                XCTAssertEqual(r.status, .contentTooLarge, path)
                XCTAssertTrue(String(buffer: r.body).contains("body cap is 1048576 bytes"), path)
            }
            // Metrics keep MLflow's 1 MB (below the body cap) and its wording.
            let batch = "{\"metrics\": []" + String(repeating: " ", count: 1_000_001) + "}"
            try assertError(
                try await client.call(.post, "/api/runs/\(id)/metrics", batch), .badRequest, field: "metrics", contains: "1 MB")
            let after = try await client.json(.get, "/api/runs/\(id)")
            XCTAssertEqual(after["status"]?.stringValue, "running", "the refused cancel did nothing")
            let listed2 = try await client.json(.get, "/api/runs")
            XCTAssertEqual(listed2["runs"]?.count, 1)
        }
    }

    func testRunsPerExperimentAndQueuedRunsInAll() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let tooMany = JSONValue.array((0...(Limits.runsPerExperiment / 2)).map { .number(Double($0)) }).text()
            try assertError(
                try await client.call(
                    .post, "/api/experiments", #"{"name": "x", "variants": ["none", "ema"], "seeds": \#(tooMany)}"#),
                .badRequest, field: "seeds",
                contains: "2 variants × 501 seeds make 1002 runs; the cap is 1000 runs per experiment")
            let listed3 = try await client.json(.get, "/api/experiments")
            XCTAssertEqual(listed3["experiments"]?.count, 0)

            // Fill the queue to its cap exactly (nothing trains: no training slot), then one more.
            let seeds = JSONValue.array((0..<Limits.runsPerExperiment).map { .number(Double($0)) }).text()
            for i in 0..<(Limits.queuedRuns / Limits.runsPerExperiment) {
                _ = try await client.json(
                    .post, "/api/experiments", #"{"name": "e\#(i)", "variants": ["none"], "seeds": \#(seeds)}"#,
                    expect: .created)
            }
            try assertError(
                try await client.call(.post, "/api/experiments", #"{"name": "one more", "variants": ["none"]}"#),
                .tooManyRequests, field: nil, contains: "the cap is \(Limits.queuedRuns) queued runs")
            try assertError(
                try await client.call(.post, "/api/runs", "{}"), .tooManyRequests, field: nil,
                contains: "10000 runs are queued and this would queue 1 more")
            let listed4 = try await client.json(.get, "/api/experiments?limit=1000")
            XCTAssertEqual(listed4["experiments"]?.count, 10)
            let store = try TrackingStore(path: folder.db)
            XCTAssertEqual(try store.count(status: .queued), Limits.queuedRuns)
            // External runs are not queued: they still come in.
            _ = try await client.json(.post, "/api/runs?launch=false", "{}", expect: .created)
        }
    }

    func testMetricSeriesPerRun() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let run = try await client.json(.post, "/api/runs?launch=false", "{}", expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            func batch(_ keys: some Sequence<String>, step: Int) -> String {
                "{\"metrics\": [" + keys.map { "{\"key\": \"\($0)\", \"step\": \(step), \"value\": 1}" }.joined(separator: ",")
                    + "]}"
            }
            let first = try await client.json(
                .post, "/api/runs/\(id)/metrics", batch((0..<Limits.seriesPerRun - 1).map { "k\($0)" }, step: 1))
            XCTAssertEqual(first["inserted"]?.intValue, Limits.seriesPerRun - 1)
            // One new series reaches the cap; two more pass it, and the whole batch is refused.
            try assertError(
                try await client.call(.post, "/api/runs/\(id)/metrics", batch(["k0", "new1", "new2"], step: 2)), .conflict,
                field: "metrics", contains: "the cap is \(Limits.seriesPerRun) series per run")
            let points = try await client.json(.get, "/api/runs/\(id)/metrics?key=k0")
            XCTAssertEqual(points["points"]?.count, 1, "nothing of the refused batch is stored")
            _ = try await client.json(.post, "/api/runs/\(id)/metrics", batch(["k0", "new1"], step: 2))
            // Full: new points of known series come in, a new series does not (under another weight set either).
            _ = try await client.json(.post, "/api/runs/\(id)/metrics", batch(["k5", "new1"], step: 3))
            try assertError(
                try await client.call(
                    .post, "/api/runs/\(id)/metrics",
                    #"{"metrics": [{"key": "k0", "weights": "swa", "step": 1, "value": 1}]}"#),
                .conflict, field: "metrics", contains: "the run has 1000 metric series")
        }
    }

    func testEventStreamsPerRunAndInAll() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let port = try XCTUnwrap(client.port)
            var runs: [Int] = []
            for _ in 0...(Limits.subscribers / Limits.subscribersPerRun) {
                let run = try await client.json(.post, "/api/runs?launch=false", "{}", expect: .created)
                runs.append(try XCTUnwrap(run["id"]?.intValue))
            }
            func open(_ run: Int) throws -> (RawConnection, Int, String) {
                let c = try RawConnection(port: port)
                try c.send("GET /api/runs/\(run)/events HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")
                let (status, _) = try c.readHead()
                return (c, status, status == 200 ? "" : String(decoding: try c.readToEnd(), as: UTF8.self))
            }
            var streams: [RawConnection] = []
            for _ in 0..<Limits.subscribersPerRun {
                let (c, status, _) = try open(runs[0])
                XCTAssertEqual(status, 200)
                streams.append(c)
            }
            var (_, status, body) = try open(runs[0])
            XCTAssertEqual(status, 429)
            XCTAssertTrue(body.contains("the cap is \(Limits.subscribersPerRun) event streams per run"), body)
            for run in runs[1..<(Limits.subscribers / Limits.subscribersPerRun)] {
                for _ in 0..<Limits.subscribersPerRun {
                    let (c, status, _) = try open(run)
                    XCTAssertEqual(status, 200)
                    streams.append(c)
                }
            }
            (_, status, body) = try open(runs.last!)
            XCTAssertEqual(status, 429)
            XCTAssertTrue(body.contains("the cap is \(Limits.subscribers) event streams in all"), body)
            // A run that finishes ends its streams, and their places are free again (a client that goes
            // away frees its place when the next heartbeat finds it gone).
            _ = try await client.json(.patch, "/api/runs/\(runs[0])", #"{"status": "completed"}"#)
            var freed = false
            for _ in 0..<100 where !freed {
                try await Task.sleep(nanoseconds: 50_000_000)
                let (c, status, _) = try open(runs.last!)
                freed = status == 200
                if freed { streams.append(c) }
            }
            XCTAssertTrue(freed, "the streams of a finished run keep their places")
            // Finished runs end their streams: the server stops without waiting for a heartbeat.
            for run in runs.dropFirst() { _ = try await client.json(.patch, "/api/runs/\(run)", #"{"status": "completed"}"#) }
        }
    }
}
