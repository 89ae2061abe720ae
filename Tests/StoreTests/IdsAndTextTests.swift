import CSQLite
import Experiments
import Foundation
import XCTest

@testable import Store

/// Ids never come back after a delete, text is stored whole, `LIKE` filters are literal, and the
/// migration that brought AUTOINCREMENT keeps a database written by the first schema intact.
final class IdsAndTextTests: XCTestCase {
    var folder: URL!
    var path: String { folder.appendingPathComponent("polyak.sqlite").path }

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-ids-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func newRun(name: String? = nil, tags: [String] = [], strategies: [String] = []) -> NewRun {
        NewRun(
            name: name, tags: tags, strategies: strategies, external: true, status: .running, specJSON: "{}", codeVersion: "test")
    }

    func testIdsOfDeletedRowsAreNotHandedOutAgain() throws {
        let store = try TrackingStore(path: path)
        let a = try store.createRun(newRun()).id
        let b = try store.createRun(newRun()).id
        XCTAssertEqual([a, b], [1, 2])
        try store.deleteRun(b)
        XCTAssertEqual(try store.createRun(newRun()).id, 3)

        let (e1, _) = try store.createExperiment(
            name: "e", baseJSON: "{}", variantsJSON: "[]", seedsJSON: "[0]", baseline: "none", runs: [])
        try store.deleteExperiment(e1.id)
        let (e2, _) = try store.createExperiment(
            name: "e", baseJSON: "{}", variantsJSON: "[]", seedsJSON: "[0]", baseline: "none", runs: [])
        XCTAssertEqual(e2.id, e1.id + 1)
    }

    func testTextWithNULIsStoredWhole() throws {
        let store = try TrackingStore(path: path)
        // Two tags that were equal once cut at the NUL (the old bind with length −1 made this a constraint error).
        let run = try store.createRun(newRun(name: "left\u{0}right", tags: ["x\u{0}a", "x\u{0}b", ""]))
        let read = try XCTUnwrap(try store.run(run.id))
        XCTAssertEqual(read.name, "left\u{0}right")
        XCTAssertEqual(read.tags, ["x\u{0}a", "x\u{0}b", ""])
        try store.updateRun(run.id, name: .some("n\u{0}"), notes: "a\u{0}b", tags: ["t\u{0}1", "t\u{0}2"])
        let updated = try XCTUnwrap(try store.run(run.id))
        XCTAssertEqual(updated.name, "n\u{0}")
        XCTAssertEqual(updated.notes, "a\u{0}b")
        XCTAssertEqual(try store.runs(RunFilter(tag: "t\u{0}2", limit: 10)).map(\.id), [run.id])
        XCTAssertEqual(try store.runs(RunFilter(tag: "t", limit: 10)).map(\.id), [])

        _ = try store.logBatch(
            run: run.id,
            [
                MetricPoint(key: "k\u{0}1", weights: "w\u{0}", step: 1, value: 1, time: 1),
                MetricPoint(key: "k\u{0}2", weights: "w\u{0}", step: 1, value: 2, time: 1),
            ], policy: .refuse)
        XCTAssertEqual(Set(try store.series(run: run.id).map(\.key)), ["k\u{0}1", "k\u{0}2"])
        XCTAssertEqual(try store.points(run: run.id, key: "k\u{0}2").map(\.value), [2])
    }

    func testStrategyFilterMatchesLiterally() throws {
        let store = try TrackingStore(path: path)
        let ema = try store.createRun(newRun(strategies: ["ema"])).id
        let swa = try store.createRun(newRun(strategies: ["swa"])).id
        let odd = try store.createRun(newRun(strategies: ["a%b_c\\"])).id
        func ids(_ s: String) throws -> [Int64] { try store.runs(RunFilter(strategy: s, limit: 10)).map(\.id).sorted() }
        XCTAssertEqual(try ids("%"), [])
        XCTAssertEqual(try ids("_ma"), [])
        XCTAssertEqual(try ids("%a"), [])
        XCTAssertEqual(try ids("\\"), [])
        XCTAssertEqual(try ids("ema"), [ema])
        XCTAssertEqual(try ids("swa"), [swa])
        XCTAssertEqual(try ids("a%b_c\\"), [odd])
        XCTAssertEqual(try ids("a_b%c\\"), [])
    }

