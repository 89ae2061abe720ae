import Foundation
import PolyakTestSupport
import XCTest

/// The `polyak` executable as a user runs it: exit codes, messages naming the problem, JSON lines.
final class CLITests: XCTestCase {
    /// `polyak ARGS`, `stdin` fed to it.
    func run(_ args: [String], stdin: String? = nil) throws -> ProcessOutput {
        try runProcess(try polyakExecutable(), args, stdin: stdin)
    }

    func temporaryFolder() -> String {
        let f = FileManager.default.temporaryDirectory.appendingPathComponent("polyak-cli-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: f) }
        return f
    }

    override func setUpWithError() throws {
        _ = try polyakExecutable()  // skips, naming the path, before the product is built
    }

    func testABadSpecExitsTwoNamingTheField() throws {
        let r = try run(["train", "--spec", "-", "--out", temporaryFolder()], stdin: #"{"optim": {"lr": -1}}"#)
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("optim.lr"), r.err)
        XCTAssertEqual(r.out, "")
        let bare = try run(["train", "--spec", "-", "--out", temporaryFolder()], stdin: #"{"optim": {"lr": NaN}}"#)
        XCTAssertEqual(bare.status, 2)
        XCTAssertTrue(bare.err.contains("optim.lr"), bare.err)
    }

    func testMissingDataExitsTwo() throws {
        let r = try run(["train", "--spec", "-", "--out", temporaryFolder()], stdin: #"{"data": {"root": "/no/such/folder"}}"#)
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("/no/such/folder"), r.err)
    }

    func testTrainThenEvaluateTheExport() throws {
        let dir = temporaryFolder()
        let spec =
            #"{"data": {"train_limit": 256, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}}"#
        let r = try run(["train", "--spec", "-", "--out", dir], stdin: spec)
        XCTAssertEqual(r.status, 0, r.err)
        let lines = r.out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let summary = try XCTUnwrap(lines.last)
        XCTAssertEqual(summary["type"] as? String, "summary")
        XCTAssertEqual(summary["status"] as? String, "completed")
        let top1 = ((summary["final"] as! [String: Any])["raw"] as! [String: Double])["test/top1"]!

        let e = try run(["eval", "--weights", dir + "/final.safetensors", "--test-limit", "200", "--grid", "28,32:24,28"])
        XCTAssertEqual(e.status, 0, e.err)
        let cells = e.out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(cells.count, 4)
        let native = try XCTUnwrap(cells.first { $0["resize"] as? Int == 28 && $0["crop"] as? Int == 28 })
        XCTAssertEqual(native["top1"] as? Double, top1)
        XCTAssertEqual(native["type"] as? String, "grid")

        let bad = try run(["eval", "--weights", dir + "/spec.json"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("spec.json"), bad.err)
    }

    /// The export loads into the PyTorch twin (`../shared/bench/torch_reference.py`) with
    /// `load_state_dict(strict=True)` and scores exactly what Polyak reported. Skipped without torch.
    func testExportScoresTheSameInPyTorch() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let check = root.appendingPathComponent("scripts/torch_check.py").path
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = [
            "python3", "-c",
            "import torch, numpy; import sys; sys.path.insert(0, '\(root.path)/../shared/bench'); import torch_reference",
        ]
        probe.standardError = FileHandle.nullDevice
        probe.currentDirectoryURL = root  // pyenv's shims need a folder that exists
        try probe.run()
        probe.waitUntilExit()
        try XCTSkipIf(probe.terminationStatus != 0, "PyTorch (or ../shared/bench) is not available here")

        let dir = temporaryFolder()
        let spec =
            #"{"data": {"train_limit": 256, "test_limit": 300}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}, "averaging": {"kind": "swa", "start_epoch": 1}}"#
        let r = try run(["train", "--spec", "-", "--out", dir], stdin: spec)
        XCTAssertEqual(r.status, 0, r.err)
        let summary = try JSONSerialization.jsonObject(with: Data(r.out.split(separator: "\n").last!.utf8)) as! [String: Any]
        let final = summary["final"] as! [String: [String: Double]]
        for (set, file) in [("raw", "final.safetensors"), ("swa", "swa.safetensors")] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [
                "python3", check, dir + "/" + file, "--test-limit", "300", "--expect", String(final[set]!["test/top1"]!),
            ]
            let err = Pipe()
            p.standardError = err
            p.currentDirectoryURL = root
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "\(set): \(message)")
        }
    }

    func testResumeNeedsACheckpointFolder() throws {
        let r = try run(["train", "--resume", temporaryFolder()])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("spec.json"), r.err)
    }
}
