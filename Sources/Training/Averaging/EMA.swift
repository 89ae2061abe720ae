import Dispatch
import Experiments
import Foundation
import Kernels
import PolyakNetwork

/// Exponential moving average of parameters **and** float buffers, as timm's ModelEmaV3 with
/// torch's lerp: `e ← lerp(e, m, 1 − d)` after every `every` optimizer steps; integer counters are
/// copied. Several decays are tracked at once, all updated in one pass over the model's memory.
final class EMAStrategy: AveragingStrategy {
    let spec: EMASpec
    let index: Int
    let plan: TrainingPlan
    let shadows: [ModelState]
    /// Updates done so far (timm's `step`): the warmup's n, and part of every checkpoint.
    private(set) var updates = 0
    private(set) var lastDecays: [Double]

    init(_ spec: EMASpec, index: Int, plan: TrainingPlan, model: ModelState) {
        self.spec = spec
        self.index = index
        self.plan = plan
        shadows = spec.decays.map { _ in model.copy() }
        lastDecays = spec.decays.map { _ in 0 }
    }

    var weightSetNames: [String] { spec.weightSetNames }

    func afterStep(_ model: ModelState, step: Int) {
        guard step % spec.every == 0 else { return }
        updates += 1
        lastDecays = spec.decays.map { AveragingMath.emaDecay(update: updates, target: $0, warmup: spec.warmup) }
        // 1 − d rounded to Float, as PyTorch passes the weight to lerp_
        let weights = lastDecays.map { Float(1 - $0) }
        AveragingMath.lerp(model.parameters, into: shadows.map(\.parameters), weights: weights)
        AveragingMath.lerp(model.buffers, into: shadows.map(\.buffers), weights: weights)
        for s in shadows { s.batchesTracked = model.batchesTracked }
    }

    func afterEpoch(_ model: ModelState, epoch: Int) {}

    func learningRate(forStep step: Int, scheduled: Double) -> Double? { nil }

    func weightSets(_ context: EvaluationContext) -> [(name: String, state: ModelState)] {
        Array(zip(weightSetNames, shadows))
    }

    func metrics() -> [(key: String, weights: String, value: Double)] {
        zip(weightSetNames, lastDecays).map { ("ema/decay", $0, $1) }
    }

    func warnings() -> [AveragingWarning] {
        let n = plan.totalSteps / spec.every
        var out: [AveragingWarning] = []
        var finals: [Double] = []
        for (name, d) in zip(weightSetNames, spec.decays) {
            let final = AveragingMath.emaDecay(update: n, target: d, warmup: spec.warmup)
            finals.append(final)
            if case .none = spec.warmup {
                let weightOfStart = pow(d, Double(n - 1))
                if weightOfStart > 0.05 {
                    out.append(
                        AveragingWarning(
                            code: "ema_horizon", weights: name,
                            message: String(
                                format:
                                    "horizon longer than the run: after %d updates the first weights still carry %.0f %% of %@ (d^(n-1) > 5 %%); use a smaller decay or a warmup",
                                n, 100 * weightOfStart, name)))
                }
            } else if final < d * (1 - 1e-9) {
                out.append(
                    AveragingWarning(
                        code: "ema_decay_unreached", weights: name,
                        message: String(
                            format: "decay never reaches its target: the %@ warmup ends at %.5f after %d updates, below %g",
                            spec.warmup.kind, final, n, d)))
            }
        }
        // Sets whose decay never leaves the warmup curve compute exactly the same average.
        for i in 0..<spec.decays.count {
            for j in (i + 1)..<spec.decays.count where finals[i] < spec.decays[i] && finals[j] < spec.decays[j] {
                out.append(
                    AveragingWarning(
                        code: "ema_identical", weights: weightSetNames[j],
                        message:
                            "\(weightSetNames[i]) and \(weightSetNames[j]) are the same computation: the warmup keeps both below their targets for the whole run"
                    ))
            }
        }
        return out
    }

    func checkpoint() -> (tensors: [SafetensorsFile.Tensor], metadata: [String: String]) {
        return (
            shadowTensors(weightSetNames, shadows),
            [
                "averaging.ema[\(index)].updates": String(updates),
                "averaging.ema[\(index)].last_decays": lastDecays.map { "\($0)" }.joined(separator: ","),
                "averaging.ema[\(index)].batches_tracked": String(shadows.first?.batchesTracked ?? 0),
            ]
        )
    }

    func restore(from file: SafetensorsFile) throws {
        guard let u = file.metadata["averaging.ema[\(index)].updates"].flatMap(Int.init) else {
            throw ModelFileError.missing("averaging.ema[\(index)].updates")
        }
        updates = u
        let decays = (file.metadata["averaging.ema[\(index)].last_decays"] ?? "").split(separator: ",").compactMap { Double($0) }
        if decays.count == lastDecays.count { lastDecays = decays }
        let tracked = file.metadata["averaging.ema[\(index)].batches_tracked"].flatMap(Int64.init) ?? 0
        try restoreShadows(weightSetNames, shadows, from: file, batchesTracked: tracked)
    }
}

/// Microseconds of one EMA update of `state` (parameters and buffers) tracking `decays` decays at
/// once, median of `repetitions` (for `polyak bench engine`).
public func measureEMAUpdate(_ state: ModelState, decays: Int, repetitions: Int = 200) -> Double {
    let spec = EMASpec(decays: (0..<decays).map { 0.99 + 0.001 * Double($0) })
    let plan = TrainingPlan(epochs: 1, stepsPerEpoch: 1, schedule: LearningRateSchedule(optim: OptimSpec(), stepsPerEpoch: 1))
    let ema = EMAStrategy(spec, index: 0, plan: plan, model: state)
    for step in 1...20 { ema.afterStep(state, step: step) }
    var times: [Double] = []
    for step in 0..<repetitions {
        let start = DispatchTime.now().uptimeNanoseconds
        ema.afterStep(state, step: 21 + step)
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
    }
    return times.sorted()[times.count / 2]
}
