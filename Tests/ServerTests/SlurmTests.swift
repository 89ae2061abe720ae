import Experiments
import Foundation
import PolyakTestSupport
import XCTest

/// `polyak serve --executor slurm` against a real single-node Slurm (`SlurmCluster`): runs become
/// sbatch jobs whose trainers report over HTTP (`polyak train --report`).
final class SlurmTests: SlurmTestCase {
    func testExperimentThroughSlurmMatchesTheLocalExecutorBitForBit() async throws {
        let exe = try polyakExecutable()
        let started = Date()
        // ema with its own learning rate trains apart from none (they would share a run otherwise): 4 runs, 4 jobs.
        let experiment =
            #"{"name": "slurm", "base": \#(Self.tinyBase), "variants": ["none", {"name": "ema-lr", "preset": "ema", "spec": {"optim": {"lr": 0.05}}}], "seeds": [0, 1]}"#

        // Through Slurm.
        let folder = try TempFolder()
        let port = try freePort()
        let http = HTTP(port: port)
        let server = try startServer(exe, folder, port: port)
        defer { server.terminate() }
        try await http.waitUntilUp()
        let id = try await http.json("POST", "/api/experiments", experiment)["id"]?.intValue ?? -1
        try await wait(120, "4 Slurm runs to finish\n\(serverLog(folder))") {
            try await runs(http, experiment: id).allSatisfy { Self.finished.contains($0["status"]?.stringValue ?? "") }
        }
        var viaSlurm: [String: [CrashTests.Point]] = [:]
        var jobIDs: Set<Int> = []
        for run in try await runs(http, experiment: id) {
            let runID = try XCTUnwrap(run["id"]?.intValue)
            XCTAssertEqual(run["status"]?.stringValue, "completed", "run \(runID): \(run["error"] ?? .null)")
            let jobID = try XCTUnwrap(run["slurm_job_id"]?.intValue, "run \(runID) names its Slurm job")
            jobIDs.insert(jobID)
            XCTAssertEqual(run["slurm_state"]?.stringValue, "COMPLETED")
            let folderOfRun = folder.data + "/runs/\(runID)"
            XCTAssertTrue(FileManager.default.fileExists(atPath: folderOfRun + "/slurm-job.sh"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: folderOfRun + "/slurm-\(jobID).out"))
            // Every event line was acknowledged over HTTP.
            let spool = ReportSpool(runDirectory: folderOfRun)
            XCTAssertEqual(spool.acknowledged(), spool.size(), "run \(runID)'s report spool")
            let full = try await http.json("GET", "/api/runs/\(runID)")
            XCTAssertEqual(full["summary"]?["status"]?.stringValue, "completed")
            let page = try await http.request("GET", "/runs/\(runID)")
            XCTAssertTrue(String(decoding: page.1, as: UTF8.self).contains("job \(jobID)"), "the run page names the job")
            viaSlurm["\(run["variant"]?.stringValue ?? "?")/\(run["seed"]?.intValue ?? -1)"] = try await points(http, runID)
        }
        XCTAssertEqual(jobIDs.count, 4, "one job per run")
        let slurmSeconds = Date().timeIntervalSince(started)

        // The same experiment under the local executor.
        let localFolder = try TempFolder()
        let localPort = try freePort()
        let local = HTTP(port: localPort)
        // Four at once, as Slurm ran them (one thread each: the same bits whatever runs beside).
        let localServer = Process()
        localServer.executableURL = URL(fileURLWithPath: exe)
        localServer.arguments = [
            "serve", "--port", "\(localPort)", "--db", localFolder.db, "--data-dir", localFolder.data, "--max-concurrent", "4",
            "--log-level", "error",
        ]
        localServer.standardOutput = FileHandle.nullDevice
        try localServer.run()
        defer { localServer.terminate() }
        try await local.waitUntilUp()
        let localID = try await local.json("POST", "/api/experiments", experiment)["id"]?.intValue ?? -1
        try await wait(120, "4 local runs to finish") {
            try await runs(local, experiment: localID).allSatisfy { Self.finished.contains($0["status"]?.stringValue ?? "") }
        }
        for run in try await runs(local, experiment: localID) {
            let key = "\(run["variant"]?.stringValue ?? "?")/\(run["seed"]?.intValue ?? -1)"
            let mine = try await points(local, try XCTUnwrap(run["id"]?.intValue))
            XCTAssertGreaterThan(mine.count, 10)
            XCTAssertEqual(viaSlurm[key], mine, "\(key): the Slurm run's points differ from the local run's")
        }
        print("SlurmTests: 4 runs through Slurm in \(String(format: "%.1f", slurmSeconds)) s")
    }

