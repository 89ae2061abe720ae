import CSQLite
import Experiments
import Foundation
import XCTest

@testable import Store

/// Rows decoded by name with errors that name the column, tags and strategies as ordered rows
/// (migrated from the schema-2 columns without a change), and reads that do not queue behind one lock.
final class RowsAndListsTests: XCTestCase {
    var folder: URL!
    var path: String { folder.appendingPathComponent("polyak.sqlite").path }

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-rows-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func newRun(tags: [String] = [], strategies: [String] = []) -> NewRun {
        NewRun(tags: tags, strategies: strategies, external: true, status: .running, specJSON: "{}", codeVersion: "test")
    }

    /// What the schema-2 code wrote (tags twice, strategies as ",ema,swa,") reads back as it did.
    func testASchemaTwoDatabaseReadsBackTheSameRecords() throws {
        do {
            let c = try Connection(path: path)
            try Migrator.migrate(c, migrations: EmbeddedMigrations.all.filter { $0.version <= 2 })
            // Written as the old insertRun and updateRun wrote them: the JSON list in order with
            // repeats, the table as a set. Run 6's tag holds a NUL, which JSON text spells \u0000.
            try c.execute(
                """
                INSERT INTO experiments VALUES (2, 'exp', '{"epochs":1}', '[{"name":"ema"}]', '[0,1]', 'none', 10.5);
                INSERT INTO runs (id, experiment_id, experiment, variant, seed, name, notes, tags_json, strategies, external,
                                  status, spec_json, code_version, created_at, started_at, ended_at, error, progress_json,
                                  summary_json, warnings_json)
                    VALUES (4, 2, 'exp', 'ema', 1, 'r4', 'n', '["b","a","b"]', ',ema,swa,kd,', 0, 'completed', '{"seed":1}',
                            'v1', 11, 12, 13, NULL, '{"epoch":1}', '{"top1":0.5}', '[{"code":"w"}]'),
                           (5, NULL, NULL, NULL, 0, NULL, '', '[]', '', 1, 'running', '{}', 'v1', 14, 15, NULL, NULL,
                            NULL, NULL, '[]'),
                           (6, NULL, 'ext', NULL, 0, 'r6', '', '["z","x\\u0000y"]', ',a%b_c\\,', 1, 'failed', '{}', 'v1',
                            16, 17, 18, 'boom', NULL, NULL, '[]');
                INSERT INTO run_tags VALUES (4, 'a'), (4, 'b'), (6, 'z');
                INSERT INTO run_tags VALUES (6, 'x' || char(0) || 'y');
                """)
        }
        let store = try TrackingStore(path: path)
        XCTAssertEqual(try store.schemaVersionInFile(), TrackingStore.schemaVersion)
        XCTAssertEqual(
            try store.experiment(2),
            ExperimentRecord(
                id: 2, name: "exp", baseJSON: #"{"epochs":1}"#, variantsJSON: #"[{"name":"ema"}]"#, seedsJSON: "[0,1]",
                baseline: "none", createdAt: 10.5))
        let r4 = RunRecord(
            id: 4, experimentID: 2, experiment: "exp", variant: "ema", seed: 1, name: "r4", notes: "n", tags: ["b", "a", "b"],
            strategies: ["ema", "swa", "kd"], external: false, status: .completed, specJSON: #"{"seed":1}"#, codeVersion: "v1",
            createdAt: 11, startedAt: 12, endedAt: 13, error: nil, progressJSON: #"{"epoch":1}"#,
            summaryJSON: #"{"top1":0.5}"#, warningsJSON: #"[{"code":"w"}]"#)
        let r5 = RunRecord(
            id: 5, experimentID: nil, experiment: nil, variant: nil, seed: 0, name: nil, notes: "", tags: [], strategies: [],
            external: true, status: .running, specJSON: "{}", codeVersion: "v1", createdAt: 14, startedAt: 15, endedAt: nil,
            error: nil, progressJSON: nil, summaryJSON: nil, warningsJSON: "[]")
        XCTAssertEqual(try store.run(4), r4)
        XCTAssertEqual(try store.run(5), r5)
        // JSON cannot carry the NUL through SQLite: the old table's exact text, in text order.
        XCTAssertEqual(try store.run(6)?.tags, ["x\u{0}y", "z"])
        XCTAssertEqual(try store.run(6)?.strategies, ["a%b_c\\"])
        XCTAssertEqual(try store.runs(RunFilter(limit: 10)).map(\.id), [6, 5, 4])
        XCTAssertEqual(try store.runs(RunFilter(limit: 10)).last, r4)

        func ids(_ filter: RunFilter) throws -> [Int64] { try store.runs(filter).map(\.id) }
        XCTAssertEqual(try ids(RunFilter(tag: "b")), [4])
        XCTAssertEqual(try ids(RunFilter(tag: "x\u{0}y")), [6])
        XCTAssertEqual(try ids(RunFilter(tag: "x")), [])
        XCTAssertEqual(try ids(RunFilter(strategy: "swa")), [4])
        XCTAssertEqual(try ids(RunFilter(strategy: "a%b_c\\")), [6])
        XCTAssertEqual(try ids(RunFilter(strategy: "none")), [5])
        XCTAssertEqual(try ids(RunFilter(strategy: "sw")), [])

        // The old columns are gone: tags and strategies are in one place each.
        let columns = try readColumns("runs")
        XCTAssertFalse(columns.contains("tags_json"), "\(columns)")
        XCTAssertFalse(columns.contains("strategies"), "\(columns)")
        try store.deleteRun(4)
        XCTAssertEqual(try readColumn("SELECT count(*) FROM run_tags WHERE run_id = 4"), ["0"])
        XCTAssertEqual(try readColumn("SELECT count(*) FROM run_strategies WHERE run_id = 4"), ["0"])
        XCTAssertEqual(try readColumn("PRAGMA foreign_key_check"), [])
    }

    func testTagsKeepTheirOrderAndRepeatsAndAReTagReplacesThem() throws {
        let store = try TrackingStore(path: path)
        let run = try store.createRun(newRun(tags: ["b", "a", "b"], strategies: ["swa", "ema"]))
        XCTAssertEqual(run.tags, ["b", "a", "b"])
        let read = try XCTUnwrap(try store.run(run.id))
        XCTAssertEqual(read, run)
        XCTAssertEqual(try store.runs(RunFilter(tag: "b")).map(\.id), [run.id], "one run, however often it has the tag")
        try store.updateRun(run.id, name: nil, notes: nil, tags: ["c"])
        XCTAssertEqual(try store.run(run.id)?.tags, ["c"])
        XCTAssertEqual(try store.run(run.id)?.strategies, ["swa", "ema"])
        XCTAssertEqual(try store.runs(RunFilter(tag: "b")).map(\.id), [])
        try store.updateRun(run.id, name: nil, notes: nil, tags: [])
        XCTAssertEqual(try store.run(run.id)?.tags, [])
    }

    /// A row that does not hold what its record expects is an error naming the table and column.
    func testARowOfTheWrongTypeIsAnErrorNamingItsColumn() throws {
        let store = try TrackingStore(path: path)
        let run = try store.createRun(newRun()).id
        let (experiment, _) = try store.createExperiment(
            name: "e", baseJSON: "{}", variantsJSON: "[]", seedsJSON: "[0]", baseline: "none", runs: [])
        try execute("UPDATE runs SET seed = 'seven' WHERE id = \(run)")
        try execute("UPDATE experiments SET created_at = 'yesterday' WHERE id = \(experiment.id)")
        XCTAssertThrowsError(try store.run(run)) { error in
            XCTAssertEqual("\(error)", "column seed of runs holds text, not an integer")
        }
        XCTAssertThrowsError(try store.runs(RunFilter())) { error in
            guard case StoreError.column(let table, let column, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual([table, column], ["runs", "seed"])
        }
        XCTAssertThrowsError(try store.experiment(experiment.id)) { error in
            XCTAssertEqual("\(error)", "column created_at of experiments holds text, not a number")
        }
        // A column missing from the result is named too.
        let row = try store.read { db in
            try db.fetchAll("SELECT id FROM runs", table: "runs") { row in Result(catching: { try row.text("name") }) }
        }
        XCTAssertThrowsError(try row.first?.get()) { error in
            XCTAssertEqual("\(error)", "column name of runs is not in the result")
        }
    }

    /// A read in progress holds one reader connection, not the store: another read goes through.
    func testAReadDoesNotWaitForAnotherRead() throws {
        let store = try TrackingStore(path: path, readers: 2)
        let run = try store.createRun(newRun(tags: ["t"])).id
        try store.logBatch(run: run, (0..<3).map { MetricPoint(key: "k", step: Int64($0), value: 1, time: 0) }, policy: .refuse)
        let series = try XCTUnwrap(try store.series(run: run).first)
        let inner = Box()
        var visited = 0
        try store.forEachPoint(series: series.id) { _, _, _, _ in
            visited += 1
            guard visited == 1 else { return }
            XCTAssertEqual(store.idleReaders, 1)
            let done = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                inner.tags = (try? store.run(run))?.tags
                done.signal()
            }
            // One lock for all reads would hold the other thread until this loop ends: a deadlock.
            XCTAssertEqual(done.wait(timeout: .now() + 10), .success, "the second read waited for the first")
        }
        XCTAssertEqual(visited, 3)
        XCTAssertEqual(inner.tags, ["t"])
        XCTAssertEqual(store.idleReaders, 2)
    }

    /// Many threads reading while one writes: every read sees a committed state, none fails.
    func testConcurrentReadsBesideIngestion() throws {
        let store = try TrackingStore(path: path, readers: 3)
        let run = try store.createRun(newRun()).id
        let batches = 20
        let errors = Failures()
        let failed = errors.add
        let written = DispatchSemaphore(value: 0)
        DispatchQueue(label: "writer").async {
            for b in 0..<batches {
                let points = (0..<100).map { MetricPoint(key: "loss", step: Int64(b * 100 + $0), value: 1, time: 0) }
                do { try store.logBatch(run: run, points, policy: .refuse) } catch { failed("write: \(error)") }
            }
            written.signal()
        }
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<30 {
                do {
                    let n = try store.pointCount(run: run)
                    // Whole batches only: a reader never sees half a transaction.
                    if n % 100 != 0 { failed("saw \(n) points") }
                    _ = try store.run(run)
                } catch {
                    failed("read: \(error)")
                }
            }
        }
        written.wait()
        XCTAssertEqual(errors.all, [])
        XCTAssertEqual(try store.pointCount(run: run), batches * 100)
        XCTAssertEqual(store.idleReaders, 3)
    }

