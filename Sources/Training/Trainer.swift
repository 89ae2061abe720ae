import Datasets
import Experiments
import Foundation
import Kernels
import PolyakNetwork

/// Why a run could not start (exit 2) or stopped (exit 1).
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// A bad spec, missing or corrupt data, an unusable run folder: nothing was trained.
    case badInput(String)
    /// Something went wrong while training.
    case failed(String)

    public var description: String {
        switch self {
        case .badInput(let m), .failed(let m): m
        }
    }
}

/// How a run ended.
public struct RunOutcome: Sendable, Equatable {
    public let status: TrainerEvent.Summary.Status
    public let reason: String?
    public var exitCode: Int32 { status == .completed ? 0 : 1 }
}

/// Set from a signal handler to ask the trainer to stop at the next step boundary.
public enum StopRequest {
    nonisolated(unsafe) private static let flag: UnsafeMutablePointer<Int32> = {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    public static var isSet: Bool { flag.pointee != 0 }
    public static func set() { flag.pointee = 1 }
    public static func reset() { flag.pointee = 0 }

    /// SIGTERM and SIGINT ask for a stop; the trainer finishes the step and exits cleanly.
    public static func installSignalHandlers() {
        _ = flag
        signal(SIGTERM) { _ in StopRequest.set() }
        signal(SIGINT) { _ in StopRequest.set() }
    }
}

/// Trains one run spec: the loop of `polyak train`. Writes the run folder (``RunFolder``) and
/// reports through an `EventSink`: epochs of steps, an evaluation and a checkpoint at each epoch's
/// end, then the final evaluation, grids, FixRes fine-tuning and exports (`Trainer+Finish.swift`).
public final class Trainer {
    public let spec: RunSpec
    public let directory: String
    public let events: EventSink
    public let model: ResNetMini
    public let workers: Workers
    let folder: RunFolder

    public init(spec: RunSpec, directory: String, events: EventSink) throws {
        self.spec = spec
        self.directory = directory
        self.events = events
        model = ResNetMini(width: spec.model.width, depth: spec.model.depth)
        workers = Workers(spec.threads)
        folder = RunFolder(directory)
    }

    /// Trains (or continues, with `resume`) and returns how the run ended. Throws `badInput`
    /// before anything is trained when the spec, the data or the folder is unusable.
    public func run(resume: Bool = false) throws -> RunOutcome {
        let started = Date()
        let clock = CostClock.now()
        try folder.prepare()
        let run = try startSession(resume: resume, started: started, costs: RunCosts(processStart: clock))
        try folder.writeSpec(spec)
        for s in run.strategies {
            for w in s.warnings() { events.warning(code: w.code, weights: w.weights, message: w.message) }
        }
        run.costs.setup.add(since: clock)
        while run.epoch < run.plan.epochs {
            if let stopped = trainEpoch(run) { return stopped }
            try endEpoch(run)
        }
        return try finish(run)
    }

    // MARK: starting

    /// Loads the data (and the teacher), then starts from a fresh model or from the newest
    /// checkpoint. The averaging strategies start from the model as initialized; a checkpoint then
    /// overwrites their state with its own.
    private func startSession(resume: Bool, started: Date, costs: RunCosts) throws -> TrainingSession {
        let data = try RunData(spec: spec)
        let batch = spec.optim.batchSize
        let stepsPerEpoch = data.train.count / batch
        guard stepsPerEpoch > 0 else {
            throw TrainingError.badInput("optim.batch_size: \(batch) is more than the \(data.train.count) training images")
        }
        let plan = TrainingPlan(
            epochs: spec.optim.epochs, stepsPerEpoch: stepsPerEpoch,
            schedule: LearningRateSchedule(optim: spec.optim, stepsPerEpoch: stepsPerEpoch))
        let size = spec.resolution.trainSize
        let run = TrainingSession(
            data: data, plan: plan,
            exec: ResNetExecutor(model: model, batch: batch, height: size, width: size, trainable: true, workers: workers),
            state: ModelState(layout: model.layout), sgd: SGD(layout: model.layout, optim: spec.optim),
            evaluator: Evaluator(images: data.test, model: model, workers: workers),
            filler: BatchFiller(images: data.train, augment: spec.data.augment, size: size), seed: spec.seed, started: started,
            costs: costs)
        if let kd = spec.distillation { run.distillation = try Distillation(kd, batch: batch, size: size, workers: workers) }

        let checkpoint = resume ? try folder.newestCheckpoint() : nil
        if checkpoint == nil {
            model.initialize(run.state, using: &run.rng)
            folder.removeCheckpoints()
        }
        run.strategies = makeAveragingStrategies(spec, plan: plan, model: run.state)
        if let cp = checkpoint {
            do {
                try cp.restore(into: run.state, sgd: run.sgd)
                for s in run.strategies { try s.restore(from: cp.file) }
                // A checkpoint written before the costs were measured has none: they count from here.
                if let text = cp.file.metadata[RunCosts.metadataKey] {
                    run.costs.restore(try TrainerEvent.Summary.Timing(json: try JSONValue.parse(Data(text.utf8))))
                }
            } catch {
                throw TrainingError.badInput("cannot resume from \(Checkpoint.newest(in: directory) ?? directory): \(error)")
            }
            run.rng.state = cp.rngState
            run.epoch = cp.epoch
            run.step = cp.step
            log("resuming \(directory) after epoch \(cp.epoch) (step \(cp.step))")
        }
        run.stepsAtStart = run.step
        run.learningRate = plan.schedule.rate(at: max(0, run.step - 1))
        return run
    }

