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
        try Self.checkSupported(spec)
    }

    deinit { if lockDescriptor >= 0 { close(lockDescriptor) } }

    /// Parts of the spec that this trainer does not run yet are refused up front, naming the
    /// field, rather than silently ignored.
    static func checkSupported(_ spec: RunSpec) throws {
        for (i, a) in spec.averaging.enumerated() where a != .none {
            throw TrainingError.badInput("averaging[\(i)].kind: \(a.kind) is not available in this build yet")
        }
        if spec.distillation != nil { throw TrainingError.badInput("distillation: not available in this build yet") }
        if spec.resolution.finetune != nil { throw TrainingError.badInput("resolution.finetune: not available in this build yet") }
        if spec.preciseBN != nil { throw TrainingError.badInput("precise_bn: not available in this build yet") }
    }

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

    private func loadData() throws -> (train: ImageSet, test: ImageSet) {
        do {
            var train = try FashionMNIST.load(root: spec.data.root, split: .train, limit: spec.data.trainLimit)
            let test = try FashionMNIST.load(root: spec.data.root, split: .test, limit: spec.data.testLimit)
            let size = spec.resolution.trainSize
            if spec.data.augment.randomResizedCrop == nil && (size != train.height || size != train.width) {
                train = Self.resized(train, to: size)
            }
            return (train, test)
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
        let schedule = LearningRateSchedule(optim: spec.optim, stepsPerEpoch: stepsPerEpoch)
        let size = spec.resolution.trainSize
        let exec = ResNetExecutor(model: model, batch: batch, height: size, width: size, trainable: true, workers: workers)
        let state = ModelState(layout: model.layout)
        let sgd = SGD(layout: model.layout, optim: spec.optim)
        let evaluator = Evaluator(images: data.test, model: model, workers: workers)
        var rng = Xoshiro256(seed: spec.seed)
        var epoch = 0, step = 0

        if resume, let newest = Checkpoint.newest(in: directory) {
            do {
                let cp = try Checkpoint(path: newest)
                try cp.restore(into: state, sgd: sgd)
                rng.state = cp.rngState
                epoch = cp.epoch
                step = cp.step
                FileHandle.standardError.write(Data("polyak: resuming \(directory) after epoch \(epoch) (step \(step))\n".utf8))
            } catch {
                throw TrainingError.badInput("cannot resume from \(newest): \(error)")
            }
        } else {
            model.initialize(state, using: &rng)
            // A fresh start owns the folder: old checkpoints would confuse a later --resume.
            for old in (try? FileManager.default.contentsOfDirectory(atPath: path("checkpoints"))) ?? [] {
                try? FileManager.default.removeItem(atPath: path("checkpoints/\(old)"))
            }
        }
        do {
            try AtomicFile.write(spec.jsonData(pretty: true), to: path("spec.json"))
        } catch {
            throw TrainingError.badInput("cannot write \(path("spec.json")): \(error)")
        }

        let filler = BatchFiller(images: data.train, augment: spec.data.augment, size: size)
        let totalSteps = spec.optim.epochs * stepsPerEpoch
        let stepsAtStart = step
        let trainingClock = Date()
        var lastProgress = Date.distantPast
        var window = (loss: 0.0, correct: 0, steps: 0)
        var lr = schedule.rate(at: max(0, step - 1))

        while epoch < spec.optim.epochs {
            let permutation = rng.permutation(count: data.train.count)
            var epochLoss = 0.0, epochCorrect = 0
            for i in 0..<stepsPerEpoch {
                if StopRequest.isSet {
                    let reason = "stopped by a signal at step \(step); resumable from epoch \(epoch)"
                    emitSummary(status: "cancelled", reason: reason, steps: step, started: started, final: [:], exports: [:],
                                imagesPerSecond: rate(step - stepsAtStart, batch, trainingClock))
                    return RunOutcome(status: "cancelled", reason: reason)
                }
                lr = schedule.rate(at: step)
                filler.fill(exec, indices: permutation[(i * batch)..<((i + 1) * batch)], rng: &rng)
                let r = exec.trainingStep(state, labelSmoothing: Float(spec.optim.labelSmoothing))
                step += 1
                guard r.lossSum.isFinite else {
                    events.metric("train/loss", step: step, epoch: epoch + 1, value: r.lossSum / Double(batch))
                    let reason = "diverged at step \(step)"
                    emitSummary(status: "failed", reason: reason, steps: step, started: started, final: [:], exports: [:],
                                imagesPerSecond: rate(step - stepsAtStart, batch, trainingClock))
                    return RunOutcome(status: "failed", reason: reason)
                }
                sgd.step(state, lr: Float(lr))
                epochLoss += r.lossSum
                epochCorrect += r.correct
                if let every = spec.logEvery {
                    window.loss += r.lossSum
                    window.correct += r.correct
                    window.steps += 1
                    if window.steps == every {
                        logTrain(loss: window.loss, correct: window.correct, images: window.steps * batch, lr: lr,
                                 step: step, epoch: epoch + 1)
                        window = (0, 0, 0)
                    }
                }
                if Date().timeIntervalSince(lastProgress) >= 1 {
                    lastProgress = Date()
                    progress(epoch: epoch + 1, step: step, total: totalSteps, done: step - stepsAtStart, batch: batch, since: trainingClock)
                }
            }
            epoch += 1
            if spec.logEvery == nil {
                logTrain(loss: epochLoss, correct: epochCorrect, images: stepsPerEpoch * batch, lr: lr, step: step, epoch: epoch)
            }
            let eval = evaluator.evaluate(state, resize: spec.resolution.testSize, crop: spec.resolution.testSize)
            logTest(eval, step: step, epoch: epoch, weights: "raw")
            try writeCheckpoint(Checkpoint(state: state, sgd: sgd, epoch: epoch, step: step, rng: rng, spec: spec))
            progress(epoch: epoch, step: step, total: totalSteps, done: step - stepsAtStart, batch: batch, since: trainingClock)
            lastProgress = Date()
        }
        let imagesPerSecond = rate(step - stepsAtStart, batch, trainingClock)

        let final = evaluator.evaluate(state, resize: spec.resolution.testSize, crop: spec.resolution.testSize)
        if let grid = spec.resolution.testGrid {
            for cell in grid.cells {
                let e = evaluator.evaluate(state, resize: cell.resize, crop: cell.crop, keep: false)
                events.emit("grid", [
                    "weights": "raw", "stage": "base", "train_size": .number(Double(size)),
                    "resize": .number(Double(cell.resize)), "crop": .number(Double(cell.crop)),
                    "top1": JSONValue(e.top1), "top5": JSONValue(e.top5), "loss": JSONValue(e.loss),
                ])
            }
        }
        let exportName = "final.safetensors"
        try export(state.stateDict(metadata: ["weights": "raw", "step": String(step), "spec": spec.json().text()]),
                   name: exportName)
        pruneCheckpoints(keep: spec.checkpoints.keep)
        emitSummary(status: "completed", reason: nil, steps: step, started: started,
                    final: ["raw": ["test/top1": JSONValue(final.top1), "test/top5": JSONValue(final.top5),
                                    "test/loss": JSONValue(final.loss)]],
                    exports: ["raw": .string(exportName)], imagesPerSecond: imagesPerSecond)
        return RunOutcome(status: "completed", reason: nil)
    }

    // MARK: reporting

    private func rate(_ steps: Int, _ batch: Int, _ since: Date) -> Double {
        Double(steps * batch) / max(Date().timeIntervalSince(since), 1e-9)
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

    private func progress(epoch: Int, step: Int, total: Int, done: Int, batch: Int, since: Date) {
        let elapsed = max(Date().timeIntervalSince(since), 1e-9)
        let stepsPerSecond = Double(done) / elapsed
        events.emit("progress", [
            "epoch": .number(Double(epoch)), "step": .number(Double(step)), "total_steps": .number(Double(total)),
            "images_per_sec": JSONValue((stepsPerSecond * Double(batch) * 10).rounded() / 10),
            "eta_s": JSONValue(stepsPerSecond > 0 ? (Double(total - step) / stepsPerSecond * 10).rounded() / 10 : 0),
            "time": EventSink.now,
        ])
    }

    private func emitSummary(status: String, reason: String?, steps: Int, started: Date, final: [String: [String: JSONValue]],
                             exports: [String: JSONValue], imagesPerSecond: Double) {
        events.emit("summary", [
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
