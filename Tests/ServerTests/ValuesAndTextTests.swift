import CSQLite
import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import XCTest

@testable import Server

/// Issue 14, "Values and text", over real HTTP and a real SQLite file: stored extremes never break a
/// page, out-of-range numbers and bad UTF-8 are refused by name, text with NUL stays whole, SQL
/// never reaches a response, `LIKE` filters are literal, CSV cells cannot run as formulas, ids are
/// not reused, and an external run can say why it failed.
final class ValuesAndTextTests: XCTestCase {
    static let jsonType: HTTPFields = [.contentType: "application/json"]

    /// Extremes a client may legally send: every one is a finite JSON number.
    static let extremes: [Double] = [-1e308, 1e308, 5e-324, -5e-324, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]

    static func number(_ x: Double) -> String { "\(x)" }

    func testExtremeValuesNeverBreakAPageOrAResponse() async throws {
        let folder = try TempFolder()
        let (experimentID, runIDs) = try Self.writeExtremeExperiment(store: try TrackingStore(path: folder.db))
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            let run = try await client.call(
                .post, "/api/runs?launch=false", #"{"name": "extremes", "averaging": {"kind": "ema"}}"#)
            XCTAssertEqual(run.status, .created, String(buffer: run.body))
            let id = try XCTUnwrap(try JSONValue.parse(String(buffer: run.body))["id"]?.intValue)
            var points: [String] = []
            // The report's pair, then one series per extreme alone, a flat series at each, and a mixed one.
            points.append(#"{"key": "train/loss", "step": 1, "value": -1e308}"#)
            points.append(#"{"key": "train/loss", "step": 2, "value": 1e308}"#)
            for (i, x) in Self.extremes.enumerated() {
                points.append(#"{"key": "single/\#(i)", "step": 1, "value": \#(Self.number(x))}"#)
                for step in 1...3 { points.append(#"{"key": "flat/\#(i)/top1", "step": \#(step), "value": \#(Self.number(x))}"#) }
                points.append(#"{"key": "test/top1", "weights": "ema@0.9", "step": \#(i + 1), "value": \#(Self.number(x))}"#)
            }
            points.append(#"{"key": "test/top1", "step": 1, "value": "NaN"}"#)
            points.append(#"{"key": "test/top1", "step": 2, "value": "Infinity"}"#)
            points.append(#"{"key": "test/top1", "step": 3, "value": 5e-324, "time": 1.7976931348623157e308}"#)
            let posted = try await client.call(
                .post,
                "/api/runs/\(id)/metrics", #"{"metrics": [\#(points.joined(separator: ","))]}"#)
            XCTAssertEqual(posted.status, .ok, String(buffer: posted.body))

            for uri in [
                "/runs/\(id)", "/", "/experiments/\(experimentID)", "/experiments/\(experimentID)?metric=test/loss",
                "/api/runs/\(id)", "/api/runs", "/api/runs.csv", "/api/runs/\(id)/metrics", "/api/runs/\(id)/metrics.csv",
                "/api/experiments/\(experimentID)", "/api/experiments/\(experimentID)/compare",
                "/api/experiments/\(experimentID)/compare.csv", "/api/experiments/\(experimentID)/compare?metric=test/loss",
                "/api/experiments/\(experimentID)/grid", "/api/experiments/\(experimentID)/grid.csv", "/api/experiments.csv",
            ] + runIDs.map({ "/runs/\($0)" }) {
                let r = try await client.call(.get, uri)
                XCTAssertEqual(r.status, .ok, "\(uri): \(String(buffer: r.body).prefix(300))")
                if uri.hasPrefix("/runs/") { XCTAssertTrue(String(buffer: r.body).contains("<svg"), uri) }
            }
            // The values come back exactly as they were sent.
            let series = try JSONValue.parse(
                String(buffer: try await client.call(.get, "/api/runs/\(id)/metrics?key=train/loss").body))
            XCTAssertEqual(series["points"]?[0]?["value"]?.doubleValue, -1e308)
            XCTAssertEqual(series["points"]?[1]?["value"]?.doubleValue, 1e308)
            let tiny = try JSONValue.parse(
                String(buffer: try await client.call(.get, "/api/runs/\(id)/metrics?key=single/2").body))
            XCTAssertEqual(tiny["points"]?[0]?["value"]?.doubleValue, 5e-324)
            let csv = String(buffer: try await client.call(.get, "/api/runs/\(id)/metrics.csv?key=single/4").body)
            XCTAssertTrue(csv.contains(",1.7976931348623157e+308,"), csv)
        }
    }

    /// The pages' number formats and heat-map colours over extremes and 2 000 random bit patterns
    /// (fixed seed): no trap, short text, a valid colour.
    func testPageFormatsTakeAnyValue() {
        var state: UInt64 = 0x5EED_0014
        func random() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state ^ (state >> 29)
        }
        let special = Self.extremes + [0, -0.0, 1e-320, .nan, .infinity, -.infinity, 1e15, 9.3e18, -9.3e18]
        let values =
            special + (0..<2000).map { i in i % 2 == 0 ? Double(bitPattern: random()) : special[Int(random() % 15)] * 0.999 }
        let scale = HeatMap.Scale(Self.extremes)
        for (i, x) in values.enumerated() {
            for key in ["test/top1", "test/loss"] {
                let texts = [
                    Format.metric(x, key: key), Format.spread(x, key: key) ?? "", Format.delta(x, key: key),
                    Format.interval((x, values[(i + 1) % values.count]), key: key, signed: true),
                    Format.number(x, significant: 4),
                ]
                for t in texts { XCTAssertTrue(!t.isEmpty && t.count <= 48, "\(x) → \(t)") }
            }
            _ = Format.duration(x)
            _ = Format.time(x)
            _ = Format.iso(x)
            _ = Format.whole(x)
            if x.isFinite, let scale {
                let colour = scale.colors(x).background
                XCTAssertNotNil(try? Regex("#[0-9a-f]{6}").wholeMatch(in: colour), "\(x) → \(colour)")
            }
        }
        XCTAssertEqual(Format.metric(1e308, key: "test/top1"), "1.000e+308")
        XCTAssertEqual(Format.time(1e300), "—")
        XCTAssertNil(Format.duration(1e300))
    }

    /// A finished 2 × 2 experiment whose curves, finals and grid cells are all extremes.
    static func writeExtremeExperiment(store: TrackingStore) throws -> (Int64, [Int64]) {
        let spec = try RunSpec.decode(["experiment": "extremes", "seed": 0]).json()
        let news = ["none", "ema"].flatMap { v in
            [Int64(0), 1].map { s in
                NewRun(
                    experiment: "extremes", variant: v, seed: s, name: "\(v)-\(s)", strategies: [v], status: .completed,
                    specJSON: spec.text(), codeVersion: "test")
            }
        }
        let variants = JSONValue.array(["none", "ema"].map { ["name": .string($0), "preset": .string($0), "spec": [:]] }).text()
        let (experiment, runs) = try store.createExperiment(
            name: "extremes", baseJSON: "{}", variantsJSON: variants, seedsJSON: "[0,1]", baseline: "none", runs: news)
        for (k, r) in runs.enumerated() {
            let values = extremes.shuffledDeterministically(k)
            var points: [MetricPoint] = []
            for (i, x) in values.enumerated() {
                for key in ["test/top1", "test/loss", "train/loss"] {
                    points.append(MetricPoint(key: key, step: Int64(i + 1), epoch: Int64(i + 1), value: x, time: 1_764_000_000))
                }
            }
            try store.logBatch(run: r.id, points, policy: .refuse)
            try store.saveGrid(
                run: r.id,
                [
                    GridCell(
                        weights: "raw", stage: "base", trainSize: 28, resize: 28, crop: 28, top1: values[0], top5: values[1],
                        loss: 1),
                    GridCell(
                        weights: "raw", stage: "base", trainSize: 28, resize: 32, crop: 28, top1: values[2], top5: nil, loss: nil),
                ])
            try store.setSummary(r.id, json: JSONValue.object(["final": ["raw": ["test/top1": JSONValue(values.last!)]]]).text())
            try store.setProgress(
                r.id, json: #"{"epoch":1e300,"step":1e300,"total_steps":1e-300,"images_per_sec":1e308,"eta_s":1e308}"#)
        }
        return (experiment.id, runs.map(\.id))
    }

    func testNumbersOutOfRangeBadUTF8AndBrokenBodiesAreRefusedByName() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            let run = try JSONValue.parse(String(buffer: try await client.call(.post, "/api/runs?launch=false", "{}").body))
            let id = try XCTUnwrap(run["id"]?.intValue)
            let metrics = "/api/runs/\(id)/metrics"
            for (body, field) in [
                (#"{"metrics": [{"key": "a", "step": 1, "value": 1e400}]}"#, "metrics[0].value"),
                (
                    #"{"metrics": [{"key": "a", "step": 1, "value": 1}, {"key": "a", "step": 2, "value": -1e400}]}"#,
                    "metrics[1].value"
                ),
                (#"{"metrics": [{"key": "a", "step": 1, "value": 1, "time": 1e999}]}"#, "metrics[0].time"),
                (#"{"metrics": [{"key": "a", "step": 1e400, "value": 1}]}"#, "metrics[0].step"),
            ] {
                try assertError(try await client.call(.post, metrics, body), .badRequest, field: field, contains: "range")
            }
            try assertError(
                try await client.call(.post, "/api/runs?launch=false", #"{"seed": 1e400}"#), .badRequest, field: "seed",
                contains: "too large")
            try assertError(try await client.call(.patch, "/api/runs/\(id)", #"{"notes": -1e400}"#), .badRequest, field: "notes")
            // In range for a Double but not for a seed: refused, not a trap converting it to Int64.
            try assertError(
                try await client.call(.post, "/api/runs?launch=false", #"{"seed": 1e300}"#), .badRequest, field: "seed")
            try assertError(
                try await client.call(.post, "/api/experiments", #"{"name": "x", "variants": ["none"], "seeds": [1e400]}"#),
                .badRequest, field: "seeds[0]")

            // Bad UTF-8: a truncated 4-byte sequence is 3 bytes, the length of the U+FFFD it used to become.
            let truncated: [UInt8] = [0xF0, 0x9F, 0x98]
            for (prefix, suffix, field) in [
                (#"{"metrics": [{"key": "a"#, #"", "step": 1, "value": 1}]}"#, "metrics[0].key"),
                (#"{"metrics": [{"key": "a\n"#, #"", "step": 1, "value": 1}]}"#, "metrics[0].key"),
                (#"{"metrics": [{"key": "a", "weights": ""#, #"", "step": 1, "value": 1}]}"#, "metrics[0].weights"),
            ] {
                let r = try await client.postJSON(metrics, bytes: Array(prefix.utf8) + truncated + Array(suffix.utf8))
                try assertError(r, .badRequest, field: field, contains: "UTF-8")
            }
            let name = try await client.postJSON(
                "/api/runs?launch=false", bytes: Array(#"{"name": "x"#.utf8) + truncated + Array(#""}"#.utf8))
            try assertError(name, .badRequest, field: "name", contains: "UTF-8")
            let form = try await client.execute(
                uri: "/experiments", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(bytes: Array("name=x".utf8) + truncated + Array("&presets=none".utf8)))
            XCTAssertEqual(form.status, .badRequest, String(buffer: form.body))
            XCTAssertTrue(String(buffer: form.body).contains("UTF-8"), String(buffer: form.body))

            // Malformed or cut short: 400 saying what is wrong, not 413. Over the cap: still 413.
            for body in ["{", #"{"name": "x""#, #"{"name": "x"} trailing"#] {
                let r = try await client.call(.post, "/api/runs?launch=false", body)
                try assertError(r, .badRequest, field: nil, contains: "body")
            }
            try assertError(
                try await client.call(.post, metrics, #"{"metrics": [{"key": "a", "step": 1, "val"#), .badRequest,
                field: "metrics[0]")
            let cut = try await Self.truncatedRequest(port: try XCTUnwrap(client.port), path: "/api/runs?launch=false")
            // Content-Length promised 100 bytes, 13 came: this used to be 413 "larger than 1048576 bytes".
            XCTAssertTrue(cut.hasPrefix("HTTP/1.1 400"), cut)
            XCTAssertTrue(cut.contains("could not be read completely"), cut)
            let huge = "{\"name\": \"" + String(repeating: "x", count: 1 << 21) + "\"}"
            try assertError(
                try await client.call(.post, "/api/runs?launch=false", huge), .contentTooLarge, field: nil,
                contains: "the body cap is 1048576 bytes")

            // Nothing of the refused requests was stored.
            let runs = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/runs").body))
            XCTAssertEqual(runs["runs"]?.count, 1)
            let points = try JSONValue.parse(String(buffer: try await client.call(.get, metrics).body))
            XCTAssertEqual(points["points"]?.count, 0)
        }
    }

    /// Sends a request whose body stops short of its Content-Length and closes its side; returns
    /// what the server answered.
    static func truncatedRequest(port: Int, path: String) async throws -> String {
        try await Blocking.run {
            let connection = try RawConnection(port: port)
            try connection.send(
                "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 100\r\n\r\n{\"name\": \"cut")
            connection.closeWrite()
            return String(decoding: try connection.readToEnd(), as: UTF8.self)
        }
    }

    func testTextWithNULIsStoredWholeAndSQLErrorsStayInTheLog() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            // Two tags equal up to their NUL: this was a constraint error whose 500 showed the SQL.
            let created = try await client.call(
                .post,
                "/api/runs?launch=false", #"{"name": "a\u0000b", "experiment": "e\u0000x", "tags": ["x\u0000a", "x\u0000b"]}"#)
            XCTAssertEqual(created.status, .created, String(buffer: created.body))
            let id = try XCTUnwrap(try JSONValue.parse(String(buffer: created.body))["id"]?.intValue)
            let patched = try await client.call(
                .patch,
                "/api/runs/\(id)", #"{"notes": "n\u0000m", "tags": ["t\u0000a", "t\u0000b"]}"#)
            XCTAssertEqual(patched.status, .ok, String(buffer: patched.body))
            let metrics =
                #"{"metrics": [{"key": "k\u00001", "weights": "w\u0000", "step": 1, "value": 1}, {"key": "k\u00002", "weights": "w\u0000", "step": 1, "value": 2}]}"#
            let logged = try await client.call(.post, "/api/runs/\(id)/metrics", metrics).status
            XCTAssertEqual(logged, .ok)
            let run = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/runs/\(id)").body))
            XCTAssertEqual(run["name"]?.stringValue, "a\u{0}b")
            XCTAssertEqual(run["experiment"]?.stringValue, "e\u{0}x")
            XCTAssertEqual(run["notes"]?.stringValue, "n\u{0}m")
            XCTAssertEqual(run["tags"], .array([.string("t\u{0}a"), .string("t\u{0}b")]))
            XCTAssertEqual(run["latest"]?["w\u{0}"]?["k\u{0}2"]?["value"]?.doubleValue, 2)
            let runPage = try await client.call(.get, "/runs/\(id)").status
            XCTAssertEqual(runPage, .ok)
            let runsCSV = try await client.call(.get, "/api/runs.csv").status
            XCTAssertEqual(runsCSV, .ok)

            // A failure inside SQLite (a trigger stands in for any constraint or I/O error): the answer
            // names a request id, never the statement or SQLite's message.
            var db: OpaquePointer?
            XCTAssertEqual(sqlite3_open(folder.db, &db), SQLITE_OK)
            XCTAssertEqual(
                sqlite3_exec(
                    db,
                    """
                    CREATE TRIGGER refuse_tags BEFORE INSERT ON run_tags
                    BEGIN SELECT RAISE(ABORT, 'secret detail of the schema'); END
                    """, nil, nil, nil), SQLITE_OK)
            sqlite3_close(db)
            for request in [("/api/runs/\(id)", #"{"tags": ["z"]}"#)] {
                let r = try await client.call(.patch, request.0, request.1)
                let text = String(buffer: r.body)
                XCTAssertEqual(r.status, .internalServerError, text)
                let message = try XCTUnwrap(try JSONValue.parse(text)["error"]?["message"]?.stringValue)
                XCTAssertNotNil(try Regex(#"internal error \(request [0-9a-f]{12}\)"#).wholeMatch(in: message), message)
                XCTAssertFalse(text.contains("secret") || text.contains("INSERT") || text.contains("SQLite"), text)
            }
            let page = try await client.execute(
                uri: "/runs/\(id)/edit", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "tags=q"))
            XCTAssertFalse(String(buffer: page.body).contains("secret"), String(buffer: page.body))
            // The failed change stored nothing.
            let after = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/runs/\(id)").body))
            XCTAssertEqual(after["tags"], .array([.string("t\u{0}a"), .string("t\u{0}b")]))
        }
    }

    func testStrategyFilterIsLiteralAndCSVCellsCannotRunAsFormulas() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            var ids: [Int] = []
            for body in [
                #"{"name": "=HYPERLINK(\"http://evil.example\",\"x\")", "tags": ["+1", "@SUM(A1)", "-2", "ok"], "averaging": {"kind": "ema"}}"#,
                #"{"name": "\tlead", "averaging": [{"kind": "swa"}]}"#,
                #"{"name": "plain", "averaging": {"kind": "a%b"}}"#,
            ] {
                let r = try await client.call(.post, "/api/runs?launch=false", body)
                XCTAssertEqual(r.status, .created, String(buffer: r.body))
                ids.append(try XCTUnwrap(try JSONValue.parse(String(buffer: r.body))["id"]?.intValue))
            }
            func matching(_ strategy: String) async throws -> [Int] {
                let r = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/runs?strategy=\(strategy)").body))
                guard case .array(let runs)? = r["runs"] else { return [] }
                return runs.compactMap { $0["id"]?.intValue }.sorted()
            }
            let percent = try await matching("%25")
            XCTAssertEqual(percent, [], "% matched everything")
            let underscore = try await matching("_wa")
            XCTAssertEqual(underscore, [], "_ matched any character")
            let ema = try await matching("ema")
            XCTAssertEqual(ema, [ids[0]])
            let literalPercent = try await matching("a%25b")
            XCTAssertEqual(literalPercent, [ids[2]])

            let batch =
                #"{"metrics": [{"key": "=cmd|' /C calc'!A0", "step": 1, "value": -0.0012}, {"key": "-x", "weights": "@w", "step": 1, "value": -5}]}"#
            let logged = try await client.call(.post, "/api/runs/\(ids[0])/metrics", batch).status
            XCTAssertEqual(logged, .ok)
            let metrics = String(buffer: try await client.call(.get, "/api/runs/\(ids[0])/metrics.csv").body)
            let lines = metrics.split(separator: "\r\n").map(String.init)
            XCTAssertTrue(lines.contains { $0.hasPrefix("'-x,'@w,1,,-5.0,") }, metrics)
            XCTAssertTrue(lines.contains { $0.hasPrefix("'=cmd|' /C calc'!A0,raw,1,,-0.0012,") }, metrics)
            let runs = String(buffer: try await client.call(.get, "/api/runs.csv").body)
            XCTAssertTrue(runs.contains(#","'=HYPERLINK(""http://evil.example"",""x"")","#), runs)
            XCTAssertTrue(runs.contains(",'+1;@SUM(A1);-2;ok,"), runs)
            XCTAssertTrue(runs.contains(",'\tlead,"), runs)
            XCTAssertTrue(runs.contains(",plain,"), runs)
            for line in runs.split(separator: "\r\n").dropFirst() {
                // Every cell of a run row that starts a formula is a quoted `'…` or a number.
                for cell in line.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let first = cell.first, "=+-@\t\r".contains(first) else { continue }
                    XCTAssertNotNil(Double(cell), "\(cell) in \(line)")
                }
            }
        }
    }

    func testIdsAreNotReusedAndAnExternalRunSaysWhyItFailed() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            func create() async throws -> Int {
                let r = try await client.call(.post, "/api/runs?launch=false", #"{"name": "r"}"#)
                return try XCTUnwrap(try JSONValue.parse(String(buffer: r.body))["id"]?.intValue)
            }
            let first = try await create()
            XCTAssertEqual(first, 1)
            let second = try await create()
            XCTAssertEqual(second, 2)
            let finished = try await client.call(.patch, "/api/runs/2", #"{"status": "completed"}"#).status
            XCTAssertEqual(finished, .ok)
            let deleted = try await client.call(.delete, "/api/runs/2").status
            XCTAssertEqual(deleted, .noContent)
            let third = try await create()
            XCTAssertEqual(third, 3, "the deleted run's id 2 must not come back")
            try assertError(try await client.call(.get, "/api/runs/2"), .notFound, field: nil)

            // error only with a failed status (or on a failed run); a refused request changes nothing.
            try assertError(try await client.call(.patch, "/api/runs/1", #"{"error": "why"}"#), .badRequest, field: "error")
            try assertError(
                try await client.call(.patch, "/api/runs/1", #"{"status": "completed", "error": "why"}"#), .badRequest,
                field: "error")
            try assertError(
                try await client.call(.patch, "/api/runs/1", #"{"status": "failed", "error": 3}"#), .badRequest, field: "error")
            let still = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/runs/1").body))
            XCTAssertEqual(still["status"]?.stringValue, "running")

            let failed = try await client.call(
                .patch,
                "/api/runs/1", #"{"status": "failed", "error": "CUDA out of memory <at step 3>"}"#)
            XCTAssertEqual(failed.status, .ok, String(buffer: failed.body))
            let shown = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/runs/1").body))
            XCTAssertEqual(shown["status"]?.stringValue, "failed")
            XCTAssertEqual(shown["error"]?.stringValue, "CUDA out of memory <at step 3>")
            let page = String(buffer: try await client.call(.get, "/runs/1").body)
            XCTAssertTrue(page.contains("CUDA out of memory &lt;at step 3&gt;"), page)
            // A run that failed already can correct its reason.
            let corrected = try await client.call(.patch, "/api/runs/1", #"{"error": "disk full"}"#).status
            XCTAssertEqual(corrected, .ok)
            let correctedRun = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/runs/1").body))
            XCTAssertEqual(correctedRun["error"]?.stringValue, "disk full")
            // Without a reason the old default stays.
            let reportedFailed = try await client.call(.patch, "/api/runs/3", #"{"status": "failed"}"#).status
            XCTAssertEqual(reportedFailed, .ok)
            let plain = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/runs/3").body))
            XCTAssertEqual(plain["error"]?.stringValue, "reported failed")
        }
    }
}

extension Array {
    /// A rotation by `k`: each run of the fixture gets the extremes in another order.
    func shuffledDeterministically(_ k: Int) -> [Element] {
        guard !isEmpty else { return self }
        let r = k % count
        return Array(self[r...] + self[..<r])
    }
}

extension TestClientProtocol {
    /// A JSON request as curl --json sends it.
    func postJSON(_ uri: String, bytes: [UInt8]) async throws -> TestResponse {
        try await execute(uri: uri, method: .post, headers: ValuesAndTextTests.jsonType, body: ByteBuffer(bytes: bytes))
    }
}