    /// A reader connection refuses writes: a read path cannot change the file by mistake.
    func testReaderConnectionsAreQueryOnly() throws {
        let store = try TrackingStore(path: path)
        XCTAssertThrowsError(try store.read { try $0.execute("DELETE FROM runs", []) }) { error in
            XCTAssertTrue("\(error)".contains("readonly"), "\(error)")
        }
    }

    /// The foreign-key check after each migration names the table and the missing parent, and rolls back.
    func testAMigrationLeavingADanglingReferenceIsRolledBack() throws {
        let c = try Connection(path: path)
        try Migrator.migrate(c)
        let bad = Migration(
            version: TrackingStore.schemaVersion + 1, name: "9999_bad.sql",
            sql: "INSERT INTO run_tags (run_id, position, tag) VALUES (42, 0, 'orphan')")
        XCTAssertThrowsError(try Migrator.migrate(c, migrations: EmbeddedMigrations.all + [bad])) { error in
            XCTAssertTrue("\(error)".contains("9999_bad.sql left a row of run_tags referring to a missing runs row"), "\(error)")
        }
        XCTAssertEqual(try Migrator.currentVersion(c), TrackingStore.schemaVersion)
        XCTAssertEqual(try c.scalar("SELECT COUNT(*) FROM run_tags"), 0)
    }

    // MARK: Helpers

    /// What the other thread read, handed back after its semaphore.
    final class Box: @unchecked Sendable { var tags: [String]? }

    /// Errors from several threads.
    final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [String] = []
        @Sendable func add(_ text: String) { lock.withLock { list.append(text) } }
        var all: [String] { lock.withLock { list } }
    }

    func execute(_ sql: String) throws {
        let c = try Connection(path: path)
        try c.execute(sql)
    }

    func readColumns(_ table: String) throws -> [String] {
        let c = try Connection(path: path)
        return try c.fetchAll("SELECT name FROM pragma_table_info(?)", [.text(table)], table: table) { try $0.text("name") }
    }

    /// The first column of every row as text.
    func readColumn(_ sql: String) throws -> [String] {
        let c = try Connection(path: path)
        return try c.fetchAll(sql, table: "result") { row in row.statement.isNull(0) ? "NULL" : row.statement.text(0) }
    }
}
