import ArgumentParser
import Datasets
import Experiments
import Foundation
import Kernels
import PolyakNetwork
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks; each prints one JSON object.",
        subcommands: [Engine.self, Service.self])
}

extension Bench {
    /// The training engine's throughput, with the key names of `torch_reference.py bench`.
    struct Engine: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train and eval images/s of resnet-mini (fwd + bwd + SGD step), GFLOP/s, peak RSS.")

        @Option(help: "Model width.") var width: Int = 16
        @Option(help: "Model depth (blocks per stage).") var depth: Int = 1
        @Option(help: "Training batch size.") var batch: Int = 128
        @Option(help: "Evaluation batch size.") var evalBatch: Int = 512
        @Option(help: "Length of one timed window, seconds.") var seconds: Double = 10
        @Option(help: "Timed windows (the median is reported).") var reps: Int = 3
        @Option(help: "Worker threads.") var threads: Int = 2
        @Option(help: "Folder of the Fashion-MNIST IDX files (random images when missing).")
        var root: String = FashionMNIST.defaultRoot
        @Flag(help: "Also time every kernel call of the training step (milliseconds per step, by operation).")
        var profile = false
        @Option(help: "The machine's practical peak, GFLOP/s (xsmm_conv.c's best fwd_gflops); measured here when not given.")
        var peakGflops: Double?

        func validate() throws {
            if width < 1 || depth < 1 || batch < 1 || evalBatch < 1 || reps < 1 || seconds <= 0 {
                throw ValidationError("sizes, --reps and --seconds must be positive")
            }
            if let peakGflops, !(peakGflops > 0) { throw ValidationError("--peak-gflops must be positive") }
        }

