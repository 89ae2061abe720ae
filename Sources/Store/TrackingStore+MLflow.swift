import Experiments
import Foundation

/// An experiment as MLflow's API shows it: Polyak's row plus its lifecycle and tags.
public struct MLflowExperimentRecord: Sendable {
    public var id: Int64
    public var name: String
    public var deleted: Bool
    /// Milliseconds since 1970.
    public var creationTime: Int64
    public var lastUpdateTime: Int64
    public var tags: [(key: String, value: String)]
}

/// A run as MLflow's API shows it: Polyak's row, its lifecycle, params, key/value tags and latest metrics.
public struct MLflowRunRecord: Sendable {
    public var run: RunRecord
    public var deleted: Bool
    public var userID: String
    /// Milliseconds since 1970 (the client's own when it sent them, else Polyak's times).
    public var startTime: Int64
    public var endTime: Int64?
    public var params: [(key: String, value: String)]
    public var tags: [(key: String, value: String)]
    public var latest: [MetricPoint]
}

/// Refusals of the MLflow tables, which the API answers with MLflow's error codes.
public enum MLflowStoreError: Error, Sendable, Equatable {
    case experimentNameTaken(String)
    /// A param logged again with another value (params are write-once, as in MLflow).
    case paramChanged(key: String, stored: String, given: String)
}

/// The `mlflow_*` tables (migration 0008): what MLflow's REST API keeps beside `experiments` and `runs`.
extension TrackingStore {
    /// The tags that place a run in its experiment's comparison.
    public static let variantTag = "polyak.variant"
    public static let seedTag = "polyak.seed"
    public static let baselineTag = "polyak.baseline"

    // MARK: Experiments

    /// Creates an experiment with no variants yet; they follow its runs' `polyak.variant` tags.
    public func mlflowCreateExperiment(name: String, tags: [(key: String, value: String)], nowMS: Int64) throws -> Int64 {
        try write { db in
            try db.transaction {
                if try db.scalar("SELECT COUNT(*) FROM experiments WHERE name = ?", [.text(name)]) > 0 {
                    throw MLflowStoreError.experimentNameTaken(name)
                }
                try db.execute(
                    """
                    INSERT INTO experiments (name, base_json, variants_json, seeds_json, baseline, created_at)
                    VALUES (?, '{}', '[]', '[]', '', ?)
                    """, [.text(name), .double(Double(nowMS) / 1000)])
                let id = db.lastInsertRowID
                try db.execute(
                    "INSERT INTO mlflow_experiments (experiment_id, last_update_time, created_here) VALUES (?, ?, 1)",
                    [.int(id), .int(nowMS)])
                for t in tags { try setExperimentTag(db, id, t.key, t.value) }
                try refreshPlacement(db, experiment: id)
                return id
            }
        }
    }

    /// An experiment of either origin (Polyak's own read as active, without tags).
    public func mlflowExperiment(_ id: Int64) throws -> MLflowExperimentRecord? {
        try mlflowExperiments(where: "e.id = ?", [.int(id)]).first
    }

    /// The newest experiment with this name.
    public func mlflowExperiment(named name: String) throws -> MLflowExperimentRecord? {
        try mlflowExperiments(where: "e.name = ?", [.text(name)]).first
    }

    /// Every experiment, newest first.
    public func mlflowExperiments() throws -> [MLflowExperimentRecord] {
        try mlflowExperiments(where: "1", [])
    }

    private func mlflowExperiments(where clause: String, _ args: [SQLValue]) throws -> [MLflowExperimentRecord] {
        try read { db in
            var out = try db.fetchAll(
                """
                SELECT e.id, e.name, e.created_at, m.lifecycle_stage, m.last_update_time
                FROM experiments e LEFT JOIN mlflow_experiments m ON m.experiment_id = e.id
                WHERE \(clause) ORDER BY e.id DESC
                """, args, table: "experiments ⋈ mlflow_experiments"
            ) { row in
                let created = Int64((try row.double("created_at") * 1000).rounded())
                return MLflowExperimentRecord(
                    id: try row.int("id"), name: try row.text("name"),
                    deleted: try row.optionalText("lifecycle_stage") == "deleted", creationTime: created,
                    lastUpdateTime: try row.optionalInt("last_update_time") ?? created, tags: [])
            }
            var index: [Int64: Int] = [:]
            for (i, e) in out.enumerated() { index[e.id] = i }
            try db.forEach(
                "SELECT experiment_id, key, value FROM mlflow_experiment_tags ORDER BY experiment_id, key",
                table: "mlflow_experiment_tags"
            ) { row in
                if let i = index[try row.int("experiment_id")] {
                    out[i].tags.append((try row.text("key"), try row.text("value")))
                }
            }
            return out
        }
    }

