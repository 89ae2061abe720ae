import Experiments
import Foundation
import Store

/// Runs as plain functions: create, run again, change, cancel, delete, and the checks a spec passes
/// before it is stored. The API and the pages both call these; SQLite runs off the cooperative pool
/// (``Blocking``). The job runner is told to `schedule` and `cancel`; a delete decides while its
/// queue waits (`whileQueueHeld`), so the scheduler cannot start the run in between.
struct RunService: Sendable {
    let context: ServiceContext
    var store: TrackingStore { context.store }

    /// The run, or a 404 naming it (call inside ``Blocking``).
    func existing(_ id: Int64) throws -> RunRecord {
        guard let run = try store.run(id) else { throw APIError.notFound("run \(id) does not exist") }
        return run
    }

    func run(_ id: Int64) async throws -> RunRecord {
        try await Blocking.run { try existing(id) }
    }

    // MARK: Create

    /// Validates a run spec (resolving nothing yet), stores it queued and wakes the scheduler.
    func create(spec body: JSONValue) async throws -> RunRecord {
        let spec: RunSpec
        do { spec = try RunSpec.decode(body) } catch let e as SpecError { throw APIError(spec: e) }
        try context.specPaths.check(spec)
        try Limits.checkName(spec.name, field: "name")
        try Limits.checkName(spec.experiment, field: "experiment")
        let run = try await Blocking.run {
            try checkTeacher(spec, field: "distillation.teacher_run")
            return try insert(
                NewRun(
                    experiment: spec.experiment, seed: Int64(spec.seed), name: spec.name, strategies: Self.strategyKinds(spec),
                    status: .queued, specJSON: spec.json().text(), codeVersion: context.options.version))
        }
        context.runner.schedule()
        return run
    }

    /// An external run trains elsewhere: its spec is the caller's record, stored as given, and it is running.
    func createExternal(_ body: JSONValue) async throws -> RunRecord {
        let seed = body["seed"]?.doubleValue ?? 0
        // Bounded before the Int64 conversion, which traps on 1e300.
        guard seed >= 0, seed == seed.rounded(), seed <= Double(RunSpec.maxSeed) else {
            throw APIError.badRequest("seed must be an integer in [0, 2^53]", field: "seed")
        }
        var tags: [String] = []
        if case .array(let items)? = body["tags"] {
            for (i, t) in items.enumerated() {
                guard let s = t.stringValue else { throw APIError.badRequest("tags[\(i)] must be a string", field: "tags[\(i)]") }
                tags.append(s)
            }
        }
        try Limits.checkName(body["name"]?.stringValue, field: "name")
        try Limits.checkName(body["experiment"]?.stringValue, field: "experiment")
        try Limits.checkTags(tags)
        let run = NewRun(
            experiment: body["experiment"]?.stringValue, seed: Int64(seed), name: body["name"]?.stringValue, tags: tags,
            strategies: Self.strategyKinds(body["averaging"]), external: true, status: .running, specJSON: body.text(),
            codeVersion: context.options.version)
        return try await Blocking.run { try insert(run) }
    }

    /// The same spec again with a seed no run of its experiment (or the run itself) has used yet:
    /// a new queued run beside the old one, in the same experiment and variant, with the same tags.
    func rerun(_ id: Int64) async throws -> RunRecord {
        let created = try await Blocking.run {
            let r = try existing(id)
            guard !r.external else {
                throw APIError.conflict("run \(id) is external: it trains elsewhere, so Polyak cannot start it again")
            }
            let siblings = try r.experimentID.map { try store.runs(RunFilter(experimentID: $0, limit: 1_000_000)) } ?? [r]
            let seed = (siblings.map(\.seed).max() ?? r.seed) + 1
            let stem = r.variant ?? r.name.map { $0.replacingOccurrences(of: "-seed\(r.seed)", with: "") } ?? "run"
            // A shared run is run again shared: the same variants read the same sets.
            let name = r.shares.isEmpty ? stem + "-seed\(seed)" : TrajectoryPlanner.runName(r.variants, seed: UInt64(seed))
            let spec: RunSpec
            do {
                let stored = try JSONValue.parse(r.specJSON)
                spec = try RunSpec.decode(stored.merged(with: ["seed": .number(Double(seed)), "name": .string(name)]))
            } catch let e as SpecError {
                throw APIError(spec: e)
            }
            try context.specPaths.check(spec)  // a run stored before paths were checked starts no trainer on them
            return try insert(
                NewRun(
                    experimentID: r.experimentID, experiment: r.experiment, variant: r.variant, seed: seed, name: name,
                    tags: r.tags, strategies: r.strategies, status: .queued, specJSON: spec.json().text(),
                    codeVersion: context.options.version, shares: r.shares))
        }
        context.runner.schedule()
        return created
    }

