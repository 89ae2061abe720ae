/// One weight-averaging strategy of a run (an element of `averaging`). A run may hold several:
/// EMA at a few decays and SWA, each with its own shadow weights (see `spec/averaging.md`).
public enum AveragingSpec: Equatable, Sendable {
    /// `{"kind": "none"}`: no averaging (the raw weights are always evaluated anyway).
    case none
    /// `{"kind": "ema", …}`: exponential moving averages.
    case ema(EMASpec)
    /// `{"kind": "swa", …}`: stochastic weight averaging.
    case swa(SWASpec)
    /// `{"kind": "posthoc", …}`: power-function EMA profiles with snapshots for post-hoc EMA.
    case posthoc(PostHocSpec)

    /// `kind` as written in JSON: `none`, `ema` or `swa`.
    public var kind: String {
        switch self {
        case .none: return "none"
        case .ema: return "ema"
        case .swa: return "swa"
        case .posthoc: return "posthoc"
        }
    }

    private enum Kind: String, CaseIterable { case none, ema, swa, posthoc }

    static func read(_ r: SpecReader, epochs: Int) throws -> AveragingSpec {
        guard let kind = try r.optionalChoice("kind", Kind.self) else {
            throw SpecError(field: r.path("kind"), message: "is required (one of none, ema, swa, posthoc)")
        }
        switch kind {
        case .none: return .none
        case .ema: return .ema(try EMASpec.read(r))
        case .swa: return .swa(try SWASpec.read(r, epochs: epochs))
        case .posthoc: return .posthoc(try PostHocSpec.read(r))
        }
    }

    /// Reads `averaging`: missing or null → no strategies; one object → path `averaging.…`;
    /// a list → paths `averaging[i].…`. Checks the rules that span entries: EMA decays unique
    /// across the run, at most one SWA, at most one post-hoc entry.
    static func readAll(_ value: JSONValue?, path: String, epochs: Int) throws -> [AveragingSpec] {
        let entries: [(JSONValue, String)]
        switch value {
        case nil: return []
        case .object?: entries = [(value!, path)]
        case .array(let items)?: entries = items.enumerated().map { ($1, SpecReader.path(path, index: $0)) }
        case let other?: throw SpecReader.typeError(path, "an object or a list of objects", other)
        }
        var specs: [AveragingSpec] = []
        var seenNames: [String: String] = [:]
        var swaPath: String?
        var postHocPath: String?
        for (v, entryPath) in entries {
            let spec = try SpecReader.object(v, entryPath) { try read($0, epochs: epochs) }
            switch spec {
            case .ema(let ema):
                // Unique by weight-set name: a `label` lets two entries track the same decay apart.
                for (i, (d, name)) in zip(ema.decays, ema.weightSetNames).enumerated() {
                    let decayPath = SpecReader.path(SpecReader.path(entryPath, "decays"), index: i)
                    if let first = seenNames[name] {
                        throw SpecError(
                            field: decayPath,
                            message:
                                "repeats the decay \(JSONValue.format(d)) of \(first); each decay names one weight set (\(name)) and must be unique in a run"
                        )
                    }
                    seenNames[name] = decayPath
                }
            case .swa:
                if let first = swaPath {
                    throw SpecError(
                        field: entryPath,
                        message:
                            "is a second swa strategy (the first is \(first)); a run holds at most one, its weights are named swa"
                    )
                }
                swaPath = entryPath
            case .posthoc:
                if let first = postHocPath {
                    throw SpecError(
                        field: entryPath,
                        message: "is a second posthoc strategy (the first is \(first)); list every width in one sigma_rels")
                }
                postHocPath = entryPath
            case .none:
                break
            }
            specs.append(spec)
        }
        return specs
    }

    /// The full strategy object, `kind` included.
    public func json() -> JSONValue {
        switch self {
        case .none: return ["kind": "none"]
        case .ema(let e): return e.json()
        case .swa(let s): return s.json()
        case .posthoc(let p): return p.json()
        }
    }
}

/// Exponential moving averages of the weights at one or more decays (timm ModelEmaV3):
/// `e ← lerp(e, m, 1 − d)` after every `every`-th optimizer step, parameters and float buffers.
public struct EMASpec: Equatable, Sendable {
    /// `decays`: each in (0, 1), non-empty, unique across the run; one weight set `ema@<decay>` each.
    public var decays: [Double]
    /// `every` ≥ 1: update after every k-th optimizer step.
    public var every: Int
    /// `warmup`: how the decay ramps up over the first updates.
    public var warmup: EMAWarmup
    /// `label` (optional, 1–64 of `A–Z a–z 0–9 . _ -`): names this entry's sets `ema@<decay>~<label>`,
    /// so two entries may track one decay apart (e.g. with and without warmup, in a run that
    /// several variants share). nil: the plain `ema@<decay>`.
    public var label: String?