    /// Marks an experiment deleted or active again (MLflow's soft delete); false when it does not exist.
    @discardableResult
    public func mlflowSetExperimentDeleted(_ id: Int64, _ deleted: Bool, nowMS: Int64) throws -> Bool {
        try write { db in
            try db.transaction {
                guard try db.scalar("SELECT COUNT(*) FROM experiments WHERE id = ?", [.int(id)]) > 0 else { return false }
                try touchExperiment(db, id, nowMS: nowMS)
                try db.execute(
                    "UPDATE mlflow_experiments SET lifecycle_stage = ? WHERE experiment_id = ?",
                    [.text(deleted ? "deleted" : "active"), .int(id)])
                return true
            }
        }
    }

    /// Renames an experiment; the name must be free.
    public func mlflowRenameExperiment(_ id: Int64, to name: String, nowMS: Int64) throws {
        try write { db in
            try db.transaction {
                if try db.scalar("SELECT COUNT(*) FROM experiments WHERE name = ? AND id <> ?", [.text(name), .int(id)]) > 0 {
                    throw MLflowStoreError.experimentNameTaken(name)
                }
                try db.execute("UPDATE experiments SET name = ? WHERE id = ?", [.text(name), .int(id)])
                try db.execute("UPDATE runs SET experiment = ? WHERE experiment_id = ?", [.text(name), .int(id)])
                try touchExperiment(db, id, nowMS: nowMS)
            }
        }
    }

    private func touchExperiment(_ db: Connection, _ id: Int64, nowMS: Int64) throws {
        try db.execute(
            """
            INSERT INTO mlflow_experiments (experiment_id, last_update_time) VALUES (?1, ?2)
            ON CONFLICT (experiment_id) DO UPDATE SET last_update_time = ?2
            """, [.int(id), .int(nowMS)])
    }

    private func setExperimentTag(_ db: Connection, _ id: Int64, _ key: String, _ value: String) throws {
        try db.execute(
            """
            INSERT INTO mlflow_experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3)
            ON CONFLICT (experiment_id, key) DO UPDATE SET value = ?3
            """, [.int(id), .text(key), .text(value)])
    }

    // MARK: Runs

    /// Creates an external, running run in `experiment` with its tags (placed by the `polyak.*` ones).
    public func mlflowCreateRun(
        experiment: Int64, name: String?, userID: String, startTimeMS: Int64, tags: [(key: String, value: String)],
        codeVersion: String
    ) throws -> Int64 {
        try write { db in
            try db.transaction {
                let experimentName = try db.fetchAll(
                    "SELECT name FROM experiments WHERE id = ?", [.int(experiment)], table: "experiments"
                ) { try $0.text("name") }.first
                let start = Double(startTimeMS) / 1000
                try db.execute(
                    """
                    INSERT INTO runs (experiment_id, experiment, name, external, status, spec_json, code_version, created_at, started_at)
                    VALUES (?, ?, ?, 1, 'running', '{}', ?, ?, ?)
                    """,
                    [.int(experiment), experimentName.sql, name.sql, .text(codeVersion), .double(start), .double(start)])
                let id = db.lastInsertRowID
                try db.execute(
                    "INSERT INTO mlflow_runs (run_id, user_id, start_time) VALUES (?, ?, ?)",
                    [.int(id), .text(userID), .int(startTimeMS)])
                try writeParamsAndTags(db, run: id, params: [], tags: tags)
                return id
            }
        }
    }

    /// A run as MLflow shows it (any run: Polyak's own read as active, without params).
    public func mlflowRun(_ id: Int64) throws -> MLflowRunRecord? {
        try mlflowRuns(where: "r.id = ?", [.int(id)]).first
    }

    /// What a write needs to know of a run, without its lists: nil when there is no run `id`.
    public func mlflowRunWriteState(_ id: Int64) throws -> (deleted: Bool, external: Bool)? {
        try read { db in
            try db.fetchAll(
                "SELECT r.external, m.lifecycle_stage FROM runs r LEFT JOIN mlflow_runs m ON m.run_id = r.id WHERE r.id = ?",
                [.int(id)], table: "runs ⋈ mlflow_runs"
            ) { row in (try row.optionalText("lifecycle_stage") == "deleted", try row.bool("external")) }.first
        }
    }

