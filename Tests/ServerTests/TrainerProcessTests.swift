import Foundation
import Logging
import XCTest

@testable import Server

/// `TrainerProcess` with real child processes (small shell scripts): exit codes, signals, the
/// stderr tail, the stall watchdog, SIGTERM then SIGKILL, a stop before the spawn, and what the
/// child is given (its parent's pid, its niceness).
final class TrainerProcessTests: XCTestCase {
    func script(_ folder: TempFolder, _ body: String) throws -> String {
        let path = folder.url.appendingPathComponent("\(UUID().uuidString).sh").path
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func process(_ executable: String, niceness: Int = 0, grace: Double = 5, stallTimeout: Double = 60) -> TrainerProcess {
        TrainerProcess(
            name: "test trainer",
            configuration: .init(executable: executable, niceness: niceness, grace: grace, stallTimeout: stallTimeout),
            logger: Logger(label: "test"))
    }

    /// Runs `p`, collecting its stdout; each line counts as an event.
    func run(_ p: TrainerProcess, _ arguments: [String] = []) throws -> (TrainerProcess.Ending, String) {
        var out: [UInt8] = []
        let ending = try p.run(arguments) { chunk in
            out.append(contentsOf: chunk)
            return chunk.filter { $0 == 0x0A }.count
        }
        return (ending, String(decoding: out, as: UTF8.self))
    }

    func testExitCodeStdoutAndTheLastTwelveLinesOfStderr() throws {
        let folder = try TempFolder()
        let exe = try script(folder, #"for i in $(seq 1 20); do echo "err $i" >&2; done; echo "out $1 $2"; exit 3"#)
        let (ending, out) = try run(process(exe), ["a b", "c"])
        XCTAssertEqual(out, "out a b c\n")
        let tail = (9...20).map { "err \($0)" }.joined(separator: "\n")
        XCTAssertEqual(ending, .exited(code: 3, signal: 0, stop: nil, stderrTail: tail))
    }

    func testASignalIsReportedAsSuch() throws {
        let folder = try TempFolder()
        let (ending, _) = try run(process(try script(folder, "kill -SEGV $$")))
        XCTAssertEqual(ending, .exited(code: nil, signal: 11, stop: nil, stderrTail: ""))
    }

    /// The child knows its parent (for the trainer's PR_SET_PDEATHSIG check) and runs niced.
    func testTheChildGetsItsParentsPIDAndNiceness() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/nice") else { throw XCTSkip("no /usr/bin/nice") }
        let folder = try TempFolder()
        let exe = try script(folder, #"echo "$POLYAK_PARENT_PID $(nice)"; read line; echo "stdin: $line""#)
        let mine = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let (ending, out) = try run(process(exe, niceness: 7))
        XCTAssertEqual(out, "\(getpid()) \(min(19, Int(mine) + 7))\nstdin: \n", "stdin is /dev/null")
        XCTAssertEqual(ending, .exited(code: 0, signal: 0, stop: nil, stderrTail: ""))
    }

    /// Silence past the stall timeout stops the child; lines that are not events do not count as life.
    func testASilentTrainerIsStoppedAsStalled() throws {
        let folder = try TempFolder()
        let exe = try script(folder, "echo one; sleep 0.2; echo two; exec sleep 30")
        let p = process(exe, stallTimeout: 0.6)
        var out: [UInt8] = []
        let started = Date()
        let ending = try p.run([]) { chunk in
            out.append(contentsOf: chunk)
            return String(decoding: chunk, as: UTF8.self).contains("one") ? 1 : 0  // "two" is not an event
        }
        let took = Date().timeIntervalSince(started)
        XCTAssertEqual(ending, .exited(code: nil, signal: SIGTERM, stop: .stalled, stderrTail: ""))
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "one\ntwo\n")
        XCTAssertGreaterThanOrEqual(took, 0.6)
        XCTAssertLessThan(took, 5)
    }

    /// A child that ignores SIGTERM gets SIGKILL after the grace; a shutdown overrides a cancel.
    func testAStopEscalatesToSIGKILLAfterTheGrace() throws {
        let folder = try TempFolder()
        let exe = try script(folder, "trap '' TERM; echo ready; exec sleep 30")
        let p = process(exe, grace: 0.5)
        let started = Date()
        let ending = try p.run([]) { chunk in
            if String(decoding: chunk, as: UTF8.self).contains("ready") {
                p.stop(.cancel)
                p.stop(.shutdown)
                p.stop(.cancel)
            }
            return 1
        }
        XCTAssertEqual(ending, .exited(code: nil, signal: SIGKILL, stop: .shutdown, stderrTail: ""))
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.5)
    }

    /// A stop before the spawn: nothing runs.
    func testAStopBeforeTheSpawnStartsNothing() throws {
        let folder = try TempFolder()
        let marker = folder.url.appendingPathComponent("ran").path
        let p = process(try script(folder, "touch '\(marker)'"))
        p.stop(.cancel)
        let (ending, _) = try run(p)
        XCTAssertEqual(ending, .notStarted(.cancel))
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
        // The same script, not stopped, does run.
        XCTAssertEqual(
            try run(process(try script(folder, "touch '\(marker)'"))).0, .exited(code: 0, signal: 0, stop: nil, stderrTail: ""))
        XCTAssertTrue(FileManager.default.fileExists(atPath: marker))
    }

    func testAMissingExecutableIsAnErrorNamingIt() throws {
        let p = process("/nonexistent/polyak")
        XCTAssertThrowsError(try run(p)) { error in
            XCTAssertTrue("\(error)".contains("cannot start /nonexistent/polyak"), "\(error)")
        }
    }
}