    // MARK: the loop

    /// The steps of one epoch. Returns how the run ended when it stopped early (a signal asked
    /// for it, or the loss diverged), after writing the summary; nil when the epoch completed.
    private func trainEpoch(_ run: TrainingSession) -> RunOutcome? {
        let epochClock = Date()
        let batch = run.batch
        let permutation = run.rng.permutation(count: run.data.train.count)
        let smoothing = Float(spec.optim.labelSmoothing)
        var epochLoss = 0.0, epochCorrect = 0
        func trainedSeconds() -> Double { run.trainingSeconds + Date().timeIntervalSince(epochClock) }
        for i in 0..<run.plan.stepsPerEpoch {
            if StopRequest.isSet {
                let reason = "stopped by a signal at step \(run.step); resumable from epoch \(run.epoch)"
                return stop(run, .cancelled, reason: reason, imagesPerSecond: run.imagesPerSecond(seconds: trainedSeconds()))
            }
            let stepClock = CostClock.now()
            let teacherBefore = run.costs.teacher.nanoseconds
            let scheduled = run.plan.schedule.rate(at: run.step)
            run.learningRate =
                run.strategies.lazy.compactMap { $0.learningRate(forStep: run.step, scheduled: scheduled) }.first
                ?? scheduled
            run.filler.fill(run.exec, indices: permutation[(i * batch)..<((i + 1) * batch)], rng: &run.rng)
            let r =
                run.distillation?.trainingStep(
                    run.exec, run.state, classes: model.classes, labelSmoothing: smoothing, teacherClock: &run.costs.teacher)
                ?? run.exec.trainingStep(run.state, labelSmoothing: smoothing)
            run.step += 1
            guard r.lossSum.isFinite else {
                events.metric("train/loss", step: run.step, epoch: run.epoch + 1, value: r.lossSum / Double(batch))
                return stop(
                    run, .failed, reason: "diverged at step \(run.step)",
                    imagesPerSecond: run.imagesPerSecond(seconds: trainedSeconds()))
            }
            run.sgd.step(run.state, lr: Float(run.learningRate))
            // The teacher's forward is its own part; each strategy's update and snapshots are
            // its weight sets' averaging.
            var clock = run.costs.train.add(since: stepClock, excluding: run.costs.teacher.nanoseconds &- teacherBefore)
            do {
                for s in run.strategies {
                    s.afterStep(run.state, step: run.step)
                    for snapshot in s.snapshots(afterStep: run.step) {
                        try folder.writeSnapshot(snapshot.file, at: snapshot.path)
                    }
                    clock = run.costs.share(since: clock, \.averaging, among: s.weightSetNames)
                }
            } catch {
                return stop(run, .failed, reason: "\(error)", imagesPerSecond: run.imagesPerSecond(seconds: trainedSeconds()))
            }
            epochLoss += r.lossSum
            epochCorrect += r.correct
            if let every = spec.logEvery {
                run.window.loss += r.lossSum
                run.window.correct += r.correct
                run.window.steps += 1
                if run.window.steps == every {
                    reportTraining(
                        run, loss: run.window.loss, correct: run.window.correct, images: run.window.steps * batch,
                        epoch: run.epoch + 1)
                    run.window = (0, 0, 0)
                }
            }
            if Date().timeIntervalSince(run.lastProgress) >= 1 {
                run.lastProgress = Date()
                reportProgress(run, epoch: run.epoch + 1, seconds: trainedSeconds())
            }
        }
        run.epoch += 1
        for s in run.strategies {
            let clock = CostClock.now()
            s.afterEpoch(run.state, epoch: run.epoch)
            run.costs.share(since: clock, \.averaging, among: s.weightSetNames)
        }
        run.trainingSeconds += Date().timeIntervalSince(epochClock)
        if spec.logEvery == nil {
            reportTraining(run, loss: epochLoss, correct: epochCorrect, images: run.plan.stepsPerEpoch * batch, epoch: run.epoch)
        }
        return nil
    }

