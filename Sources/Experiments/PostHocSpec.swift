import Foundation

/// Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion
/// Models", §3): two power-function EMA profiles tracked while training, with snapshots saved
/// every few steps, from which the weights of any other EMA length are synthesised afterwards
/// (`polyak posthoc`, and the sweep at the end of `polyak train`).
/// `{"kind": "posthoc", "sigma_rels": [0.05, 0.10], "snapshots": 100, "sweep": null, "sweep_bn": "precise"}`.
public struct PostHocSpec: Equatable, Sendable {
    /// The widest relative width accepted: 0.25 is already close to a plain average of the whole
    /// run (a power function's σ_rel cannot exceed √(1/12) ≈ 0.289, the uniform average's).
    public static let widestSigmaRel = 0.25
    public static let defaultSigmaRels = [0.05, 0.10]
    public static let defaultSnapshots = 100

    /// `sigma_rels`: the tracked profiles' relative widths (σ of the averaging profile over the
    /// step count), each in (0, 0.25], unique; one weight set `phema@<σ_rel>` each.
    public var sigmaRels: [Double]
    /// `snapshots` in [2, 1000]: about how many snapshots of each profile are saved over the run
    /// (every ⌊total steps / snapshots⌋ steps, and always the last step).
    public var snapshots: Int
    /// `sweep`: the widths of the EMA-length sweep `polyak train` synthesises and evaluates after
    /// the last epoch, each in (0, 0.25], unique, at most ``maxSweep``; `nil` (absent or `null`):
    /// the default sweep (``defaultSweepWidths``, the tracked widths and the run's EMA decays as
    /// widths); `[]`: no sweep.
    public var sweep: [Double]?
    /// `sweep_bn`: where a synthesised set's BN statistics come from in the sweep.
    public var sweepBatchNorm: SweepBatchNorm

    /// `precise` (default): re-measured on `precise_bn.batches` training batches
    /// (``sweepPreciseBatches`` without `precise_bn`); `synthesized`: the snapshots' running
    /// statistics combined like the weights (free, but they were measured for the raw weights of
    /// each snapshot's step, not for the average: on a 64-step run they cost a wide width 9 points).
    public enum SweepBatchNorm: String, CaseIterable, Sendable {
        case synthesized, precise
    }

    public static let maxSweep = 100
    /// Precise-BN batches per width of the sweep when the run sets no `precise_bn`.
    public static let sweepPreciseBatches = 50

    /// The sweep's default grid: 16 widths log-spaced from 0.01 to 0.25 (the widest accepted),
    /// rounded to two significant digits so each names a readable set (`phema@0.036`).
    public static let defaultSweepWidths: [Double] = (0..<16).map { i in
        let x = 0.01 * pow(25, Double(i) / 15)
        // Dividing by an exact power of ten gives the Double nearest to the decimal (36 / 1000 = 0.036).
        let p = pow(10, 1 - floor(log10(x)))
        return (x * p).rounded() / p
    }

    public init(
        sigmaRels: [Double] = PostHocSpec.defaultSigmaRels, snapshots: Int = PostHocSpec.defaultSnapshots,
        sweep: [Double]? = nil, sweepBatchNorm: SweepBatchNorm = .precise
    ) {
        self.sigmaRels = sigmaRels
        self.snapshots = snapshots
        self.sweep = sweep
        self.sweepBatchNorm = sweepBatchNorm
    }

    /// The relative width of a classical EMA of decay `decay` updated every `every` steps, seen at
    /// step `steps`: its geometric weights have a standard deviation of every · √d / (1 − d) steps
    /// (Training's `PowerFunctionEMA.classicalDecay` is the inverse for every = 1). How a run's
    /// `ema@<decay>` sets are placed on the EMA-length sweep.
    public static func sigmaRel(emaDecay decay: Double, every: Int = 1, steps: Int) -> Double {
        Double(every) * decay.squareRoot() / (1 - decay) / Double(max(1, steps))
    }

    /// `phema@` and the width in the shortest form that reads back as the same Double.
    public static func weightSetName(sigmaRel: Double) -> String { "phema@" + JSONValue.format(sigmaRel) }

    public var weightSetNames: [String] { sigmaRels.map { PostHocSpec.weightSetName(sigmaRel: $0) } }

    /// Steps between snapshots for a run of `totalSteps` steps.
    public func snapshotInterval(totalSteps: Int) -> Int { max(1, totalSteps / max(1, snapshots)) }

    static func read(_ r: SpecReader) throws -> PostHocSpec {
        let widths = Interval.openClosed(0, widestSigmaRel)
        let sigmaRels =
            try r.list("sigma_rels") { v, path in try SpecReader.double(v, path, widths) } ?? defaultSigmaRels
        if sigmaRels.isEmpty {
            throw SpecError(field: r.path("sigma_rels"), message: "must list at least one width, e.g. [0.05, 0.10]")
        }
        for (i, s) in sigmaRels.enumerated() where sigmaRels[..<i].contains(s) {
            throw SpecError(
                field: SpecReader.path(r.path("sigma_rels"), index: i),
                message: "repeats the width \(JSONValue.format(s)); each names one weight set (\(weightSetName(sigmaRel: s)))")
        }
        let sweep = try r.list("sweep") { v, path in try SpecReader.double(v, path, widths) }
        if let sweep {
            if sweep.count > maxSweep {
                throw SpecError(
                    field: r.path("sweep"),
                    message: "lists \(sweep.count) widths; at most \(maxSweep) (each costs a test-set evaluation)")
            }
            for (i, s) in sweep.enumerated() where sweep[..<i].contains(s) {
                throw SpecError(
                    field: SpecReader.path(r.path("sweep"), index: i), message: "repeats the width \(JSONValue.format(s))")
            }
        }
        return PostHocSpec(
            sigmaRels: sigmaRels, snapshots: try r.int("snapshots", default: defaultSnapshots, .closed(2, 1000)),
            sweep: sweep, sweepBatchNorm: try r.choice("sweep_bn", default: SweepBatchNorm.precise))
    }

    /// The full `{"kind": "posthoc", …}` object.
    public func json() -> JSONValue {
        [
            "kind": "posthoc", "sigma_rels": .array(sigmaRels.map { .number($0) }), "snapshots": .number(Double(snapshots)),
            "sweep": sweep.map { .array($0.map { .number($0) }) } ?? .null, "sweep_bn": .string(sweepBatchNorm.rawValue),
        ]
    }
}
