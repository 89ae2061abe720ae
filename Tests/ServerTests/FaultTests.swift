import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PolyakTestSupport
import Store
import XCTest

@testable import Server

/// Trainers that crash, hang or print garbage; a second server on one database; deletes racing
/// the scheduler; a trainer whose server died while it started.
final class FaultTests: XCTestCase {
    /// A stand-in trainer (the server's input, not a part under test): it does what its spec's
    /// name says. `pids` collects the pid of every start.
    static func fakeTrainer(in folder: TempFolder) throws -> String {
        let path = folder.url.appendingPathComponent("fake-trainer.sh").path
        let pids = folder.url.appendingPathComponent("pids").path
        let script = """
            #!/bin/sh
            # Fake `polyak train --spec FILE --out DIR`: behaves as the spec's name says.
            echo $$ >> '\(pids)'
            spec=""
            while [ $# -gt 0 ]; do [ "$1" = "--spec" ] && spec="$2"; shift; done
            case "$(cat "$spec")" in
              *hang-me*) echo '{"type":"progress","epoch":0,"step":0,"total_steps":8,"images_per_sec":0,"eta_s":0,"time":1}'; exec sleep 120 ;;
              *garbage-then-exit*) echo 'this is not JSON'; echo '{"type": "metric", "key":'; echo '{"no":"type"}'; exit 0 ;;
              *garbage-forever*) while :; do echo 'garbage'; sleep 0.05; done ;;
              *crash-me*) echo '{"type":"progress","epoch":0,"step":0,"total_steps":8,"images_per_sec":0,"eta_s":0,"time":1}'; kill -SEGV $$ ;;
              *slow-me*) echo '{"type":"progress","epoch":0,"step":0,"total_steps":8,"images_per_sec":0,"eta_s":0,"time":1}'; exec sleep 30 ;;
              *chatty*) echo 'Loading data...' ;;
            esac
            case "$(cat "$spec")" in
              *hang-me*|*garbage-then-exit*|*garbage-forever*|*crash-me*|*slow-me*) ;;
              *) echo '{"type":"metric","key":"test/top1","step":8,"epoch":1,"value":0.5,"time":1,"weights":"raw"}'
                 echo '{"type":"summary","status":"completed","reason":null,"steps":8,"wall_s":1,"images_per_sec":8,"final":{},"exports":{},"timing":{}}'
                 exit 0 ;;
            esac

            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    static func startedPIDs(_ folder: TempFolder) -> [Int32] {
        let text = (try? String(contentsOfFile: folder.url.appendingPathComponent("pids").path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Alive and not a zombie.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        guard let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    func waitForEnd(_ client: some TestClientProtocol, _ id: Int, seconds: Double = 60) async throws -> JSONValue {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let run = try await client.json(.get, "/api/runs/\(id)")
            if ["completed", "failed", "cancelled"].contains(run["status"]?.stringValue ?? "") || Date() > deadline {
                return run
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    func testCrashingHangingAndGarbageTrainersFailTheirRunOnly() async throws {
        let folder = try TempFolder()
        var opts = options(folder, executable: try Self.fakeTrainer(in: folder), maxConcurrent: 2)
        opts.stallTimeout = 1.5
        opts.cancelGrace = 1
        let app = try buildApplication(opts)
        try await app.test(.live) { client in
            var ids: [String: Int] = [:]
            for name in ["hang-me", "crash-me", "garbage-then-exit", "garbage-forever", "fine", "chatty"] {
                let run = try await client.json(.post, "/api/runs", #"{"name": "\#(name)"}"#, expect: .created)
                ids[name] = try XCTUnwrap(run["id"]?.intValue)
            }
            func ended(_ name: String) async throws -> (String, String) {
                let run = try await waitForEnd(client, ids[name]!)
                return (run["status"]?.stringValue ?? "", run["error"]?.stringValue ?? "")
            }
            let hang = try await ended("hang-me")
            XCTAssertEqual(hang.0, "failed")
            XCTAssertTrue(hang.1.hasPrefix("no output for 1.5 s (--stall-timeout)"), hang.1)
            let crash = try await ended("crash-me")
            XCTAssertEqual(crash.0, "failed")
            XCTAssertTrue(crash.1.hasPrefix("killed by signal 11"), crash.1)
            let garbage = try await ended("garbage-then-exit")
            XCTAssertEqual(garbage.0, "failed")
            XCTAssertTrue(
                garbage.1.hasPrefix(
                    "the trainer exited without a summary\n3 stdout line(s) were not JSON events, the first: this is not JSON"),
                garbage.1)
            let forever = try await ended("garbage-forever")
            XCTAssertEqual(forever.0, "failed")
            XCTAssertTrue(forever.1.hasPrefix("no output for 1.5 s"), forever.1)
            XCTAssertTrue(forever.1.contains("stdout line(s) were not JSON events, the first: garbage"), forever.1)
            // The others go on: the well-behaved run completes, the server answers, no trainer is left.
            let fine = try await ended("fine")
            XCTAssertEqual(fine.0, "completed", fine.1)
            // A line that is not an event does not fail a run that completes, but it is not lost in silence.
            let chatty = try await ended("chatty")
            XCTAssertEqual(chatty.0, "completed", chatty.1)
            let warnings = try await client.json(.get, "/api/runs/\(ids["chatty"]!)")["warnings"]
            XCTAssertEqual(warnings?[0]?["code"]?.stringValue, "undecodable_output", "\(warnings ?? .null)")
            XCTAssertTrue(warnings?[0]?["message"]?.stringValue?.contains("the first: Loading data...") == true)
            let health = try await client.json(.get, "/api/health")
            XCTAssertEqual(health["running"]?.intValue, 0)
            let page = try await client.call(.get, "/runs/\(ids["hang-me"]!)")
            XCTAssertEqual(page.status, .ok)
            let pids = Self.startedPIDs(folder)
            XCTAssertEqual(pids.count, 6)
            XCTAssertEqual(pids.filter(Self.isAlive), [])
        }
    }

    /// One database, one server: the second refuses to start and names the first's pid.
    func testASecondServerOnOneDatabaseRefusesToStart() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        func serve(_ port: Int) throws -> (Process, Pipe) {
            let err = Pipe()
            return (try startServe(exe, folder, port: port, stderr: err), err)
        }
        let port = try freePort()
        let (first, _) = try serve(port)
        defer { if first.isRunning { first.terminate() } }
        try await HTTP(port: port).waitUntilUp()
        let (second, err) = try serve(try freePort())
        second.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(second.terminationStatus, 0)
        XCTAssertTrue(message.contains("is in use by another polyak serve (pid \(first.processIdentifier))"), message)
        XCTAssertTrue(message.contains(folder.db + ".lock"), message)
        XCTAssertTrue(first.isRunning)
        // In-process too (tests and `polyak bench service` build servers this way).
        XCTAssertThrowsError(try buildApplication(options(folder))) { error in
            XCTAssertTrue("\(error)".contains("pid \(first.processIdentifier)"), "\(error)")
        }
        first.terminate()
        first.waitUntilExit()
        // Once it is gone, a server starts on that database again.
        XCTAssertNoThrow(try buildApplication(options(folder)))
    }

    /// An experiment deleted while the scheduler starts one of its queued runs: either the delete
    /// wins (the run never starts) or the start does (409, cancel, delete). No trainer outlives
    /// its run, no folder stays, no 5xx.
    func testDeletingAnExperimentWhileItsRunStartsLeavesNothing() async throws {
        let folder = try TempFolder()
        var opts = options(folder, executable: try Self.fakeTrainer(in: folder), maxConcurrent: 1)
        opts.cancelGrace = 1
        let app = try buildApplication(opts)
        try await app.test(.live) { client in
            var runIDs: [Int] = []
            for round in 0..<30 {
                let body = #"{"name": "race-\#(round)", "base": {"name": "slow-me"}, "variants": ["none"], "seeds": [0, 1, 2]}"#
                let created = try await client.json(.post, "/api/experiments", body, expect: .created)
                let id = try XCTUnwrap(created["id"]?.intValue)
                let runs = (0..<3).compactMap { created["runs"]?[$0]?["id"]?.intValue }
                runIDs += runs
                // Stopping the first run frees the runner, which starts the next queued run of
                // this experiment while the delete below arrives.
                async let cancelled = client.call(.post, "/api/runs/\(runs[0])/cancel")
                var attempts = 0
                while true {
                    let r = try await client.call(.delete, "/api/experiments/\(id)")
                    XCTAssertLessThan(r.status.code, 500, String(buffer: r.body))
                    if r.status == .noContent || r.status == .notFound { break }
                    XCTAssertEqual(r.status, .conflict, String(buffer: r.body))
                    if round % 2 == 1 || attempts > 2 { _ = try await client.call(.post, "/api/experiments/\(id)/cancel") }
                    attempts += 1
                    XCTAssertLessThan(attempts, 200)
                    if attempts >= 200 { break }
                    try await Task.sleep(nanoseconds: UInt64(round % 3) * 5_000_000)
                }
                let cancelStatus = try await cancelled.status
                XCTAssertLessThan(cancelStatus.code, 500)
            }
            // Every trainer that started has been stopped (cancel grace: 1 s).
            let deadline = Date().addingTimeInterval(10)
            while !Self.startedPIDs(folder).filter(Self.isAlive).isEmpty, Date() < deadline {
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            XCTAssertEqual(Self.startedPIDs(folder).filter(Self.isAlive), [], "trainers of deleted runs still run")
            XCTAssertGreaterThan(Self.startedPIDs(folder).count, 0)
            let health = try await client.json(.get, "/api/health")
            XCTAssertEqual(health["running"]?.intValue, 0)
            for id in runIDs {
                XCTAssertFalse(FileManager.default.fileExists(atPath: folder.data + "/runs/\(id)"), "run \(id)'s folder stayed")
                let gone = try await client.call(.get, "/api/runs/\(id)")
                XCTAssertEqual(gone.status, .notFound)
            }
            let home = try await client.call(.get, "/")
            XCTAssertEqual(home.status, .ok)
        }
    }

    /// The lock a delete decides under keeps the scheduler out: a run queued and deleted inside
    /// it never starts, however long the delete takes (the race above, made wide).
    func testTheSchedulerWaitsWhileADeleteDecides() async throws {
        let folder = try TempFolder()
        let opts = options(folder, executable: try Self.fakeTrainer(in: folder))
        let store = try TrackingStore(path: opts.databasePath)
        let runner = JobRunner(
            store: store, hub: EventHub(), options: .init(executable: opts.executable, dataDirectory: opts.dataDirectory),
            logger: Logger(label: "test"))
        let service = Task { try await runner.run() }
        defer { service.cancel() }
        try await Task.sleep(nanoseconds: 300_000_000)  // the runner has started (its first schedule found nothing)
        let scheduled = expectation(description: "schedule returned")
        let run: RunRecord = try runner.whileQueueHeld { active in
            let run = try store.createRun(NewRun(name: "slow-me", specJSON: #"{"name": "slow-me"}"#, codeVersion: "test"))
            Thread.detachNewThread {
                runner.schedule()
                scheduled.fulfill()
            }
            Thread.sleep(forTimeInterval: 0.3)
            XCTAssertEqual(try store.run(run.id)?.status, .queued, "the scheduler started a run while a delete held the queue")
            XCTAssertFalse(active(run.id))
            try store.deleteRun(run.id)
            return run
        }
        await fulfillment(of: [scheduled], timeout: 10)
        XCTAssertNil(try store.run(run.id))
        XCTAssertEqual(runner.activeCount, 0)
        XCTAssertEqual(Self.startedPIDs(folder), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: opts.dataDirectory + "/runs/\(run.id)"))
    }

    /// `PR_SET_PDEATHSIG` covers only a parent alive when it is asked for: a trainer whose server
    /// is already gone (its parent is not the pid the server gave it) does not train.
    func testATrainerWhoseServerIsGoneExits() throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        // A pid that is no longer this trainer's parent: a child that has exited.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        func train(parent: Int32) throws -> ProcessOutput {
            var env = ProcessInfo.processInfo.environment
            env["POLYAK_PARENT_PID"] = "\(parent)"
            // A bad spec: a trainer that gets past the parent check stops there, at once.
            return try runProcess(
                exe, ["train", "--spec", "-", "--out", folder.url.appendingPathComponent("run").path],
                stdin: #"{"optim": {"lr": -1}}"#, environment: env)
        }
        let orphan = try train(parent: gone.processIdentifier)
        XCTAssertEqual(orphan.status, 1, orphan.err)
        XCTAssertTrue(
            orphan.err.contains("the server that started this trainer (pid \(gone.processIdentifier)) is gone"), orphan.err)
        let adopted = try train(parent: getpid())
        XCTAssertEqual(adopted.status, 2, adopted.err)
        XCTAssertTrue(adopted.err.contains("optim.lr"), adopted.err)
    }
}
