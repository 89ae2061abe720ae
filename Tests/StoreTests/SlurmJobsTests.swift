import Experiments
import Foundation
import XCTest

@testable import Store

/// The runs' Slurm columns (migration 0007): a job id and state per run, and the runs a restarted
/// server must re-attach to (queued or running, with a job).
final class SlurmJobsTests: XCTestCase {
    func testJobsAreStoredAndOnlyUnfinishedOnesAreActive() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-slurm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try TrackingStore(path: folder.appendingPathComponent("polyak.sqlite").path)
        func queued() throws -> Int64 { try store.createRun(NewRun(specJSON: "{}", codeVersion: "test")).id }
        let (a, b, c, d) = (try queued(), try queued(), try queued(), try queued())
        try store.setSlurmJob(a, jobID: 101)
        try store.setSlurmJob(b, jobID: 102)
        try store.setSlurmJob(c, jobID: 103)
        try store.setSlurmState(a, "PENDING (Resources)")
        try store.setStatus(b, .running)
        try store.setStatus(c, .completed)
        XCTAssertEqual(try store.activeSlurmJobs().map(\.runID), [a, b])
        XCTAssertEqual(try store.activeSlurmJobs().map(\.jobID), [101, 102])
        let run = try XCTUnwrap(try store.run(a))
        XCTAssertEqual(run.slurmJobID, 101)
        XCTAssertEqual(run.slurmState, "PENDING (Resources)")
        XCTAssertNil(try store.run(d)?.slurmJobID)
        // A new submission replaces the job and forgets the old state.
        try store.setSlurmJob(a, jobID: 201)
        XCTAssertEqual(try store.run(a)?.slurmJobID, 201)
        XCTAssertNil(try store.run(a)?.slurmState)
    }

    func testInterruptionsAreCountedPerRun() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-slurm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try TrackingStore(path: folder.appendingPathComponent("polyak.sqlite").path)
        let a = try store.createRun(NewRun(specJSON: "{}", codeVersion: "test")).id
        let b = try store.createRun(NewRun(specJSON: "{}", codeVersion: "test")).id
        XCTAssertEqual(try store.slurmInterruptions(a), 0)
        XCTAssertEqual(try store.countSlurmInterruption(a), 1)
        XCTAssertEqual(try store.countSlurmInterruption(a), 2)
        XCTAssertEqual(try store.slurmInterruptions(a), 2)
        XCTAssertEqual(try store.slurmInterruptions(b), 0)
        // A new job for the run keeps the count: the cap is per run, not per job.
        try store.setSlurmJob(a, jobID: 7)
        XCTAssertEqual(try store.slurmInterruptions(a), 2)
    }
}
