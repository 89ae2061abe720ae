import Experiments
import Foundation
import Logging
import Store
import XCTest

@testable import Server

/// The scheduler (`JobRunner`) over the local executor with real child processes and a real SQLite
/// file: the concurrency cap, cancels racing starts, recovery and shutdown.
final class JobSchedulerTests: XCTestCase {
    /// A stand-in trainer (the scheduler's input, not a part under test): logs `start NAME` and
    /// `end NAME`, works `seconds`, prints a metric and a completed summary. While the file `hold`
    /// exists it sleeps instead (a long run, for shutdowns).
    static func trainer(in folder: TempFolder, seconds: Double) throws -> String {
        let path = folder.url.appendingPathComponent("trainer.sh").path
        let log = folder.url.appendingPathComponent("log").path
        let hold = folder.url.appendingPathComponent("hold").path
        let script = """
            #!/bin/sh
            spec=""
            while [ $# -gt 0 ]; do [ "$1" = "--spec" ] && spec="$2"; shift; done
            name=$(grep -o 'job-[0-9]*' "$spec" | head -1)
            echo "start $name" >> '\(log)'
            if [ -e '\(hold)' ]; then
              echo '{"type":"progress","epoch":0,"step":0,"total_steps":8,"images_per_sec":0,"eta_s":0,"time":1}'
              exec sleep 60
            fi
            sleep \(seconds)
            echo "end $name" >> '\(log)'
            echo '{"type":"metric","key":"test/top1","step":8,"epoch":1,"value":0.5,"time":1,"weights":"raw"}'
            echo '{"type":"summary","status":"completed","reason":null,"steps":8,"wall_s":1,"images_per_sec":8,"final":{},"exports":{},"timing":{}}'

            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    static func log(_ folder: TempFolder) -> [Substring] {
        let text = (try? String(contentsOfFile: folder.url.appendingPathComponent("log").path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n")
    }

    func runner(
        _ folder: TempFolder, _ store: TrackingStore, seconds: Double, maxConcurrent: Int, cpus: Int? = nil
    ) throws -> JobRunner {
        JobRunner(
            store: store, hub: EventHub(),
            options: .init(
                executable: try Self.trainer(in: folder, seconds: seconds), dataDirectory: folder.data,
                maxConcurrent: maxConcurrent, cpus: cpus, cancelGrace: 2),
            logger: Logger(label: "test"))
    }

    func queue(_ store: TrackingStore, _ n: Int) throws -> [Int64] {
        try (0..<n).map {
            try store.createRun(NewRun(name: "job-\($0)", specJSON: #"{"name": "job-\#($0)"}"#, codeVersion: "test")).id
        }
    }

    func waitUntil(seconds: Double = 60, _ done: () throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try !done() {
            guard Date() < deadline else { return XCTFail("not done after \(seconds) s") }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
    }

    func allFinished(_ store: TrackingStore, _ ids: [Int64]) throws -> Bool {
        try ids.allSatisfy { try store.run($0)?.status.isFinished == true }
    }

    /// Eight runs, at most two at once: never three trainers at a time, but two do overlap.
    func testNeverMoreThanMaxConcurrentAtOnce() async throws {
        let folder = try TempFolder()
        let store = try TrackingStore(path: folder.db)
        let runner = try runner(folder, store, seconds: 0.3, maxConcurrent: 2)
        let ids = try queue(store, 8)
        let service = Task { try await runner.run() }
        defer { service.cancel() }
        var mostActive = 0
        try await waitUntil {
            mostActive = max(mostActive, runner.activeCount)
            return try allFinished(store, ids)
        }
        XCTAssertEqual(try ids.map { try store.run($0)?.status }, Array(repeating: .completed, count: 8))
        XCTAssertEqual(mostActive, 2)
        var running = 0
        var most = 0
        for line in Self.log(folder) {
            running += line.hasPrefix("start ") ? 1 : -1
            most = max(most, running)
        }
        XCTAssertEqual(Self.log(folder).count, 16)
        XCTAssertEqual(most, 2, "trainers at once, as they saw it: \(Self.log(folder))")
        XCTAssertEqual(try store.points(run: ids[7]).map(\.value), [0.5])
    }

    /// A core budget of 2 with room for 4 runs: 1-thread runs train in pairs, a 2-thread run alone,
    /// a 3-thread run (more than the budget) alone too, and no run overtakes one waiting for room.
    func testRunsTrainSideBySideWhileTheirThreadsFitTheCores() async throws {
        let folder = try TempFolder()
        let store = try TrackingStore(path: folder.db)
        let runner = try runner(folder, store, seconds: 0.3, maxConcurrent: 4, cpus: 2)
        let threads = [1, 1, 2, 1, 3, 1, 1]
        let ids = try threads.enumerated().map { i, t in
            try store.createRun(
                NewRun(name: "job-\(i)", specJSON: #"{"name": "job-\#(i)", "threads": \#(t)}"#, codeVersion: "test")
            ).id
        }
        let service = Task { try await runner.run() }
        defer { service.cancel() }
        try await waitUntil { try allFinished(store, ids) }
        XCTAssertEqual(try ids.map { try store.run($0)?.status }, Array(repeating: .completed, count: threads.count))
        // The busy spells (from an idle machine back to idle) and which runs each one trained.
        var training: Set<Int> = []
        var spells: [Set<Int>] = []
        for line in Self.log(folder) {
            let job = Int(line.split(separator: "-").last!)!
            if line.hasPrefix("start ") {
                if training.isEmpty { spells.append([]) }
                training.insert(job)
                spells[spells.count - 1].insert(job)
                XCTAssertLessThanOrEqual(
                    training.count == 1 ? 0 : training.map { threads[$0] }.reduce(0, +), 2, "over budget: \(training)")
            } else {
                training.remove(job)
            }
        }
        XCTAssertEqual(spells, [[0, 1], [2], [3], [4], [5, 6]], "log: \(Self.log(folder))")
    }

    /// A 2-thread run waits at the queue's head beside a training 1-thread run; cancelling it lets
    /// the 1-thread run behind it start at once, not when the first one ends.
    func testCancellingTheWaitingHeadStartsTheRunBehindIt() async throws {
        let folder = try TempFolder()
        let store = try TrackingStore(path: folder.db)
        let runner = try runner(folder, store, seconds: 2, maxConcurrent: 4, cpus: 2)
        let ids = try [1, 2, 1].enumerated().map { i, t in
            try store.createRun(
                NewRun(name: "job-\(i)", specJSON: #"{"name": "job-\#(i)", "threads": \#(t)}"#, codeVersion: "test")
            ).id
        }
        let service = Task { try await runner.run() }
        defer { service.cancel() }
        try await waitUntil { runner.isActive(ids[0]) }
        XCTAssertFalse(runner.isActive(ids[2]), "behind a head that does not fit")
        XCTAssertTrue(try runner.cancel(ids[1]))
        try await waitUntil(seconds: 1.5) { runner.isActive(ids[2]) }
        XCTAssertTrue(runner.isActive(ids[0]), "the first run still trains")
        try await waitUntil { try allFinished(store, ids) }
        XCTAssertEqual(try ids.map { try store.run($0)?.status }, [.completed, .cancelled, .completed])
    }

    /// Cancels from several threads while runs start and end: a run whose cancel found it waiting
    /// ("cancelled before it ran") never gets a trainer, nor does one stopped between its slot and
    /// its spawn; every other run got exactly one.
    func testACancelledRunNeverStarts() async throws {
        let folder = try TempFolder()
        let store = try TrackingStore(path: folder.db)
        let runner = try runner(folder, store, seconds: 0, maxConcurrent: 2)
        let ids = try queue(store, 90)
        let service = Task { try await runner.run() }
        defer { service.cancel() }
        var random = SplitMix(seed: 17)
        let order = ids.shuffled(using: &random)
        let results = try await withThrowingTaskGroup(of: [(Int64, Bool)].self) { group in
            for part in 0..<3 {
                let mine = order.enumerated().filter { $0.offset % 3 == part }.map(\.element)
                group.addTask {
                    var out: [(Int64, Bool)] = []
                    for id in mine where id % 3 != 0 {
                        try await Task.sleep(nanoseconds: UInt64(id % 4) * 4_000_000)
                        out.append((id, try runner.cancel(id)))
                    }
                    return out
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        try await waitUntil { try allFinished(store, ids) && runner.activeCount == 0 }
        let started = Set(Self.log(folder).filter { $0.hasPrefix("start ") }.map { $0.dropFirst(6) })
        XCTAssertEqual(Self.log(folder).filter { $0.hasPrefix("start ") }.count, started.count, "a run started twice")
        var cancelledBeforeRunning = 0
        for (index, id) in ids.enumerated() {
            let run = try XCTUnwrap(try store.run(id))
            switch run.error {
            case "cancelled before it ran":
                cancelledBeforeRunning += 1
                XCTAssertEqual(run.status, .cancelled)
                XCTAssertFalse(started.contains("job-\(index)"), "run \(id) was cancelled while waiting, yet it started")
            case "stopped before it started":  // given a slot, cancelled before its trainer spawned
                XCTAssertEqual(run.status, .cancelled)
                XCTAssertFalse(started.contains("job-\(index)"), "run \(id) was stopped before it started, yet it started")
            default:
                XCTAssertTrue(started.contains("job-\(index)"), "run \(id) (\(run.status)) never started")
                XCTAssertTrue([.completed, .cancelled].contains(run.status), "run \(id): \(run.status)")
            }
        }
        XCTAssertGreaterThan(cancelledBeforeRunning, 0, "no cancel found a waiting run: the test raced nothing")
        for (id, accepted) in results where !accepted {
            XCTAssertEqual(try store.run(id)?.status, .completed, "cancel of run \(id) refused though it had not finished")
        }
        XCTAssertEqual(results.count, 60)
    }

    /// Stopping the service stops its trainers and leaves their runs `interrupted`; the next
    /// scheduler on the database resumes them (after queued ones never started: interrupted first).
    func testShutdownInterruptsAndTheNextStartResumes() async throws {
        let folder = try TempFolder()
        let store = try TrackingStore(path: folder.db)
        let hold = folder.url.appendingPathComponent("hold").path
        XCTAssertTrue(FileManager.default.createFile(atPath: hold, contents: nil))
        let first = try runner(folder, store, seconds: 0.05, maxConcurrent: 2)
        let ids = try queue(store, 3)
        let service = Task { try await first.run() }
        try await waitUntil { Self.log(folder).count == 2 }
        service.cancel()
        try await service.value
        XCTAssertEqual(first.activeCount, 0)
        XCTAssertEqual(try ids.map { try store.run($0)?.status }, [.interrupted, .interrupted, .queued])
        XCTAssertEqual(
            try store.run(ids[0])?.error, "the server stopped; this run resumes from its last checkpoint on the next start")

        // A server that died with a run running: the next start calls it interrupted and resumes it.
        try store.setStatus(ids[1], .running, error: nil)
        try FileManager.default.removeItem(atPath: hold)
        let second = try runner(folder, store, seconds: 0.05, maxConcurrent: 1)
        let again = Task { try await second.run() }
        defer { again.cancel() }
        try await waitUntil { try allFinished(store, ids) }
        XCTAssertEqual(try ids.map { try store.run($0)?.status }, [.completed, .completed, .completed])
        let starts = Self.log(folder).filter { $0.hasPrefix("start ") }
        XCTAssertEqual(starts.suffix(3), ["start job-0", "start job-1", "start job-2"], "interrupted runs go first")
    }
}