    /// Stores a run, queued ones within ``Limits/queuedRuns`` (counted in the inserting transaction).
    func insert(_ run: NewRun) throws -> RunRecord {
        do {
            return try store.createRun(run, maxQueued: Limits.queuedRuns)
        } catch let e as CapReached {
            throw APIError(cap: e)
        }
    }

    /// What a run is filtered by as `strategy`: its averaging kinds, plus `kd` and `fixres`.
    static func strategyKinds(_ spec: RunSpec) -> [String] {
        var kinds = spec.averaging.map(\.kind).filter { $0 != "none" }
        if spec.distillation != nil { kinds.append("kd") }
        if spec.resolution.finetune != nil { kinds.append("fixres") }
        return kinds
    }

    /// An external run's kinds, read from its spec as given.
    static func strategyKinds(_ averaging: JSONValue?) -> [String] {
        switch averaging {
        case .object(let o)?: return o["kind"]?.stringValue.map { [$0] } ?? []
        case .array(let items)?: return items.compactMap { $0["kind"]?.stringValue }
        default: return []
        }
    }

    /// A teacher run must exist when the run is submitted (it must have finished when it starts).
    func checkTeacher(_ spec: RunSpec, field: String) throws {
        guard let id = spec.distillation?.teacherRun else { return }
        guard try store.run(Int64(id)) != nil else { throw APIError.badRequest("\(field) \(id) does not exist", field: field) }
    }

    // MARK: Change

    /// What `PATCH /api/runs/{id}` and the run page's form may change. `name` is doubly optional:
    /// `.some(nil)` clears it.
    struct Changes: Sendable {
        var name: String??
        var notes: String?
        var tags: [String]?
        /// An external run's own report of how it ended, and why it failed.
        var status: RunStatus?
        var error: String?
    }

    func update(_ id: Int64, _ changes: Changes) async throws -> RunRecord {
        try Limits.checkName(changes.name ?? nil, field: "name")
        try Limits.checkNotes(changes.notes)
        try Limits.checkTags(changes.tags ?? [])
        let (run, published) = try await Blocking.run {
            let run = try existing(id)
            if changes.status != nil && !run.external {
                // Only an external run's own script says how it ended; launched runs follow their process.
                throw APIError.badRequest("status can be set only on external runs", field: "status")
            }
            if changes.error != nil {
                guard run.external else { throw APIError.badRequest("error can be set only on external runs", field: "error") }
                guard changes.status == .failed || (changes.status == nil && run.status == .failed) else {
                    throw APIError.badRequest(
                        "error goes with \"status\": \"failed\" (or on a run that has failed already)", field: "error")
                }
            }
            try store.updateRun(id, name: changes.name, notes: changes.notes, tags: changes.tags)
            if let status = changes.status {
                try store.setStatus(id, status, error: status == .failed ? changes.error ?? "reported failed" : nil)
            } else if let error = changes.error {
                try store.setError(id, error)
            }
            return (try existing(id), changes.status != nil || changes.error != nil)
        }
        if published { context.runner.publishStatus(id) }
        return run
    }

    /// Cancels a queued or running run (an external one is marked cancelled); 409 when nothing is left to stop.
    func cancel(_ id: Int64) async throws -> RunRecord {
        let run = try await self.run(id)
        if run.external {
            guard run.status == .running else {
                throw APIError.conflict("run \(id) is \(run.status.rawValue); nothing to cancel")
            }
            _ = try await Blocking.run { try store.setStatus(id, .cancelled, error: "cancelled") }
            context.runner.publishStatus(id)
        } else if !(try await Blocking.run { try context.runner.cancel(id) }) {
            throw APIError.conflict("run \(id) is \(run.status.rawValue); nothing to cancel")
        }
        return try await self.run(id)
    }

    /// Deletes a run that is not running, with its metrics and its folder; gives back what it was.
    @discardableResult
    func delete(_ id: Int64) async throws -> RunRecord {
        let run = try await Blocking.run {
            // Checked and deleted while the scheduler waits: it cannot start this run in between.
            try context.runner.whileQueueHeld { active in
                let run = try existing(id)
                if run.status == .running || active(id) {
                    throw APIError.conflict(
                        "run \(id) is running; cancel it first" + (run.external ? " (or PATCH its status)" : ""))
                }
                try store.deleteRun(id)
                return run
            }
        }
        try? FileManager.default.removeItem(atPath: context.runner.runDirectory(id))
        return run
    }
}