        func run() throws {
            let workers = Workers(threads)
            let model = ResNetMini(width: width, depth: depth)
            // Before the executors exist, so its buffers do not add to the peak RSS.
            let peak =
                peakGflops.map { ConvolutionPeak(gflops: $0, source: "--peak-gflops") }
                ?? ConvolutionPeak.measure(model, batch: batch, workers: workers)
            let state = ModelState(layout: model.layout)
            var rng = Xoshiro256(seed: 0)
            model.initialize(state, using: &rng)
            let images =
                (try? FashionMNIST.load(root: root, split: .train, limit: 4096))
                ?? ImageSet(
                    count: 4096, height: 28, width: 28, pixels: (0..<(4096 * 784)).map { _ in UInt8.random(in: 0...255) },
                    labels: (0..<4096).map { _ in UInt8.random(in: 0..<10) })
            let exec = ResNetExecutor(model: model, batch: batch, height: 28, width: 28, trainable: true, workers: workers)
            let sgd = SGD(layout: model.layout, optim: OptimSpec())
            // Pre-augmented batches, as the reference does, so the figure is the network alone.
            let shape = exec.input.shape
            let batches: [(input: [Float], labels: [Int32])] = (0..<8).map { k in
                images.withUnsafeImages { imgs in
                    for b in 0..<batch {
                        let i = (k * batch + b) % imgs.count
                        padCropFlip(
                            imgs[i], pad: 2, hflip: true, rng: &rng,
                            into: ImageDestination(base: exec.input.pointer + shape.offset(b, 0, 0), rowStride: shape.rowStride))
                        exec.labels[b] = Int32(images.labels[i])
                    }
                }
                return (exec.input.values, Array(UnsafeBufferPointer(start: exec.labels, count: batch)))
            }
            var k = 0
            func step() {
                let (input, labels) = batches[k % batches.count]
                k += 1
                input.withUnsafeBufferPointer { exec.input.pointer.update(from: $0.baseAddress!, count: $0.count) }
                labels.withUnsafeBufferPointer { exec.labels.update(from: $0.baseAddress!, count: batch) }
                exec.trainingStep(state)
                sgd.step(state, lr: 0.01)
            }
            let (trainRate, trainReps) = timed(seconds: seconds, reps: reps, imagesPerCall: batch, step)
            var profileJSON: JSONValue = .null
            if profile {
                let p = OperationProfile()
                exec.profile = p
                let steps = 20
                for _ in 0..<steps { step() }
                exec.profile = nil
                profileJSON = .object(p.nanoseconds.mapValues { .number((Double($0) / Double(steps) / 1e4).rounded() / 100) })
            }

            let emaOne = measureEMAUpdate(state, decays: 1), emaThree = measureEMAUpdate(state, decays: 3)
            // Post-hoc EMA's default: two profiles, a snapshot of both every 1 % of the run (every
            // ~47 steps of the default recipe's 4 680).
            let postHoc = measurePostHocUpdate(state, widths: 2)
            let postHocPerStep = postHoc.updateMicroseconds + postHoc.snapshotMicroseconds / 47
            let augment = AugmentationCost.measure(images, into: exec)

            let evalExec = ResNetExecutor(
                model: model, batch: evalBatch, height: 28, width: 28, trainable: false, workers: workers)
            images.withUnsafeImages { imgs in
                for b in 0..<evalBatch {
                    normalize(
                        imgs[b % imgs.count],
                        into: ImageDestination(
                            base: evalExec.input.pointer + evalExec.input.shape.offset(b, 0, 0),
                            rowStride: evalExec.input.shape.rowStride))
                }
            }
            let (evalRate, evalReps) = timed(seconds: seconds, reps: reps, imagesPerCall: evalBatch) {
                evalExec.forward(state, training: false)
            }
            let stepSeconds = Double(batch) / trainRate
            // Forward, input-gradient and weight-gradient passes of every conv; the stem has no input gradient.
            let stemFLOPs = 2.0 * Double(batch * 28 * 28 * width * 9)
            let stepFLOPs = 3 * exec.convolutionFLOPs - stemFLOPs
            let convolutions = model.convolutions(batch: batch, height: 28, width: 28)
            func winograd(_ pass: (ConvGeometry) -> Bool) -> JSONValue {
                .array(convolutions.filter { pass($0.geometry) }.map { .string($0.name) })
            }
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            let out: JSONValue = .object([
                "benchmark": "engine", "polyak": .string(PolyakVersion.current), "cpu": .string(cpuName()),
                "kernels": .string(KernelBackend.description), "all_convs_jit": .bool(exec.allConvolutionsJIT),
                "winograd_train_fwd": winograd { Conv2d.winogradPlan($0).trainingForward },
                "winograd_eval_fwd": winograd { Conv2d.winogradPlan($0).inferenceForward },
                "winograd_input_grad": winograd { Conv2d.winogradPlan($0).inputGradient },
                "winograd_weight_grad": winograd { Conv2d.winogradPlan($0).weightGradient },
                "threads": .number(Double(threads)), "width": .number(Double(width)), "depth": .number(Double(depth)),
                "batch": .number(Double(batch)), "eval_batch": .number(Double(evalBatch)),
                "params": .number(Double(model.layout.parameterCount)),
                "train_images_per_sec": .number(round1(trainRate)), "train_reps": .array(trainReps.map { .number(round1($0)) }),
                "train_ms_per_step": .number((stepSeconds * 1e5).rounded() / 100),
                "train_gflops": .number(round1(stepFLOPs / stepSeconds / 1e9)),
                "step_gflop": .number((stepFLOPs / 1e6).rounded() / 1e3),
                "peak_fwd_gflops": .number(round1(peak.gflops)), "peak_source": .string(peak.source),
                "train_pct_of_peak": .number(round1(stepFLOPs / stepSeconds / 1e9 / peak.gflops * 100)),
                "eval_images_per_sec": .number(round1(evalRate)), "eval_reps": .array(evalReps.map { .number(round1($0)) }),
                "peak_rss_mb": .number(round1(Double(usage.ru_maxrss) / 1024)),
                "profile_ms_per_step": profileJSON,
                "ema_update_us": .number(round1(emaOne)), "ema_update_us_3_decays": .number(round1(emaThree)),
                "ema_update_pct_of_step_per_decay": .number((emaThree / 3 / (stepSeconds * 1e6) * 1e5).rounded() / 1e3),
                "posthoc_update_us_2_widths": .number(round1(postHoc.updateMicroseconds)),
                "posthoc_snapshot_us_2_widths": .number(round1(postHoc.snapshotMicroseconds)),
                "posthoc_pct_of_step": .number((postHocPerStep / (stepSeconds * 1e6) * 1e5).rounded() / 1e3),
                "augment_us_per_batch": .number(round1(augment.padCropFlip)),
                "augment_rrc_us_per_batch": .number(round1(augment.randomResizedCrop)),
                "augment_pct_of_step": .number((augment.padCropFlip / (stepSeconds * 1e6) * 1e5).rounded() / 1e3),
            ])
            print(out.text())
        }
    }
}

func round1(_ x: Double) -> Double { (x * 10).rounded() / 10 }

/// Median images/s over `reps` windows of `seconds`, after a warm-up of a quarter window
/// (the reference script's method).
func timed(seconds: Double, reps: Int, imagesPerCall: Int, _ body: () -> Void) -> (Double, [Double]) {
    let warm = Date()
    while Date().timeIntervalSince(warm) < seconds / 4 { body() }
    var rates: [Double] = []
    for _ in 0..<reps {
        var n = 0
        let t0 = Date()
        while Date().timeIntervalSince(t0) < seconds {
            body()
            n += 1
        }
        rates.append(Double(n * imagesPerCall) / Date().timeIntervalSince(t0))
    }
    return (rates.sorted()[rates.count / 2], rates)
}

/// "Model name (avx512f)" from /proc/cpuinfo, as the reference script prints it.
func cpuName() -> String {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
    let model =
        info.split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "unknown"
    let isa = info.contains(" avx512f") ? "avx512f" : info.contains(" avx2") ? "avx2" : "other"
    return "\(model) (\(isa))"
}
