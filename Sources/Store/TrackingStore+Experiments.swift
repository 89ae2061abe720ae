import Foundation

extension ExperimentRecord: RowDecodable {
    static let table = "experiments"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), name: try row.text("name"), baseJSON: try row.text("base_json"),
            variantsJSON: try row.text("variants_json"), seedsJSON: try row.text("seeds_json"),
            baseline: try row.text("baseline"), createdAt: try row.double("created_at"))
    }
}

/// The `experiments` table.
extension TrackingStore {
    /// Stores an experiment and its runs in one transaction.
    ///
    /// - Parameter maxQueued: when given, the whole experiment is refused (``CapReached``, nothing
    ///   written) if its queued runs would bring the queue past it.
    public func createExperiment(
        name: String, baseJSON: String, variantsJSON: String, seedsJSON: String, baseline: String, runs: [NewRun],
        maxQueued: Int? = nil
    ) throws -> (ExperimentRecord, [RunRecord]) {
        try write { db in
            try db.transaction {
                try checkQueue(db, adding: runs.filter { $0.status == .queued }.count, cap: maxQueued)
                let now = Date().timeIntervalSince1970
                try db.execute(
                    """
                    INSERT INTO experiments (name, base_json, variants_json, seeds_json, baseline, created_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                    [.text(name), .text(baseJSON), .text(variantsJSON), .text(seedsJSON), .text(baseline), .double(now)])
                let id = db.lastInsertRowID
                var created: [RunRecord] = []
                for var run in runs {
                    run.experimentID = id
                    created.append(try insertRun(db, run, now: now))
                }
                return (
                    ExperimentRecord(
                        id: id, name: name, baseJSON: baseJSON, variantsJSON: variantsJSON,
                        seedsJSON: seedsJSON, baseline: baseline, createdAt: now), created
                )
            }
        }
    }

    /// Adds runs to an experiment and records its new seed list, in one transaction; nil (nothing
    /// written) when the experiment is gone. `maxQueued` as in ``createExperiment``.
    public func addRuns(
        toExperiment id: Int64, seedsJSON: String, runs: [NewRun], maxQueued: Int? = nil
    ) throws -> [RunRecord]? {
        try write { db in
            try db.transaction {
                guard try db.fetchOne(ExperimentRecord.self, "SELECT * FROM experiments WHERE id = ?", [.int(id)]) != nil
                else { return nil }
                try checkQueue(db, adding: runs.filter { $0.status == .queued }.count, cap: maxQueued)
                try db.execute("UPDATE experiments SET seeds_json = ? WHERE id = ?", [.text(seedsJSON), .int(id)])
                let now = Date().timeIntervalSince1970
                return try runs.map { run in
                    var run = run
                    run.experimentID = id
                    return try insertRun(db, run, now: now)
                }
            }
        }
    }

    public func experiment(_ id: Int64) throws -> ExperimentRecord? {
        try read { try $0.fetchOne(ExperimentRecord.self, "SELECT * FROM experiments WHERE id = ?", [.int(id)]) }
    }

    /// Experiments newest first, `limit` of them with an id below `before`.
    public func experiments(before: Int64?, limit: Int) throws -> [ExperimentRecord] {
        try read {
            try $0.fetchAll(
                ExperimentRecord.self, "SELECT * FROM experiments WHERE id < ? ORDER BY id DESC LIMIT ?",
                [.int(before ?? Int64.max), .int(Int64(limit))])
        }
    }

    /// Deletes an experiment with its runs (their points, grids and artifact rows cascade).
    public func deleteExperiment(_ id: Int64) throws {
        try write { db in
            try db.transaction {
                try db.execute("DELETE FROM runs WHERE experiment_id = ?", [.int(id)])
                try db.execute("DELETE FROM experiments WHERE id = ?", [.int(id)])
            }
            seriesIDs.removeAll()
        }
    }
}
