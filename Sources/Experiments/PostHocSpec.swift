/// Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion
/// Models", §3): two power-function EMA profiles tracked while training, with snapshots saved
/// every few steps, from which the weights of any other EMA length are synthesised afterwards
/// (`polyak posthoc`). `{"kind": "posthoc", "sigma_rels": [0.05, 0.10], "snapshots": 100}`.
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

    public init(sigmaRels: [Double] = PostHocSpec.defaultSigmaRels, snapshots: Int = PostHocSpec.defaultSnapshots) {
        self.sigmaRels = sigmaRels
        self.snapshots = snapshots
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
        return PostHocSpec(
            sigmaRels: sigmaRels, snapshots: try r.int("snapshots", default: defaultSnapshots, .closed(2, 1000)))
    }

    /// The full `{"kind": "posthoc", …}` object.
    public func json() -> JSONValue {
        ["kind": "posthoc", "sigma_rels": .array(sigmaRels.map { .number($0) }), "snapshots": .number(Double(snapshots))]
    }
}
