import Experiments
import Foundation
import Store

/// Reads of the post-hoc EMA-length sweeps: one run's points, an experiment's statistics
/// (``PostHocSweepStats``). The API and the pages both call these.
struct PostHocService: Sendable {
    let context: ServiceContext
    var store: TrackingStore { context.store }

    /// An experiment's sweep: the series per variant and the EMA weight sets placed on the axis.
    struct ExperimentSweep {
        var experiment: ExperimentRecord
        var series: [PostHocSweepStats.Series]
        var marks: [PostHocSweepStats.Mark]
        var isEmpty: Bool { series.isEmpty }
    }

    func run(_ id: Int64) async throws -> (RunRecord, [PostHocPoint]) {
        try await Blocking.run {
            guard let run = try store.run(id) else { throw APIError.notFound("run \(id) does not exist") }
            return (run, try store.postHoc(run: id))
        }
    }

    func experiment(_ id: Int64) async throws -> ExperimentSweep {
        try await Blocking.run {
            guard let e = try store.experiment(id) else { throw APIError.notFound("experiment \(id) does not exist") }
            return try experimentSweep(e)
        }
    }

    /// The experiment's sweep statistics (call inside ``Blocking``).
    func experimentSweep(_ e: ExperimentRecord) throws -> ExperimentSweep {
        let points = try store.experimentPostHoc(e.id)
        guard !points.isEmpty else { return ExperimentSweep(experiment: e, series: [], marks: []) }
        let runs = try store.runs(RunFilter(experimentID: e.id, limit: 1_000_000))
        var raw: [Int64: Double] = [:]
        for v in try store.finalValues(experiment: e.id, key: "test/top1") where v.weights == "raw" { raw[v.runID] = v.value }
        let series = PostHocSweepStats.sweep(
            points, members: PostHocSweepStats.members(runs), rawTop1: raw, baseline: e.baseline,
            variants: ExperimentService.variantOrder(e))
        var emas: [(decay: Double, every: Int, weights: String)] = []
        for r in runs where r.status == .completed {
            guard let spec = try? RunSpec.decode(Data(r.specJSON.utf8)) else { continue }
            for ema in spec.emaSpecs {
                // The run's own names: a shared run's relabelled sets (`ema@0.996~ema-warmup`) stay apart.
                emas += zip(ema.decays, ema.weightSetNames).map { ($0, ema.every, $1) }
            }
        }
        let steps = Int(points.map(\.step).max() ?? 0)
        return ExperimentSweep(experiment: e, series: series, marks: PostHocSweepStats.emaMarks(emas, steps: steps))
    }

    // MARK: More widths

    /// `{"sigma_rels": [...], "precise_bn": N}`: the widths to add to a run's sweep.
    struct MoreWidths: Equatable {
        var sigmaRels: [Double]
        var preciseBatches: Int?

        init(_ body: JSONValue) throws {
            guard case .object(let fields) = body else {
                throw APIError.badRequest("the body must be {\"sigma_rels\": [σ_rel, …]} with an optional \"precise_bn\": N")
            }
            if let unknown = fields.keys.filter({ !["sigma_rels", "precise_bn"].contains($0) }).sorted().first {
                throw APIError.badRequest("\(unknown) is not a known field (sigma_rels, precise_bn)", field: unknown)
            }
            guard case .array(let items)? = fields["sigma_rels"] else {
                throw APIError.badRequest(
                    "sigma_rels is required: a list of widths in (0, 0.25], e.g. [0.03, 0.2]", field: "sigma_rels")
            }
            guard (1...PostHocSpec.maxSweep).contains(items.count) else {
                throw APIError.badRequest(
                    "sigma_rels lists \(items.count) widths; give 1 to \(PostHocSpec.maxSweep)", field: "sigma_rels")
            }
            sigmaRels = []
            for (i, item) in items.enumerated() {
                let field = "sigma_rels[\(i)]"
                guard case .number(let x) = item, x > 0, x <= PostHocSpec.widestSigmaRel else {
                    throw APIError.badRequest("\(field) must be a width in (0, 0.25], got \(item.text())", field: field)
                }
                if sigmaRels.contains(x) {
                    throw APIError.badRequest("\(field) repeats the width \(JSONValue.number(x).text())", field: field)
                }
                sigmaRels.append(x)
            }
            switch fields["precise_bn"] {
            case nil, .null?: preciseBatches = nil
            case .number(let n)? where n == n.rounded() && (1...10_000).contains(n): preciseBatches = Int(n)
            case let other?:
                throw APIError.badRequest(
                    "precise_bn must be an integer number of batches in [1, 10000], got \(other.text())", field: "precise_bn")
            }
        }
    }

    /// Synthesises and evaluates more widths of a completed run's sweep (`polyak posthoc` as a
    /// child, while the request waits) and answers the run's whole sweep. 409 for a run that is
    /// not completed, is external, or tracked no post-hoc profiles.
    func sweepMore(_ id: Int64, _ body: JSONValue) async throws -> (RunRecord, [PostHocPoint]) {
        let widths = try MoreWidths(body)
        return try await Blocking.run {
            guard let run = try store.run(id) else { throw APIError.notFound("run \(id) does not exist") }
            guard !run.external else {
                throw APIError.conflict(
                    "run \(id) is external: its snapshots are not on this server; run polyak posthoc where they are")
            }
            guard run.status == .completed else {
                throw APIError.conflict("run \(id) is \(run.status.rawValue); only a completed run can be swept")
            }
            guard (try? RunSpec.decode(Data(run.specJSON.utf8)))?.postHocSpec != nil else {
                throw APIError.conflict(
                    "run \(id) tracked no post-hoc EMA profiles (no {\"kind\": \"posthoc\"} in its averaging): nothing to synthesise from"
                )
            }
            try context.postHocJobs.run(
                id, directory: context.runner.runDirectory(id), sigmaRels: widths.sigmaRels,
                preciseBatches: widths.preciseBatches,
                store: store, hub: context.hub, options: context.runner.options, logger: context.runner.logger)
            return (run, try store.postHoc(run: id))
        }
    }
}
