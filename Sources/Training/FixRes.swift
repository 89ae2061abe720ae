import Datasets
import Experiments
import Foundation
import Kernels
import PolyakNetwork

/// FixRes fine-tuning (Touvron et al. 2019, `resolution.finetune`): training at a lower resolution
/// than the test one shifts the apparent object size, so after training the classifier is tuned on
/// training images seen exactly as the test set will be (the test transform at `test_size`).
struct FixRes {
    let spec: RunSpec
    let model: ResNetMini
    let workers: Workers
    /// The training images at their native size (`RunData.original`): upsampling copies already
    /// resized to `train_size` would tune the classifier to blurred images the test set never shows.
    let images: ImageSet

    /// Fine-tunes a copy of `source`: only `fc` trains; the BatchNorms feeding the pooling
    /// re-estimate their running statistics in train mode with frozen affine weights; everything
    /// else is frozen in eval mode.
    func finetune(_ source: ModelState, _ ft: FinetuneSpec) -> ModelState {
        let state = source.copy()
        let size = spec.resolution.testSize, batch = spec.optim.batchSize
        let exec = ResNetExecutor(
            model: model, batch: batch, height: size, width: size, trainable: false, workers: workers, lanes: false)
        let last = model.blocks.last!
        exec.trainModeBatchNorms =
            last.hasDownsample ? ["\(last.prefix).bn2", "\(last.prefix).downsample.1"] : ["\(last.prefix).bn2"]
        let sgd = SGD(layout: model.layout, optim: spec.optim)
        let classifier: (TensorEntry) -> Bool = { $0.name.hasPrefix("fc.") }
        var rng = Xoshiro256(seed: spec.seed ^ 0xF1_4E5)
        let scratch = TransformScratch()
        let steps = images.count / batch
        let s = exec.input.shape
        for _ in 0..<ft.epochs {
            let order = rng.permutation(count: images.count)
            for i in 0..<steps {
                images.withUnsafeImages { imgs in
                    for b in 0..<batch {
                        let index = Int(order[i * batch + b])
                        testTransform(
                            imgs[index], resize: size, crop: size, scratch: scratch,
                            into: ImageDestination(base: exec.input.pointer + s.offset(b, 0, 0), rowStride: s.rowStride))
                        exec.labels[b] = Int32(images.labels[index])
                    }
                }
                exec.forward(state, training: false)
                exec.setLogitGradient { d in
                    SoftmaxCrossEntropy.forward(
                        logits: exec.logits, labels: exec.labels, n: batch, classes: model.classes, dLogits: d)
                }
                exec.backwardClassifier(state)
                sgd.step(state, lr: Float(ft.lr), only: classifier)
            }
        }
        return state
    }
}