    /// A file written by the first schema (as every existing install has) keeps every row, id and
    /// relation through 0002, and from then on hands out no id twice.
    func testMigratingASchemaOneDatabaseKeepsItsRows() throws {
        do {
            let c = try Connection(path: path)
            try Migrator.migrate(c, migrations: EmbeddedMigrations.all.filter { $0.version == 1 })
            try c.execute(
                """
                INSERT INTO experiments VALUES (4, 'exp', '{}', '[{"name":"none"}]', '[0,1]', 'none', 10);
                INSERT INTO runs (id, experiment_id, experiment, variant, seed, name, notes, tags_json, strategies, external,
                                  status, spec_json, code_version, created_at, started_at, ended_at, error)
                    VALUES (3, 4, 'exp', 'none', 0, 'r3', 'note', '["t"]', ',ema,', 0, 'completed', '{"seed":0}', 'v1',
                            11, 12, 13, NULL),
                           (9, NULL, NULL, NULL, 1, 'r9', '', '[]', '', 1, 'failed', '{}', 'v1', 14, 15, 16, 'boom');
                INSERT INTO run_tags VALUES (3, 't');
                INSERT INTO metric_series (id, run_id, key, weights, last_step, last_value, last_time)
                    VALUES (1, 3, 'test/top1', 'raw', 2, 0.5, 20), (2, 9, 'loss', 'raw', 1, 1.5, 21);
                INSERT INTO metric_points VALUES (1, 1, 1, 0.25, 19), (1, 2, 2, 0.5, 20), (2, 1, NULL, 1.5, 21);
                INSERT INTO grid_cells VALUES (3, 'raw', 'base', 28, 32, 28, 0.9, 0.99, 0.3);
                INSERT INTO artifacts VALUES (3, 'raw', 'export', 'weights/raw.safetensors', 100, 'abc');
                """)
        }
        let store = try TrackingStore(path: path)
        XCTAssertEqual(try store.schemaVersionInFile(), TrackingStore.schemaVersion)

        let experiment = try XCTUnwrap(try store.experiment(4))
        XCTAssertEqual(experiment.name, "exp")
        let r3 = try XCTUnwrap(try store.run(3))
        XCTAssertEqual(r3.experimentID, 4)
        XCTAssertEqual(r3.name, "r3")
        XCTAssertEqual(r3.notes, "note")
        XCTAssertEqual(r3.tags, ["t"])
        XCTAssertEqual(r3.status, .completed)
        XCTAssertEqual(r3.endedAt, 13)
        XCTAssertEqual(try store.run(9)?.error, "boom")
        XCTAssertEqual(try store.runs(RunFilter(tag: "t", limit: 10)).map(\.id), [3])
        XCTAssertEqual(try store.runs(RunFilter(strategy: "ema", limit: 10)).map(\.id), [3])
        XCTAssertEqual(try store.runs(RunFilter(experimentID: 4, limit: 10)).map(\.id), [3])
        XCTAssertEqual(try store.points(run: 3, key: "test/top1").map(\.value), [0.25, 0.5])
        XCTAssertEqual(try store.latest(run: 9).first?.value, 1.5)
        XCTAssertEqual(try store.grid(run: 3).first?.top1, 0.9)
        XCTAssertEqual(try store.artifacts(run: 3).first?.sha256, "abc")
        XCTAssertEqual(try query("PRAGMA integrity_check"), ["ok"])
        XCTAssertEqual(try query("PRAGMA foreign_key_check"), [])
        XCTAssertTrue(try query("SELECT sql FROM sqlite_master WHERE name = 'runs'").first?.contains("AUTOINCREMENT") == true)

        // The relations still cascade: deleting the experiment takes run 3 and everything of it along.
        try store.deleteExperiment(4)
        XCTAssertNil(try store.run(3))
        XCTAssertEqual(try query("SELECT count(*) FROM run_tags"), ["0"])
        XCTAssertEqual(try query("SELECT count(*) FROM metric_points"), ["1"])
        XCTAssertEqual(try query("SELECT count(*) FROM grid_cells"), ["0"])
        // The newest id (9) deleted: the next run is 10, not 9.
        try store.deleteRun(9)
        XCTAssertEqual(try store.createRun(newRun()).id, 10)
    }

    /// First column of every row, as text, from a separate connection.
    func query(_ sql: String) throws -> [String] {
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw StoreError.sqlite(code: 1, message: "open", sql: sql) }
        defer { sqlite3_close(db) }
        sqlite3_exec(db, "PRAGMA foreign_keys = ON", nil, nil, nil)
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else {
            throw StoreError.sqlite(code: 1, message: String(cString: sqlite3_errmsg(db)), sql: sql)
        }
        defer { sqlite3_finalize(stmt) }
        var out: [String] = []
        while sqlite3_step(stmt) == SQLITE_ROW {
            out.append(sqlite3_column_text(stmt, 0).map { String(cString: $0) } ?? "")
        }
        return out
    }
}
