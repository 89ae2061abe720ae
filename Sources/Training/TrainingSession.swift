import Datasets
import Experiments
import Foundation
import PolyakNetwork

/// Everything one run holds while it trains, from the first step (or the resumed checkpoint) to
/// the summary. Its counters are what a checkpoint saves and restores.
final class TrainingSession {
    let data: RunData
    let plan: TrainingPlan
    let exec: ResNetExecutor
    let state: ModelState
    let sgd: SGD
    let evaluator: Evaluator
    let filler: BatchFiller
    let batchNorm: BatchNormRecompute
    var strategies: [AveragingStrategy] = []
    var distillation: Distillation?
    var rng: Xoshiro256
    var epoch = 0
    var step = 0

    // Clocks and counters for the reports; not part of a checkpoint, except `costs`.

    /// When this process started the run: `wall_s` counts from here.
    let started: Date
    /// The step this process began at (0, or the resumed checkpoint's), for throughput.
    var stepsAtStart = 0
    /// Seconds in finished epochs' training steps (evaluation and checkpoints excluded).
    var trainingSeconds = 0.0
    var lastProgress = Date.distantPast
    /// Steps accumulated toward the next `log_every` report; it runs across epoch ends.
    var window = (loss: 0.0, correct: 0, steps: 0)
    /// The learning rate of the last step taken, reported as `train/lr`.
    var learningRate = 0.0
    /// Where the run's time went, over every process that trained it (part of a checkpoint).
    let costs: RunCosts
    /// The weight sets prepared at the end of the last epoch trained in this process, and their
    /// evaluations: the final report and exports reuse them rather than preparing (SWA's
    /// update_bn, precise BN) and evaluating the same weights twice.
    var lastSets: [(name: String, state: ModelState)]?
    var lastEvaluation: [String: Evaluation] = [:]

    init(
        data: RunData, plan: TrainingPlan, exec: ResNetExecutor, state: ModelState, sgd: SGD, evaluator: Evaluator,
        filler: BatchFiller, seed: UInt64, started: Date, costs: RunCosts
    ) {
        self.costs = costs
        self.data = data
        self.plan = plan
        self.exec = exec
        self.state = state
        self.sgd = sgd
        self.evaluator = evaluator
        self.filler = filler
        batchNorm = BatchNormRecompute(exec: exec, filler: filler, stepsPerEpoch: plan.stepsPerEpoch, seed: seed)
        rng = Xoshiro256(seed: seed)
        self.started = started
    }

    var batch: Int { exec.batch }

    /// Images per second over the steps this process trained, given the training time so far.
    func imagesPerSecond(seconds: Double) -> Double {
        Double((step - stepsAtStart) * batch) / max(seconds, 1e-9)
    }
}
