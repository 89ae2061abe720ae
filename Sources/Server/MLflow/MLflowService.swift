import Experiments
import Foundation
import Store

/// MLflow's experiments and runs on Polyak's store: an experiment is a Polyak experiment, a run an
/// external Polyak run whose metrics go through the one write path (``TrackingStore/logBatch``).
/// Each function takes the request's fields and returns the body MLflow answers with.
struct MLflowService: Sendable {
    let context: ServiceContext
    var store: TrackingStore { context.store }

    /// MLflow's caps (`utils/validation.py`); Polyak refuses past them rather than truncating.
    static let maxMetricsPerBatch = 1000
    static let maxParamsTagsPerBatch = 100
    static let maxEntitiesPerBatch = 1000
    static let maxBatchBytes = 1_000_000
    static let maxKeyLength = 250
    static let maxParamValueLength = 6000
    static let maxTagValueLength = 8000
    static let maxExperimentNameLength = 500
    static let maxSearchResults = 50_000
    /// The experiment MLflow's clients use when none is set.
    static let defaultExperimentName = "Default"

    static func nowMS() -> Int64 { MLflowMetricKey.milliseconds(now()) }

    // MARK: Experiments

    /// An experiment id as the request gave it; `"0"` is MLflow's default experiment ("Default",
    /// created on first use: Polyak's ids start at 1).
    func experimentID(_ text: String) throws -> Int64 {
        if text == "0" {
            if let e = try store.mlflowExperiment(named: Self.defaultExperimentName) { return e.id }
            do {
                return try store.mlflowCreateExperiment(name: Self.defaultExperimentName, tags: [], nowMS: Self.nowMS())
            } catch MLflowStoreError.experimentNameTaken {
                return try store.mlflowExperiment(named: Self.defaultExperimentName)!.id
            }
        }
        guard let id = Int64(text), id > 0, try store.mlflowExperiment(id) != nil else { throw MLflowError.noExperiment(text) }
        return id
    }

    func experiment(_ text: String) throws -> MLflowExperimentRecord {
        let id = try experimentID(text)
        guard let e = try store.mlflowExperiment(id) else { throw MLflowError.noExperiment(text) }
        return e
    }

    func createExperiment(_ a: MLflowArgs) async throws -> MLflowExperimentIDView {
        let name = try a.string("name") ?? ""
        if name.isEmpty { throw MLflowError.invalid("Invalid experiment name: '\(name)'") }
        if name.count > Self.maxExperimentNameLength {
            throw MLflowError.invalid("'name' exceeds the maximum length of \(Self.maxExperimentNameLength) characters")
        }
        let tags = try a.keyValues("tags")
        try Self.checkTags(tags)
        let id = try await Blocking.run { try store.mlflowCreateExperiment(name: name, tags: tags, nowMS: Self.nowMS()) }
        return MLflowExperimentIDView(experimentID: String(id))
    }

    func getExperiment(_ a: MLflowArgs) async throws -> MLflowExperimentReply {
        let text = try a.required("experiment_id")
        return MLflowExperimentReply(experiment: MLflowExperimentView(try await Blocking.run { try experiment(text) }))
    }

    func experimentByName(_ a: MLflowArgs) async throws -> MLflowExperimentReply {
        let name = try a.required("experiment_name")
        guard let e = try await Blocking.run({ try store.mlflowExperiment(named: name) }) else {
            throw MLflowError(.resourceDoesNotExist, "Could not find experiment with name '\(name)'")
        }
        return MLflowExperimentReply(experiment: MLflowExperimentView(e))
    }

    func setExperimentDeleted(_ a: MLflowArgs, _ deleted: Bool) async throws -> MLflowEmpty {
        let text = try a.required("experiment_id")
        try await Blocking.run {
            let id = try experimentID(text)
            try store.mlflowSetExperimentDeleted(id, deleted, nowMS: Self.nowMS())
        }
        return MLflowEmpty()
    }

