import Experiments
import Foundation
import PolyakTestSupport
import XCTest

/// A run folder on a disk that fills up, or turns read-only, while a checkpoint is written: the
/// trainer fails saying so (exit 1; the server stores that as the run's reason), and the previous
/// checkpoint stays whole: `--resume` continues from it once there is room again.
final class DiskFaultTests: XCTestCase {
    enum Fault { case full, readOnly }

    func testAFullDiskFailsTheRunAndKeepsTheLastCheckpoint() throws { try checkpointFault(.full) }

    func testAReadOnlyDiskFailsTheRunAndKeepsTheLastCheckpoint() throws { try checkpointFault(.readOnly) }

    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        (try? runProcess(tool, arguments))?.status ?? -1
    }

    func checkpointFault(_ fault: Fault) throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let disk = folder.url.appendingPathComponent("disk").path
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        // A small disk of its own: a tmpfs (root or CAP_SYS_ADMIN). Without one, only the
        // read-only case can be made, by permissions, and only when not root (root ignores them).
        let mounted = getuid() == 0 && Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", disk]) == 0
        defer { if mounted { Self.run("/bin/umount", ["-l", disk]) } }
        if !mounted && (fault == .full || getuid() == 0) {
            throw XCTSkip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): the \(fault) disk case is skipped")
        }
        let out = disk + "/run"
        let spec = folder.url.appendingPathComponent("spec.json").path
        // 24 steps an epoch (about a second, the numeric modules built with -O even in debug): time
        // enough to stop the trainer after its first checkpoint, before its second.
        try
            #"{"data": {"train_limit": 1536, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 2, "batch_size": 64}}"#
            .write(toFile: spec, atomically: true, encoding: .utf8)

        let trainer = Process()
        trainer.executableURL = URL(fileURLWithPath: exe)
        trainer.arguments = ["train", "--spec", spec, "--out", out]
        let stdout = Pipe(), stderr = Pipe()
        trainer.standardOutput = stdout
        trainer.standardError = stderr
        try trainer.run()
        var pending = Data()
        var first: JSONValue?
        // Read until the first checkpoint line, then freeze the trainer and break the disk.
        while first == nil {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            pending.append(chunk)
            while let newline = pending.firstIndex(of: 0x0A) {
                let line = try JSONValue.parse(pending[pending.startIndex..<newline])
                pending.removeSubrange(pending.startIndex...newline)
                if line["type"]?.stringValue == "checkpoint" {
                    kill(trainer.processIdentifier, SIGSTOP)
                    first = line
                    break
                }
            }
        }
        let checkpoint = try XCTUnwrap(first, "no checkpoint line")
        XCTAssertEqual(checkpoint["epoch"]?.intValue, 1, "the trainer was past its first checkpoint")
        let expected = fault == .full ? "No space left on device" : "Read-only file system"
        switch fault {
        case .full:
            Self.run("/bin/dd", ["if=/dev/zero", "of=\(disk)/filler", "bs=1M"])
        case .readOnly where mounted:
            // checkpoints/ alone, read-only through a bind mount: the trainer's open train.lock
            // keeps the whole tmpfs from being remounted read-only.
            XCTAssertEqual(Self.run("/bin/mount", ["--bind", out + "/checkpoints", out + "/checkpoints"]), 0)
            XCTAssertEqual(Self.run("/bin/mount", ["-o", "remount,bind,ro", out + "/checkpoints"]), 0)
        case .readOnly:
            chmod(out + "/checkpoints", 0o555)
        }
        kill(trainer.processIdentifier, SIGCONT)
        _ = stdout.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        trainer.waitUntilExit()
        XCTAssertEqual(trainer.terminationStatus, 1, message)
        XCTAssertTrue(message.contains("cannot write \(out)/checkpoints/epoch-002.safetensors"), message)
        XCTAssertTrue(message.contains(mounted || fault == .full ? expected : "Permission denied"), message)

        // The first checkpoint is whole, and the only file left in checkpoints/.
        let path = out + "/checkpoints/epoch-001.safetensors"
        XCTAssertEqual(SHA256.hex(ofFile: path), checkpoint["sha256"]?.stringValue)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out + "/checkpoints"), ["epoch-001.safetensors"])
        switch fault {
        case .full: try FileManager.default.removeItem(atPath: disk + "/filler")
        case .readOnly where mounted: XCTAssertEqual(Self.run("/bin/umount", [out + "/checkpoints"]), 0)
        case .readOnly: chmod(out + "/checkpoints", 0o755)
        }
        let resumed = try runProcess(exe, ["train", "--resume", out])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        let summary = try resumed.out.split(separator: "\n").map { try JSONValue.parse(String($0)) }.last {
            $0["type"]?.stringValue == "summary"
        }
        XCTAssertEqual(summary?["status"]?.stringValue, "completed")
        XCTAssertEqual(summary?["steps"]?.intValue, 48)
    }
}
