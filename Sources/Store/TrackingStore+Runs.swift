import Experiments
import Foundation

extension RunRecord: RowDecodable {
    static let table = "runs"

    /// The `runs` columns; tags and strategies are rows of their own tables, filled in by
    /// ``TrackingStore/attachLists(_:to:)`` (a record is not handed out before).
    init(row: Row) throws {
        self.init(
            id: try row.int("id"), experimentID: try row.optionalInt("experiment_id"),
            experiment: try row.optionalText("experiment"), variant: try row.optionalText("variant"),
            seed: try row.int("seed"), name: try row.optionalText("name"), notes: try row.text("notes"), tags: [],
            strategies: [], external: try row.bool("external"), status: try row.value("status", as: RunStatus.self),
            specJSON: try row.text("spec_json"), codeVersion: try row.text("code_version"),
            createdAt: try row.double("created_at"), startedAt: try row.optionalDouble("started_at"),
            endedAt: try row.optionalDouble("ended_at"), error: try row.optionalText("error"),
            progressJSON: try row.optionalText("progress_json"), summaryJSON: try row.optionalText("summary_json"),
            warningsJSON: try row.text("warnings_json"), slurmJobID: try row.optionalInt("slurm_job_id"),
            slurmState: try row.optionalText("slurm_state"))
    }
}

/// The `runs` table.
extension TrackingStore {
    /// - Parameter maxQueued: as for ``createExperiment(name:baseJSON:variantsJSON:seedsJSON:baseline:runs:maxQueued:)``.
    public func createRun(_ run: NewRun, maxQueued: Int? = nil) throws -> RunRecord {
        try write { db in
            try db.transaction {
                try checkQueue(db, adding: run.status == .queued ? 1 : 0, cap: maxQueued)
                return try insertRun(db, run, now: Date().timeIntervalSince1970)
            }
        }
    }

    /// Counted inside the writing transaction, so two requests cannot both pass the cap.
    func checkQueue(_ db: Connection, adding: Int, cap: Int?) throws {
        guard let cap, adding > 0 else { return }
        let queued = Int(try db.scalar("SELECT COUNT(*) FROM runs WHERE status = ?", [.text(RunStatus.queued.rawValue)]))
        if queued + adding > cap { throw CapReached(cap: .queuedRuns, limit: cap, current: queued, adding: adding) }
    }

