import Experiments
import Foundation

/// The `metric_series` and `metric_points` tables.
extension TrackingStore {

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
        try read {
            try $0.fetchAll(
                Series.self,
                """
                SELECT id, key, weights FROM metric_series
                WHERE run_id = ?1 AND (?2 IS NULL OR key = ?2) AND (?3 IS NULL OR weights = ?3)
                ORDER BY key, weights
                """, [.int(run), key.sql, weights.sql])
        }
    }

    /// Calls `body(step, epoch, value, time)` for each point of a series in step order, within
    /// `steps`; no array of points is built (a series can hold 100 000 of them).
    public func forEachPoint(
        series: Int64, steps: ClosedRange<Int64> = Int64.min...Int64.max,
        _ body: (Int64, Int64?, Double, Double) throws -> Void
    ) throws {
        try read { db in
            var columns: (step: Int32, epoch: Int32, value: Int32, time: Int32)?
            try db.forEach(
                """
                SELECT step, epoch, value, time FROM metric_points
                WHERE series_id = ? AND step BETWEEN ? AND ? ORDER BY step
                """, [.int(series), .int(steps.lowerBound), .int(steps.upperBound)], table: "metric_points"
            ) { row in
                // The measured series path: names resolved once, then positional reads per point.
                let c = try columns ?? (row.index("step"), row.index("epoch"), row.index("value"), row.index("time"))
                columns = c
                let s = row.statement
                try body(s.int(c.step), s.optionalInt(c.epoch), s.isNull(c.value) ? .nan : s.double(c.value), s.double(c.time))
            }
        }
    }

    /// How many points a run has (all series).
    public func pointCount(run: Int64) throws -> Int {
        try read {
            Int(
                try $0.scalar(
                    "SELECT COUNT(*) FROM metric_points WHERE series_id IN (SELECT id FROM metric_series WHERE run_id = ?)",
                    [.int(run)]))
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
        try read {
            try $0.fetchAll(
                """
                SELECT key, weights, last_step, last_epoch, last_value, last_nan FROM metric_series
                WHERE run_id = ? AND last_step IS NOT NULL ORDER BY key, weights
                """, [.int(run)], table: "metric_series"
            ) { row in
                (
                    try row.text("key"), try row.text("weights"), try row.int("last_step"), try row.optionalInt("last_epoch"),
                    try Self.lastValue(row)
                )
            }
        }
    }

    /// Each completed run's final value of `key` for every weight set, over an experiment's runs.
    /// A shared run gives one value per variant that reads each of its sets, under the variant's name.
    public func finalValues(experiment: Int64, key: String) throws -> [FinalValue] {
        let shared = Self.sharedSetsJoin(weights: "m.weights")
        return try read {
            try $0.fetchAll(
                FinalValue.self,
                """
                SELECT r.id AS run_id, COALESCE(s.variant, r.variant) AS variant, r.seed,
                       COALESCE(s.weights, m.weights) AS weights, m.weights AS run_weights, m.last_value, m.last_nan
                FROM runs r JOIN metric_series m ON m.run_id = r.id \(shared.join)
                WHERE r.experiment_id = ? AND r.status = 'completed' AND m.key = ? AND m.last_step IS NOT NULL
                  AND \(shared.condition)
                ORDER BY r.id, m.weights, s.position
                """, [.int(experiment), .text(key)])
        }
    }

    /// Every point of `key` over an experiment's runs (any status, so curves fill in while runs
    /// train), series by series: `series(runID, variant, weights)` opens one, then `point(step,
    /// epoch, value)` gives its points in step order; runs in id order, a run's sets by name. One
    /// query: the experiment page draws 1 000 runs' curves from it. A shared run's set comes once
    /// per variant that reads it, under the variant's name.
    public func forEachExperimentSeries(
        experiment: Int64, key: String, series: (Int64, String, String) throws -> Void,
        point: (Int64, Int64?, Double) throws -> Void
    ) throws {
        let shared = Self.sharedSetsJoin(weights: "m.weights")
        try read { db in
            var columns:
                (
                    run: Int32, series: Int32, position: Int32, variant: Int32, weights: Int32, step: Int32, epoch: Int32,
                    value: Int32
                )?
            // The series in hand: (run, series id, share position); its names are read once, not per point.
            var current: (run: Int64, series: Int64, position: Int64?)?
            try db.forEach(
                """
                SELECT r.id AS run_id, m.id AS series_id, s.position, COALESCE(s.variant, r.variant) AS variant,
                       COALESCE(s.weights, m.weights) AS weights, p.step, p.epoch, p.value
                FROM runs r JOIN metric_series m ON m.run_id = r.id \(shared.join)
                JOIN metric_points p ON p.series_id = m.id
                WHERE r.experiment_id = ? AND m.key = ? AND \(shared.condition)
                ORDER BY r.id, m.weights, s.position, p.step
                """, [.int(experiment), .text(key)], table: "runs ⋈ metric_series ⋈ metric_points"
            ) { row in
                // A measured page path: names resolved once, then positional reads per point.
                let c =
                    try columns
                    ?? (
                        row.index("run_id"), row.index("series_id"), row.index("position"), row.index("variant"),
                        row.index("weights"), row.index("step"), row.index("epoch"), row.index("value")
                    )
                columns = c
                let s = row.statement
                let run = s.int(c.run), id = s.int(c.series), position = s.optionalInt(c.position)
                if current?.run != run || current?.series != id || current?.position != position {
                    current = (run, id, position)
                    try series(run, s.optionalText(c.variant) ?? "", s.text(c.weights))
                }
                try point(s.int(c.step), s.optionalInt(c.epoch), s.isNull(c.value) ? .nan : s.double(c.value))
            }
        }
    }

    /// A series' `last_value`, NaN when `last_nan` says so (SQLite stores NaN as NULL).
    static func lastValue(_ row: Row) throws -> Double {
        try row.bool("last_nan") ? .nan : row.double("last_value")
    }
}

extension TrackingStore.Series: RowDecodable {
    static let table = "metric_series"

    init(row: Row) throws {
        self.init(id: try row.int("id"), key: try row.text("key"), weights: try row.text("weights"))
    }
}

extension FinalValue: RowDecodable {
    static let table = "runs ⋈ metric_series"

    /// A run outside any variant reads as variant "" (as the comparison groups it).
    init(row: Row) throws {
        self.init(
            runID: try row.int("run_id"), variant: try row.optionalText("variant") ?? "", seed: try row.int("seed"),
            weights: try row.text("weights"), value: try TrackingStore.lastValue(row), runWeights: try row.text("run_weights"))
    }
}
