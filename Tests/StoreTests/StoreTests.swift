import CSQLite
import Experiments
import Foundation
import XCTest

@testable import Store

final class StoreTests: XCTestCase {
    var folder: URL!
    var path: String { folder.appendingPathComponent("polyak.sqlite").path }

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func makeRun(_ store: TrackingStore, external: Bool = true) throws -> Int64 {
        try store.createRun(NewRun(external: external, status: .running, specJSON: "{}", codeVersion: "test")).id
    }

    // MARK: Migrations

    func testMigrationsAreRecordedAndAppliedOnce() throws {
        XCTAssertEqual(try TrackingStore.migrate(path: path), EmbeddedMigrations.all.map(\.name))
        XCTAssertEqual(try TrackingStore.migrate(path: path), [])
        let store = try TrackingStore(path: path)
        XCTAssertEqual(try store.schemaVersionInFile(), TrackingStore.schemaVersion)
        // WAL with a file beside the database while a connection is open.
        XCTAssertTrue(FileManager.default.fileExists(atPath: path + "-wal"))
    }

    func testADatabaseFromANewerBinaryIsRefused() throws {
        _ = try TrackingStore(path: path)
        var db: OpaquePointer?
        XCTAssertEqual(sqlite3_open(path, &db), SQLITE_OK)
        XCTAssertEqual(
            sqlite3_exec(db, "INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 0)", nil, nil, nil), SQLITE_OK)
        sqlite3_close(db)
        XCTAssertThrowsError(try TrackingStore(path: path)) { error in
            guard case StoreError.schemaTooNew(let database, let binary, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(database, 999)
            XCTAssertEqual(binary, TrackingStore.schemaVersion)
            XCTAssertTrue("\(error)".contains("newer polyak"), "\(error)")
        }
    }

    // MARK: Metrics

    func testBatchesAreIdempotentAndConflictsStoreNothing() throws {
        let store = try TrackingStore(path: path)
        let run = try makeRun(store)
        let batch = (0..<10).map { MetricPoint(key: "train/loss", step: Int64($0), epoch: 0, value: 1 / Double($0 + 1), time: 1) }
        var r = try store.logBatch(run: run, batch, policy: .refuse)
        XCTAssertEqual(r.inserted, 10)
        r = try store.logBatch(run: run, batch, policy: .refuse)
        XCTAssertEqual(r.unchanged, 10)
        XCTAssertEqual(r.inserted, 0)

        // One contradicting point refuses the whole batch, new points included.
        let mixed = [
            MetricPoint(key: "train/loss", step: 100, value: 5, time: 1),
            MetricPoint(key: "train/loss", step: 3, value: 42, time: 1),
        ]
        XCTAssertThrowsError(try store.logBatch(run: run, mixed, policy: .refuse)) { error in
            guard let c = error as? MetricConflict else { return XCTFail("\(error)") }
            XCTAssertEqual(c.index, 1)
            XCTAssertEqual(c.stored, 0.25)
        }
        XCTAssertEqual(try store.points(run: run).count, 10)
        XCTAssertEqual(try store.latest(run: run).first?.step, 9)

        // The trainer's path replaces (a resumed run re-emits the steps after its checkpoint).
        r = try store.logBatch(run: run, mixed, policy: .replace)
        XCTAssertEqual(r.inserted, 1)
        XCTAssertEqual(r.replaced, 1)
        XCTAssertEqual(try store.points(run: run).first { $0.step == 3 }?.value, 42)
        XCTAssertEqual(try store.latest(run: run).first?.step, 100)
    }

    func testNonFiniteValuesComeBackExactly() throws {
        let store = try TrackingStore(path: path)
        let run = try makeRun(store)
        let values: [Double] = [.nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 0.1]
        let batch = values.enumerated().map {
            MetricPoint(key: "x", weights: "ema@0.998", step: Int64($0.offset), value: $0.element, time: 2)
        }
        try store.logBatch(run: run, batch, policy: .refuse)
        let back = try store.points(run: run)
        XCTAssertEqual(back, batch)
        XCTAssertTrue(back[0].value.isNaN)
        // NaN again is the same value: idempotent, not a conflict.
        XCTAssertEqual(try store.logBatch(run: run, batch, policy: .refuse).unchanged, values.count)
        let latest = try store.latest(run: run)
        XCTAssertEqual(latest.first?.value, 0.1)
        try store.logBatch(
            run: run, [MetricPoint(key: "x", weights: "ema@0.998", step: 50, value: .nan, time: 3)], policy: .refuse)
        XCTAssertTrue(try store.latest(run: run).first!.value.isNaN)
    }

    func testDeletingARunRemovesItsPointsAndALaterRunStartsClean() throws {
        let store = try TrackingStore(path: path)
        let run = try makeRun(store)
        try store.logBatch(run: run, [MetricPoint(key: "k", step: 1, value: 1, time: 0)], policy: .refuse)
        try store.saveGrid(
            run: run,
            [GridCell(weights: "raw", stage: "base", trainSize: 28, resize: 32, crop: 28, top1: 0.9, top5: 1, loss: 0.3)])
        try store.saveArtifact(run: run, Artifact(name: "raw", kind: .export, path: "final.safetensors", bytes: 10, sha256: "ab"))
        try store.deleteRun(run)
        XCTAssertNil(try store.run(run))
        XCTAssertEqual(try store.points(run: run), [])
        XCTAssertEqual(try store.grid(run: run), [])
        XCTAssertEqual(try store.artifacts(run: run), [])
        let other = try makeRun(store)
        XCTAssertEqual(
            try store.logBatch(run: other, [MetricPoint(key: "k", step: 1, value: 2, time: 0)], policy: .refuse).inserted, 1)
    }

    func testFiltersAndCursor() throws {
        let store = try TrackingStore(path: path)
        for i in 0..<5 {
            _ = try store.createRun(
                NewRun(
                    experiment: i % 2 == 0 ? "a" : "b", tags: i == 3 ? ["best"] : [],
                    strategies: i == 4 ? ["ema", "swa"] : [], status: .queued, specJSON: "{}", codeVersion: "t"))
        }
        XCTAssertEqual(try store.runs(RunFilter(experiment: "a")).map(\.id), [5, 3, 1])
        XCTAssertEqual(try store.runs(RunFilter(tag: "best")).map(\.id), [4])
        XCTAssertEqual(try store.runs(RunFilter(strategy: "swa")).map(\.id), [5])
        XCTAssertEqual(try store.runs(RunFilter(strategy: "none")).count, 4)
        XCTAssertEqual(try store.runs(RunFilter(before: 3, limit: 1)).map(\.id), [2])
        XCTAssertTrue(try store.setStatus(1, .cancelled, from: [.queued]))
        XCTAssertFalse(try store.setStatus(1, .running, from: [.queued]))
        XCTAssertEqual(try store.run(1)?.status, .cancelled)
        XCTAssertNotNil(try store.run(1)?.endedAt)
    }
}
