import CSQLite
import Experiments
import Foundation

/// The tracking database: every SQL statement of Polyak lives in this module.
///
/// One writer connection and one reader connection, each behind its own lock: WAL lets a reader
/// see the last committed state while the writer commits, so metric reads and pages do not wait
/// for ingestion's fsyncs. The server is the only writer of the file.
public final class TrackingStore: @unchecked Sendable {
    public let path: String
    private let writer: Connection
    private let reader: Connection
    private let writeLock = NSLock()
    private let readLock = NSLock()
    /// (run, key, weights) → metric_series.id, so a batch does not look its series up per point.
    private var seriesIDs: [SeriesKey: Int64] = [:]

    private struct SeriesKey: Hashable {
        var run: Int64
        var key: String
        var weights: String
    }

    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// - Throws: ``StoreError/schemaTooNew(database:binary:path:)`` for a file from a newer polyak.
    public init(path: String) throws {
        self.path = path
        writer = try Connection(path: path)
        try Migrator.migrate(writer)
        reader = try Connection(path: path)
    }

    /// Applies the embedded migrations to `path`; returns the files applied (empty when current).
    public static func migrate(path: String) throws -> [String] {
        let c = try Connection(path: path)
        return try Migrator.migrate(c)
    }

    /// The newest schema version this binary knows.
    public static var schemaVersion: Int { EmbeddedMigrations.all.map(\.version).max() ?? 0 }

    /// The schema version recorded in the file.
    public func schemaVersionInFile() throws -> Int {
        try write { try Migrator.currentVersion($0) }
    }

    private func write<T>(_ body: (Connection) throws -> T) throws -> T {
        writeLock.lock()
        defer {
            writeLock.unlock()
            // After the commit: whoever sees the new revision also sees the data.
            revisionLock.withLock { revisionCounter &+= 1 }
        }
        return try body(writer)
    }

    private let revisionLock = NSLock()
    private var revisionCounter: UInt64 = 0

    /// Changes after every write through this store (the server is the database's one writer), so
    /// a page rendered at one revision can be served again until the next.
    public var revision: UInt64 { revisionLock.withLock { revisionCounter } }

    private func read<T>(_ body: (Connection) throws -> T) throws -> T {
        readLock.lock()
        defer { readLock.unlock() }
        return try body(reader)
    }

    // MARK: Experiments

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
                try db.prepare(
                    """
                    INSERT INTO experiments (name, base_json, variants_json, seeds_json, baseline, created_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """
                ).bind([.text(name), .text(baseJSON), .text(variantsJSON), .text(seedsJSON), .text(baseline), .double(now)]).run()
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

    static let experimentColumns = "id, name, base_json, variants_json, seeds_json, baseline, created_at"

    private static func experiment(_ s: Statement) -> ExperimentRecord {
        ExperimentRecord(
            id: s.int(0), name: s.text(1), baseJSON: s.text(2), variantsJSON: s.text(3),
            seedsJSON: s.text(4), baseline: s.text(5), createdAt: s.double(6))
    }

    public func experiment(_ id: Int64) throws -> ExperimentRecord? {
        try read { db in
            let s = try db.prepare("SELECT \(Self.experimentColumns) FROM experiments WHERE id = ?").bind([.int(id)])
            defer { s.reset() }
            return try s.step() ? Self.experiment(s) : nil
        }
    }

