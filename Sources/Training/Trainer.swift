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
    public let status: String  // completed | failed | cancelled
    public let reason: String?
    public var exitCode: Int32 { status == "completed" ? 0 : 1 }
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

/// Trains one run spec: the loop of `polyak train`. Writes the run folder (`spec.json`,
/// `checkpoints/`, `final.safetensors`) and reports through an `EventSink`.
public final class Trainer {
    public let spec: RunSpec
    public let directory: String
    public let events: EventSink
    public let model: ResNetMini
    public let workers: Workers

    private var lockDescriptor: Int32 = -1

    public init(spec: RunSpec, directory: String, events: EventSink) throws {
        self.spec = spec
        self.directory = directory
        self.events = events
        model = ResNetMini(width: spec.model.width, depth: spec.model.depth)
        workers = Workers(spec.threads)
    }

    deinit { if lockDescriptor >= 0 { close(lockDescriptor) } }

    // MARK: run folder

    private func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// Creates the folder and takes `train.lock` (flock), so two trainers never write one folder.
    private func prepareDirectory() throws {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: path("checkpoints"), withIntermediateDirectories: true)
        } catch {
            throw TrainingError.badInput("cannot create run folder \(directory): \(error.localizedDescription)")
        }
        let fd = open(path("train.lock"), O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError.badInput("cannot open \(path("train.lock")): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw TrainingError.badInput("another trainer holds \(path("train.lock")): one run folder, one trainer")
        }
        lockDescriptor = fd
    }

    private func loadData() throws -> RunData {
        do {
            let original = try FashionMNIST.load(root: spec.data.root, split: .train, limit: spec.data.trainLimit)
            let test = try FashionMNIST.load(root: spec.data.root, split: .test, limit: spec.data.testLimit)
            let size = spec.resolution.trainSize
            var train = original
            if spec.data.augment.randomResizedCrop == nil && (size != train.height || size != train.width) {
                train = Self.resized(train, to: size)
            }
            return RunData(train: train, original: original, test: test)
        } catch let e as DatasetError {
            throw TrainingError.badInput(e.description)
        }
    }

    /// The training images resized once to `size` (antialiased bilinear, rounded to bytes, as PIL
    /// does for uint8 images), for training at a lower resolution without RandomResizedCrop.
    static func resized(_ set: ImageSet, to size: Int) -> ImageSet {
        var pixels = [UInt8](repeating: 0, count: set.count * size * size)
        let scratch = TransformScratch()
        let raw = Normalization(mean: 0, std: 1 / 255)  // identity: byte values as floats
        var row = [Float](repeating: 0, count: size * size)
        set.withUnsafeImages { imgs in
            for i in 0..<imgs.count {
                row.withUnsafeMutableBufferPointer { buf in
                    resizeBilinear(imgs[i], height: size, width: size, scratch: scratch,
                                   into: ImageDestination(base: buf.baseAddress!, rowStride: size), norm: raw)
                }
                for j in 0..<(size * size) { pixels[i * size * size + j] = UInt8(max(0, min(255, row[j].rounded()))) }
            }
        }
        return ImageSet(count: set.count, height: size, width: size, pixels: pixels, labels: set.labels)
    }

    // MARK: the loop

    /// The images of one run. `train` is what the training loop samples (resized once to
    /// `train_size` when RandomResizedCrop is off); `original` is the same images at their native
    /// size, for anything that must see training images at another size (FixRes fine-tuning at
    /// `test_size`): upsampling the 20-px copies would fit the classifier to blurred images the
    /// test set never shows.
    struct RunData {
        let train: ImageSet
        let original: ImageSet
        let test: ImageSet
    }

    /// Everything one run holds while it trains.
    private final class Session {
        let data: RunData
        let plan: TrainingPlan
        let exec: ResNetExecutor
        let state: ModelState
        let sgd: SGD
        let evaluator: Evaluator
        let filler: BatchFiller
        var strategies: [AveragingStrategy] = []
        var teacher: (exec: ResNetExecutor, state: ModelState, spec: DistillationSpec)?
        var rng: Xoshiro256
        var epoch = 0
        var step = 0
        var evalSeconds: [String: Double] = [:]
        /// The weight sets prepared at the end of the last epoch trained in this process, and their
        /// evaluations: the final report and exports reuse them rather than preparing (SWA's
        /// update_bn, precise BN) and evaluating the same weights twice.
        var lastSets: [(name: String, state: ModelState)]?
        var lastEvaluation: [String: Evaluation] = [:]
        var batchNormSeconds = 0.0

        init(data: RunData, plan: TrainingPlan, exec: ResNetExecutor, state: ModelState, sgd: SGD,
             evaluator: Evaluator, filler: BatchFiller, rng: Xoshiro256) {
            self.data = data
            self.plan = plan
            self.exec = exec
            self.state = state
            self.sgd = sgd
            self.evaluator = evaluator
            self.filler = filler
            self.rng = rng
        }
    }

    /// Trains (or continues, with `resume`) and returns how the run ended. Throws `badInput`
    /// before anything is trained when the spec, the data or the folder is unusable.
    public func run(resume: Bool = false) throws -> RunOutcome {
        let started = Date()
        try prepareDirectory()
        let data = try loadData()
        let batch = spec.optim.batchSize
        let stepsPerEpoch = data.train.count / batch
        guard stepsPerEpoch > 0 else {
            throw TrainingError.badInput("optim.batch_size: \(batch) is more than the \(data.train.count) training images")
        }
        let plan = TrainingPlan(epochs: spec.optim.epochs, stepsPerEpoch: stepsPerEpoch,
                                schedule: LearningRateSchedule(optim: spec.optim, stepsPerEpoch: stepsPerEpoch))
        let size = spec.resolution.trainSize
        let run = Session(
            data: data, plan: plan,
            exec: ResNetExecutor(model: model, batch: batch, height: size, width: size, trainable: true, workers: workers),
            state: ModelState(layout: model.layout), sgd: SGD(layout: model.layout, optim: spec.optim),
            evaluator: Evaluator(images: data.test, model: model, workers: workers),
            filler: BatchFiller(images: data.train, augment: spec.data.augment, size: size), rng: Xoshiro256(seed: spec.seed))
        if let kd = spec.distillation { run.teacher = try loadTeacher(kd, batch: batch, size: size) }

        var checkpoint: Checkpoint?
        if resume, let newest = Checkpoint.newest(in: directory) {
            do {
                checkpoint = try Checkpoint(path: newest)
            } catch {
                throw TrainingError.badInput("cannot resume from \(newest): \(error)")
            }
        } else {
            model.initialize(run.state, using: &run.rng)
            // A fresh start owns the folder: old checkpoints would confuse a later --resume.
            for old in (try? FileManager.default.contentsOfDirectory(atPath: path("checkpoints"))) ?? [] {
                try? FileManager.default.removeItem(atPath: path("checkpoints/\(old)"))
            }
        }
        // Strategies start from the initial model; a checkpoint then overwrites their state.
        run.strategies = makeAveragingStrategies(spec, plan: plan, model: run.state)
        if let cp = checkpoint {
            do {
                try cp.restore(into: run.state, sgd: run.sgd)
                for s in run.strategies { try s.restore(from: cp.file) }
            } catch {
                throw TrainingError.badInput("cannot resume from \(Checkpoint.newest(in: directory) ?? directory): \(error)")
            }
            run.rng.state = cp.rngState
            run.epoch = cp.epoch
            run.step = cp.step
            log("resuming \(directory) after epoch \(cp.epoch) (step \(cp.step))")
        }
        do {
            try AtomicFile.write(spec.jsonData(pretty: true), to: path("spec.json"))
        } catch {
            throw TrainingError.badInput("cannot write \(path("spec.json")): \(error)")
        }
        for s in run.strategies {
            for w in s.warnings() { events.warning(code: w.code, weights: w.weights, message: w.message) }
        }

        let stepsAtStart = run.step
        var trainingSeconds = 0.0
        var lastProgress = Date.distantPast
        var window = (loss: 0.0, correct: 0, steps: 0)
        var lr = plan.schedule.rate(at: max(0, run.step - 1))
        let smoothing = Float(spec.optim.labelSmoothing)

        while run.epoch < plan.epochs {
            let epochClock = Date()
            let permutation = run.rng.permutation(count: data.train.count)
            var epochLoss = 0.0, epochCorrect = 0
            for i in 0..<stepsPerEpoch {
                if StopRequest.isSet {
                    let reason = "stopped by a signal at step \(run.step); resumable from epoch \(run.epoch)"
                    emitSummary(status: "cancelled", reason: reason, steps: run.step, started: started, final: [:], exports: [:],
                                imagesPerSecond: rate(run.step - stepsAtStart, batch, trainingSeconds + Date().timeIntervalSince(epochClock)))
                    return RunOutcome(status: "cancelled", reason: reason)
                }
                let scheduled = plan.schedule.rate(at: run.step)
                lr = run.strategies.lazy.compactMap { $0.learningRate(forStep: run.step, scheduled: scheduled) }.first ?? scheduled
                run.filler.fill(run.exec, indices: permutation[(i * batch)..<((i + 1) * batch)], rng: &run.rng)
                let r = trainingStep(run, labelSmoothing: smoothing)
                run.step += 1
                guard r.lossSum.isFinite else {
                    events.metric("train/loss", step: run.step, epoch: run.epoch + 1, value: r.lossSum / Double(batch))
                    let reason = "diverged at step \(run.step)"
                    emitSummary(status: "failed", reason: reason, steps: run.step, started: started, final: [:], exports: [:],
                                imagesPerSecond: rate(run.step - stepsAtStart, batch, trainingSeconds + Date().timeIntervalSince(epochClock)))
                    return RunOutcome(status: "failed", reason: reason)
                }
                run.sgd.step(run.state, lr: Float(lr))
                for s in run.strategies { s.afterStep(run.state, step: run.step) }
                epochLoss += r.lossSum
                epochCorrect += r.correct
                if let every = spec.logEvery {
                    window.loss += r.lossSum
                    window.correct += r.correct
                    window.steps += 1
                    if window.steps == every {
                        logTrain(loss: window.loss, correct: window.correct, images: window.steps * batch, lr: lr,
                                 step: run.step, epoch: run.epoch + 1)
                        window = (0, 0, 0)
                    }
                }
                if Date().timeIntervalSince(lastProgress) >= 1 {
                    lastProgress = Date()
                    progress(epoch: run.epoch + 1, step: run.step, total: plan.totalSteps, done: run.step - stepsAtStart,
                             batch: batch, seconds: trainingSeconds + Date().timeIntervalSince(epochClock))
                }
            }
            run.epoch += 1
            for s in run.strategies { s.afterEpoch(run.state, epoch: run.epoch) }
            trainingSeconds += Date().timeIntervalSince(epochClock)
            if spec.logEvery == nil {
                logTrain(loss: epochLoss, correct: epochCorrect, images: stepsPerEpoch * batch, lr: lr, step: run.step, epoch: run.epoch)
            }
            run.lastSets = weightSets(run)
            run.lastEvaluation = [:]
            for (name, state) in run.lastSets! {
                let e = timedEvaluation(run, name: name, state: state, resize: spec.resolution.testSize, crop: spec.resolution.testSize)
                logTest(e, step: run.step, epoch: run.epoch, weights: name)
                run.lastEvaluation[name] = e
            }
            for s in run.strategies {
                for m in s.metrics() { events.metric(m.key, step: run.step, epoch: run.epoch, value: m.value, weights: m.weights) }
            }
            let extra = run.strategies.map { $0.checkpoint() }
            try writeCheckpoint(Checkpoint(
                state: run.state, sgd: run.sgd, epoch: run.epoch, step: run.step, rng: run.rng, spec: spec,
                extraTensors: extra.flatMap(\.tensors),
                extraMetadata: extra.reduce(into: [:]) { $0.merge($1.metadata) { a, _ in a } }))
            progress(epoch: run.epoch, step: run.step, total: plan.totalSteps, done: run.step - stepsAtStart, batch: batch,
                     seconds: trainingSeconds)
            lastProgress = Date()
        }
        let imagesPerSecond = rate(run.step - stepsAtStart, batch, trainingSeconds)

        // Final evaluation, grids, FixRes fine-tuning and exports of every weight set.
        let sets = run.lastSets ?? weightSets(run)
        func summary(_ e: Evaluation) -> [String: JSONValue] {
            ["test/top1": JSONValue(e.top1), "test/top5": JSONValue(e.top5), "test/loss": JSONValue(e.loss)]
        }
        var final: [String: [String: JSONValue]] = [:]
        var exports: [String: JSONValue] = [:]
        for (name, state) in sets {
            let e = run.lastEvaluation[name]
                ?? timedEvaluation(run, name: name, state: state, resize: spec.resolution.testSize, crop: spec.resolution.testSize)
            final[name] = summary(e)
            emitGrid(run, name: name, state: state, stage: "base")
            let file = name == "raw" ? "final.safetensors" : "\(name).safetensors"
            try export(state.stateDict(metadata: ["weights": name, "step": String(run.step), "spec": spec.json().text()]), name: file)
            exports[name] = .string(file)
        }
        if let ft = spec.resolution.finetune {
            for (name, state) in sets {
                let tuned = finetune(run, state, ft)
                let e = run.evaluator.evaluate(tuned, resize: spec.resolution.testSize, crop: spec.resolution.testSize)
                final[name + "/finetuned"] = summary(e)
                emitGrid(run, name: name, state: tuned, stage: "finetuned")
                let file = (name == "raw" ? "final" : name) + ".finetuned.safetensors"
                try export(tuned.stateDict(metadata: ["weights": name, "stage": "finetuned", "spec": spec.json().text()]), name: file)
                exports[name + "/finetuned"] = .string(file)
            }
        }
        pruneCheckpoints(keep: spec.checkpoints.keep)
        emitSummary(status: "completed", reason: nil, steps: run.step, started: started, final: final, exports: exports,
                    imagesPerSecond: imagesPerSecond,
                    timing: ["train_s": JSONValue(round2(trainingSeconds)),
                             "eval_s": .object(run.evalSeconds.mapValues { JSONValue(round2($0)) }),
                             "swa_bn_s": JSONValue(round2(run.batchNormSeconds))])
        return RunOutcome(status: "completed", reason: nil)
    }

    /// One forward + backward: cross-entropy, or the distillation loss against the teacher.
    private func trainingStep(_ run: Session, labelSmoothing: Float) -> (lossSum: Double, correct: Int) {
        guard let teacher = run.teacher else { return run.exec.trainingStep(run.state, labelSmoothing: labelSmoothing) }
        teacher.exec.copyInput(from: run.exec)
        teacher.exec.forward(teacher.state, training: false)
        run.exec.forward(run.state, training: true)
        let n = run.exec.batch, k = model.classes
        let correct = SoftmaxCrossEntropy.forward(logits: run.exec.logits, labels: run.exec.labels, n: n, classes: k).correct
        var total = 0.0
        run.exec.setLogitGradient { d in
            total = AveragingMath.distillation(
                student: run.exec.logits, teacher: teacher.exec.logits, labels: run.exec.labels, n: n, classes: k,
                temperature: teacher.spec.temperature, alpha: teacher.spec.alpha,
                labelSmoothing: Double(labelSmoothing), dStudent: d).total
        }
        run.exec.backward(run.state)
        return (total * Double(n), correct)
    }

    /// The teacher of a distillation run: a safetensors state dict that must be the declared model.
    private func loadTeacher(_ kd: DistillationSpec, batch: Int, size: Int) throws -> (ResNetExecutor, ModelState, DistillationSpec) {
        guard let teacher = kd.teacher else {
            throw TrainingError.badInput("distillation.teacher: give {path, model} (the server fills it in from teacher_run)")
        }
        do {
            let file = try SafetensorsFile.read(from: teacher.path)
            let declared = ResNetMini(width: teacher.model.width, depth: teacher.model.depth)
            try declared.check(shapes: file.shapes)
            let state = ModelState(layout: declared.layout)
            try state.load(stateDict: file)
            let exec = ResNetExecutor(model: declared, batch: batch, height: size, width: size, trainable: false, workers: workers)
            return (exec, state, kd)
        } catch {
            throw TrainingError.badInput("distillation.teacher: \(teacher.path) does not hold the declared resnet-mini width \(teacher.model.width) depth \(teacher.model.depth): \(error)")
        }
    }

    /// Raw weights and every averaged set ready now, each prepared for evaluation (precise BN on copies).
    private func weightSets(_ run: Session) -> [(name: String, state: ModelState)] {
        let context = EvaluationContext { [self] state in
            let clock = Date()
            recomputeBatchNorm(run, state, batches: nil)
            run.batchNormSeconds += Date().timeIntervalSince(clock)
        }
        var sets: [(name: String, state: ModelState)] = [("raw", run.state)]
        for s in run.strategies { sets += s.weightSets(context) }
        guard let precise = spec.preciseBN else { return sets }
        return sets.map { name, state in
            if name == "swa" { return (name, state) }  // update_bn already recomputed it from all batches
            let copy = state.copy()
            recomputeBatchNorm(run, copy, batches: precise.batches)
            return (name, copy)
        }
    }

    private func timedEvaluation(_ run: Session, name: String, state: ModelState, resize: Int, crop: Int) -> Evaluation {
        let clock = Date()
        let e = run.evaluator.evaluate(state, resize: resize, crop: crop)
        run.evalSeconds[name, default: 0] += Date().timeIntervalSince(clock)
        return e
    }

    private func emitGrid(_ run: Session, name: String, state: ModelState, stage: String) {
        guard let grid = spec.resolution.testGrid else { return }
        for cell in grid.cells {
            let e = run.evaluator.evaluate(state, resize: cell.resize, crop: cell.crop, keep: false)
            events.emit("grid", [
                "weights": .string(name), "stage": .string(stage), "train_size": .number(Double(spec.resolution.trainSize)),
                "resize": .number(Double(cell.resize)), "crop": .number(Double(cell.crop)),
                "top1": JSONValue(e.top1), "top5": JSONValue(e.top5), "loss": JSONValue(e.loss),
            ])
        }
    }

    /// Re-estimates a state's BN running statistics from training batches in train mode, with
    /// augmentation drawn from a generator of its own (the training stream is never touched).
    /// `batches == nil`: SWA's `update_bn` — reset, then an equal-weight average of every batch's
    /// statistics (unbiased variance). Otherwise precise BN (fvcore): pooled mean and biased
    /// population variance over all samples of `batches` batches.
    private func recomputeBatchNorm(_ run: Session, _ state: ModelState, batches: Int?) {
        let exec = run.exec, layout = state.layout
        let count = batches ?? run.plan.stepsPerEpoch
        var rng = Xoshiro256(seed: spec.seed ^ 0x5EED_BA7C_4E0F)
        let order = rng.permutation(count: run.data.train.count)
        let stats = exec.batchNormStatistics
        var pooled = stats.map { PooledStatistics(channels: $0.mean.count) }
        if batches == nil {
            for e in layout.entries where e.role == .buffer {
                state.pointer(e).update(repeating: e.name.hasSuffix("running_var") ? 1 : 0, count: e.count)
            }
            state.batchesTracked = 0
        }
        let saved = exec.batchNormMomentum
        defer { exec.batchNormMomentum = saved }
        let perEpoch = run.plan.stepsPerEpoch, batch = exec.batch
        for k in 0..<count {
            let i = k % perEpoch
            run.filler.fill(exec, indices: order[(i * batch)..<((i + 1) * batch)], rng: &rng)
            exec.batchNormMomentum = batches == nil ? 1 / Float(k + 1) : 0
            exec.forward(state, training: true)
            if batches != nil {
                let samples = batch * exec.height * exec.width
                for (j, s) in stats.enumerated() { pooled[j].add(mean: s.batchMean.pointer, variance: s.batchVariance.pointer, count: samples) }
            }
        }
        if batches != nil {
            for (j, s) in stats.enumerated() {
                let mean = state.pointer(s.mean), variance = state.pointer(s.variance)
                for c in 0..<s.mean.count {
                    let r = pooled[j].result(channel: c)
                    mean[c] = Float(r.mean)
                    variance[c] = Float(r.variance)
                }
            }
        }
    }

    /// FixRes fine-tuning (Touvron et al. 2019) of a copy: the test transform on training images at
    /// the test size; only `fc` trains; the BatchNorms feeding the pooling re-estimate their running
    /// statistics in train mode with frozen affine weights; everything else is frozen in eval mode.
    private func finetune(_ run: Session, _ source: ModelState, _ ft: FinetuneSpec) -> ModelState {
        let state = source.copy()
        let size = spec.resolution.testSize, batch = spec.optim.batchSize
        let exec = ResNetExecutor(model: model, batch: batch, height: size, width: size, trainable: false, workers: workers)
        let last = model.blocks.last!
        exec.trainModeBatchNorms = last.hasDownsample ? ["\(last.prefix).bn2", "\(last.prefix).downsample.1"] : ["\(last.prefix).bn2"]
        let sgd = SGD(layout: model.layout, optim: spec.optim)
        let classifier: (TensorEntry) -> Bool = { $0.name.hasPrefix("fc.") }
        var rng = Xoshiro256(seed: spec.seed ^ 0xF1_4E5)
        let scratch = TransformScratch()
        let images = run.data.original
        let steps = images.count / batch
        let s = exec.input.shape
        for _ in 0..<ft.epochs {
            let order = rng.permutation(count: images.count)
            for i in 0..<steps {
                images.withUnsafeImages { imgs in
                    for b in 0..<batch {
                        let index = Int(order[i * batch + b])
                        testTransform(imgs[index], resize: size, crop: size, scratch: scratch,
                                      into: ImageDestination(base: exec.input.pointer + s.offset(b, 0, 0), rowStride: s.rowStride))
                        exec.labels[b] = Int32(images.labels[index])
                    }
                }
                exec.forward(state, training: false)
                exec.setLogitGradient { d in
                    SoftmaxCrossEntropy.forward(logits: exec.logits, labels: exec.labels, n: batch, classes: model.classes, dLogits: d)
                }
                exec.backwardClassifier(state)
                sgd.step(state, lr: Float(ft.lr), only: classifier)
            }
        }
        return state
    }

    // MARK: reporting

    private func rate(_ steps: Int, _ batch: Int, _ seconds: Double) -> Double {
        Double(steps * batch) / max(seconds, 1e-9)
    }

    private func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }

    private func log(_ message: String) {
        FileHandle.standardError.write(Data("polyak: \(message)\n".utf8))
    }

    private func logTrain(loss: Double, correct: Int, images: Int, lr: Double, step: Int, epoch: Int) {
        events.metric("train/loss", step: step, epoch: epoch, value: loss / Double(images))
        events.metric("train/top1", step: step, epoch: epoch, value: Double(correct) / Double(images))
        events.metric("train/lr", step: step, epoch: epoch, value: lr)
    }

    private func logTest(_ e: Evaluation, step: Int, epoch: Int, weights: String) {
        events.metric("test/loss", step: step, epoch: epoch, value: e.loss, weights: weights)
        events.metric("test/top1", step: step, epoch: epoch, value: e.top1, weights: weights)
        events.metric("test/top5", step: step, epoch: epoch, value: e.top5, weights: weights)
    }

    private func progress(epoch: Int, step: Int, total: Int, done: Int, batch: Int, seconds: Double) {
        let elapsed = max(seconds, 1e-9)
        let stepsPerSecond = Double(done) / elapsed
        events.emit("progress", [
            "epoch": .number(Double(epoch)), "step": .number(Double(step)), "total_steps": .number(Double(total)),
            "images_per_sec": JSONValue((stepsPerSecond * Double(batch) * 10).rounded() / 10),
            "eta_s": JSONValue(stepsPerSecond > 0 ? (Double(total - step) / stepsPerSecond * 10).rounded() / 10 : 0),
            "time": EventSink.now,
        ])
    }

    private func emitSummary(status: String, reason: String?, steps: Int, started: Date, final: [String: [String: JSONValue]],
                             exports: [String: JSONValue], imagesPerSecond: Double, timing: [String: JSONValue] = [:]) {
        events.emit("summary", [
            "timing": .object(timing),
            "status": .string(status), "reason": reason.map(JSONValue.string) ?? .null,
            "steps": .number(Double(steps)), "wall_s": JSONValue((Date().timeIntervalSince(started) * 100).rounded() / 100),
            "images_per_sec": JSONValue((imagesPerSecond * 10).rounded() / 10),
            "final": .object(final.mapValues { .object($0) }), "exports": .object(exports),
        ])
    }

    // MARK: files

    private func writeCheckpoint(_ cp: Checkpoint) throws {
        let name = "checkpoints/" + Checkpoint.fileName(epoch: cp.epoch)
        let data = cp.file.encoded()
        do {
            try AtomicFile.write(data, to: path(name))
        } catch {
            throw TrainingError.failed("cannot write \(path(name)): \(error)")
        }
        events.emit("checkpoint", [
            "epoch": .number(Double(cp.epoch)), "step": .number(Double(cp.step)), "file": .string(name),
            "bytes": .number(Double(data.count)), "sha256": .string(SHA256.hex(data)),
        ])
        // While training, the newest checkpoint always stays (it is what --resume needs).
        pruneCheckpoints(keep: max(1, spec.checkpoints.keep))
    }

    private func export(_ file: SafetensorsFile, name: String) throws {
        do {
            try file.write(to: path(name))
        } catch {
            throw TrainingError.failed("cannot write \(path(name)): \(error)")
        }
    }

    private func pruneCheckpoints(keep: Int) {
        let dir = path("checkpoints")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("epoch-") && $0.hasSuffix(".safetensors") }.sorted()
        for name in names.dropLast(keep) { try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(name)) }
    }
}