    /// The runs of these experiments, newest first.
    public func mlflowRuns(experiments: [Int64]) throws -> [MLflowRunRecord] {
        let ids = "[" + experiments.map(String.init).joined(separator: ",") + "]"
        return try mlflowRuns(where: "r.experiment_id IN (SELECT value FROM json_each(?))", [.text(ids)])
    }

    private func mlflowRuns(where clause: String, _ args: [SQLValue]) throws -> [MLflowRunRecord] {
        try read { db in
            var records: [RunRecord] = []
            var extra: [(deleted: Bool, user: String, start: Int64?, end: Int64?)] = []
            try db.forEach(
                """
                SELECT r.*, m.lifecycle_stage, m.user_id, m.start_time, m.end_time
                FROM runs r LEFT JOIN mlflow_runs m ON m.run_id = r.id WHERE \(clause) ORDER BY r.id DESC
                """, args, table: "runs ⋈ mlflow_runs"
            ) { row in
                records.append(try RunRecord(row: row))
                extra.append(
                    (
                        try row.optionalText("lifecycle_stage") == "deleted", try row.optionalText("user_id") ?? "",
                        try row.optionalInt("start_time"), try row.optionalInt("end_time")
                    ))
            }
            try attachLists(db, to: &records)
            // A shared run answers for several variants; the MLflow views name them all.
            var byID: [Int64: Int] = [:]
            for (i, r) in records.enumerated() { byID[r.id] = i }
            let runIDs = "[" + records.map { String($0.id) }.joined(separator: ",") + "]"
            try attachShares(db, to: &records, ids: runIDs, index: byID)
            var out = records.enumerated().map { i, r in
                let e = extra[i]
                return MLflowRunRecord(
                    run: r, deleted: e.deleted, userID: e.user,
                    startTime: e.start ?? Int64(((r.startedAt ?? r.createdAt) * 1000).rounded()),
                    endTime: e.end ?? r.endedAt.map { Int64(($0 * 1000).rounded()) }, params: [], tags: [], latest: [])
            }
            var index: [Int64: Int] = [:]
            for (i, r) in out.enumerated() { index[r.run.id] = i }
            let ids: SQLValue = .text("[" + out.map { String($0.run.id) }.joined(separator: ",") + "]")
            for (table, path) in [("mlflow_params", \MLflowRunRecord.params), ("mlflow_run_tags", \MLflowRunRecord.tags)] {
                try db.forEach(
                    "SELECT run_id, key, value FROM \(table) WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, key",
                    [ids], table: table
                ) { row in
                    if let i = index[try row.int("run_id")] {
                        out[i][keyPath: path].append((try row.text("key"), try row.text("value")))
                    }
                }
            }
            try db.forEach(
                """
                SELECT run_id, key, weights, last_step, last_epoch, last_value, last_nan, last_time FROM metric_series
                WHERE run_id IN (SELECT value FROM json_each(?)) AND last_step IS NOT NULL ORDER BY run_id, key, weights
                """, [ids], table: "metric_series"
            ) { row in
                guard let i = index[try row.int("run_id")] else { return }
                out[i].latest.append(
                    MetricPoint(
                        key: try row.text("key"), weights: try row.text("weights"), step: try row.int("last_step"),
                        epoch: try row.optionalInt("last_epoch"), value: try Self.lastValue(row),
                        time: try row.double("last_time")))
            }
            return out
        }
    }

    /// Changes a run's status, end time and name (nil leaves each as it is). Ending a run (any status
    /// but running and queued) records its end; running again clears it.
    public func mlflowUpdateRun(_ id: Int64, status: RunStatus?, endTimeMS: Int64?, name: String?) throws {
        try write { db in
            try db.transaction {
                try ensureMLflowRun(db, id)
                if let status {
                    let ended = status != .running && status != .queued
                    let end: SQLValue = ended ? .double(Double(endTimeMS ?? Self.nowMS()) / 1000) : .null
                    try db.execute(
                        "UPDATE runs SET status = ?, ended_at = ?, error = CASE WHEN ? = 'completed' THEN NULL ELSE error END WHERE id = ?",
                        [.text(status.rawValue), end, .text(status.rawValue), .int(id)])
                    try db.execute(
                        "UPDATE mlflow_runs SET end_time = ? WHERE run_id = ?",
                        [ended ? .int(endTimeMS ?? Self.nowMS()) : .null, .int(id)])
                } else if let endTimeMS {
                    try db.execute("UPDATE mlflow_runs SET end_time = ? WHERE run_id = ?", [.int(endTimeMS), .int(id)])
                }
                if let name {
                    try db.execute("UPDATE runs SET name = ? WHERE id = ?", [.text(name), .int(id)])
                    try setRunTag(db, id, "mlflow.runName", name)
                }
            }
        }
    }

