import Datasets
import Experiments
import Foundation
import Kernels
import PolyakNetwork

/// `polyak posthoc`: the weights of several EMA lengths synthesised from a run's snapshots, each
/// evaluated on the test set at the run's `test_size` (and written beside the run's exports on
/// request). One ``TrainerEvent/PostHocEvaluation`` per length, in the order asked.
public struct PostHocSweep {
    public let directory: String
    public let spec: RunSpec
    public let synthesis: PostHocSynthesis
    public let workers: Workers

    /// Reads the run's `spec.json` and finds its snapshots (of the widths in `profiles` only, when
    /// given). Bad input names the file.
    public init(runDirectory directory: String, threads: Int? = nil, profiles: Set<Double>? = nil) throws {
        self.directory = directory
        let specPath = (directory as NSString).appendingPathComponent("spec.json")
        guard let data = FileManager.default.contents(atPath: specPath) else {
            throw TrainingError.badInput("\(specPath) is missing: is \(directory) a run folder of polyak train?")
        }
        do {
            spec = try RunSpec.decode(data)
        } catch {
            throw TrainingError.badInput("\(specPath): \(error)")
        }
        do {
            synthesis = try PostHocSynthesis(runDirectory: directory, profiles: profiles)
        } catch {
            throw TrainingError.badInput("\(error)")
        }
        workers = Workers(threads ?? spec.threads)
    }

    /// Synthesises and evaluates every width; `export` also writes `posthoc/phema@<σ_rel>.safetensors`.
    /// `preciseBatches` re-measures each set's BN statistics on that many training batches
    /// instead of combining the snapshots' running statistics.
    public func run(
        sigmaRels: [Double], preciseBatches: Int? = nil, export: Bool = false, testLimit: Int? = nil,
        emit: (TrainerEvent.PostHocEvaluation) -> Void
    ) throws {
        for sigma in sigmaRels where !(sigma > 0 && sigma <= PostHocSpec.widestSigmaRel) {
            throw TrainingError.badInput("σ_rel \(sigma) is outside (0, \(PostHocSpec.widestSigmaRel)]")
        }
        let model = ResNetMini(width: spec.model.width, depth: spec.model.depth)
        let test: ImageSet
        do {
            test = try FashionMNIST.load(root: spec.data.root, split: .test, limit: testLimit ?? spec.data.testLimit)
        } catch {
            throw TrainingError.badInput("\(error)")
        }
        let evaluator = Evaluator(images: test, model: model, workers: workers)
        let recompute = try preciseBatches.map { try batchNormRecompute(model: model, batches: $0) }
        let solve = CostClock.now()
        let states = try synthesis.synthesize(sigmaRels, layout: model.layout)
        // The joint solve is shared equally by the widths; each then pays its own BN, evaluation, export.
        let solveShare = Double(CostClock.now() &- solve) / 1e9 / Double(max(1, sigmaRels.count))
        let step = synthesis.lastStep
        for (sigma, state) in zip(sigmaRels, states) {
            var clock = CostClock()
            let name = PostHocSpec.weightSetName(sigmaRel: sigma)
            let start = CostClock.now()
            if let recompute { recompute.run.recompute(state, .precise(batches: recompute.batches)) }
            let e = evaluator.evaluate(state, resize: spec.resolution.testSize, crop: spec.resolution.testSize)
            if export {
                let path = (directory as NSString).appendingPathComponent("\(PostHocSynthesis.folder)/\(name).safetensors")
                do {
                    try state.stateDict(metadata: ["weights": name, "step": String(step), "spec": spec.json().text()])
                        .write(to: path)
                } catch {
                    throw TrainingError.failed("cannot write \(path): \(error)")
                }
            }
            clock.add(since: start)
            emit(
                .init(
                    sigmaRel: sigma, decay: PowerFunctionEMA.classicalDecay(sigmaRel: sigma, steps: step), weights: name,
                    step: step, batchNorm: recompute == nil ? .synthesized : .precise, top1: e.top1, top5: e.top5,
                    loss: e.loss, seconds: ((solveShare + clock.seconds) * 1000).rounded() / 1000))
        }
    }

    /// Precise BN over the run's own training images and augmentation, as the trainer's.
    private func batchNormRecompute(model: ResNetMini, batches: Int) throws -> (run: BatchNormRecompute, batches: Int) {
        let data = try RunData(spec: spec)
        let batch = min(spec.optim.batchSize, data.train.count)
        let size = spec.resolution.trainSize
        let exec = ResNetExecutor(model: model, batch: batch, height: size, width: size, trainable: true, workers: workers)
        let filler = BatchFiller(images: data.train, augment: spec.data.augment, size: size)
        let recompute = BatchNormRecompute(
            exec: exec, filler: filler, stepsPerEpoch: data.train.count / batch, seed: spec.seed)
        return (recompute, batches)
    }
}