    func updateExperiment(_ a: MLflowArgs) async throws -> MLflowEmpty {
        let text = try a.required("experiment_id")
        let name = try a.string("new_name") ?? ""
        if name.isEmpty { throw MLflowError.invalid("Invalid experiment name: '\(name)'") }
        try await Blocking.run {
            let e = try experiment(text)
            if e.deleted { throw MLflowError.invalid("Cannot rename a non-active experiment.") }
            try store.mlflowRenameExperiment(e.id, to: name, nowMS: Self.nowMS())
        }
        return MLflowEmpty()
    }

    func searchExperiments(_ a: MLflowArgs) async throws -> MLflowPage<MLflowExperimentView> {
        let view = try Self.viewType(a, "view_type")
        let limit = try Self.maxResults(a, default: 1000)
        let offset = try MLflowSearch.offset(try a.string("page_token"))
        let clauses = try MLflowSearch.parse(try a.string("filter") ?? "", experiments: true)
        let all = try await Blocking.run { try store.mlflowExperiments() }
        let kept = all.filter { view.keeps(deleted: $0.deleted) && MLflowSearch.matches($0, clauses) }
        let page = Array(kept.dropFirst(offset).prefix(limit))
        return MLflowPage(
            name: "experiments", items: page.map(MLflowExperimentView.init),
            nextPageToken: offset + page.count < kept.count ? MLflowSearch.token(offset + page.count) : nil)
    }

    // MARK: Runs

    /// The run named by `run_id` (or the older `run_uuid`), or MLflow's 404.
    func run(_ a: MLflowArgs) async throws -> MLflowRunRecord {
        let text = try a.string("run_id") ?? a.string("run_uuid") ?? ""
        if text.isEmpty { throw MLflowError.missing("run_id") }
        return try await Blocking.run { try existingRun(text) }
    }

    func existingRun(_ text: String) throws -> MLflowRunRecord {
        guard let id = Int64(text), id > 0, let r = try store.mlflowRun(id) else { throw MLflowError.noRun(text) }
        return r.withPlacementTags()
    }

    /// A run that takes writes: active and external (Polyak's own trainer is the only writer of its runs).
    func writableRun(_ a: MLflowArgs) async throws -> MLflowRunRecord {
        let r = try await run(a)
        try Self.checkWritable(r.run.id, deleted: r.deleted, external: r.run.external)
        return r
    }

    /// The id of the run `text` names when it takes writes, read without the run's lists (log-batch's path).
    func writableRunID(_ text: String) throws -> Int64 {
        guard let id = Int64(text), id > 0, let state = try store.mlflowRunWriteState(id) else { throw MLflowError.noRun(text) }
        try Self.checkWritable(id, deleted: state.deleted, external: state.external)
        return id
    }

    static func checkWritable(_ id: Int64, deleted: Bool, external: Bool) throws {
        if deleted { throw MLflowError.invalid("The run \(id) must be in the 'active' state. Current state is deleted.") }
        if !external {
            throw MLflowError.invalid("run \(id) is trained by Polyak itself; only runs created through the API take writes")
        }
    }

    func createRun(_ a: MLflowArgs) async throws -> MLflowRunReply {
        let experimentText = try a.string("experiment_id") ?? "0"
        let given = try a.keyValues("tags")
        let name = try a.string("run_name") ?? given.last(where: { $0.key == "mlflow.runName" })?.value
        let named = name != nil && !given.contains(where: { $0.key == "mlflow.runName" })
        let tags = named ? given + [("mlflow.runName", name!)] : given
        try Self.checkTags(tags)
        try Limits.checkName(name, field: "run_name")
        let user = try a.string("user_id") ?? ""
        let start = try a.int64("start_time") ?? Self.nowMS()
        let record = try await Blocking.run {
            let e = try experiment(experimentText)
            if e.deleted {
                throw MLflowError.invalid("The experiment \(e.id) must be in the 'active' state. Current state is deleted.")
            }
            let id = try store.mlflowCreateRun(
                experiment: e.id, name: name, userID: user, startTimeMS: start, tags: tags, codeVersion: context.options.version)
            if name == nil { try store.mlflowUpdateRun(id, status: nil, endTimeMS: nil, name: "run-\(id)") }
            return try existingRun(String(id))
        }
        return MLflowRunReply(run: MLflowRunView(record))
    }

