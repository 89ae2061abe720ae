import Experiments
import Foundation
import Kernels
import PolyakNetwork

/// Stochastic weight averaging as torch.optim.swa_utils: `AveragedModel` keeps an equal-weight
/// running mean of the parameters, `a ← a + (m − a)/(n + 1)` (the first update copies), at the end
/// of every epoch from `start` on (or every `every` steps); `SWALR` anneals the learning rate to
/// `swa_lr`; the BN statistics of the average are recomputed (`update_bn`) before it is evaluated.
final class SWAStrategy: AveragingStrategy {
    let spec: SWASpec
    let plan: TrainingPlan
    /// 0-based epoch index from which averaging (and SWALR) runs.
    let firstEpoch: Int
    let average: ModelState
    private(set) var count = 0
    /// Whether `average`'s BN statistics are those of its current parameters.
    private var batchNormCurrent = false

    init(_ spec: SWASpec, plan: TrainingPlan, model: ModelState) {
        self.spec = spec
        self.plan = plan
        firstEpoch = spec.firstEpochIndex(epochs: plan.epochs)
        average = model.copy()
    }

    var weightSetNames: [String] { ["swa"] }

    private func epochIndex(ofStep step: Int) -> Int { step / plan.stepsPerEpoch }

    func afterStep(_ model: ModelState, step: Int) {
        guard let every = spec.every else { return }
        if epochIndex(ofStep: step - 1) >= firstEpoch && step % every == 0 { update(model) }
    }

    func afterEpoch(_ model: ModelState, epoch: Int) {
        if spec.every == nil && epoch - 1 >= firstEpoch { update(model) }
    }

    private func update(_ model: ModelState) {
        let a = average.parameters.pointer, m = model.parameters.pointer
        let n = average.parameters.count
        if count == 0 {
            a.update(from: m, count: n)
        } else {
            let inv = 1 / Float(count + 1)
            for i in 0..<n { a[i] += (m[i] - a[i]) * inv }
        }
        count += 1
        batchNormCurrent = false
    }

    /// The schedule's rate where SWA begins, from which SWALR anneals.
    private var startRate: Double { plan.schedule.rate(at: firstEpoch * plan.stepsPerEpoch) }

    func learningRate(forStep step: Int, scheduled: Double) -> Double? {
        let e = epochIndex(ofStep: step)
        guard e >= firstEpoch else { return nil }
        return AveragingMath.swaLearningRate(
            epochsSinceStart: e - firstEpoch, from: startRate, swaLR: spec.swaLR,
            annealEpochs: spec.annealEpochs, anneal: spec.anneal)
    }

    func weightSets(_ context: EvaluationContext) -> [(name: String, state: ModelState)] {
        guard count > 0 else { return [] }
        if !batchNormCurrent {
            context.recomputeBatchNorm(average)
            batchNormCurrent = true
        }
        return [("swa", average)]
    }

    /// `weightSets` has just run `update_bn` over a full epoch of batches.
    var batchNormStatisticsAreFresh: Bool { true }

    func metrics() -> [(key: String, weights: String, value: Double)] {
        count > 0 ? [("swa/models", "swa", Double(count))] : []
    }

    func warnings() -> [AveragingWarning] {
        var out: [AveragingWarning] = []
        if firstEpoch >= plan.epochs {
            out.append(
                AveragingWarning(
                    code: "swa_never_starts", weights: "swa",
                    message: "SWA starts at epoch index \(firstEpoch), after the last epoch"))
        }
        let at = startRate
        if spec.swaLR > at {
            out.append(
                AveragingWarning(
                    code: "swalr_raises_lr", weights: "swa",
                    message: String(
                        format:
                            "SWALR anneals the learning rate up: swa_lr %g is above the schedule's %.4g at epoch %d, so the raw weights train at a higher rate from there",
                        spec.swaLR, at, firstEpoch + 1)))
        }
        return out
    }

    func checkpoint() -> (tensors: [SafetensorsFile.Tensor], metadata: [String: String]) {
        (
            [.init(name: "averaging.swa.parameters", floats: average.parameters.array, shape: [average.parameters.count])],
            ["averaging.swa.count": String(count)]
        )
    }

    func restore(from file: SafetensorsFile) throws {
        guard let c = file.metadata["averaging.swa.count"].flatMap(Int.init) else {
            throw ModelFileError.missing("averaging.swa.count")
        }
        count = c
        let p = try file.flat("averaging.swa.parameters", count: average.parameters.count)
        p.withUnsafeBufferPointer { average.parameters.pointer.update(from: $0.baseAddress!, count: p.count) }
        batchNormCurrent = false
    }
}
