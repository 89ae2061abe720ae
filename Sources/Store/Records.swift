import Experiments
import Foundation

/// A row of `runs`. JSON columns stay text: the server passes them through without re-encoding.
public struct RunRecord: Sendable, Equatable {
    public var id: Int64
    public var experimentID: Int64?
    public var experiment: String?
    public var variant: String?
    public var seed: Int64
    public var name: String?
    public var notes: String
    public var tags: [String]
    public var strategies: [String]
    public var external: Bool
    public var status: RunStatus
    public var specJSON: String
    public var codeVersion: String
    public var createdAt: Double
    public var startedAt: Double?
    public var endedAt: Double?
    public var error: String?
    public var progressJSON: String?
    public var summaryJSON: String?
    public var warningsJSON: String
    /// The Slurm job training this run (`--executor slurm`), and Slurm's last word on it (`PENDING (Resources)`).
    public var slurmJobID: Int64? = nil
    public var slurmState: String? = nil
    /// For a run that several variants share (one trajectory, the union of their weight sets):
    /// which of its weight sets each variant reads, in the experiment's variant order. Empty for
    /// a run of one variant, whose weight sets are its variant's under the same names.
    public var shares: [WeightShare] = []

    /// The variants this run answers for: those of its shares, else its own `variant`.
    public var variants: [String] {
        guard !shares.isEmpty else { return variant.map { [$0] } ?? [] }
        var seen: Set<String> = []
        return shares.map(\.variant).filter { seen.insert($0).inserted }
    }
}

/// One weight set of a shared run as one variant sees it: `weights` is the variant's own name for
/// it (`ema@0.999`), `runWeights` the run's (`ema@0.999~ema-warmup`).
public struct WeightShare: Sendable, Equatable {
    public var variant: String
    public var weights: String
    public var runWeights: String

    public init(variant: String, weights: String, runWeights: String) {
        self.variant = variant
        self.weights = weights
        self.runWeights = runWeights
    }
}

/// What creating a run needs; the store fills in id, times and defaults.
public struct NewRun: Sendable {
    public var experimentID: Int64?
    public var experiment: String?
    public var variant: String?
    public var seed: Int64
    public var name: String?
    public var tags: [String]
    public var strategies: [String]
    public var external: Bool
    public var status: RunStatus
    public var specJSON: String
    public var codeVersion: String
    /// Set when several variants share the run (``RunRecord/shares``).
    public var shares: [WeightShare]

    public init(
        experimentID: Int64? = nil, experiment: String? = nil, variant: String? = nil, seed: Int64 = 0,
        name: String? = nil, tags: [String] = [], strategies: [String] = [], external: Bool = false,
        status: RunStatus = .queued, specJSON: String, codeVersion: String, shares: [WeightShare] = []
    ) {
        self.shares = shares
        self.experimentID = experimentID
        self.experiment = experiment
        self.variant = variant
        self.seed = seed
        self.name = name
        self.tags = tags
        self.strategies = strategies
        self.external = external
        self.status = status
        self.specJSON = specJSON
        self.codeVersion = codeVersion
    }
}

/// A row of `experiments`.
public struct ExperimentRecord: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var baseJSON: String
    public var variantsJSON: String
    public var seedsJSON: String
    public var baseline: String
    public var createdAt: Double
}

/// What to do when a point's (run, key, weights, step) is already stored with another value.
public enum ConflictPolicy: Sendable {
    /// Refuse the whole batch (REST clients: the same step cannot mean two values).
    case refuse
    /// Keep the newer value (a trainer resumed from a checkpoint re-emits the steps after it).
    case replace
}

/// A batch refused because a point contradicts a stored one.
public struct MetricConflict: Error, Sendable, CustomStringConvertible {
    /// Index of the point in the batch.
    public var index: Int
    public var point: MetricPoint
    public var stored: Double

    public var description: String {
        "metrics[\(index)]: \(point.key) (weights \(point.weights)) at step \(point.step) is already stored "
            + "with value \(stored.wireText), not \(point.value.wireText)"
    }
}

extension Double {
    /// The wire spelling of a value: non-finite as `NaN`, `Infinity`, `-Infinity`.
    public var wireText: String {
        if isNaN { return "NaN" }
        if isInfinite { return self < 0 ? "-Infinity" : "Infinity" }
        return "\(self)"
    }
}

/// How a batch went.
public struct BatchResult: Sendable, Equatable {
    public var inserted = 0
    public var unchanged = 0
    public var replaced = 0
    public init() {}
}

/// One resize × crop evaluation of a run (`grid` lines).
public struct GridCell: Sendable, Equatable {
    public var weights: String
    public var stage: String
    public var trainSize: Int64
    public var resize: Int64
    public var crop: Int64
    public var top1: Double?
    public var top5: Double?
    public var loss: Double?

    public init(
        weights: String, stage: String, trainSize: Int64, resize: Int64, crop: Int64,
        top1: Double?, top5: Double?, loss: Double?
    ) {
        self.weights = weights
        self.stage = stage
        self.trainSize = trainSize
        self.resize = resize
        self.crop = crop
        self.top1 = top1
        self.top5 = top5
        self.loss = loss
    }
}

/// A file of a run: an exported weight set or a checkpoint (path relative to the run folder).
public struct Artifact: Sendable, Equatable {
    public enum Kind: String, Sendable { case export, checkpoint }
    public var name: String
    public var kind: Kind
    public var path: String
    public var bytes: Int64?
    public var sha256: String?

    public init(name: String, kind: Kind, path: String, bytes: Int64?, sha256: String?) {
        self.name = name
        self.kind = kind
        self.path = path
        self.bytes = bytes
        self.sha256 = sha256
    }
}

/// A run's final value of one metric for one weight set, for comparisons.
public struct FinalValue: Sendable, Equatable {
    public var runID: Int64
    public var variant: String
    public var seed: Int64
    public var weights: String
    public var value: Double
    /// The run's own name for the set: differs from `weights` in a shared run that relabelled it
    /// (`ema@0.996~ema-warmup`); what the run's costs and files are keyed by.
    public var runWeights: String

    public init(runID: Int64, variant: String, seed: Int64, weights: String, value: Double, runWeights: String? = nil) {
        (self.runID, self.variant, self.seed, self.weights, self.value) = (runID, variant, seed, weights, value)
        self.runWeights = runWeights ?? weights
    }
}

/// A grid cell with the run's variant and seed, for aggregation over seeds.
public struct ExperimentGridCell: Sendable {
    public var variant: String
    public var seed: Int64
    public var cell: GridCell
}

/// Filters of `GET /api/runs`.
public struct RunFilter: Sendable {
    public var experiment: String?
    public var experimentID: Int64?
    public var status: RunStatus?
    public var strategy: String?
    public var tag: String?
    /// Runs that answer for this variant: their own, or one they share (``RunRecord/variants``).
    public var variant: String?
    /// Runs with an id below this (the cursor: lists go newest first).
    public var before: Int64?
    public var limit: Int

    public init(
        experiment: String? = nil, experimentID: Int64? = nil, status: RunStatus? = nil,
        strategy: String? = nil, tag: String? = nil, variant: String? = nil, before: Int64? = nil, limit: Int = 100
    ) {
        self.variant = variant
        self.experiment = experiment
        self.experimentID = experimentID
        self.status = status
        self.strategy = strategy
        self.tag = tag
        self.before = before
        self.limit = limit
    }
}