    /// Marks a run deleted or active again (MLflow's soft delete; Polyak's pages keep the run).
    public func mlflowSetRunDeleted(_ id: Int64, _ deleted: Bool) throws {
        try write { db in
            try db.transaction {
                try ensureMLflowRun(db, id)
                try db.execute(
                    "UPDATE mlflow_runs SET lifecycle_stage = ? WHERE run_id = ?",
                    [.text(deleted ? "deleted" : "active"), .int(id)])
            }
        }
    }

    /// Stores params (write-once: the same value again is a no-op, another value refuses the whole
    /// call) and tags (last value wins) in one transaction, and re-places the run.
    public func mlflowLogParamsAndTags(
        run id: Int64, params: [(key: String, value: String)], tags: [(key: String, value: String)]
    ) throws {
        try write { db in try db.transaction { try writeParamsAndTags(db, run: id, params: params, tags: tags) } }
    }

    /// The params of `params` that would be refused: stored with another value (checked before metrics are written).
    public func mlflowChangedParam(run id: Int64, params: [(key: String, value: String)]) throws -> MLflowStoreError? {
        try read { db in
            for p in params {
                let stored = try db.fetchAll(
                    "SELECT value FROM mlflow_params WHERE run_id = ? AND key = ?", [.int(id), .text(p.key)],
                    table: "mlflow_params"
                ) { try $0.text("value") }.first
                if let stored, stored != p.value { return .paramChanged(key: p.key, stored: stored, given: p.value) }
            }
            return nil
        }
    }

    /// Removes a tag; false when the run has no such tag.
    public func mlflowDeleteTag(run id: Int64, key: String) throws -> Bool {
        try write { db in
            try db.transaction {
                try db.execute("DELETE FROM mlflow_run_tags WHERE run_id = ? AND key = ?", [.int(id), .text(key)])
                guard db.changes > 0 else { return false }
                // Only the placement tags move a run (an external run made through Polyak's own API
                // keeps its variant and seed when an unrelated tag goes).
                if key == Self.variantTag || key == Self.seedTag { try place(db, run: id) }
                try refreshSpec(db, run: id)
                return true
            }
        }
    }

    private func writeParamsAndTags(
        _ db: Connection, run id: Int64, params: [(key: String, value: String)], tags: [(key: String, value: String)]
    ) throws {
        try ensureMLflowRun(db, id)
        for p in params {
            let stored = try db.fetchAll(
                "SELECT value FROM mlflow_params WHERE run_id = ? AND key = ?", [.int(id), .text(p.key)], table: "mlflow_params"
            ) { try $0.text("value") }.first
            if let stored {
                if stored != p.value { throw MLflowStoreError.paramChanged(key: p.key, stored: stored, given: p.value) }
                continue
            }
            try db.execute(
                "INSERT INTO mlflow_params (run_id, key, value) VALUES (?, ?, ?)", [.int(id), .text(p.key), .text(p.value)])
        }
        for t in tags { try setRunTag(db, id, t.key, t.value) }
        if tags.contains(where: { $0.key == Self.variantTag || $0.key == Self.seedTag }) { try place(db, run: id) }
        if !params.isEmpty || !tags.isEmpty { try refreshSpec(db, run: id) }
    }

    private func setRunTag(_ db: Connection, _ id: Int64, _ key: String, _ value: String) throws {
        try db.execute(
            """
            INSERT INTO mlflow_run_tags (run_id, key, value) VALUES (?1, ?2, ?3)
            ON CONFLICT (run_id, key) DO UPDATE SET value = ?3
            """, [.int(id), .text(key), .text(value)])
        if key == "mlflow.runName" { try db.execute("UPDATE runs SET name = ? WHERE id = ?", [.text(value), .int(id)]) }
    }

