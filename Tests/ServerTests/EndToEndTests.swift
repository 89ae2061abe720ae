import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import PolyakTestSupport
import Store
import XCTest

@testable import Server

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Real trainings: `polyak train` children of the server, over HTTP, into a real SQLite file.
final class EndToEndTests: XCTestCase {
    static let base =
        #"{"data": {"train_limit": 256, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}, "resolution": {"test_grid": {"resize": [28, 32], "crop": [24, 28]}}}"#

    func testExperimentRunsComparesAndExports() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, executable: exe))
        try await app.test(.live) { client in
            let body =
                #"{"name": "e2e", "base": \#(Self.base), "variants": ["none", {"name": "ema-fast", "preset": "ema", "spec": {"optim": {"lr": 0.05}}}], "seeds": [0, 1]}"#
            let created = try await client.json(.post, "/api/experiments", body, expect: .created)
            let id = try XCTUnwrap(created["id"]?.intValue)
            XCTAssertEqual(created["runs"]?.count, 4)
            XCTAssertEqual(created["baseline"]?.stringValue, "none")
            // Live events of the first run: the stream follows it to its end, then closes.
            let first = try XCTUnwrap(created["runs"]?[0]?["id"]?.intValue)
            let live = try await client.call(.get, "/api/runs/\(first)/events")
            XCTAssertEqual(live.headers[.contentType], "text/event-stream")
            let stream = String(buffer: live.body)
            XCTAssertTrue(stream.contains("event: progress\ndata: {"), stream)
            XCTAssertTrue(stream.hasSuffix("event: status\ndata: {\"error\":null,\"status\":\"completed\"}\n\n"), stream)

            // Wait through the API.
            var experiment: JSONValue = .null
            let deadline = Date().addingTimeInterval(240)
            while true {
                experiment = try await client.json(.get, "/api/experiments/\(id)")
                let statuses = (0..<4).compactMap { experiment["runs"]?[$0]?["status"]?.stringValue }
                if statuses.allSatisfy({ ["completed", "failed", "cancelled"].contains($0) }) { break }
                XCTAssertLessThan(Date(), deadline, "runs did not finish: \(statuses)")
                if Date() > deadline { return }
                try await Task.sleep(nanoseconds: 300_000_000)
            }
            var finals: [String: [Int: [String: Double]]] = [:]  // variant → seed → weights → final test/top1
            for i in 0..<4 {
                let run = experiment["runs"]![i]!
                let runID = run["id"]!.intValue!
                XCTAssertEqual(run["status"]?.stringValue, "completed", "run \(runID): \(run["error"] ?? .null)")
                let full = try await client.json(.get, "/api/runs/\(runID)")
                XCTAssertEqual(full["spec"]?["seed"]?.intValue, run["seed"]?.intValue)
                if run["variant"]?.stringValue == "ema-fast" {
                    XCTAssertEqual(full["spec"]?["optim"]?["lr"]?.doubleValue, 0.05)
                    XCTAssertEqual(full["spec"]?["averaging"]?[0]?["kind"]?.stringValue, "ema")
                }
                // Stored metrics: one test point per weight set (1 epoch), train metrics, progress.
                let points = try await client.json(.get, "/api/runs/\(runID)/metrics?key=test/top1")
                let weightSets = (0..<points["points"]!.count).map { points["points"]![$0]!["weights"]!.stringValue! }
                XCTAssertEqual(Set(weightSets).count, weightSets.count)
                XCTAssertTrue(weightSets.contains("raw"))
                if run["variant"]?.stringValue == "ema-fast" { XCTAssertGreaterThan(weightSets.count, 1) }
                for k in 0..<points["points"]!.count {
                    let p = points["points"]![k]!
                    XCTAssertEqual(p["step"]?.intValue, 4)
                    XCTAssertEqual(p["epoch"]?.intValue, 1)
                    finals[run["variant"]!.stringValue!, default: [:]][run["seed"]!.intValue!, default: [:]][
                        p["weights"]!.stringValue!] = p["value"]!.doubleValue!
                }
                let train = try await client.json(.get, "/api/runs/\(runID)/metrics?key=train/loss")
                XCTAssertGreaterThan(train["points"]!.count, 0)
                XCTAssertEqual(full["progress"]?["total_steps"]?.intValue, 4)
                // Grid: every resize × crop with crop ≤ resize, per weight set.
                let grid = try await client.json(.get, "/api/runs/\(runID)/grid")
                XCTAssertEqual(grid["cells"]?.count, 4 * weightSets.count)
                // Where the time went: non-negative parts that fit in the wall time; EMA's updates measured.
                let timing = try XCTUnwrap(full["timing"])
                let wall = try XCTUnwrap(timing["wall_s"]?.doubleValue)
                var parts = try XCTUnwrap(timing["shared_s"]?.doubleValue)
                for w in weightSets {
                    let own = try XCTUnwrap(timing["per_weights"]?[w])
                    for key in ["eval_s", "grid_s", "averaging_s", "bn_s", "fixres_s", "export_s"] {
                        XCTAssertGreaterThanOrEqual(try XCTUnwrap(own[key]?.doubleValue), 0, "\(w) \(key)")
                    }
                    parts += try XCTUnwrap(own["total_s"]?.doubleValue)
                    if w.hasPrefix("ema@") { XCTAssertGreaterThan(own["averaging_s"]?.doubleValue ?? 0, 0, w) }
                }
                XCTAssertLessThanOrEqual(parts, wall + 1e-9)
                XCTAssertGreaterThan(timing["train_s"]?.doubleValue ?? 0, 0)
                // Exports: listed with size and digest, downloadable, digest right.
                let artifacts = try await client.json(.get, "/api/runs/\(runID)/artifacts")
                let raw = try XCTUnwrap(
                    (0..<artifacts["artifacts"]!.count).map { artifacts["artifacts"]![$0]! }.first {
                        $0["name"]?.stringValue == "raw"
                    })
                let file = try await client.call(.get, "/api/runs/\(runID)/artifacts/raw")
                XCTAssertEqual(file.status, .ok)
                XCTAssertEqual(file.body.readableBytes, raw["bytes"]?.intValue)
                XCTAssertEqual(SHA256.hex(of: Array(file.body.readableBytesView)), raw["sha256"]?.stringValue)
                // Events of a finished run: its status, then the stream ends.
                let events = String(buffer: try await client.call(.get, "/api/runs/\(runID)/events").body)
                XCTAssertTrue(events.contains("event: status\ndata: {\"error\":null,\"status\":\"completed\"}"), events)
            }

            // Compare against the stored finals, computed here.
            let compare = try await client.json(.get, "/api/experiments/\(id)/compare")
            let rows = try XCTUnwrap(compare["rows"])
            XCTAssertEqual(rows[0]?["variant"]?.stringValue, "none")
            XCTAssertEqual(rows[0]?["weights"]?.stringValue, "raw")
            for r in 0..<rows.count {
                let row = rows[r]!
                let variant = row["variant"]!.stringValue!, weights = row["weights"]!.stringValue!
                let xs = [0, 1].map { finals[variant]![$0]![weights]! }
                let base = [0, 1].map { finals["none"]![$0]!["raw"]! }
                XCTAssertEqual(row["n"]?.intValue, 2)
                XCTAssertEqual(row["mean"]!.doubleValue!, (xs[0] + xs[1]) / 2, accuracy: 1e-12)
                // n = 2: std = |a − b| / √2; CI half-width 12.7062 · std / √2 = 12.7062 · |a − b| / 2.
                XCTAssertEqual(row["std"]!.doubleValue!, abs(xs[0] - xs[1]) / 2.0.squareRoot(), accuracy: 1e-12)
                XCTAssertEqual(
                    row["ci95_high"]!.doubleValue!, (xs[0] + xs[1]) / 2 + 12.706204736174707 * abs(xs[0] - xs[1]) / 2,
                    accuracy: 1e-9)
                let d = [xs[0] - base[0], xs[1] - base[1]]
                XCTAssertEqual(row["delta_mean"]!.doubleValue!, (d[0] + d[1]) / 2, accuracy: 1e-12)
                XCTAssertEqual(row["wins"]!.intValue! + row["losses"]!.intValue! + row["ties"]!.intValue!, 2)
                XCTAssertEqual(row["wins"]!.intValue!, d.filter { $0 > 0 }.count)
            }
            let csv = String(buffer: try await client.call(.get, "/api/experiments/\(id)/compare.csv").body)
            let lines = csv.split(separator: "\r\n")
            // The spec's row fields in its order, then the seed advisor's two and the cost columns
            // (issue #16 adds them to JSON and CSV).
            XCTAssertEqual(
                lines.first,
                "variant,weights,metric,n,mean,std,ci95_low,ci95_high,delta_mean,delta_ci95_low,delta_ci95_high,wins,losses,ties,"
                    + "min_detectable_delta,seeds_needed,cost_minutes,extra_minutes,gain_per_extra_minute")
            // Every row of real runs has a measured cost; the baseline's extra is zero by construction.
            for r in 0..<rows.count { XCTAssertGreaterThan(rows[r]!["cost_minutes"]?.doubleValue ?? 0, 0, "\(rows[r]!)") }
            XCTAssertEqual(rows[0]?["extra_minutes"]?.doubleValue, 0)
            XCTAssertEqual(lines.count, rows.count + 1)
            XCTAssertTrue(lines[1].hasPrefix("none,raw,test/top1,2,"), String(lines[1]))

            // Grid aggregated over the two seeds.
            let grid = try await client.json(.get, "/api/experiments/\(id)/grid")
            XCTAssertGreaterThan(grid["cells"]!.count, 0)
            for k in 0..<grid["cells"]!.count { XCTAssertEqual(grid["cells"]![k]!["n"]?.intValue, 2) }
            let runsCSV = String(
                buffer: try await client.call(.get, "/api/experiments/\(id)", headers: [.accept: "text/csv"]).body)
            XCTAssertEqual(runsCSV.split(separator: "\r\n").count, 5)

            let health = try await client.json(.get, "/api/health")
            XCTAssertEqual(health["queue_length"]?.intValue, 0)

            // Distillation from a finished run, referenced by id: the server resolves the teacher.
            let teacher = try XCTUnwrap(experiment["runs"]?[0]?["id"]?.intValue)
            // A launched run's metrics come from its trainer only.
            try assertError(
                try await client.call(
                    .post, "/api/runs/\(teacher)/metrics", #"{"metrics": [{"key": "x", "step": 1, "value": 1}]}"#),
                .conflict, field: nil, contains: "only external runs")
            let kd = try await client.json(
                .post, "/api/runs",
                #"{"data": {"train_limit": 256, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}, "distillation": {"teacher_run": \#(teacher)}}"#,
                expect: .created)
            let kdID = try XCTUnwrap(kd["id"]?.intValue)
            let kdRun = try await waitForEnd(client, kdID)
            XCTAssertEqual(kdRun["status"]?.stringValue, "completed", "\(kdRun["error"] ?? .null)")
            XCTAssertEqual(
                kdRun["spec"]?["distillation"]?["teacher"]?["path"]?.stringValue?.hasSuffix("/runs/\(teacher)/final.safetensors"),
                true)

            // A trainer that fails (no data where the spec says; over HTTP a dataset folder must be
            // inside the data directory): the run fails with its stderr.
            let empty = folder.data + "/empty-dataset"
            try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
            let bad = try await client.json(.post, "/api/runs", #"{"data": {"root": "\#(empty)"}}"#, expect: .created)
            let failed = try await waitForEnd(client, try XCTUnwrap(bad["id"]?.intValue))
            XCTAssertEqual(failed["status"]?.stringValue, "failed")
            XCTAssertTrue(failed["error"]?.stringValue?.contains(empty) == true, "\(failed["error"] ?? .null)")
        }
    }

    func waitForEnd(_ client: some TestClientProtocol, _ id: Int, seconds: Double = 120) async throws -> JSONValue {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let run = try await client.json(.get, "/api/runs/\(id)")
            if ["completed", "failed", "cancelled"].contains(run["status"]?.stringValue ?? "") || Date() > deadline {
                return run
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
    }

    func testCancelAndDeleteWhileRunning() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, executable: exe))
        try await app.test(.live) { client in
            let long =
                #"{"data": {"train_limit": 4096, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 20, "batch_size": 64}}"#
            let run = try await client.json(.post, "/api/runs", long, expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            let queued = try await client.json(.post, "/api/runs", long, expect: .created)
            let second = try XCTUnwrap(queued["id"]?.intValue)
            // Wait until it trains (it has written progress).
            let deadline = Date().addingTimeInterval(60)
            while try await client.json(.get, "/api/runs/\(id)")["progress"] == .null, Date() < deadline {
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            try assertError(try await client.call(.delete, "/api/runs/\(id)"), .conflict, field: nil, contains: "running")
            // The queued one is cancelled at once.
            let c2 = try await client.json(.post, "/api/runs/\(second)/cancel", expect: .accepted)
            XCTAssertEqual(c2["status"]?.stringValue, "cancelled")
            _ = try await client.json(.post, "/api/runs/\(id)/cancel", expect: .accepted)
            var status = ""
            while Date() < deadline.addingTimeInterval(30) {
                status = try await client.json(.get, "/api/runs/\(id)")["status"]?.stringValue ?? ""
                if status != "running" { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            XCTAssertEqual(status, "cancelled")
            try assertError(try await client.call(.post, "/api/runs/\(id)/cancel"), .conflict, field: nil)
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.data + "/runs/\(id)"))
            let deleted = try await client.call(.delete, "/api/runs/\(id)")
            XCTAssertEqual(deleted.status, .noContent)
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.data + "/runs/\(id)"))
        }
    }

    /// SIGKILL the server mid-run; a new server marks the run interrupted, resumes it from its
    /// checkpoint, and every metric point is stored exactly once.
    func testKilledServerResumesTheRun() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        func startServer() throws -> Process { try startServe(exe, folder, port: port) }
        let http = HTTP(port: port)
        var server = try startServer()
        defer { if server.isRunning { server.terminate() } }
        try await http.waitUntilUp()
        // 1536 images / 64 = 24 steps an epoch, 4 epochs, a checkpoint at each epoch end.
        let spec =
            #"{"data": {"train_limit": 1536, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 4, "batch_size": 64}}"#
        let run = try await http.json("POST", "/api/runs", spec)
        let id = try XCTUnwrap(run["id"]?.intValue)
        // Kill once the first epoch's checkpoint is written and the run is still going.
        let deadline = Date().addingTimeInterval(120)
        while true {
            let r = try await http.json("GET", "/api/runs/\(id)")
            let epoch = r["progress"]?["epoch"]?.intValue ?? 0
            XCTAssertNotEqual(r["status"]?.stringValue, "completed", "the run finished before the kill; make it longer")
            if r["status"]?.stringValue == "completed" { return }
            if epoch >= 1, FileManager.default.fileExists(atPath: folder.data + "/runs/\(id)/checkpoints/epoch-001.safetensors") {
                break
            }
            XCTAssertLessThan(Date(), deadline)
            if Date() > deadline { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        let killedAt = Date().timeIntervalSince1970

        server = try startServer()
        try await http.waitUntilUp()
        var final: JSONValue = .null
        while Date() < deadline.addingTimeInterval(120) {
            final = try await http.json("GET", "/api/runs/\(id)")
            if ["completed", "failed", "cancelled"].contains(final["status"]?.stringValue ?? "") { break }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        XCTAssertEqual(final["status"]?.stringValue, "completed", "\(final["error"] ?? .null)")
        // Every epoch's test point exactly once, at the step ending that epoch.
        let test = try await http.json("GET", "/api/runs/\(id)/metrics?key=test/top1&weights=raw")
        let steps = (0..<test["points"]!.count).map { test["points"]![$0]!["step"]!.intValue! }
        XCTAssertEqual(steps, [24, 48, 72, 96])
        // Resumed, not restarted: epoch 1's point is the one stored before the kill; the last came after.
        XCTAssertLessThan(test["points"]![0]!["time"]!.doubleValue!, killedAt)
        XCTAssertGreaterThan(test["points"]![3]!["time"]!.doubleValue!, killedAt)
        let train = try await http.json("GET", "/api/runs/\(id)/metrics?key=train/loss")
        let trainSteps = (0..<train["points"]!.count).map { train["points"]![$0]!["step"]!.intValue! }
        XCTAssertEqual(trainSteps, [24, 48, 72, 96])
        server.terminate()
        server.waitUntilExit()
    }
}

extension EndToEndTests {
    /// SIGTERM: the child is stopped, the run left `interrupted`, and the next start finishes it.
    func testGracefulShutdownLeavesRunsResumable() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        func startServer() throws -> Process { try startServe(exe, folder, port: port) }
        let http = HTTP(port: port)
        var server = try startServer()
        defer { if server.isRunning { server.terminate() } }
        try await http.waitUntilUp()
        let spec =
            #"{"data": {"train_limit": 1536, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 3, "batch_size": 64}}"#
        let posted = try await http.json("POST", "/api/runs", spec)
        let id = try XCTUnwrap(posted["id"]?.intValue)
        let deadline = Date().addingTimeInterval(120)
        while try await http.json("GET", "/api/runs/\(id)")["progress"] == .null, Date() < deadline {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let stopped = Date()
        server.terminate()  // SIGTERM
        server.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(stopped), 10, "graceful shutdown took too long")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.data + "/runs/\(id)/final.safetensors"))
        do {
            let store = try TrackingStore(path: folder.db)
            let run = try XCTUnwrap(try store.run(Int64(id)))
            XCTAssertEqual(run.status, .interrupted)
            XCTAssertTrue(run.error?.contains("resumes") == true, run.error ?? "")
        }

        server = try startServer()
        try await http.waitUntilUp()
        var final: JSONValue = .null
        while Date() < deadline {
            final = try await http.json("GET", "/api/runs/\(id)")
            if ["completed", "failed", "cancelled"].contains(final["status"]?.stringValue ?? "") { break }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        XCTAssertEqual(final["status"]?.stringValue, "completed", "\(final["error"] ?? .null)")
        let test = try await http.json("GET", "/api/runs/\(id)/metrics?key=test/top1&weights=raw")
        XCTAssertEqual((0..<test["points"]!.count).map { test["points"]![$0]!["step"]!.intValue! }, [24, 48, 72])
        server.terminate()
        server.waitUntilExit()
    }
}

