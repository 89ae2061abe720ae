import Experiments
import Foundation
import Store

/// Experiments as plain functions: create (variants × seeds runs), read, cancel, delete, compare and
/// grid. The API and the pages both call these; SQLite runs off the cooperative pool (``Blocking``).
struct ExperimentService: Sendable {
    let context: ServiceContext
    var store: TrackingStore { context.store }
    var runService: RunService { RunService(context: context) }

    /// The experiment, or a 404 naming it (call inside ``Blocking``).
    func existing(_ id: Int64) throws -> ExperimentRecord {
        guard let e = try store.experiment(id) else { throw APIError.notFound("experiment \(id) does not exist") }
        return e
    }

    /// Every run of the experiment (call inside ``Blocking``).
    func runs(_ id: Int64) throws -> [RunRecord] {
        try store.runs(RunFilter(experimentID: id, limit: 1_000_000))
    }

    /// The variants in the order the experiment lists them.
    static func variantOrder(_ e: ExperimentRecord) -> [String] {
        guard case .array(let items)? = try? JSONValue.parse(e.variantsJSON) else { return [] }
        return items.compactMap { $0["name"]?.stringValue }
    }

    // MARK: Create

    /// Validates an experiment, stores it with its variants × seeds runs and queues them.
    func create(_ document: JSONValue) async throws -> (ExperimentRecord, [RunRecord]) {
        let request = try ExperimentRequest(document, presets: context.options.presets)
        let created = try await Blocking.run {
            let newRuns = try queuedRuns(request)
            do {
                return try store.createExperiment(
                    name: request.name, baseJSON: request.base.text(),
                    variantsJSON: JSONValue.array(request.variants.map(\.json)).text(), seedsJSON: request.seedsJSON,
                    baseline: request.baseline, runs: newRuns, maxQueued: Limits.queuedRuns)
            } catch let e as CapReached {
                throw APIError(cap: e)
            }
        }
        context.runner.schedule()
        return created
    }

    /// Queues `count` more seeds for every variant (the seeds after the largest one used), as if
    /// the experiment had listed them from the start: same base, variants and baseline.
    func addSeeds(_ id: Int64, count: Int) async throws -> (ExperimentRecord, [RunRecord]) {
        guard (1...Limits.seedsPerAddition).contains(count) else {
            throw APIError.badRequest("add must be an integer in [1, \(Limits.seedsPerAddition)], got \(count)", field: "add")
        }
        let presets = context.options.presets
        let added: ExperimentRecord = try await Blocking.run {
            let e = try existing(id)
            guard case .array(let old)? = try? JSONValue.parse(e.seedsJSON) else {
                throw APIError(.internalServerError, "experiment \(id) has an unreadable seed list: \(e.seedsJSON)")
            }
            let used = old.compactMap { $0.doubleValue.map { UInt64($0) } }
            let first = (used.max() ?? 0) + (used.isEmpty ? 0 : 1)
            let seeds = used + (0..<UInt64(count)).map { first + $0 }
            let document: JSONValue = [
                "name": .string(e.name), "base": try JSONValue.parse(e.baseJSON),
                "variants": try JSONValue.parse(e.variantsJSON),
                "seeds": .array(seeds.map { .number(Double($0)) }), "baseline": .string(e.baseline),
            ]
            let request: ExperimentRequest
            do {
                request = try ExperimentRequest(document, presets: presets)
            } catch let error as APIError where error.field == "seeds" {
                throw APIError.badRequest(error.message, field: "add")
            }
            let newRuns = try queuedRuns(request, onlySeeds: Set(seeds.suffix(count)))
            do {
                guard
                    try store.addRuns(
                        toExperiment: id, seedsJSON: request.seedsJSON, runs: newRuns, maxQueued: Limits.queuedRuns) != nil
                else { throw APIError.notFound("experiment \(id) does not exist") }
            } catch let e as CapReached {
                throw APIError(cap: e)
            }
            return try existing(id)
        }
        context.runner.schedule()
        return (added, try await Blocking.run { try runs(id) })
    }

