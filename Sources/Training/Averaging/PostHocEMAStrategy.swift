import Experiments
import Foundation
import Kernels
import PolyakNetwork

/// Post-hoc EMA while training (Karras et al. 2024, §3): one power-function EMA profile per
/// `sigma_rels` width, of parameters **and** buffers like EMA, updated after every step with
/// β_t = (1 − 1/t)^(γ+1); each profile is a weight set (`phema@0.05`) and its snapshots, saved
/// every ⌊steps / snapshots⌋ steps and at the last step, are what `polyak posthoc` synthesises
/// other lengths from (`PostHocSynthesis`).
final class PostHocEMAStrategy: AveragingStrategy {
    let spec: PostHocSpec
    let plan: TrainingPlan
    let gammas: [Double]
    let shadows: [ModelState]
    let interval: Int

    /// Where a profile's snapshot at `step` lives in the run folder.
    static func snapshotPath(weights: String, step: Int) -> String {
        String(format: "%@/%@/step-%07d.safetensors", PostHocSynthesis.folder, weights, step)
    }

    init(_ spec: PostHocSpec, plan: TrainingPlan, model: ModelState) {
        self.spec = spec
        self.plan = plan
        gammas = spec.sigmaRels.map { PowerFunctionEMA.gamma(sigmaRel: $0) }
        shadows = spec.sigmaRels.map { _ in model.copy() }
        interval = spec.snapshotInterval(totalSteps: plan.totalSteps)
    }

    var weightSetNames: [String] { spec.weightSetNames }

    func afterStep(_ model: ModelState, step: Int) {
        // 1 − β rounded to Float, the weight lerp takes (β = 0 at step 1: the profile starts as a copy)
        let weights = gammas.map { Float(1 - PowerFunctionEMA.beta(step: step, gamma: $0)) }
        AveragingMath.lerp(model.parameters, into: shadows.map(\.parameters), weights: weights)
        AveragingMath.lerp(model.buffers, into: shadows.map(\.buffers), weights: weights)
        for s in shadows { s.batchesTracked = model.batchesTracked }
    }

    func snapshots(afterStep step: Int) -> [(path: String, file: SafetensorsFile)] {
        guard step % interval == 0 || step == plan.totalSteps else { return [] }
        return zip(spec.sigmaRels, zip(gammas, shadows)).map { sigma, profile in
            let name = PostHocSpec.weightSetName(sigmaRel: sigma)
            let metadata = [
                "weights": name, "step": String(step), "sigma_rel": "\(sigma)",
                "gamma": "\(profile.0)", "total_steps": String(plan.totalSteps),
            ]
            return (Self.snapshotPath(weights: name, step: step), profile.1.stateDict(metadata: metadata))
        }
    }

    func afterEpoch(_ model: ModelState, epoch: Int) {}

    func learningRate(forStep step: Int, scheduled: Double) -> Double? { nil }

    func weightSets(_ context: EvaluationContext) -> [(name: String, state: ModelState)] {
        Array(zip(weightSetNames, shadows))
    }

    func metrics() -> [(key: String, weights: String, value: Double)] { [] }

    func warnings() -> [AveragingWarning] {
        let count = plan.totalSteps / interval + (plan.totalSteps % interval == 0 ? 0 : 1)
        guard count < spec.snapshots / 2 else { return [] }
        return [
            AveragingWarning(
                code: "posthoc_few_snapshots", weights: nil,
                message:
                    "only \(count) snapshots per profile: the run has \(plan.totalSteps) steps for \(spec.snapshots) asked; synthesised lengths will be coarse"
            )
        ]
    }

    func checkpoint() -> (tensors: [SafetensorsFile.Tensor], metadata: [String: String]) {
        (
            shadowTensors(weightSetNames, shadows),
            ["averaging.posthoc.batches_tracked": String(shadows.first?.batchesTracked ?? 0)]
        )
    }

    func restore(from file: SafetensorsFile) throws {
        let tracked = file.metadata["averaging.posthoc.batches_tracked"].flatMap(Int64.init) ?? 0
        try restoreShadows(weightSetNames, shadows, from: file, batchesTracked: tracked)
    }
}

/// Microseconds of one post-hoc EMA update of `state` tracking `widths` profiles, and of writing
/// one snapshot of every profile to a temporary folder, medians of `repetitions` (for `polyak
/// bench engine`: tracking must stay a small part of a training step).
public func measurePostHocUpdate(_ state: ModelState, widths: Int = 2, repetitions: Int = 200) -> (
    updateMicroseconds: Double, snapshotMicroseconds: Double
) {
    let spec = PostHocSpec(sigmaRels: (0..<widths).map { 0.05 + 0.05 * Double($0) }, snapshots: 100)
    let plan = TrainingPlan(
        epochs: 1, stepsPerEpoch: 100_000, schedule: LearningRateSchedule(optim: OptimSpec(), stepsPerEpoch: 1))
    let strategy = PostHocEMAStrategy(spec, plan: plan, model: state)
    var updates: [Double] = [], snapshots: [Double] = []
    let folder = RunFolder(FileManager.default.temporaryDirectory.appendingPathComponent("polyak-bench-\(UUID())").path)
    defer { try? FileManager.default.removeItem(atPath: folder.directory) }
    for step in 1...repetitions {
        let start = DispatchTime.now().uptimeNanoseconds
        strategy.afterStep(state, step: step + 1000)
        updates.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
        if step % 20 == 0 {
            let start = DispatchTime.now().uptimeNanoseconds
            for s in strategy.snapshots(afterStep: strategy.interval * step) { try? folder.writeSnapshot(s.file, at: s.path) }
            snapshots.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
        }
    }
    return (updates.sorted()[updates.count / 2], snapshots.sorted()[snapshots.count / 2])
}