    func insertRun(_ db: Connection, _ run: NewRun, now: Double) throws -> RunRecord {
        try db.execute(
            """
            INSERT INTO runs (experiment_id, experiment, variant, seed, name, external, status, spec_json, code_version,
                              created_at, started_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                run.experimentID.sql, run.experiment.sql, run.variant.sql, .int(run.seed), run.name.sql,
                .int(run.external ? 1 : 0), .text(run.status.rawValue), .text(run.specJSON), .text(run.codeVersion),
                .double(now), run.status == .running ? .double(now) : .null,
            ])
        let id = db.lastInsertRowID
        try saveList(db, .tags, run: id, run.tags)
        try saveList(db, .strategies, run: id, run.strategies)
        try saveShares(db, run: id, run.shares)
        return RunRecord(
            id: id, experimentID: run.experimentID, experiment: run.experiment, variant: run.variant, seed: run.seed,
            name: run.name, notes: "", tags: run.tags, strategies: run.strategies, external: run.external,
            status: run.status, specJSON: run.specJSON, codeVersion: run.codeVersion, createdAt: now,
            startedAt: run.status == .running ? now : nil, endedAt: nil, error: nil, progressJSON: nil,
            summaryJSON: nil, warningsJSON: "[]", shares: run.shares)
    }

    public func run(_ id: Int64) throws -> RunRecord? {
        try read { db in
            guard let run = try db.fetchOne(RunRecord.self, "SELECT * FROM runs WHERE id = ?", [.int(id)]) else { return nil }
            var runs = [run]
            try attachLists(db, to: &runs)
            return runs[0]
        }
    }

    /// Runs matching `filter`, newest first (oldest first within one experiment).
    public func runs(_ filter: RunFilter) throws -> [RunRecord] {
        var clauses = ["id < ?"]
        var args: [SQLValue] = [.int(filter.before ?? Int64.max)]
        if let e = filter.experiment { clauses.append("experiment = ?"); args.append(.text(e)) }
        if let e = filter.experimentID { clauses.append("experiment_id = ?"); args.append(.int(e)) }
        if let s = filter.status { clauses.append("status = ?"); args.append(.text(s.rawValue)) }
        if let s = filter.strategy {
            if s == "none" {
                clauses.append("NOT EXISTS (SELECT 1 FROM run_strategies WHERE run_id = runs.id)")
            } else {
                clauses.append("id IN (SELECT run_id FROM run_strategies WHERE kind = ?)")
                args.append(.text(s))
            }
        }
        if let t = filter.tag { clauses.append("id IN (SELECT run_id FROM run_tags WHERE tag = ?)"); args.append(.text(t)) }
        if let v = filter.variant {
            clauses.append("(variant = ? OR id IN (SELECT run_id FROM run_weight_shares WHERE variant = ?))")
            args += [.text(v), .text(v)]
        }
        args.append(.int(Int64(filter.limit)))
        let order = filter.experimentID != nil ? "id ASC" : "id DESC"
        return try read { db in
            var runs = try db.fetchAll(
                RunRecord.self, "SELECT * FROM runs WHERE \(clauses.joined(separator: " AND ")) ORDER BY \(order) LIMIT ?", args)
            try attachLists(db, to: &runs)
            return runs
        }
    }

    /// Ids of runs in `statuses`, oldest first (the queue order).
    public func runIDs(status statuses: [RunStatus]) throws -> [Int64] {
        let marks = statuses.map { _ in "?" }.joined(separator: ",")
        return try read { db in
            try db.fetchAll(
                "SELECT id FROM runs WHERE status IN (\(marks)) AND external = 0 ORDER BY id",
                statuses.map { .text($0.rawValue) },
                table: "runs"
            ) { try $0.int("id") }
        }
    }

    /// A run waiting for a trainer, with the threads its spec asks for (what the scheduler's core
    /// budget counts).
    public struct WaitingRun: Sendable, Equatable {
        public var id: Int64
        public var threads: Int

        public init(id: Int64, threads: Int) {
            self.id = id
            self.threads = threads
        }
    }

    /// Runs in `statuses` with their specs' threads, oldest first (the queue order). A spec that does
    /// not name its threads counts the spec's default.
    public func waitingRuns(status statuses: [RunStatus]) throws -> [WaitingRun] {
        let marks = statuses.map { _ in "?" }.joined(separator: ",")
        let fallback = RunSpec().threads
        return try read { db in
            try db.fetchAll(
                """
                SELECT id, CASE WHEN json_valid(spec_json) THEN json_extract(spec_json, '$.threads') END AS threads
                FROM runs WHERE status IN (\(marks)) AND external = 0 ORDER BY id
                """,
                statuses.map { .text($0.rawValue) },
                table: "runs"
            ) { row in
                let threads = (try? row.optionalInt("threads")).flatMap { $0 }.map { Int(clamping: $0) } ?? fallback
                return WaitingRun(id: try row.int("id"), threads: max(1, threads))
            }
        }
    }

    /// How many runs are in `status`.
    public func count(status: RunStatus) throws -> Int {
        try read { Int(try $0.scalar("SELECT COUNT(*) FROM runs WHERE status = ?", [.text(status.rawValue)])) }
    }

    /// How many runs of each experiment are in each status: experiment id → status → count.
    public func statusCounts() throws -> [Int64: [RunStatus: Int]] {
        try read { db in
            var out: [Int64: [RunStatus: Int]] = [:]
            try db.forEach(
                """
                SELECT experiment_id, status, COUNT(*) AS n FROM runs WHERE experiment_id IS NOT NULL
                GROUP BY experiment_id, status
                """, table: "runs"
            ) { row in
                out[try row.int("experiment_id"), default: [:]][try row.value("status", as: RunStatus.self)] = Int(
                    try row.int("n"))
            }
            return out
        }
    }

    /// Renames, annotates or re-tags a run (nil leaves a field as it is).
    public func updateRun(_ id: Int64, name: String??, notes: String?, tags: [String]?) throws {
        try write { db in
            try db.transaction {
                if let name { try db.execute("UPDATE runs SET name = ? WHERE id = ?", [name.sql, .int(id)]) }
                if let notes { try db.execute("UPDATE runs SET notes = ? WHERE id = ?", [.text(notes), .int(id)]) }
                if let tags { try saveList(db, .tags, run: id, tags) }
            }
        }
    }

    /// Moves a run to `status`, setting start/end times as the status implies.
    ///
    /// - Parameter from: when given, the change happens only if the run is in one of these
    ///   statuses; returns whether it happened (so a cancel cannot overwrite a completion).
    @discardableResult
    public func setStatus(_ id: Int64, _ status: RunStatus, error: String? = nil, from: [RunStatus]? = nil) throws -> Bool {
        let now = Date().timeIntervalSince1970
        var sql = """
            UPDATE runs SET status = ?1,
                started_at = CASE WHEN ?1 = 'running' AND started_at IS NULL THEN ?2 ELSE started_at END,
                ended_at = CASE WHEN ?1 IN ('completed', 'failed', 'cancelled') THEN ?2 ELSE NULL END,
                error = CASE WHEN ?1 IN ('failed', 'cancelled', 'interrupted') THEN ?3 WHEN ?1 = 'completed' THEN NULL ELSE error END
            WHERE id = ?4
            """
        var args: [SQLValue] = [.text(status.rawValue), .double(now), error.sql, .int(id)]
        if let from {
            sql += " AND status IN (\(from.map { _ in "?" }.joined(separator: ",")))"
            args += from.map { .text($0.rawValue) }
        }
        return try write { db in
            try db.execute(sql, args)
            return db.changes > 0
        }
    }

    /// Replaces the reason a failed run gives (an external script saying why, after the fact).
    public func setError(_ id: Int64, _ error: String) throws {
        try write { try $0.execute("UPDATE runs SET error = ? WHERE id = ? AND status = 'failed'", [.text(error), .int(id)]) }
    }

    /// Stores a run's spec as launched (after resolving references such as `teacher_run`).
    public func setSpec(_ id: Int64, specJSON: String) throws {
        try write { try $0.execute("UPDATE runs SET spec_json = ? WHERE id = ?", [.text(specJSON), .int(id)]) }
    }

    public func setProgress(_ id: Int64, json: String) throws {
        try write { try $0.execute("UPDATE runs SET progress_json = ? WHERE id = ?", [.text(json), .int(id)]) }
    }

    public func setSummary(_ id: Int64, json: String) throws {
        try write { try $0.execute("UPDATE runs SET summary_json = ? WHERE id = ?", [.text(json), .int(id)]) }
    }

    /// Appends a warning object (JSON text) to the run's list, once.
    public func addWarning(_ id: Int64, json: String) throws {
        try write {
            try $0.execute(
                """
                UPDATE runs SET warnings_json = json_insert(warnings_json, '$[#]', json(?1))
                WHERE id = ?2 AND NOT EXISTS (SELECT 1 FROM json_each(runs.warnings_json) WHERE json_each.value = json(?1))
                """, [.text(json), .int(id)])
        }
    }

    /// Deletes a run and everything stored for it (not its files: the caller owns the folder).
    public func deleteRun(_ id: Int64) throws {
        try write { db in
            try db.execute("DELETE FROM runs WHERE id = ?", [.int(id)])
            seriesIDs = seriesIDs.filter { $0.key.run != id }
        }
    }
}