    /// Experiments newest first, `limit` of them with an id below `before`.
    public func experiments(before: Int64?, limit: Int) throws -> [ExperimentRecord] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT \(Self.experimentColumns) FROM experiments WHERE id < ? ORDER BY id DESC LIMIT ?
                """
            ).bind([.int(before ?? Int64.max), .int(Int64(limit))])
            defer { s.reset() }
            var out: [ExperimentRecord] = []
            while try s.step() { out.append(Self.experiment(s)) }
            return out
        }
    }

    /// Deletes an experiment with its runs (their points, grids and artifact rows cascade).
    public func deleteExperiment(_ id: Int64) throws {
        try write { db in
            try db.transaction {
                try db.prepare("DELETE FROM runs WHERE experiment_id = ?").bind([.int(id)]).run()
                try db.prepare("DELETE FROM experiments WHERE id = ?").bind([.int(id)]).run()
            }
            seriesIDs.removeAll()
        }
    }

    // MARK: Runs

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
    private func checkQueue(_ db: Connection, adding: Int, cap: Int?) throws {
        guard let cap, adding > 0 else { return }
        let s = try db.prepare("SELECT COUNT(*) FROM runs WHERE status = ?").bind([.text(RunStatus.queued.rawValue)])
        defer { s.reset() }
        _ = try s.step()
        let queued = Int(s.int(0))
        if queued + adding > cap { throw CapReached(cap: .queuedRuns, limit: cap, current: queued, adding: adding) }
    }

    private func insertRun(_ db: Connection, _ run: NewRun, now: Double) throws -> RunRecord {
        let tags = Self.jsonList(run.tags)
        let strategies = run.strategies.isEmpty ? "" : "," + run.strategies.joined(separator: ",") + ","
        try db.prepare(
            """
            INSERT INTO runs (experiment_id, experiment, variant, seed, name, tags_json, strategies, external,
                              status, spec_json, code_version, created_at, started_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        ).bind([
            run.experimentID.map { .int($0) } ?? .null, run.experiment.sql, run.variant.sql, .int(run.seed),
            run.name.sql, .text(tags), .text(strategies), .int(run.external ? 1 : 0), .text(run.status.rawValue),
            .text(run.specJSON), .text(run.codeVersion), .double(now), run.status == .running ? .double(now) : .null,
        ]).run()
        let id = db.lastInsertRowID
        for tag in Set(run.tags) {
            try db.prepare("INSERT INTO run_tags (run_id, tag) VALUES (?, ?)").bind([.int(id), .text(tag)]).run()
        }
        return RunRecord(
            id: id, experimentID: run.experimentID, experiment: run.experiment, variant: run.variant, seed: run.seed,
            name: run.name, notes: "", tags: run.tags, strategies: run.strategies, external: run.external,
            status: run.status, specJSON: run.specJSON, codeVersion: run.codeVersion, createdAt: now,
            startedAt: run.status == .running ? now : nil, endedAt: nil, error: nil, progressJSON: nil,
            summaryJSON: nil, warningsJSON: "[]")
    }

    static let runColumns = """
        id, experiment_id, experiment, variant, seed, name, notes, tags_json, strategies, external, status,
        spec_json, code_version, created_at, started_at, ended_at, error, progress_json, summary_json, warnings_json
        """

    private static func run(_ s: Statement) -> RunRecord {
        RunRecord(
            id: s.int(0), experimentID: s.optionalInt(1), experiment: s.optionalText(2), variant: s.optionalText(3),
            seed: s.int(4), name: s.optionalText(5), notes: s.text(6), tags: parseList(s.text(7)),
            strategies: s.text(8).split(separator: ",").map(String.init), external: s.int(9) != 0,
            status: RunStatus(rawValue: s.text(10)) ?? .failed, specJSON: s.text(11), codeVersion: s.text(12),
            createdAt: s.double(13), startedAt: s.optionalDouble(14), endedAt: s.optionalDouble(15),
            error: s.optionalText(16), progressJSON: s.optionalText(17), summaryJSON: s.optionalText(18),
            warningsJSON: s.text(19))
    }

    public func run(_ id: Int64) throws -> RunRecord? {
        try read { db in
            let s = try db.prepare("SELECT \(Self.runColumns) FROM runs WHERE id = ?").bind([.int(id)])
            defer { s.reset() }
            return try s.step() ? Self.run(s) : nil
        }
    }

    /// Runs matching `filter`, newest first.
    public func runs(_ filter: RunFilter) throws -> [RunRecord] {
        var clauses = ["id < ?"]
        var args: [SQLValue] = [.int(filter.before ?? Int64.max)]
        if let e = filter.experiment { clauses.append("experiment = ?"); args.append(.text(e)) }
        if let e = filter.experimentID { clauses.append("experiment_id = ?"); args.append(.int(e)) }
        if let s = filter.status { clauses.append("status = ?"); args.append(.text(s.rawValue)) }
        if let s = filter.strategy {
            if s == "none" {
                clauses.append("strategies = ''")
            } else {
                // The kind is matched literally: `%` and `_` in it are not wildcards.
                clauses.append("strategies LIKE ? ESCAPE '\\'")
                args.append(.text("%," + Self.likeEscaped(s) + ",%"))
            }
        }
        if let t = filter.tag { clauses.append("id IN (SELECT run_id FROM run_tags WHERE tag = ?)"); args.append(.text(t)) }
        args.append(.int(Int64(filter.limit)))
        let order = filter.experimentID != nil ? "id ASC" : "id DESC"
        return try read { db in
            let s = try db.prepare(
                "SELECT \(Self.runColumns) FROM runs WHERE \(clauses.joined(separator: " AND ")) ORDER BY \(order) LIMIT ?"
            )
            .bind(args)
            defer { s.reset() }
            var out: [RunRecord] = []
            while try s.step() { out.append(Self.run(s)) }
            return out
        }
    }

    /// Ids of runs in `statuses`, oldest first (the queue order).
    public func runIDs(status statuses: [RunStatus]) throws -> [Int64] {
        let marks = statuses.map { _ in "?" }.joined(separator: ",")
        return try read { db in
            let s = try db.prepare("SELECT id FROM runs WHERE status IN (\(marks)) AND external = 0 ORDER BY id")
                .bind(statuses.map { .text($0.rawValue) })
            defer { s.reset() }
            var out: [Int64] = []
            while try s.step() { out.append(s.int(0)) }
            return out
        }
    }

    /// How many runs are in `status`.
    public func count(status: RunStatus) throws -> Int {
        try read { db in
            let s = try db.prepare("SELECT COUNT(*) FROM runs WHERE status = ?").bind([.text(status.rawValue)])
            defer { s.reset() }
            _ = try s.step()
            return Int(s.int(0))
        }
    }

    /// Renames, annotates or re-tags a run (nil leaves a field as it is).
    public func updateRun(_ id: Int64, name: String??, notes: String?, tags: [String]?) throws {
        try write { db in
            try db.transaction {
                if let name {
                    try db.prepare("UPDATE runs SET name = ? WHERE id = ?").bind([name.sql, .int(id)]).run()
                }
                if let notes {
                    try db.prepare("UPDATE runs SET notes = ? WHERE id = ?").bind([.text(notes), .int(id)]).run()
                }
                if let tags {
                    try db.prepare("UPDATE runs SET tags_json = ? WHERE id = ?").bind([.text(Self.jsonList(tags)), .int(id)])
                        .run()
                    try db.prepare("DELETE FROM run_tags WHERE run_id = ?").bind([.int(id)]).run()
                    for tag in Set(tags) {
                        try db.prepare("INSERT INTO run_tags (run_id, tag) VALUES (?, ?)").bind([.int(id), .text(tag)]).run()
                    }
                }
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
            UPDATE runs SET status = ?,
                started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ? ELSE started_at END,
                ended_at = CASE WHEN ? IN ('completed', 'failed', 'cancelled') THEN ? ELSE NULL END,
                error = CASE WHEN ? IN ('failed', 'cancelled', 'interrupted') THEN ? WHEN ? = 'completed' THEN NULL ELSE error END
            WHERE id = ?
            """
        var args: [SQLValue] = [
            .text(status.rawValue), .text(status.rawValue), .double(now), .text(status.rawValue), .double(now),
            .text(status.rawValue), error.sql, .text(status.rawValue), .int(id),
        ]
        if let from {
            sql += " AND status IN (\(from.map { _ in "?" }.joined(separator: ",")))"
            args += from.map { .text($0.rawValue) }
        }
        return try write { db in
            try db.prepare(sql).bind(args).run()
            return db.changes > 0
        }
    }

    /// Replaces the reason a failed run gives (an external script saying why, after the fact).
    public func setError(_ id: Int64, _ error: String) throws {
        try write { db in
            try db.prepare("UPDATE runs SET error = ? WHERE id = ? AND status = 'failed'").bind([.text(error), .int(id)]).run()
        }
    }

    /// Stores a run's spec as launched (after resolving references such as `teacher_run`).
    public func setSpec(_ id: Int64, specJSON: String) throws {
        try write { db in try db.prepare("UPDATE runs SET spec_json = ? WHERE id = ?").bind([.text(specJSON), .int(id)]).run() }
    }

    public func setProgress(_ id: Int64, json: String) throws {
        try write { db in try db.prepare("UPDATE runs SET progress_json = ? WHERE id = ?").bind([.text(json), .int(id)]).run() }
    }

    public func setSummary(_ id: Int64, json: String) throws {
        try write { db in try db.prepare("UPDATE runs SET summary_json = ? WHERE id = ?").bind([.text(json), .int(id)]).run() }
    }

    /// Appends a warning object (JSON text) to the run's list, once.
    public func addWarning(_ id: Int64, json: String) throws {
        try write { db in
            try db.prepare(
                """
                UPDATE runs SET warnings_json = json_insert(warnings_json, '$[#]', json(?))
                WHERE id = ? AND NOT EXISTS (SELECT 1 FROM json_each(runs.warnings_json) WHERE json_each.value = json(?))
                """
            ).bind([.text(json), .int(id), .text(json)]).run()
        }
    }

    /// Deletes a run and everything stored for it (not its files: the caller owns the folder).
    public func deleteRun(_ id: Int64) throws {
        try write { db in
            try db.prepare("DELETE FROM runs WHERE id = ?").bind([.int(id)]).run()
            seriesIDs = seriesIDs.filter { $0.key.run != id }
        }
    }

    // MARK: Metrics

    /// Stores a batch of points for one run in one transaction: the one write path for metrics,
    /// used by REST clients (``ConflictPolicy/refuse``) and the job runner (``ConflictPolicy/replace``).
    ///
    /// A point whose (key, weights, step) is stored already with the same value (NaN equals NaN)
    /// changes nothing, so a client may resend a batch it is unsure about. The `latest` summary
    /// of each series follows its highest step.
    ///
    /// - Throws: ``MetricConflict`` (nothing of the batch stored) for a different value under
    ///   `.refuse`; ``CapReached`` (nothing stored) when the run would pass `maxSeries` series;
    ///   ``StoreError`` when the run does not exist.
    @discardableResult
    public func logBatch(run: Int64, _ points: [MetricPoint], policy: ConflictPolicy, maxSeries: Int? = nil) throws -> BatchResult
    {
        if points.isEmpty { return BatchResult() }
        return try write { db in
            var result = BatchResult()
            var latest: [Int64: Int] = [:]  // series → index of its highest-step point in this batch
            let newSeries: [SeriesKey] = try db.transaction {
                var created: [SeriesKey] = []
                var seriesBefore: Int?  // the run's series before this batch, counted at its first new one
                var seriesAdded = 0
                let insert = try db.prepare(
                    """
                    INSERT INTO metric_points (series_id, step, epoch, value, time) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (series_id, step) DO NOTHING
                    """)
                for (i, p) in points.enumerated() {
                    let key = SeriesKey(run: run, key: p.key, weights: p.weights)
                    let series: Int64
                    if let id = seriesIDs[key] {
                        series = id
                    } else {
                        let (id, isNew) = try seriesID(db, key)
                        series = id
                        created.append(key)
                        if let maxSeries, isNew {
                            let before = try seriesBefore ?? seriesCount(db, run: run) - 1
                            seriesBefore = before
                            seriesAdded += 1
                            if before + seriesAdded > maxSeries {
                                throw CapReached(cap: .seriesPerRun, limit: maxSeries, current: before, adding: seriesAdded)
                            }
                        }
                    }
                    insert.reset()
                    insert.bind(series, at: 1)
                    insert.bind(p.step, at: 2)
                    if let e = p.epoch { insert.bind(e, at: 3) } else { insert.bindNull(at: 3) }
                    if p.value.isNaN { insert.bindNull(at: 4) } else { insert.bind(p.value, at: 4) }
                    insert.bind(p.time, at: 5)
                    try insert.run()
                    if db.changes == 0 {
                        let existing = try db.prepare("SELECT value FROM metric_points WHERE series_id = ? AND step = ?")
                            .bind([.int(series), .int(p.step)])
                        _ = try existing.step()
                        let stored = existing.isNull(0) ? Double.nan : existing.double(0)
                        existing.reset()
                        if stored.sameValue(as: p.value) {
                            result.unchanged += 1
                            continue
                        }
                        if policy == .refuse { throw MetricConflict(index: i, point: p, stored: stored) }
                        try db.prepare("UPDATE metric_points SET epoch = ?, value = ?, time = ? WHERE series_id = ? AND step = ?")
                            .bind([
                                p.epoch.map { .int($0) } ?? .null, p.value.isNaN ? .null : .double(p.value),
                                .double(p.time), .int(series), .int(p.step),
                            ]).run()
                        result.replaced += 1
                    } else {
                        result.inserted += 1
                    }
                    if let j = latest[series], points[j].step > p.step {} else { latest[series] = i }
                }
                let update = try db.prepare(
                    """
                    UPDATE metric_series SET last_step = ?, last_epoch = ?, last_value = ?, last_nan = ?, last_time = ?
                    WHERE id = ? AND (last_step IS NULL OR last_step <= ?)
                    """)
                for (series, i) in latest {
                    let p = points[i]
                    update.reset()
                    update.bind([
                        .int(p.step), p.epoch.map { .int($0) } ?? .null, p.value.isNaN ? .null : .double(p.value),
                        .int(p.value.isNaN ? 1 : 0), .double(p.time), .int(series), .int(p.step),
                    ])
                    try update.run()
                }
                return created
            }
            // Cache new series ids only once their transaction committed.
            for key in newSeries where seriesIDs[key] == nil {
                seriesIDs[key] = try seriesID(db, key).id
            }
            return result
        }
    }

    /// The series' id, and whether this call created it.
    private func seriesID(_ db: Connection, _ key: SeriesKey) throws -> (id: Int64, isNew: Bool) {
        let find = try db.prepare("SELECT id FROM metric_series WHERE run_id = ? AND key = ? AND weights = ?")
            .bind([.int(key.run), .text(key.key), .text(key.weights)])
        if try find.step() {
            let id = find.int(0)
            find.reset()
            return (id, false)
        }
        find.reset()
        try db.prepare("INSERT INTO metric_series (run_id, key, weights) VALUES (?, ?, ?)")
            .bind([.int(key.run), .text(key.key), .text(key.weights)]).run()
        return (db.lastInsertRowID, true)
    }

    private func seriesCount(_ db: Connection, run: Int64) throws -> Int {
        let s = try db.prepare("SELECT COUNT(*) FROM metric_series WHERE run_id = ?").bind([.int(run)])
        defer { s.reset() }
        _ = try s.step()
        return Int(s.int(0))
    }

    /// One series' identity, for readers that write points out series by series.
    public struct Series: Sendable {
        public var id: Int64
        public var key: String
        public var weights: String
    }

    /// The series of a run, ordered by key then weights, optionally of one key or weight set.
    public func series(run: Int64, key: String? = nil, weights: String? = nil) throws -> [Series] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT id, key, weights FROM metric_series
                WHERE run_id = ? AND (? IS NULL OR key = ?) AND (? IS NULL OR weights = ?)
                ORDER BY key, weights
                """
            ).bind([.int(run), key.sql, key.sql, weights.sql, weights.sql])
            defer { s.reset() }
            var out: [Series] = []
            while try s.step() { out.append(Series(id: s.int(0), key: s.text(1), weights: s.text(2))) }
            return out
        }
    }

    /// Calls `body(step, epoch, value, time)` for each point of a series in step order, within
    /// `steps`; no array of points is built (a series can hold 100 000 of them).
    public func forEachPoint(
        series: Int64, steps: ClosedRange<Int64> = Int64.min...Int64.max,
        _ body: (Int64, Int64?, Double, Double) throws -> Void
    ) throws {
        try read { db in
            let s = try db.prepare(
                """
                SELECT step, epoch, value, time FROM metric_points
                WHERE series_id = ? AND step BETWEEN ? AND ? ORDER BY step
                """
            ).bind([.int(series), .int(steps.lowerBound), .int(steps.upperBound)])
            defer { s.reset() }
            while try s.step() {
                try body(s.int(0), s.optionalInt(1), s.isNull(2) ? .nan : s.double(2), s.double(3))
            }
        }
    }

    /// How many points a run has (all series).
    public func pointCount(run: Int64) throws -> Int {
        try read { db in
            let s = try db.prepare(
                """
                SELECT COUNT(*) FROM metric_points WHERE series_id IN (SELECT id FROM metric_series WHERE run_id = ?)
                """
            ).bind([.int(run)])
            defer { s.reset() }
            _ = try s.step()
            return Int(s.int(0))
        }
    }

    /// All points of a run as values (for tests and small reads).
    public func points(run: Int64, key: String? = nil, weights: String? = nil) throws -> [MetricPoint] {
        var out: [MetricPoint] = []
        for s in try series(run: run, key: key, weights: weights) {
            try forEachPoint(series: s.id) { step, epoch, value, time in
                out.append(MetricPoint(key: s.key, weights: s.weights, step: step, epoch: epoch, value: value, time: time))
            }
        }
        return out
    }

    /// The `latest` summary of every series of a run: key → weights → (step, value).
    public func latest(run: Int64) throws -> [(key: String, weights: String, step: Int64, epoch: Int64?, value: Double)] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT key, weights, last_step, last_epoch, last_value, last_nan FROM metric_series
                WHERE run_id = ? AND last_step IS NOT NULL ORDER BY key, weights
                """
            ).bind([.int(run)])
            defer { s.reset() }
            var out: [(key: String, weights: String, step: Int64, epoch: Int64?, value: Double)] = []
            while try s.step() {
                out.append((s.text(0), s.text(1), s.int(2), s.optionalInt(3), s.int(5) != 0 ? .nan : s.double(4)))
            }
            return out
        }
    }

    /// Each completed run's final value of `key` for every weight set, over an experiment's runs.
    public func finalValues(experiment: Int64, key: String) throws -> [FinalValue] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT r.id, r.variant, r.seed, m.weights, m.last_value, m.last_nan
                FROM runs r JOIN metric_series m ON m.run_id = r.id
                WHERE r.experiment_id = ? AND r.status = 'completed' AND m.key = ? AND m.last_step IS NOT NULL
                ORDER BY r.id, m.weights
                """
            ).bind([.int(experiment), .text(key)])
            defer { s.reset() }
            var out: [FinalValue] = []
            while try s.step() {
                out.append(
                    FinalValue(
                        runID: s.int(0), variant: s.text(1), seed: s.int(2), weights: s.text(3),
                        value: s.int(5) != 0 ? .nan : s.double(4)))
            }
            return out
        }
    }

    // MARK: Grids and artifacts

    /// Stores grid cells (a re-evaluated cell replaces the old one).
    public func saveGrid(run: Int64, _ cells: [GridCell]) throws {
        if cells.isEmpty { return }
        try write { db in
            try db.transaction {
                for c in cells {
                    try db.prepare(
                        """
                        INSERT INTO grid_cells (run_id, weights, stage, train_size, resize, crop, top1, top5, loss)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (run_id, weights, stage, train_size, resize, crop)
                        DO UPDATE SET top1 = excluded.top1, top5 = excluded.top5, loss = excluded.loss
                        """
                    ).bind([
                        .int(run), .text(c.weights), .text(c.stage), .int(c.trainSize), .int(c.resize),
                        .int(c.crop), Self.real(c.top1), Self.real(c.top5), Self.real(c.loss),
                    ]).run()
                }
            }
        }
    }

    private static func real(_ x: Double?) -> SQLValue { x.map { .double($0) } ?? .null }

    private static func cell(_ s: Statement, from c: Int32) -> GridCell {
        GridCell(
            weights: s.text(c), stage: s.text(c + 1), trainSize: s.int(c + 2), resize: s.int(c + 3), crop: s.int(c + 4),
            top1: s.optionalDouble(c + 5), top5: s.optionalDouble(c + 6), loss: s.optionalDouble(c + 7))
    }

    public func grid(run: Int64) throws -> [GridCell] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT weights, stage, train_size, resize, crop, top1, top5, loss FROM grid_cells
                WHERE run_id = ? ORDER BY weights, stage, train_size, resize, crop
                """
            ).bind([.int(run)])
            defer { s.reset() }
            var out: [GridCell] = []
            while try s.step() { out.append(Self.cell(s, from: 0)) }
            return out
        }
    }

    /// How many runs of each experiment are in each status: experiment id → status → count.
    public func statusCounts() throws -> [Int64: [RunStatus: Int]] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT experiment_id, status, COUNT(*) FROM runs WHERE experiment_id IS NOT NULL GROUP BY experiment_id, status
                """)
            defer { s.reset() }
            var out: [Int64: [RunStatus: Int]] = [:]
            while try s.step() {
                if let status = RunStatus(rawValue: s.text(1)) { out[s.int(0), default: [:]][status] = Int(s.int(2)) }
            }
            return out
        }
    }

    /// Calls `body(runID, variant, weights, step, epoch, value)` for every point of `key` over an
    /// experiment's runs (any status, so curves fill in while runs train), run by run in step order.
    /// One query: the experiment page draws 1 000 runs' curves from it.
    public func forEachExperimentPoint(
        experiment: Int64, key: String, _ body: (Int64, String, String, Int64, Int64?, Double) throws -> Void
    ) throws {
        try read { db in
            let s = try db.prepare(
                """
                SELECT r.id, r.variant, m.weights, p.step, p.epoch, p.value
                FROM runs r JOIN metric_series m ON m.run_id = r.id JOIN metric_points p ON p.series_id = m.id
                WHERE r.experiment_id = ? AND m.key = ?
                ORDER BY r.id, m.weights, p.step
                """
            ).bind([.int(experiment), .text(key)])
            defer { s.reset() }
            while try s.step() {
                try body(
                    s.int(0), s.isNull(1) ? "" : s.text(1), s.text(2), s.int(3), s.optionalInt(4),
                    s.isNull(5) ? .nan : s.double(5))
            }
        }
    }

    /// The grid cells of an experiment's completed runs, with each run's variant and seed.
    public func experimentGrid(_ experiment: Int64) throws -> [ExperimentGridCell] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT r.variant, r.seed, g.weights, g.stage, g.train_size, g.resize, g.crop, g.top1, g.top5, g.loss
                FROM grid_cells g JOIN runs r ON r.id = g.run_id
                WHERE r.experiment_id = ? AND r.status = 'completed'
                ORDER BY r.id, g.weights, g.stage, g.train_size, g.resize, g.crop
                """
            ).bind([.int(experiment)])
            defer { s.reset() }
            var out: [ExperimentGridCell] = []
            while try s.step() { out.append(ExperimentGridCell(variant: s.text(0), seed: s.int(1), cell: Self.cell(s, from: 2))) }
            return out
        }
    }

    public func saveArtifact(run: Int64, _ a: Artifact) throws {
        try write { db in
            try db.prepare(
                """
                INSERT INTO artifacts (run_id, name, kind, path, bytes, sha256) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id, name) DO UPDATE SET kind = excluded.kind, path = excluded.path,
                    bytes = excluded.bytes, sha256 = excluded.sha256
                """
            ).bind([
                .int(run), .text(a.name), .text(a.kind.rawValue), .text(a.path),
                a.bytes.map { .int($0) } ?? .null, a.sha256.sql,
            ]).run()
        }
    }

    /// Forgets checkpoint rows whose files the trainer has rotated away.
    public func removeArtifact(run: Int64, name: String) throws {
        try write { db in
            try db.prepare("DELETE FROM artifacts WHERE run_id = ? AND name = ?").bind([.int(run), .text(name)]).run()
        }
    }

    public func artifacts(run: Int64) throws -> [Artifact] {
        try read { db in
            let s = try db.prepare(
                "SELECT name, kind, path, bytes, sha256 FROM artifacts WHERE run_id = ? ORDER BY kind DESC, name"
            )
            .bind([.int(run)])
            defer { s.reset() }
            var out: [Artifact] = []
            while try s.step() {
                out.append(
                    Artifact(
                        name: s.text(0), kind: Artifact.Kind(rawValue: s.text(1)) ?? .export, path: s.text(2),
                        bytes: s.optionalInt(3), sha256: s.optionalText(4)))
            }
            return out
        }
    }

    // MARK: Helpers

    /// `text` as a literal inside a `LIKE … ESCAPE '\'` pattern.
    static func likeEscaped(_ text: String) -> String {
        var out = ""
        for ch in text {
            if ch == "\\" || ch == "%" || ch == "_" { out.append("\\") }
            out.append(ch)
        }
        return out
    }

    static func jsonList(_ items: [String]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: items)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func parseList(_ text: String) -> [String] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String] ?? []
    }
}