    /// An epoch's end: every weight set evaluated on the test set, the strategies' metrics, a
    /// checkpoint (what `--resume` continues from) and a progress line.
    private func endEpoch(_ run: TrainingSession) throws {
        let sets = weightSets(run)
        run.lastSets = sets
        run.lastEvaluation = [:]
        for (name, state) in sets {
            let e = timedEvaluation(run, name: name, state: state)
            reportTest(e, step: run.step, epoch: run.epoch, weights: name)
            run.lastEvaluation[name] = e
        }
        for s in run.strategies {
            for m in s.metrics() { events.metric(m.key, step: run.step, epoch: run.epoch, value: m.value, weights: m.weights) }
        }
        let clock = CostClock.now()
        let extra = run.strategies.map { $0.checkpoint() }
        var metadata = extra.reduce(into: [:]) { $0.merge($1.metadata) { a, _ in a } }
        metadata[RunCosts.metadataKey] = run.costs.timing().json.text()
        let checkpoint = Checkpoint(
            state: run.state, sgd: run.sgd, epoch: run.epoch, step: run.step, rng: run.rng, spec: spec,
            extraTensors: extra.flatMap(\.tensors), extraMetadata: metadata)
        events.emit(.checkpoint(try folder.write(checkpoint)))
        // While training, the newest checkpoint always stays (it is what --resume needs).
        folder.pruneCheckpoints(keep: max(1, spec.checkpoints.keep))
        run.costs.checkpoint.add(since: clock)
        reportProgress(run, epoch: run.epoch, seconds: run.trainingSeconds)
        run.lastProgress = Date()
    }

    /// Writes the summary of a run that stopped before its last epoch.
    private func stop(
        _ run: TrainingSession, _ status: TrainerEvent.Summary.Status, reason: String,
        imagesPerSecond: Double
    ) -> RunOutcome {
        reportSummary(run, status: status, reason: reason, imagesPerSecond: imagesPerSecond)
        return RunOutcome(status: status, reason: reason)
    }

    // MARK: weight sets

    /// Raw weights and every averaged set ready now, each prepared for evaluation: a strategy
    /// prepares its own (SWA's update_bn); precise BN then re-measures, on copies, every set whose
    /// statistics are not fresh.
    func weightSets(_ run: TrainingSession) -> [(name: String, state: ModelState)] {
        let context = EvaluationContext { state in
            run.costs.updateBN.time { run.batchNorm.recompute(state, .updateBN) }
        }
        var sets: [(name: String, state: ModelState, fresh: Bool)] = [("raw", run.state, false)]
        for s in run.strategies {
            // Preparing a strategy's sets is its BN recomputation (SWA's update_bn).
            let clock = CostClock.now()
            sets += s.weightSets(context).map { ($0.name, $0.state, s.batchNormStatisticsAreFresh) }
            run.costs.share(since: clock, \.batchNorm, among: s.weightSetNames)
        }
        guard let precise = spec.preciseBN else { return sets.map { ($0.name, $0.state) } }
        return sets.map { name, state, fresh in
            if fresh { return (name, state) }
            let clock = CostClock.now()
            let copy = state.copy()
            run.batchNorm.recompute(copy, .precise(batches: precise.batches))
            run.costs.add(since: clock, \.batchNorm, to: name)
            return (name, copy)
        }
    }

    /// The test-set evaluation at `test_size`, its time added to the set's `eval_s`.
    func timedEvaluation(_ run: TrainingSession, name: String, state: ModelState) -> Evaluation {
        let clock = CostClock.now()
        let e = run.evaluator.evaluate(state, resize: spec.resolution.testSize, crop: spec.resolution.testSize)
        run.costs.add(since: clock, \.eval, to: name)
        return e
    }

    func log(_ message: String) {
        FileHandle.standardError.write(Data("polyak: \(message)\n".utf8))
    }
}