    func getRun(_ a: MLflowArgs) async throws -> MLflowRunReply { MLflowRunReply(run: MLflowRunView(try await run(a))) }

    func updateRun(_ a: MLflowArgs) async throws -> MLflowRunInfoReply {
        let r = try await run(a)
        let text = try a.string("status")
        let status = text.flatMap(MLflowStatus.status)
        if let text, status == nil {
            throw MLflowError.invalid(
                MLflowArgs.invalidValue("status", .string(text), "must be RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"))
        }
        if status != nil && !r.run.external {
            throw MLflowError.invalid("run \(r.run.id) is trained by Polyak itself; its status follows its trainer")
        }
        let end = try a.int64("end_time")
        let name = try a.string("run_name")
        try Limits.checkName(name, field: "run_name")
        let updated = try await Blocking.run {
            try store.mlflowUpdateRun(r.run.id, status: status, endTimeMS: end, name: name)
            return try existingRun(String(r.run.id))
        }
        return MLflowRunInfoReply(runInfo: MLflowRunInfoView(updated))
    }

    func setRunDeleted(_ a: MLflowArgs, _ deleted: Bool) async throws -> MLflowEmpty {
        let r = try await run(a)
        try await Blocking.run { try store.mlflowSetRunDeleted(r.run.id, deleted) }
        return MLflowEmpty()
    }

    // MARK: Checks

    static func checkKey(_ key: String, _ what: String) throws {
        if key.isEmpty { throw MLflowError.invalid("\(what) name must not be empty") }
        if key.count > maxKeyLength {
            throw MLflowError.invalid("'\(what) name' exceeds the maximum length of \(maxKeyLength) characters")
        }
    }

    static func checkTags(_ tags: [(key: String, value: String)]) throws {
        for t in tags {
            try checkKey(t.key, "Tag")
            if t.value.count > maxTagValueLength {
                throw MLflowError.invalid("'value' of tag \(t.key) exceeds the maximum length of \(maxTagValueLength) characters")
            }
            if t.key == TrackingStore.seedTag {
                guard let seed = Int64(t.value), seed >= 0, Double(seed) <= Double(RunSpec.maxSeed) else {
                    throw MLflowError.invalid("the tag \(t.key) must be an integer seed in [0, 2^53], got '\(t.value)'")
                }
            }
            if t.key == TrackingStore.variantTag { try Limits.checkName(t.value, field: "tags.\(t.key)") }
        }
    }

    enum ViewType {
        case active, deleted, all
        func keeps(deleted: Bool) -> Bool { self == .all || (self == .deleted) == deleted }
    }

    static func viewType(_ a: MLflowArgs, _ name: String) throws -> ViewType {
        switch try a.string(name) ?? "ACTIVE_ONLY" {
        case "ACTIVE_ONLY", "1": return .active
        case "DELETED_ONLY", "2": return .deleted
        case "ALL", "3": return .all
        case let other:
            throw MLflowError.invalid(MLflowArgs.invalidValue(name, .string(other), "must be ACTIVE_ONLY, DELETED_ONLY or ALL"))
        }
    }

    static func maxResults(_ a: MLflowArgs, default value: Int64) throws -> Int {
        let n = try a.int64("max_results") ?? value
        guard n >= 1, n <= Int64(maxSearchResults) else {
            throw MLflowError.invalid(
                "Invalid value \(n) for parameter 'max_results' supplied. It must be at most \(maxSearchResults), and at least 1")
        }
        return Int(n)
    }
}
