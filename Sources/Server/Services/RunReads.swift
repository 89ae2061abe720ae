import Experiments
import Foundation
import Store

/// What the API reads about runs: lists, one run with its newest values, its metric series (written
/// byte-level straight from the store: the measured hot path), grid cells and artifacts.
extension RunService {
    func list(_ filter: RunFilter) async throws -> [RunRecord] {
        try await Blocking.run { try store.runs(filter) }
    }

    /// A run with the newest value of each of its series.
    func detail(_ id: Int64) async throws -> (RunRecord, [LatestValue]) {
        try await Blocking.run {
            let run = try existing(id)
            return (
                run,
                try store.latest(run: id).map {
                    LatestValue(key: $0.key, weights: $0.weights, step: $0.step, epoch: $0.epoch, value: $0.value)
                }
            )
        }
    }

    /// The newest point of one series, as `GET /api/runs/{id}` shows it.
    struct LatestValue: Sendable {
        var key: String
        var weights: String
        var step: Int64
        var epoch: Int64?
        var value: Double
    }

    /// `{"points": [...]}` for the run's series that match `key` and `weights`, within `steps`.
    func metricsJSON(_ id: Int64, key: String?, weights: String?, steps: ClosedRange<Int64>) async throws -> [UInt8] {
        try await Blocking.run {
            _ = try existing(id)
            var writer = MetricSeriesWriter()
            for s in try store.series(run: id, key: key, weights: weights) {
                let prefix = MetricSeriesWriter.prefix(key: s.key, weights: s.weights)
                try store.forEachPoint(series: s.id, steps: steps) { step, epoch, value, time in
                    writer.point(prefix: prefix, step: step, epoch: epoch, value: value, time: time)
                }
            }
            return writer.finish()
        }
    }

    /// The same points as CSV (`key,weights,step,epoch,value,time`).
    func metricsCSV(_ id: Int64, key: String?, weights: String?, steps: ClosedRange<Int64>) async throws -> CSVWriter {
        try await Blocking.run {
            _ = try existing(id)
            var w = CSVWriter(header: ["key", "weights", "step", "epoch", "value", "time"])
            for s in try store.series(run: id, key: key, weights: weights) {
                try store.forEachPoint(series: s.id, steps: steps) { step, epoch, value, time in
                    w.row([.text(s.key), .text(s.weights), .int(step), .optional(epoch), .number(value), .number(time)])
                }
            }
            return w
        }
    }

    /// Points posted for an external run (launched runs take theirs from their trainer alone).
    func logMetrics(_ id: Int64, _ body: [UInt8]) async throws -> BatchResult {
        let run = try await self.run(id)
        try Self.checkReported(run, what: "metrics")
        let points = try MetricBatchReader.parse(body, now: now())
        // A Slurm job's trainer is its run's one writer, as a local child is: a resumed trainer's replays replace.
        let policy: ConflictPolicy = run.external ? .refuse : .replace
        do {
            return try await Blocking.run { [store] in
                try store.logBatch(run: id, points, policy: policy, maxSeries: Limits.seriesPerRun)
            }
        } catch let e as CapReached {
            throw APIError(cap: e)
        }
    }

    func grid(_ id: Int64) async throws -> [GridCell] {
        try await Blocking.run {
            _ = try existing(id)
            return try store.grid(run: id)
        }
    }

    func artifacts(_ id: Int64) async throws -> [Artifact] {
        try await Blocking.run {
            _ = try existing(id)
            return try store.artifacts(run: id)
        }
    }

    /// An exported file's bytes and its file name, from inside the run folder only.
    func artifactFile(_ id: Int64, name: String) async throws -> (name: String, bytes: [UInt8]) {
        try await Blocking.run {
            _ = try existing(id)
            guard let a = try store.artifacts(run: id).first(where: { $0.name == name }) else {
                throw APIError.notFound("run \(id) has no artifact \(name)")
            }
            // Paths come from the trainer's own lines and are relative to the run folder; refuse escapes,
            // by name and (symlinks followed) by where the file really is.
            let folder = context.runner.runDirectory(id)
            guard !a.path.hasPrefix("/"), !a.path.split(separator: "/").contains(".."), !a.path.contains("\0"),
                let base = SpecPaths.resolved(folder), let real = SpecPaths.resolved(folder + "/" + a.path),
                real.hasPrefix(base + "/")
            else {
                throw APIError.notFound("artifact \(name) has no file in the run folder")
            }
            guard let data = FileManager.default.contents(atPath: real) else {
                throw APIError.notFound("artifact \(name): its file \(a.path) is gone")
            }
            return ((a.path as NSString).lastPathComponent, Array(data))
        }
    }
}
