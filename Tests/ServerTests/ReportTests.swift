import Experiments
import Foundation
import PolyakTestSupport
import XCTest

@testable import Server

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `polyak train --report URL` and the route it posts its non-metric events to.
final class ReportTests: XCTestCase {
    func testTheReportSurvivesTheServerBeingDownAndEveryPointArrivesOnce() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        let http = HTTP(port: port)
        var server = try startServe(exe, folder, port: port, logLevel: "error")
        defer { server.terminate() }
        try await http.waitUntilUp()
        let id = try await http.json("POST", "/api/runs?launch=false", #"{"name": "remote"}"#)["id"]?.intValue ?? -1
        server.terminate()
        server.waitUntilExit()

        // A trainer elsewhere reports to a server that is down, then back.
        let spec =
            #"{"threads": 1, "data": {"train_limit": 192, "test_limit": 100}, "model": {"width": 4}, "optim": {"epochs": 3, "batch_size": 64}, "resolution": {"test_grid": {"resize": [28], "crop": [28]}}}"#
        let specFile = folder.url.appendingPathComponent("spec.json").path
        try Data(spec.utf8).write(to: URL(fileURLWithPath: specFile))
        let out = folder.url.appendingPathComponent("trainer.out").path
        let err = folder.url.appendingPathComponent("trainer.err").path
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let runFolder = folder.url.appendingPathComponent("remote").path
        let trainer = Process()
        trainer.executableURL = URL(fileURLWithPath: exe)
        trainer.arguments = [
            "train", "--spec", specFile, "--out", runFolder, "--report", "http://127.0.0.1:\(port)/api/runs/\(id)",
        ]
        trainer.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        trainer.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try trainer.run()
        // Lines wait in the spool while the server is down, and a post has failed (the trainer retries).
        let spool = ReportSpool(runDirectory: runFolder)
        let waited = Date().addingTimeInterval(60)
        func retrying() -> Bool { ((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").contains("retrying") }
        while (spool.pending().count < 10 || !retrying()) && trainer.isRunning && Date() < waited {
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTAssertTrue(retrying(), "a post failed while the server was down")
        XCTAssertGreaterThanOrEqual(spool.pending().count, 10, "lines wait in the spool while the server is down")
        XCTAssertEqual(spool.acknowledged(), 0)
        server = try startServe(exe, folder, port: port, logLevel: "error")
        try await http.waitUntilUp()
        let deadline = Date().addingTimeInterval(120)
        while trainer.isRunning && Date() < deadline { try await Task.sleep(nanoseconds: 100_000_000) }
        XCTAssertFalse(trainer.isRunning)
        let errText = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        XCTAssertEqual(trainer.terminationStatus, 0, errText)
        XCTAssertTrue(errText.contains("retrying"), errText)

        let printed = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map {
            try JSONValue.parse(String($0))
        }
        let reference = printed.filter { $0["type"]?.stringValue == "metric" }.map(CrashTests.Point.init).sorted()
        let stored = try await http.json("GET", "/api/runs/\(id)/metrics")["points"]!
        XCTAssertGreaterThan(reference.count, 10)
        XCTAssertEqual((0..<stored.count).map { CrashTests.Point(stored[$0]!) }.sorted(), reference)
        XCTAssertEqual(spool.acknowledged(), spool.size(), "every line acknowledged")
        let run = try await http.json("GET", "/api/runs/\(id)")
        XCTAssertEqual(run["status"]?.stringValue, "completed", "an external run ends with its summary")
        XCTAssertEqual(run["summary"]?["status"]?.stringValue, "completed")
        XCTAssertEqual(run["progress"]?["step"]?.intValue, 9)
        let grid = try await http.json("GET", "/api/runs/\(id)/grid")["cells"]!
        XCTAssertEqual(grid.count, printed.filter { $0["type"]?.stringValue == "grid" }.count)
    }

    func testTheEventsRouteStoresTrainerEventsOnceAndRefusesWhatIsNotOne() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let run = try await client.json(.post, "/api/runs?launch=false", "{}", expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            let batch =
                #"{"events": [{"type": "progress", "epoch": 1, "step": 5, "total_steps": 10, "images_per_sec": 100, "eta_s": 3, "time": 1764000000}, {"type": "warning", "code": "ema_too_slow", "weights": "ema@0.999", "message": "slow"}]}"#
            for _ in 0..<2 {
                let answer = try await client.json(.post, "/api/runs/\(id)/events", batch)
                XCTAssertEqual(answer["stored"]?.intValue, 2)
            }
            let stored = try await client.json(.get, "/api/runs/\(id)")
            XCTAssertEqual(stored["progress"]?["step"]?.intValue, 5)
            XCTAssertEqual(stored["warnings"]?.count, 1, "a resent warning is stored once")
            XCTAssertEqual(stored["status"]?.stringValue, "running")

            let metric = #"{"events": [{"type": "metric", "key": "a", "step": 1, "value": 1, "time": 1}]}"#
            let refused = try await client.json(.post, "/api/runs/\(id)/events", metric, expect: .badRequest)
            XCTAssertEqual(refused["error"]?["field"]?.stringValue, "events[0]")
            _ = try await client.json(
                .post, "/api/runs/\(id)/events", #"{"events": [{"type": "nonsense"}]}"#, expect: .badRequest)
            _ = try await client.json(.post, "/api/runs/\(id)/events", #"{"points": []}"#, expect: .badRequest)

            // A run this server trains takes no reports: its trainer is its one writer.
            let queued = try await client.json(.post, "/api/runs", "{}", expect: .created)
            let qid = try XCTUnwrap(queued["id"]?.intValue)
            _ = try await client.json(.post, "/api/runs/\(qid)/events", batch, expect: .conflict)

            // The summary ends an external run.
            let summary =
                #"{"events": [{"type": "summary", "status": "failed", "reason": "diverged at step 7", "final": {}, "exports": {}, "steps": 7, "wall_s": 1, "images_per_sec": 10, "timing": {}}]}"#
            let answer = try await client.call(.post, "/api/runs/\(id)/events", summary)
            XCTAssertEqual(answer.status, .ok, String(buffer: answer.body))
            let ended = try await client.json(.get, "/api/runs/\(id)")
            XCTAssertEqual(ended["status"]?.stringValue, "failed")
            XCTAssertEqual(ended["error"]?.stringValue, "diverged at step 7")
        }
    }

    /// The report carries the token; a report the server refuses (a wrong token) names the URL and
    /// the status on stderr, and training goes on with every line kept in the spool.
    func testTheReportCarriesTheTokenAndARefusalNamesTheURLAndStatus() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        let tokenFile = folder.url.appendingPathComponent("token").path
        let server = Process()
        server.executableURL = URL(fileURLWithPath: exe)
        server.arguments = [
            "serve", "--port", "\(port)", "--db", folder.db, "--data-dir", folder.data, "--log-level", "error",
            "--token-file", tokenFile,
        ]
        server.standardOutput = FileHandle.nullDevice
        server.environment = ProcessInfo.processInfo.environment.filter { $0.key != "POLYAK_TOKEN" }
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        try await HTTP(port: port).waitUntilUp()
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        func externalRun() async throws -> Int {
            var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/api/runs?launch=false")!)
            r.httpMethod = "POST"
            r.httpBody = Data(#"{"name": "remote"}"#.utf8)
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
            r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
            let (data, _) = try await URLSession.shared.data(for: r)
            return try XCTUnwrap(try JSONValue.parse(data)["id"]?.intValue)
        }
        let spec = folder.url.appendingPathComponent("spec.json").path
        try Data(
            #"{"threads": 1, "data": {"train_limit": 64, "test_limit": 50}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}, "resolution": {"test_grid": {"resize": [28], "crop": [28]}}}"#
                .utf8
        ).write(to: URL(fileURLWithPath: spec))
        func train(run: Int, tokenFile: String) throws -> (ProcessOutput, String) {
            let out = folder.url.appendingPathComponent("run-\(run)").path
            let env = ProcessInfo.processInfo.environment.filter { $0.key != "POLYAK_TOKEN" }
            let url = "http://127.0.0.1:\(port)/api/runs/\(run)"
            let args = ["train", "--spec", spec, "--out", out, "--report", url, "--token-file", tokenFile, "--report-wait", "20"]
            return (try runProcess(exe, args, environment: env), out)
        }

        let good = try await externalRun()
        let (trained, _) = try train(run: good, tokenFile: tokenFile)
        XCTAssertEqual(trained.status, 0, trained.err)
        let printed = trained.out.split(separator: "\n").filter { $0.contains(#""type":"metric""#) }.count
        let stored = try await HTTP(port: port).json("GET", "/api/runs/\(good)/metrics")["points"]
        XCTAssertGreaterThan(printed, 0)
        XCTAssertEqual(stored?.count, printed, "every point arrives with the token")
        let run = try await HTTP(port: port).json("GET", "/api/runs/\(good)")
        XCTAssertEqual(run["status"]?.stringValue, "completed")

        let wrongFile = folder.url.appendingPathComponent("wrong-token").path
        try Data("not-the-token\n".utf8).write(to: URL(fileURLWithPath: wrongFile))
        let refused = try await externalRun()
        let (untrusted, runFolder) = try train(run: refused, tokenFile: wrongFile)
        XCTAssertEqual(untrusted.status, 0, "training goes on: \(untrusted.err)")
        XCTAssertTrue(
            untrusted.err.contains("polyak: the server refused the report (POST http://127.0.0.1:\(port)/api/runs/\(refused)/"),
            untrusted.err)
        XCTAssertTrue(untrusted.err.contains(" answered 401: "), untrusted.err)
        let spool = ReportSpool(runDirectory: runFolder)
        XCTAssertEqual(spool.acknowledged(), 0)
        XCTAssertEqual(spool.pending().count, untrusted.out.split(separator: "\n").count, "every printed line waits in the spool")
        let none = try await HTTP(port: port).json("GET", "/api/runs/\(refused)/metrics")
        XCTAssertEqual(none["points"]?.count, 0)
    }
}