    public init(decays: [Double], every: Int = 1, warmup: EMAWarmup = .none, label: String? = nil) {
        self.decays = decays
        self.every = every
        self.warmup = warmup
        self.label = label
    }

    /// The weight set name of a decay: `ema@` and the decay in the shortest form that reads back
    /// as the same Double (`0.999` → `ema@0.999`), then `~<label>` when the entry has one.
    public static func weightSetName(decay: Double, label: String? = nil) -> String {
        "ema@" + JSONValue.format(decay) + (label.map { "~" + $0 } ?? "")
    }

    /// `ema@<decay>` (or `ema@<decay>~<label>`) for each decay, in order.
    public var weightSetNames: [String] { decays.map { EMASpec.weightSetName(decay: $0, label: label) } }

    /// Whether `label` may name weight sets (and so their files): 1–64 of `A–Z a–z 0–9 . _ -`.
    public static func isValidLabel(_ label: String) -> Bool {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-".unicodeScalars)
        return (1...64).contains(label.unicodeScalars.count) && label.unicodeScalars.allSatisfy(allowed.contains)
    }

    static func read(_ r: SpecReader) throws -> EMASpec {
        guard let decays = try r.list("decays", { v, path in try SpecReader.double(v, path, .open(0, 1)) }) else {
            throw SpecError(field: r.path("decays"), message: "is required (a list of decays in (0, 1), e.g. [0.998])")
        }
        if decays.isEmpty {
            throw SpecError(field: r.path("decays"), message: "must list at least one decay")
        }
        let warmup = try r.object("warmup", EMAWarmup.read) ?? EMAWarmup.none
        if case .timm(_, _, let minDecay) = warmup, let smallest = decays.min(), minDecay > smallest {
            throw SpecError(
                field: SpecReader.path(r.path("warmup"), "min_decay"),
                message: "must be at most the smallest decay (\(JSONValue.format(smallest))), got \(JSONValue.format(minDecay))")
        }
        let label = try r.optionalString("label")
        if let label, !isValidLabel(label) {
            throw SpecError(
                field: r.path("label"),
                message:
                    "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-' (it names weight sets and their files), got \(JSONValue.string(label))"
            )
        }
        return EMASpec(decays: decays, every: try r.int("every", default: 1, .atLeast(1)), warmup: warmup, label: label)
    }

    /// The full `{"kind": "ema", …}` object (`label` only when set, so unlabelled specs read as before).
    public func json() -> JSONValue {
        var o: [String: JSONValue] = [
            "kind": "ema", "decays": .array(decays.map { .number($0) }), "every": .number(Double(every)), "warmup": warmup.json(),
        ]
        if let label { o["label"] = .string(label) }
        return .object(o)
    }
}

/// How an EMA's decay ramps up over the first updates (`warmup.kind`; formulas and references in
/// `spec/averaging.md`, "Decay warmup"). Parameters belong to one kind: giving `tau` to `timm` is
/// refused as an unknown field.
public enum EMAWarmup: Equatable, Sendable {
    /// `none`: the decay `d` from the start; the first update copies.
    case none
    /// `timm`: `clamp(1 − (1 + s/γ)^(−p), min_decay, d)` with `s = n − 1` (`gamma` > 0, default 1;
    /// `power` > 0, default 0.75; `min_decay` in [0, 1), default 0).
    case timm(gamma: Double, power: Double, minDecay: Double)
    /// `yolo`: `d · (1 − exp(−n/τ))` (`tau` > 0, default 2000).
    case yolo(tau: Double)
    /// `threshold`: `min(d, (1 + n)/(10 + n))`, n counted from 0.
    case threshold

    /// timm's warmup with the defaults for short runs (γ 1, p 0.75, min_decay 0).
    public static let timmDefault = EMAWarmup.timm(gamma: 1, power: 0.75, minDecay: 0)

    /// `kind` as written in JSON.
    public var kind: String {
        switch self {
        case .none: return "none"
        case .timm: return "timm"
        case .yolo: return "yolo"
        case .threshold: return "threshold"
        }
    }

    private enum Kind: String, CaseIterable { case none, timm, yolo, threshold }

    static func read(_ r: SpecReader) throws -> EMAWarmup {
        guard let kind = try r.optionalChoice("kind", Kind.self) else {
            throw SpecError(field: r.path("kind"), message: "is required (one of none, timm, yolo, threshold)")
        }
        switch kind {
        case .none: return .none
        case .threshold: return .threshold
        case .yolo: return .yolo(tau: try r.double("tau", default: 2000, .greaterThan(0)))
        case .timm:
            return .timm(
                gamma: try r.double("gamma", default: 1, .greaterThan(0)),
                power: try r.double("power", default: 0.75, .greaterThan(0)),
                minDecay: try r.double("min_decay", default: 0, .closedOpen(0, 1)))
        }
    }

