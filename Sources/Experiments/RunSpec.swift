import Foundation

/// One training run, as a user writes it (`spec/service.md`, "Run spec") and as `spec.json`
/// records it. Both the trainer and the server speak this type.
///
/// ``decode(_:)-(Data)`` validates everything before anything runs: an unknown field, a wrong type
/// or a value out of range is a ``SpecError`` naming the field. ``json()`` writes the full spec
/// with every default filled in, and decodes back to an equal value.
public struct RunSpec: Equatable, Sendable {
    /// `experiment`: name of the experiment the run belongs to, if any.
    public var experiment: String?
    /// `name`: the run's display name.
    public var name: String?
    /// `seed` in [0, 2^53] (so that it survives JSON's numbers exactly); default 0.
    public var seed: UInt64
    /// `threads` in [1, 64]; default 2.
    public var threads: Int
    /// `log_every` ≥ 1: log `train/loss`, `train/top1`, `train/lr` every N steps; `nil` = per epoch.
    public var logEvery: Int?
    /// `data`.
    public var data: DataSpec
    /// `model`.
    public var model: ModelSpec
    /// `optim`.
    public var optim: OptimSpec
    /// `averaging`: one object or a list in JSON; always a list here (empty when missing or null).
    public var averaging: [AveragingSpec]
    /// `distillation`; `nil` = plain training.
    public var distillation: DistillationSpec?
    /// `resolution`.
    public var resolution: ResolutionSpec
    /// `precise_bn`: recompute BN statistics of the raw weights before evaluation; `nil` = off.
    public var preciseBN: PreciseBNSpec?
    /// `checkpoints`.
    public var checkpoints: CheckpointSpec

    /// Largest seed a JSON number (a Double) holds exactly.
    public static let maxSeed: UInt64 = 1 << 53

    public init(
        experiment: String? = nil, name: String? = nil, seed: UInt64 = 0, threads: Int = 2, logEvery: Int? = nil,
        data: DataSpec = DataSpec(), model: ModelSpec = ModelSpec(), optim: OptimSpec = OptimSpec(),
        averaging: [AveragingSpec] = [], distillation: DistillationSpec? = nil,
        resolution: ResolutionSpec = ResolutionSpec(), preciseBN: PreciseBNSpec? = nil,
        checkpoints: CheckpointSpec = CheckpointSpec()
    ) {
        self.experiment = experiment
        self.name = name
        self.seed = seed
        self.threads = threads
        self.logEvery = logEvery
        self.data = data
        self.model = model
        self.optim = optim
        self.averaging = averaging
        self.distillation = distillation
        self.resolution = resolution
        self.preciseBN = preciseBN
        self.checkpoints = checkpoints
    }

    // MARK: Reading

    /// Parses and validates a run spec from JSON text.
    ///
    /// - Throws: ``SpecError``; for text that is not JSON, `field` is `""` (or the field the
    ///   parser was in, e.g. for a bare `NaN`) and the message says where and why.
    public static func decode(_ data: Data) throws -> RunSpec {
        try decode(try JSONValue.parse(data))
    }

    /// Validates a run spec given as a JSON value (e.g. after merging base, preset and variant).
    ///
    /// - Throws: ``SpecError`` naming the first offending field.
    public static func decode(_ value: JSONValue) throws -> RunSpec {
        try SpecReader.object(value, "", read)
    }

    /// This spec checked by the same rules as JSON input (for specs built in code).
    public func validated() throws -> RunSpec {
        try RunSpec.decode(json())
    }

    /// Reads a run spec; a missing field takes the default `init` declares (the one place it is written).
    static func read(_ r: SpecReader) throws -> RunSpec {
        let defaults = RunSpec()
        // optim first: SWA's start_epoch is checked against optim.epochs.
        let optim = try r.object("optim", OptimSpec.read) ?? defaults.optim
        return RunSpec(
            experiment: try r.optionalString("experiment"),
            name: try r.optionalString("name"),
            seed: UInt64(try r.int("seed", default: Int(defaults.seed), .closed(0, Double(maxSeed)))),
            threads: try r.int("threads", default: defaults.threads, .closed(1, 64)),
            logEvery: try r.optionalInt("log_every", .atLeast(1)),
            data: try r.object("data", DataSpec.read) ?? defaults.data,
            model: try r.object("model", ModelSpec.read) ?? defaults.model,
            optim: optim,
            averaging: try AveragingSpec.readAll(r.value("averaging"), path: r.path("averaging"), epochs: optim.epochs),
            distillation: try r.object("distillation", DistillationSpec.read),
            resolution: try r.object("resolution", ResolutionSpec.read) ?? defaults.resolution,
            preciseBN: try r.object("precise_bn", PreciseBNSpec.read),
            checkpoints: try r.object("checkpoints", CheckpointSpec.read) ?? defaults.checkpoints)
    }