    func testCancelEndsCancelledAndAnOutsideScancelFailsWithTheReason() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        let http = HTTP(port: port)
        let server = try startServer(exe, folder, port: port)
        defer { server.terminate() }
        try await http.waitUntilUp()
        let a = try await http.json("POST", "/api/runs", Self.longSpec)["id"]?.intValue ?? -1
        let b = try await http.json("POST", "/api/runs", Self.longSpec)["id"]?.intValue ?? -1
        // Both trainers run and report.
        try await wait(60, "both runs to report progress\n\(serverLog(folder))") {
            for id in [a, b] {
                let r = try await http.json("GET", "/api/runs/\(id)")
                if r["status"]?.stringValue != "running" || r["progress"] == .null || r["progress"] == nil { return false }
            }
            return true
        }
        let jobB = try await http.json("GET", "/api/runs/\(b)")["slurm_job_id"]?.intValue ?? -1
        _ = try await http.json("POST", "/api/runs/\(a)/cancel")
        try cluster.scancel(jobB)
        try await wait(60, "both runs to end") {
            for id in [a, b]
            where try await !Self.finished.contains(http.json("GET", "/api/runs/\(id)")["status"]?.stringValue ?? "") {
                return false
            }
            return true
        }
        let ra = try await http.json("GET", "/api/runs/\(a)")
        XCTAssertEqual(ra["status"]?.stringValue, "cancelled", "\(ra["error"] ?? .null)")
        XCTAssertEqual(ra["slurm_state"]?.stringValue, "CANCELLED")
        let rb = try await http.json("GET", "/api/runs/\(b)")
        XCTAssertEqual(rb["status"]?.stringValue, "failed")
        let why = rb["error"]?.stringValue ?? ""
        XCTAssertTrue(why.contains("Slurm job \(jobB) ended CANCELLED") && why.contains("outside Polyak"), why)
    }

    func testAJobThatFailsFailsItsRunWithSlurmsStateAndTheJobsStderr() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        let http = HTTP(port: port)
        // A node whose polyak is broken: a script that complains and exits 3.
        let broken = folder.url.appendingPathComponent("broken-polyak").path
        try Data("#!/bin/sh\necho 'polyak: cannot load libxsmm' >&2\nexit 3\n".utf8).write(to: URL(fileURLWithPath: broken))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: broken)
        let server = try startServer(exe, folder, port: port, extra: ["--trainer-binary", broken])
        defer { server.terminate() }
        try await http.waitUntilUp()
        let id = try await http.json("POST", "/api/runs", Self.tinyBase)["id"]?.intValue ?? -1
        try await wait(60, "the run to fail\n\(serverLog(folder))") {
            Self.finished.contains(try await http.json("GET", "/api/runs/\(id)")["status"]?.stringValue ?? "")
        }
        let run = try await http.json("GET", "/api/runs/\(id)")
        XCTAssertEqual(run["status"]?.stringValue, "failed")
        let why = run["error"]?.stringValue ?? ""
        let job = run["slurm_job_id"]?.intValue ?? -1
        XCTAssertTrue(why.hasPrefix("Slurm job \(job) ended FAILED"), why)
        XCTAssertTrue(why.contains("no summary arrived") && why.contains("cannot load libxsmm"), why)
    }

    func testAServerKilledMidRunReattachesWithoutResubmittingAndLosesNoPoint() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        let http = HTTP(port: port)
        var server = try startServer(exe, folder, port: port)
        defer { server.terminate() }
        try await http.waitUntilUp()
        let spec =
            #"{"threads": 1, "data": {"train_limit": 2048, "test_limit": 64}, "model": {"width": 4}, "optim": {"epochs": 3, "batch_size": 64}, "resolution": {"test_grid": {"resize": [28], "crop": [28]}}}"#
        // 96 steps: still training when the server is killed at its first progress line (the trainer is
        // built with -O even in debug: a few steps end before the test can act).
        let id = try await http.json("POST", "/api/runs", spec)["id"]?.intValue ?? -1
        try await wait(60, "the run to report progress\n\(serverLog(folder))") {
            let r = try await http.json("GET", "/api/runs/\(id)")
            return r["status"]?.stringValue == "running" && r["progress"] != nil && r["progress"] != .null
        }
        let jobID = try await http.json("GET", "/api/runs/\(id)")["slurm_job_id"]?.intValue ?? -1
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        // The trainer goes on meanwhile, its reports waiting in its spool. A server started without
        // --executor slurm on this database refuses, naming the run and its job, and changes nothing.
        let local = try runBriefly(
            exe, ["serve", "--port", "\(try freePort())", "--db", folder.db, "--data-dir", folder.url.path + "/local"])
        XCTAssertEqual(local.status, 2, local.err)
        XCTAssertTrue(local.err.contains("run \(id) (job \(jobID))") && local.err.contains("--executor slurm"), local.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.url.path + "/local/runs/\(id)"), "no local trainer")
        server = try startServer(exe, folder, port: port)
        try await http.waitUntilUp()
        try await wait(120, "the run to finish\n\(serverLog(folder))") {
            Self.finished.contains(try await http.json("GET", "/api/runs/\(id)")["status"]?.stringValue ?? "")
        }
        let run = try await http.json("GET", "/api/runs/\(id)")
        XCTAssertEqual(run["status"]?.stringValue, "completed", "\(run["error"] ?? .null)")
        XCTAssertEqual(run["slurm_job_id"]?.intValue, jobID, "re-attached to the same job")
        let runFolder = folder.data + "/runs/\(id)"
        let outputs = try FileManager.default.contentsOfDirectory(atPath: runFolder).filter {
            $0.hasPrefix("slurm-") && $0.hasSuffix(".out")
        }
        XCTAssertEqual(outputs, ["slurm-\(jobID).out"], "no second job was submitted")
        XCTAssertTrue(serverLog(folder).contains("re-attached to Slurm job \(jobID)"))
        let stored = try await points(http, id)

        // The same spec trained without interruption: the same points, bit for bit, none missing, none twice.
        let reference = try Self.reference(exe, spec: run["spec"]!)
        XCTAssertGreaterThan(reference.count, 10)
        XCTAssertEqual(stored, reference)
    }

    /// Runs `exe` and expects it to end within 20 s (a server that should refuse to start but does
    /// not is stopped, and the test fails).
    func runBriefly(_ exe: String, _ arguments: [String]) throws -> (status: Int32, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = arguments
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(20)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            XCTFail("\(arguments.prefix(2).joined(separator: " ")) did not end within 20 s")
        }
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (p.terminationStatus, text)
    }
}
