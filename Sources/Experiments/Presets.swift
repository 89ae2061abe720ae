import Foundation

/// A named starting point for a variant (`none`, `ema`, `ema-warmup`, `swa`, `kd`, `fixres`): one
/// word expands to full settings whose defaults avoid the pitfalls of `spec/averaging.md` for the
/// run length at hand (decays chosen from the number of steps, SWALR never raising the rate).
public struct Preset: Sendable {
    public let name: String
    /// One sentence for `GET /api/presets` and the launch form.
    public let summary: String
    private let make: @Sendable (RunLength) -> JSONValue

    init(name: String, summary: String, make: @escaping @Sendable (RunLength) -> JSONValue) {
        self.name = name
        self.summary = summary
        self.make = make
    }

    /// The spec fragment this preset adds to `base` (merged over it, lists replaced).
    public func overlay(for base: JSONValue) -> JSONValue { make(RunLength(base)) }
}

/// What a preset needs to know of the run it configures.
public struct RunLength: Sendable {
    public let epochs: Int
    public let stepsPerEpoch: Int
    public let schedule: LearningRateSchedule
    public var totalSteps: Int { epochs * stepsPerEpoch }

    /// From a base spec; an incomplete or invalid base counts as the defaults.
    public init(_ base: JSONValue) {
        let spec = (try? RunSpec.decode(Self.withoutStrategies(base))) ?? RunSpec()
        let images = spec.data.trainLimit ?? 60_000
        epochs = spec.optim.epochs
        stepsPerEpoch = max(1, images / spec.optim.batchSize)
        schedule = LearningRateSchedule(optim: spec.optim, stepsPerEpoch: stepsPerEpoch)
    }

    /// Distillation without a teacher is incomplete in a base; it does not change the length.
    private static func withoutStrategies(_ base: JSONValue) -> JSONValue {
        guard case .object(var o) = base else { return base }
        o["distillation"] = nil
        return .object(o)
    }
}

public enum Presets {
    public static let all: [Preset] = [
        Preset(name: "none", summary: "No averaging: the raw weights at the end of training, the baseline.") { _ in
            ["averaging": []]
        },
        Preset(
            name: "ema",
            summary:
                "EMA of weights and BN buffers at two decays whose horizons (1/20 and 1/6 of the run) fit its length, no warmup."
        ) { run in
            let t = Double(run.totalSteps)
            let decays = unique([niceDecay(horizon: t / 20), niceDecay(horizon: t / 6)])
            return [
                "averaging": [
                    ["kind": "ema", "decays": .array(decays.map { .number($0) }), "every": 1, "warmup": ["kind": "none"]]
                ]
            ]
        },
        Preset(
            name: "ema-warmup",
            summary: "EMA with timm's decay warmup (power 3/4), with decays the warmup actually reaches within the run."
        ) { run in
            let t = Double(run.totalSteps)
            // timm's warmup ends near 1 − T^(−p): a larger target is never reached (averaging.md).
            let reachable = 1 - roundUpOneDigit(pow(t, -0.75))
            let decays = unique([min(niceDecay(horizon: t / 20), reachable), reachable])
            return [
                "averaging": [
                    [
                        "kind": "ema", "decays": .array(decays.map { .number($0) }), "every": 1,
                        "warmup": ["kind": "timm", "gamma": 1, "power": 0.75],
                    ]
                ]
            ]
        },
        Preset(
            name: "swa",
            summary:
                "SWA over the last quarter of training, SWALR annealing down to a rate below the schedule's there, BN recomputed."
        ) { run in
            let startEpoch = Int((0.75 * Double(run.epochs)).rounded(.down))
            let at = run.schedule.rate(at: startEpoch * run.stepsPerEpoch)
            let swaLR = max(roundDownOneDigit(at), 1e-4)
            return [
                "averaging": [
                    [
                        "kind": "swa", "start": 0.75, "swa_lr": .number(swaLR),
                        "anneal_epochs": .number(Double(max(1, (run.epochs - startEpoch) / 2))), "anneal": "cos",
                    ]
                ]
            ]
        },
        Preset(
            name: "kd",
            summary: "Knowledge distillation (T = 4, α = 0.5) from an earlier run's weights; give distillation.teacher_run."
        ) { _ in
            ["distillation": ["teacher_weights": "raw", "temperature": 4, "alpha": 0.5]]
        },
        Preset(
            name: "fixres",
            summary:
                "FixRes: train at 20 px with RandomResizedCrop, test over a resize × crop grid, fine-tune fc and the last BN at 28 px."
        ) { _ in
            [
                "data": [
                    "augment": [
                        "pad_crop": 0, "hflip": true, "random_resized_crop": ["scale": [0.35, 1], "ratio": [0.75, 1.3333]],
                    ]
                ],
                "resolution": [
                    "train_size": 20, "test_size": 28,
                    "test_grid": ["resize": [20, 24, 28, 32], "crop": [20, 24, 28]],
                    "finetune": ["epochs": 1, "lr": 0.01],
                ],
            ]
        },
    ]

    public static func named(_ name: String) -> Preset? { all.first { $0.name == name } }

    /// base, then the preset's overlay, then the variant's own `spec`, merged in that order
    /// (objects key by key, lists and scalars replaced), then validated.
    public static func expand(base: JSONValue, preset: String?, variant: JSONValue?) throws -> RunSpec {
        var merged = base
        if let preset {
            guard let p = named(preset) else {
                throw SpecError(
                    field: "preset", message: "unknown preset \"\(preset)\" (one of \(all.map(\.name).joined(separator: ", ")))")
            }
            merged = merged.merged(with: p.overlay(for: base))
        }
        if let variant { merged = merged.merged(with: variant) }
        return try RunSpec.decode(merged)
    }

    /// `1 − 1/horizon` with `1/horizon` rounded to one significant digit (0.00427 → 0.004 → 0.996).
    static func niceDecay(horizon: Double) -> Double {
        let rate = 1 / max(horizon, 2)
        let magnitude = pow(10, (log10(rate)).rounded(.down))
        let digit = max(1, (rate / magnitude).rounded())
        return 1 - digit * magnitude
    }

    static func roundUpOneDigit(_ x: Double) -> Double {
        let magnitude = pow(10, (log10(x)).rounded(.down))
        return (x / magnitude).rounded(.up) * magnitude
    }

    static func roundDownOneDigit(_ x: Double) -> Double {
        guard x > 0 else { return 0 }
        let magnitude = pow(10, (log10(x)).rounded(.down))
        return (x / magnitude).rounded(.down) * magnitude
    }

    /// Removes repeats (and rounding noise) while keeping order.
    static func unique(_ xs: [Double]) -> [Double] {
        var out: [Double] = []
        for x in xs.map({ ($0 * 1e10).rounded() / 1e10 }) where !out.contains(x) { out.append(x) }
        return out
    }
}
