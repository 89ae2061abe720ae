import Experiments
import Foundation
import PolyakNetwork

/// What a strategy knows about the run it averages.
public struct TrainingPlan: Sendable {
    public let epochs: Int
    public let stepsPerEpoch: Int
    public let schedule: LearningRateSchedule
    public var totalSteps: Int { epochs * stepsPerEpoch }
}

/// A warning computed from the spec and the schedule before training (`averaging.md`, "Pitfalls").
public struct AveragingWarning: Sendable, Equatable {
    public let code: String
    public let weights: String?
    public let message: String
}

/// Services the trainer lends a strategy when it prepares weights for evaluation.
public struct EvaluationContext {
    /// Recomputes a state's BN running statistics over the training data (`update_bn`: reset, then
    /// an equal-weight average over every batch, train-mode forward passes).
    public let recomputeBatchNorm: (ModelState) -> Void
}

/// A weight-averaging strategy. The trainer calls it only at these hooks, in this order:
/// `afterStep` after every optimizer step, `afterEpoch` when an epoch's steps are done, then
/// `weightSets` before evaluation. `learningRate` may override the schedule (SWALR).
/// A strategy never writes the model it averages, so evaluating its weights cannot disturb training.
public protocol AveragingStrategy: AnyObject {
    /// The weight sets it maintains (`ema@0.999`, `swa`), in the order they are reported.
    var weightSetNames: [String] { get }

    /// After optimizer step `step` (counted from 1) of the run.
    func afterStep(_ model: ModelState, step: Int)

    /// After epoch `epoch` (counted from 1) has finished its steps.
    func afterEpoch(_ model: ModelState, epoch: Int)

    /// The learning rate for `step` (0-based index of the step about to run) when the strategy
    /// takes over the schedule, else nil.
    func learningRate(forStep step: Int, scheduled: Double) -> Double?

    /// The weight sets ready to evaluate now (none before averaging has begun), prepared for
    /// evaluation (SWA recomputes its BN statistics here).
    func weightSets(_ context: EvaluationContext) -> [(name: String, state: ModelState)]

    /// Whether the sets from `weightSets` already carry BN statistics measured for their own
    /// parameters (SWA runs `update_bn` there): precise BN then leaves them alone rather than
    /// measure them again on fewer batches.
    var batchNormStatisticsAreFresh: Bool { get }

    /// Metrics to log with each evaluation (`ema/decay`).
    func metrics() -> [(key: String, weights: String, value: Double)]

    /// Pitfalls of this configuration for this run (`averaging.md`).
    func warnings() -> [AveragingWarning]

    /// State that a checkpoint must carry for resume to be exact.
    func checkpoint() -> (tensors: [SafetensorsFile.Tensor], metadata: [String: String])

    /// Restores what `checkpoint()` wrote.
    func restore(from file: SafetensorsFile) throws

    /// Files to save in the run folder after optimizer step `step` (post-hoc EMA's snapshots),
    /// as paths relative to the run folder; usually none.
    func snapshots(afterStep step: Int) -> [(path: String, file: SafetensorsFile)]
}

extension AveragingStrategy {
    /// Most strategies average the BN buffers along with the parameters, or not at all.
    public var batchNormStatisticsAreFresh: Bool { false }

    public func snapshots(afterStep step: Int) -> [(path: String, file: SafetensorsFile)] { [] }
}

/// Builds the strategies a spec asks for (`averaging`), each starting from the model as it is now.
public func makeAveragingStrategies(_ spec: RunSpec, plan: TrainingPlan, model: ModelState) -> [AveragingStrategy] {
    var out: [AveragingStrategy] = []
    for (i, a) in spec.averaging.enumerated() {
        switch a {
        case .none: break
        case .ema(let ema): out.append(EMAStrategy(ema, index: i, plan: plan, model: model))
        case .swa(let swa): out.append(SWAStrategy(swa, plan: plan, model: model))
        case .posthoc(let p): out.append(PostHocEMAStrategy(p, plan: plan, model: model))
        }
    }
    return out
}

extension SafetensorsFile {
    /// A flat F32 tensor the strategy stored, checked for its length.
    func flat(_ name: String, count: Int) throws -> [Float] {
        guard let t = self[name], let v = t.floats, v.count == count else {
            throw ModelFileError.missing(name)
        }
        return v
    }
}

/// Shadow weight sets as checkpoint tensors, `averaging.<name>.parameters` and `.buffers` (EMA,
/// post-hoc EMA).
func shadowTensors(_ names: [String], _ shadows: [ModelState]) -> [SafetensorsFile.Tensor] {
    zip(names, shadows).flatMap { name, s in
        [
            SafetensorsFile.Tensor(name: "averaging.\(name).parameters", floats: s.parameters.array, shape: [s.parameters.count]),
            SafetensorsFile.Tensor(name: "averaging.\(name).buffers", floats: s.buffers.array, shape: [s.buffers.count]),
        ]
    }
}

/// Restores what ``shadowTensors(_:_:)`` wrote.
func restoreShadows(_ names: [String], _ shadows: [ModelState], from file: SafetensorsFile, batchesTracked: Int64) throws {
    for (name, s) in zip(names, shadows) {
        let p = try file.flat("averaging.\(name).parameters", count: s.parameters.count)
        let b = try file.flat("averaging.\(name).buffers", count: s.buffers.count)
        p.withUnsafeBufferPointer { s.parameters.pointer.update(from: $0.baseAddress!, count: p.count) }
        b.withUnsafeBufferPointer { if !b.isEmpty { s.buffers.pointer.update(from: $0.baseAddress!, count: b.count) } }
        s.batchesTracked = batchesTracked
    }
}