    // MARK: Writing

    /// The full spec as JSON, every default written out and every optional field present (as
    /// `null` when unset), `averaging` always a list. ``decode(_:)-(JSONValue)`` gives back an
    /// equal spec.
    public func json() -> JSONValue {
        [
            "experiment": experiment.map { .string($0) } ?? .null,
            "name": name.map { .string($0) } ?? .null,
            "seed": .number(Double(seed)),
            "threads": .number(Double(threads)),
            "log_every": logEvery.map { .number(Double($0)) } ?? .null,
            "data": data.json(),
            "model": model.json(),
            "optim": optim.json(),
            "averaging": .array(averaging.map { $0.json() }),
            "distillation": distillation?.json() ?? .null,
            "resolution": resolution.json(),
            "precise_bn": preciseBN?.json() ?? .null,
            "checkpoints": checkpoints.json(),
        ]
    }

    /// ``json()`` as text (keys sorted), e.g. for a run's `spec.json`.
    public func jsonData(pretty: Bool = true) -> Data {
        json().data(pretty: pretty)
    }

    // MARK: Derived

    /// The weight sets this run evaluates and exports, in order: `raw`, then `ema@<decay>` for
    /// each EMA decay as listed, then `swa` if SWA is on, then `phema@<σ_rel>` for post-hoc EMA.
    public var weightSetNames: [String] {
        ["raw"] + emaSpecs.flatMap(\.weightSetNames) + (swaSpec == nil ? [] : ["swa"])
            + (postHocSpec?.weightSetNames ?? [])
    }

    /// The EMA strategies, in order.
    public var emaSpecs: [EMASpec] {
        averaging.compactMap { if case .ema(let e) = $0 { return e } else { return nil } }
    }

    /// The post-hoc EMA entry, if any (a run holds at most one).
    public var postHocSpec: PostHocSpec? {
        averaging.lazy.compactMap { if case .posthoc(let p) = $0 { return p } else { return nil } }.first
    }

    /// The SWA strategy, if any (a run holds at most one).
    public var swaSpec: SWASpec? {
        averaging.lazy.compactMap { if case .swa(let s) = $0 { return s } else { return nil } }.first
    }
}

/// Precise BN (fvcore `update_bn_stats`): pooled statistics over training batches (`precise_bn`).
public struct PreciseBNSpec: Equatable, Sendable {
    /// `batches` ≥ 1.
    public var batches: Int

    public init(batches: Int = 200) { self.batches = batches }

    static func read(_ r: SpecReader) throws -> PreciseBNSpec {
        PreciseBNSpec(batches: try r.int("batches", default: PreciseBNSpec().batches, .atLeast(1)))
    }

    /// The full `precise_bn` object.
    public func json() -> JSONValue { ["batches": .number(Double(batches))] }
}

/// Checkpoint retention (`checkpoints`).
public struct CheckpointSpec: Equatable, Sendable {
    /// `keep` ≥ 0: epoch checkpoints kept besides the final exports.
    public var keep: Int

    public init(keep: Int = 1) { self.keep = keep }

    static func read(_ r: SpecReader) throws -> CheckpointSpec {
        CheckpointSpec(keep: try r.int("keep", default: CheckpointSpec().keep, .atLeast(0)))
    }

    /// The full `checkpoints` object.
    public func json() -> JSONValue { ["keep": .number(Double(keep))] }
}

extension RunSpec {
    /// The `threads` a stored spec asks for, without reading the whole spec (the scheduler's and the
    /// job script's question); the default when it names none.
    public static func threads(in spec: JSONValue?) -> Int {
        spec?["threads"]?.doubleValue.map { Int($0) } ?? RunSpec().threads
    }
}