    /// A run of Polyak's own gets its `mlflow_runs` row the first time MLflow's API changes it.
    private func ensureMLflowRun(_ db: Connection, _ id: Int64) throws {
        try db.execute(
            """
            INSERT INTO mlflow_runs (run_id, start_time)
            SELECT id, CAST(COALESCE(started_at, created_at) * 1000 AS INTEGER) FROM runs WHERE id = ?
            ON CONFLICT (run_id) DO NOTHING
            """, [.int(id)])
    }

    /// Sets the run's variant and seed from its `polyak.variant` and `polyak.seed` tags (a seed tag
    /// that is not an integer in [0, 2^53] is refused before it reaches here), then its experiment's lists.
    private func place(_ db: Connection, run id: Int64) throws {
        func tag(_ key: String) throws -> String? {
            try db.fetchAll(
                "SELECT value FROM mlflow_run_tags WHERE run_id = ? AND key = ?", [.int(id), .text(key)], table: "mlflow_run_tags"
            ) { try $0.text("value") }.first
        }
        let variant = try tag(Self.variantTag)
        let seed = try tag(Self.seedTag).flatMap { Int64($0) } ?? 0
        try db.execute("UPDATE runs SET variant = ?, seed = ? WHERE id = ?", [variant.sql, .int(seed), .int(id)])
        let experiment =
            try db.fetchAll("SELECT experiment_id FROM runs WHERE id = ?", [.int(id)], table: "runs") {
                try $0.optionalInt("experiment_id")
            }.first ?? nil
        if let experiment { try refreshPlacement(db, experiment: experiment) }
    }

    /// An experiment made through MLflow lists the variants its runs name (in the order they first
    /// appeared) and their seeds; its baseline is its `polyak.baseline` tag, else its first variant.
    private func refreshPlacement(_ db: Connection, experiment id: Int64) throws {
        guard
            try db.scalar("SELECT COUNT(*) FROM mlflow_experiments WHERE experiment_id = ? AND created_here = 1", [.int(id)]) > 0
        else { return }
        let variants = try db.fetchAll(
            "SELECT variant FROM runs WHERE experiment_id = ? AND variant IS NOT NULL GROUP BY variant ORDER BY MIN(id)",
            [.int(id)], table: "runs"
        ) { try $0.text("variant") }
        let seeds = try db.fetchAll(
            "SELECT DISTINCT seed FROM runs WHERE experiment_id = ? AND variant IS NOT NULL ORDER BY seed", [.int(id)],
            table: "runs"
        ) { try $0.int("seed") }
        let tagged = try db.fetchAll(
            "SELECT value FROM mlflow_experiment_tags WHERE experiment_id = ? AND key = ?", [.int(id), .text(Self.baselineTag)],
            table: "mlflow_experiment_tags"
        ) { try $0.text("value") }.first
        let baseline = tagged ?? variants.first ?? ""
        let variantsJSON = JSONValue.array(
            variants.map { .object(["name": .string($0), "preset": .string("mlflow"), "spec": .object([:])]) })
        try db.execute(
            "UPDATE experiments SET variants_json = ?, seeds_json = ?, baseline = ? WHERE id = ?",
            [
                .text(variantsJSON.text()), .text(JSONValue.array(seeds.map { .number(Double($0)) }).text()), .text(baseline),
                .int(id),
            ])
    }

    /// An MLflow run's "spec" (what its page shows) is its params and tags under `mlflow`, rewritten
    /// on each change; the rest of the stored spec (an external run made through Polyak's own API
    /// has one) is kept.
    private func refreshSpec(_ db: Connection, run id: Int64) throws {
        var sections: [String: JSONValue] = [:]
        for (name, table) in [("params", "mlflow_params"), ("tags", "mlflow_run_tags")] {
            var members: [String: JSONValue] = [:]
            try db.forEach("SELECT key, value FROM \(table) WHERE run_id = ?", [.int(id)], table: table) { row in
                members[try row.text("key")] = .string(try row.text("value"))
            }
            sections[name] = .object(members)
        }
        let stored = try db.fetchAll("SELECT spec_json FROM runs WHERE id = ?", [.int(id)], table: "runs") {
            try $0.text("spec_json")
        }.first
        var spec: [String: JSONValue] = [:]
        if let stored, case .object(let members)? = try? JSONValue.parse(stored) { spec = members }
        spec["mlflow"] = .object(sections)
        try db.execute(
            "UPDATE runs SET spec_json = ? WHERE id = ? AND external = 1", [.text(JSONValue.object(spec).text()), .int(id)])
    }

    static func nowMS() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