    /// The queued runs of a request's variants × seeds (of `onlySeeds` when given), each spec
    /// checked by the server (paths, the teacher run; call inside ``Blocking``); variants that
    /// train the same trajectory share a run per seed (``TrajectoryPlanner``).
    private func queuedRuns(_ request: ExperimentRequest, onlySeeds: Set<UInt64>? = nil) throws -> [NewRun] {
        let (paths, runChecks) = (context.specPaths, runService)
        let specs = try request.runSpecs(presets: context.options.presets) { spec in
            try runChecks.checkTeacher(spec, field: "base.distillation.teacher_run")
            try paths.check(spec)
        }
        // One seed's variants at a time: those that train the same trajectory share one run.
        var seeds: [UInt64] = []
        var bySeed: [UInt64: [TrajectoryPlanner.Member]] = [:]
        for (v, spec) in specs where onlySeeds?.contains(spec.seed) ?? true {
            if bySeed[spec.seed] == nil { seeds.append(spec.seed) }
            bySeed[spec.seed, default: []].append(TrajectoryPlanner.Member(variant: v.name, spec: spec))
        }
        // Queued variant by variant as before (a shared run where its first variant is), seed by seed.
        let position = Dictionary(request.variants.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        let planned = seeds.enumerated().flatMap { s, seed in
            TrajectoryPlanner.plan(bySeed[seed]!, baseline: request.baseline).map { run in
                (variant: run.variants.compactMap { position[$0] }.min() ?? 0, seed: s, run: run)
            }
        }
        return planned.sorted { ($0.variant, $0.seed) < ($1.variant, $1.seed) }.map { _, _, run in
            NewRun(
                experiment: request.name, variant: run.owner, seed: Int64(run.spec.seed), name: run.spec.name,
                strategies: RunService.strategyKinds(run.spec), status: .queued, specJSON: run.spec.json().text(),
                codeVersion: context.options.version, shares: run.shares)
        }
    }

    // MARK: Read

    func list(before: Int64?, limit: Int) async throws -> [ExperimentRecord] {
        try await Blocking.run { try store.experiments(before: before, limit: limit) }
    }

    func detail(_ id: Int64) async throws -> (ExperimentRecord, [RunRecord]) {
        try await Blocking.run { (try existing(id), try runs(id)) }
    }

    /// The comparison table on `metric` (call inside ``Blocking``).
    func compareRows(_ e: ExperimentRecord, metric: String) throws -> [Comparison.Row] {
        let values = try store.finalValues(experiment: e.id, key: metric)
        var rows = Comparison.compare(values, baseline: e.baseline, variants: Self.variantOrder(e), metric: metric)
        CostColumns.annotate(&rows, values: values, costs: try store.experimentCosts(e.id), baseline: e.baseline)
        return rows
    }

    func compare(_ id: Int64, metric: String) async throws -> (ExperimentRecord, [Comparison.Row]) {
        try await Blocking.run {
            let e = try existing(id)
            return (e, try compareRows(e, metric: metric))
        }
    }

    /// The resize × crop cells averaged over seeds (call inside ``Blocking``).
    func gridRows(_ e: ExperimentRecord) throws -> [Comparison.GridRow] {
        Comparison.grid(try store.experimentGrid(e.id), variants: Self.variantOrder(e))
    }

    func grid(_ id: Int64) async throws -> [Comparison.GridRow] {
        try await Blocking.run { try gridRows(try existing(id)) }
    }

    // MARK: Change

    /// Cancels every run that has not finished; gives the number cancelled.
    func cancel(_ id: Int64) async throws -> Int {
        try await Blocking.run {
            _ = try existing(id)
            var cancelled = 0
            for r in try runs(id) where !r.status.isFinished {
                if try context.runner.cancel(r.id) { cancelled += 1 }
            }
            return cancelled
        }
    }

    /// Deletes the experiment with its runs, their metrics and folders; 409 while one runs.
    func delete(_ id: Int64) async throws {
        let deleted = try await Blocking.run {
            // Checked and deleted while the scheduler waits: it cannot start one of these runs in between.
            try context.runner.whileQueueHeld { active in
                _ = try existing(id)
                let all = try runs(id)
                if let r = all.first(where: { $0.status == .running || active($0.id) }) {
                    throw APIError.conflict("experiment \(id) has a running run (\(r.id)); cancel it first")
                }
                try store.deleteExperiment(id)
                return all
            }
        }
        for r in deleted { try? FileManager.default.removeItem(atPath: context.runner.runDirectory(r.id)) }
    }
}