    /// The full `warmup` object: `kind` and that kind's parameters.
    public func json() -> JSONValue {
        switch self {
        case .none: return ["kind": "none"]
        case .threshold: return ["kind": "threshold"]
        case .yolo(let tau): return ["kind": "yolo", "tau": .number(tau)]
        case .timm(let gamma, let power, let minDecay):
            return ["kind": "timm", "gamma": .number(gamma), "power": .number(power), "min_decay": .number(minDecay)]
        }
    }
}

/// Stochastic weight averaging (torch.optim.swa_utils): an equal-weight running mean of the
/// weights from `start` on, with SWALR annealing the learning rate to `swa_lr`.
public struct SWASpec: Equatable, Sendable {
    /// When averaging begins.
    public enum Start: Equatable, Sendable {
        /// `start`: a fraction of training in (0, 1); averaging begins at the 0-based epoch index
        /// `floor(start × epochs)`.
        case fraction(Double)
        /// `start_epoch`: a 1-based epoch in 1…epochs.
        case epoch(Int)
    }

    /// `anneal`: the SWALR curve, `cos` (`α(t) = (1 − cos πt)/2`) or `linear`.
    public enum Anneal: String, CaseIterable, Sendable {
        case cos, linear
    }

    /// Default `swa_lr`. 0.01, not torch's customary 0.05: the default recipe's cosine schedule
    /// is already below 0.05 at 75 % of training (0.025 by 70 %), so a `swa_lr` of 0.05 would make
    /// SWALR anneal the learning rate *up* and hurt the raw weights (averaging.md, "SWALR raising
    /// the learning rate").
    public static let defaultSWALR = 0.01

    /// `start` (default 0.75) or `start_epoch`; giving both is refused.
    public var start: Start
    /// `swa_lr` > 0: the learning rate SWALR anneals to and then holds.
    public var swaLR: Double
    /// `anneal_epochs` ≥ 0: epochs over which SWALR anneals from the schedule's value to `swa_lr`.
    public var annealEpochs: Int
    /// `anneal`.
    public var anneal: Anneal
    /// `every`: average every k optimizer steps instead of once per epoch; `nil` = per epoch.
    public var every: Int?

    public init(
        start: Start = .fraction(0.75), swaLR: Double = SWASpec.defaultSWALR, annealEpochs: Int = 2,
        anneal: Anneal = .cos, every: Int? = nil
    ) {
        self.start = start
        self.swaLR = swaLR
        self.annealEpochs = annealEpochs
        self.anneal = anneal
        self.every = every
    }

    /// The 0-based index of the first epoch at whose end the weights are averaged:
    /// `floor(start × epochs)` for a fraction, `start_epoch − 1` for an epoch.
    public func firstEpochIndex(epochs: Int) -> Int {
        switch start {
        case .fraction(let f): return Int((f * Double(epochs)).rounded(.down))
        case .epoch(let e): return e - 1
        }
    }

    static func read(_ r: SpecReader, epochs: Int) throws -> SWASpec {
        let start: Start
        switch (r.has("start"), r.has("start_epoch")) {
        case (true, true):
            throw SpecError(field: r.path("start_epoch"), message: "cannot be given together with start; give one of them")
        case (_, true):
            start = .epoch(try r.int("start_epoch", default: 1, .closed(1, Double(epochs))))
        default:
            start = .fraction(try r.double("start", default: 0.75, .open(0, 1)))
        }
        // Mark both keys as read even when one is null.
        _ = r.value("start")
        _ = r.value("start_epoch")
        return SWASpec(
            start: start,
            swaLR: try r.double("swa_lr", default: defaultSWALR, .greaterThan(0)),
            annealEpochs: try r.int("anneal_epochs", default: 2, .atLeast(0)),
            anneal: try r.choice("anneal", default: .cos),
            every: try r.optionalInt("every", .atLeast(1)))
    }

    /// The full `{"kind": "swa", …}` object (`start` or `start_epoch`, whichever is set).
    public func json() -> JSONValue {
        var o: [String: JSONValue] = [
            "kind": "swa", "swa_lr": .number(swaLR), "anneal_epochs": .number(Double(annealEpochs)),
            "anneal": .string(anneal.rawValue), "every": every.map { .number(Double($0)) } ?? .null,
        ]
        switch start {
        case .fraction(let f): o["start"] = .number(f)
        case .epoch(let e): o["start_epoch"] = .number(Double(e))
        }
        return .object(o)
    }
}
