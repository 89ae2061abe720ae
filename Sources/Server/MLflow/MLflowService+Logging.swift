import Experiments
import Foundation
import Store

/// Logging to a run: metrics (every point through ``TrackingStore/logBatch``, refusing a conflicting
/// value, keeping NaN and ±Inf), write-once params, tags (which place a run in its experiment's
/// comparison), and reading a metric's history back.
extension MLflowService {
    func logMetric(_ a: MLflowArgs) async throws -> MLflowEmpty {
        let r = try await writableRun(a)
        let point = try Self.point(a, path: "")
        try await save(points: [point], run: r.run.id)
        return MLflowEmpty()
    }

    func logParameter(_ a: MLflowArgs) async throws -> MLflowEmpty {
        let r = try await writableRun(a)
        let key = try a.required("key")
        let value = try a.required("value")
        try Self.checkParams([(key, value)])
        try await Blocking.run { try store.mlflowLogParamsAndTags(run: r.run.id, params: [(key, value)], tags: []) }
        return MLflowEmpty()
    }

    func setTag(_ a: MLflowArgs) async throws -> MLflowEmpty {
        let r = try await writableRun(a)
        let tag = (key: try a.required("key"), value: try a.required("value"))
        try Self.checkTags([tag])
        try await Blocking.run { try store.mlflowLogParamsAndTags(run: r.run.id, params: [], tags: [tag]) }
        return MLflowEmpty()
    }

    func deleteTag(_ a: MLflowArgs) async throws -> MLflowEmpty {
        let r = try await writableRun(a)
        let key = try a.required("key")
        guard try await Blocking.run({ try store.mlflowDeleteTag(run: r.run.id, key: key) }) else {
            throw MLflowError(.resourceDoesNotExist, "No tag with name: \(key) in run with id \(r.run.id)")
        }
        return MLflowEmpty()
    }

    /// Metrics, params and tags of one run, as ``MLflowBatchReader`` read and checked them (MLflow's
    /// caps and wording); refused whole on a changed param or a conflicting metric value: params are
    /// checked before any point is stored. One trip to the blocking pool for the whole request.
    func logBatch(_ batch: MLflowBatch) async throws -> MLflowEmpty {
        try await Blocking.run {
            let id = try writableRunID(batch.runID)
            if !batch.params.isEmpty, let changed = try store.mlflowChangedParam(run: id, params: batch.params) {
                throw changed
            }
            try storePoints(batch.points, run: id)
            if !batch.params.isEmpty || !batch.tags.isEmpty {
                try store.mlflowLogParamsAndTags(run: id, params: batch.params, tags: batch.tags)
            }
        }
        return MLflowEmpty()
    }

    /// The points of one metric (a key with its weight-set suffix), in step order, a page at a time.
    func metricHistory(_ a: MLflowArgs) async throws -> MLflowPage<MLflowMetricView> {
        let r = try await run(a)
        let name = try a.string("metric_key") ?? ""
        if name.isEmpty { throw MLflowError.missing("metric_key") }
        let limit = try a.int64("max_results") ?? 25_000
        guard limit >= 1, limit <= 25_000 else {
            throw MLflowError.invalid("Invalid value \(limit) for parameter 'max_results' supplied. It must be in [1, 25000]")
        }
        let offset = try MLflowSearch.offset(try a.string("page_token"))
        let (key, weights) = MLflowMetricKey.split(name)
        let page: (points: [MetricPoint], more: Bool) = try await Blocking.run {
            var points: [MetricPoint] = []
            var seen = 0
            var more = false
            for s in try store.series(run: r.run.id, key: key, weights: weights) {
                try store.forEachPoint(series: s.id) { step, epoch, value, time in
                    defer { seen += 1 }
                    if seen < offset { return }
                    if points.count == Int(limit) {
                        more = true
                        return
                    }
                    points.append(MetricPoint(key: key, weights: weights, step: step, epoch: epoch, value: value, time: time))
                }
            }
            return (points, more)
        }
        return MLflowPage(
            name: "metrics", items: page.points.map(MLflowMetricView.init),
            nextPageToken: page.more ? MLflowSearch.token(offset + page.points.count) : nil)
    }

    // MARK: Helpers

    /// Stores points through the one write path; a conflicting value refuses the whole call.
    private func save(points: [MetricPoint], run id: Int64) async throws {
        try await Blocking.run { try storePoints(points, run: id) }
    }

    private func storePoints(_ points: [MetricPoint], run id: Int64) throws {
        do {
            try store.logBatch(run: id, points, policy: .refuse, maxSeries: Limits.seriesPerRun)
        } catch let e as CapReached {
            throw MLflowError(.resourceConflict, e.description)
        }
    }

    /// A metric from `{key, value, timestamp, step}`; `path` prefixes field names in refusals.
    static func point(_ m: MLflowArgs, path: String) throws -> MetricPoint {
        guard let name = try m.string("key") else { throw MLflowError.missing(path + "key") }
        try checkKey(name, "Metric")
        guard let value = try m.double("value", path: path + "value") else { throw MLflowError.missing(path + "value") }
        guard let timestamp = try m.int64("timestamp") else { throw MLflowError.missing(path + "timestamp") }
        if timestamp < 0 {
            throw MLflowError.invalid(
                MLflowArgs.invalidValue(path + "timestamp", .number(Double(timestamp)), "Timestamp must be a nonnegative long"))
        }
        let step = try m.int64("step") ?? 0
        let (key, weights) = MLflowMetricKey.split(name)
        return MetricPoint(key: key, weights: weights, step: step, epoch: nil, value: value, time: Double(timestamp) / 1000)
    }

    static func checkParams(_ params: [(key: String, value: String)]) throws {
        var seen: [String: String] = [:]
        for p in params {
            try checkKey(p.key, "Param")
            if p.value.count > maxParamValueLength {
                throw MLflowError.invalid(
                    "'params[\(p.key)].value' exceeds the maximum length of \(maxParamValueLength) characters")
            }
            if let earlier = seen[p.key], earlier != p.value {
                throw MLflowError.invalid(
                    "Duplicate parameter keys have been submitted: [\(p.key)]. Please ensure the request contains only one param value per param key."
                )
            }
            seen[p.key] = p.value
        }
    }

    /// MLflow's wording for a batch past a cap.
    static func checkBatchLimit(_ entity: String, _ limit: Int, _ length: Int) throws {
        guard length > limit else { return }
        throw MLflowError.invalid(
            "A batch logging request can contain at most \(limit) \(entity). Got \(length) \(entity). "
                + "Please split up \(entity) across multiple requests and try again.")
    }
}