extension EndToEndTests {
    /// A trainer that dies (here SIGKILL from outside) leaves its run failed with the reason; the
    /// server carries on with the queue.
    func testAChildKilledFromOutsideFailsItsRunOnly() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, executable: exe))
        try await app.test(.live) { client in
            let long =
                #"{"data": {"train_limit": 4096, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 20, "batch_size": 64}}"#
            let first = try await client.json(.post, "/api/runs", long, expect: .created)
            let id = try XCTUnwrap(first["id"]?.intValue)
            let short =
                #"{"data": {"train_limit": 256, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}}"#
            let second = try await client.json(.post, "/api/runs", short, expect: .created)
            let next = try XCTUnwrap(second["id"]?.intValue)
            let deadline = Date().addingTimeInterval(60)
            while try await client.json(.get, "/api/runs/\(id)")["progress"] == .null, Date() < deadline {
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            // The trainer is the process whose command line names this run's folder.
            let dir = folder.data + "/runs/\(id)"
            let pids = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init).filter { pid in
                let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
                return String(decoding: cmdline, as: UTF8.self).contains(dir)
            }
            XCTAssertEqual(pids.count, 1)
            for pid in pids { kill(pid, SIGKILL) }
            let failed = try await waitForEnd(client, id)
            XCTAssertEqual(failed["status"]?.stringValue, "failed")
            XCTAssertTrue(failed["error"]?.stringValue?.contains("killed by signal 9") == true, "\(failed["error"] ?? .null)")
            let after = try await waitForEnd(client, next)
            XCTAssertEqual(after["status"]?.stringValue, "completed")
        }
    }
}

/// A free loopback port (bound, read, released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    guard bound == 0 else { throw XCTSkip("cannot bind a loopback port") }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A plain HTTP client for a server in another process.
struct HTTP {
    let port: Int

    func request(_ method: String, _ path: String, _ body: String? = nil) async throws -> (Int, Data) {
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        r.httpMethod = method
        r.httpBody = body.map { Data($0.utf8) }
        if body != nil { r.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        r.timeoutInterval = 30
        let (data, response) = try await URLSession.shared.data(for: r)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    func json(_ method: String, _ path: String, _ body: String? = nil) async throws -> JSONValue {
        let (status, data) = try await request(method, path, body)
        XCTAssertLessThan(status, 300, "\(method) \(path): \(String(decoding: data, as: UTF8.self))")
        return try JSONValue.parse(data)
    }

    func waitUntilUp() async throws {
        for _ in 0..<200 {
            if let (status, _) = try? await request("GET", "/api/health"), status == 200 { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTFail("the server did not come up on port \(port)")
    }
}
