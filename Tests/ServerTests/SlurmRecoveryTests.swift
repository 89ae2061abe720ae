import Experiments
import Foundation
import PolyakTestSupport
import XCTest

/// What a Slurm-executing server does when things go wrong on the cluster's side, against the real
/// single-node cluster: a node that fails under a job, and a server killed right after `sbatch`.
final class SlurmRecoveryTests: SlurmTestCase {
    /// 3 epochs of 16 steps: long enough after its first checkpoint for the node to be taken down.
    static let resumableSpec =
        #"{"threads": 1, "data": {"train_limit": 1024, "test_limit": 100}, "model": {"width": 4}, "optim": {"epochs": 3, "batch_size": 64}, "resolution": {"test_grid": {"resize": [28], "crop": [28]}}}"#

    func testANodeFailureResubmitsTheRunWhichResumesFromItsLastCheckpoint() async throws {
        let s = try await serve()
        defer { s.server.terminate() }
        let node = try cluster.nodeName()
        let id = try await s.http.json("POST", "/api/runs", Self.resumableSpec)["id"]?.intValue ?? -1
        let runFolder = s.folder.data + "/runs/\(id)"
        // The same spec trained without Slurm and without interruption, meanwhile.
        let created = try await s.http.json("GET", "/api/runs/\(id)")
        let spec = try XCTUnwrap(created["spec"])
        let exe = s.exe
        let referenceTraining = Task.detached { try Self.reference(exe, spec: spec) }
        try await wait(60, "the first checkpoint\n\(serverLog(s.folder))") {
            FileManager.default.fileExists(atPath: runFolder + "/checkpoints/epoch-001.safetensors")
        }
        let firstJob = try await s.http.json("GET", "/api/runs/\(id)")["slurm_job_id"]?.intValue ?? -1
        // The node goes down under the job: Slurm kills its processes and ends it NODE_FAIL (`--no-requeue`:
        // Slurm does not requeue it itself). The node registers again at once (`ReturnToService=2`).
        try cluster.setNode(node, state: "down", reason: "polyak-test")
        defer { cluster.resumeNode(node) }
        // The server submits the run again, and the new job resumes from the checkpoint.
        try await wait(30, "a second job\n\(serverLog(s.folder))") {
            let r = try await s.http.json("GET", "/api/runs/\(id)")
            return (r["slurm_job_id"]?.intValue ?? firstJob) != firstJob
        }
        let waiting = try await s.http.json("GET", "/api/runs/\(id)")
        let secondJob = try XCTUnwrap(waiting["slurm_job_id"]?.intValue)
        XCTAssertTrue((waiting["error"]?.stringValue ?? "").contains("Slurm job \(firstJob) ended NODE_FAIL"), "\(waiting)")
        try await wait(120, "the run to finish\n\(serverLog(s.folder))") {
            Self.finished.contains(try await status(s.http, id))
        }

        let run = try await s.http.json("GET", "/api/runs/\(id)")
        XCTAssertEqual(run["status"]?.stringValue, "completed", "\(run["error"] ?? .null)")
        XCTAssertEqual(run["slurm_job_id"]?.intValue, secondJob, "the run names the job that finished it")
        XCTAssertEqual(try jobOutputs(runFolder), ["slurm-\(firstJob).out", "slurm-\(secondJob).out"].sorted())
        // The history stays on the run once it completed: the interruption is among its warnings.
        let warnings = (0..<(run["warnings"]?.count ?? 0)).compactMap { run["warnings"]![$0] }
        let interrupted = warnings.filter { $0["code"]?.stringValue == "slurm_interrupted" }
        XCTAssertEqual(interrupted.count, 1, "\(warnings)")
        let said = interrupted.first?["message"]?.stringValue ?? ""
        XCTAssertTrue(said.contains("Slurm job \(firstJob) ended NODE_FAIL") && said.contains("1 of at most 3"), said)
        // The second job continued from a checkpoint rather than from the start.
        let secondErr = (try? String(contentsOfFile: runFolder + "/slurm-\(secondJob).err", encoding: .utf8)) ?? ""
        XCTAssertTrue(secondErr.contains("resuming") && secondErr.contains("after epoch"), secondErr)

        // Bit for bit the points of the same spec trained without interruption: none lost, none twice.
        let stored = try await points(s.http, id)
        let reference = try await referenceTraining.value
        XCTAssertEqual(run["spec"], spec)
        XCTAssertGreaterThan(reference.count, 10)
        XCTAssertEqual(stored.count, reference.count)
        XCTAssertEqual(stored, reference)
    }

    func testAServerKilledRightAfterSbatchFindsItsJobInsteadOfSubmittingAgain() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        let http = HTTP(port: port)
        // An sbatch that submits for real, then kills the server (its parent) before it can store the job id.
        let bin = folder.url.appendingPathComponent("bin").path
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let answer = folder.url.appendingPathComponent("sbatch-answer").path
        let wrapper = """
            #!/bin/bash
            out=$(/usr/bin/sbatch "$@") || exit $?
            echo "$out" > \(answer)
            kill -9 $PPID
            sleep 5
            echo "$out"

            """
        try Data(wrapper.utf8).write(to: URL(fileURLWithPath: bin + "/sbatch"))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/sbatch")
        var environment = cluster.environment
        environment["PATH"] = bin + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        var server = try startServer(exe, folder, port: port, environment: environment)
        defer { server.terminate() }
        try await http.waitUntilUp()
        let id = try await http.json("POST", "/api/runs", Self.tinyBase)["id"]?.intValue ?? -1
        server.waitUntilExit()
        XCTAssertEqual(server.terminationReason, .uncaughtSignal, "the server was killed")
        let text = try String(contentsOfFile: answer, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let jobID = try XCTUnwrap(Int(text.split(separator: ";").first ?? ""), "sbatch printed \(text)")

        // Restarted with the real sbatch: it finds the job by its name and folder and follows it.
        server = try startServer(exe, folder, port: port)
        try await http.waitUntilUp()
        try await wait(60, "the run to finish\n\(serverLog(folder))") { Self.finished.contains(try await status(http, id)) }
        let run = try await http.json("GET", "/api/runs/\(id)")
        XCTAssertEqual(run["status"]?.stringValue, "completed", "\(run["error"] ?? .null)")
        XCTAssertEqual(run["slurm_job_id"]?.intValue, jobID)
        XCTAssertEqual(try jobOutputs(folder.data + "/runs/\(id)"), ["slurm-\(jobID).out"], "no second job was submitted")
        XCTAssertTrue(serverLog(folder).contains("found Slurm job \(jobID)"), serverLog(folder))
    }
}
