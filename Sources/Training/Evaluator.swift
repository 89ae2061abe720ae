import Datasets
import Foundation
import Kernels
import PolyakNetwork

/// Loss and accuracy of one weight set on a labelled image set.
public struct Evaluation: Sendable, Equatable {
    public var count: Int
    public var lossSum: Double
    public var top1Hits: Int
    public var top5Hits: Int

    public var loss: Double { lossSum / Double(max(count, 1)) }
    public var top1: Double { Double(top1Hits) / Double(max(count, 1)) }
    public var top5: Double { Double(top5Hits) / Double(max(count, 1)) }
}

/// Evaluates weight sets on the test images under the test transform `Resize(r)` + `CenterCrop(c)`,
/// BN in eval mode. Executors are built per crop size; the one for the per-epoch size is kept.
public final class Evaluator: @unchecked Sendable {
    public let images: ImageSet
    public let model: ResNetMini
    public let batch: Int
    public let workers: Workers
    private var cached: (size: Int, executor: ResNetExecutor)?
    private let scratch = TransformScratch()

    public init(images: ImageSet, model: ResNetMini, batch: Int = 512, workers: Workers) {
        self.images = images
        self.model = model
        self.batch = max(1, min(batch, images.count))
        self.workers = workers
    }

    private func executor(size: Int, keep: Bool) -> ResNetExecutor {
        if let cached, cached.size == size { return cached.executor }
        let e = ResNetExecutor(model: model, batch: batch, height: size, width: size, trainable: false, workers: workers)
        if keep { cached = (size, e) }
        return e
    }

    /// `keep` holds on to the executor of this crop size for later calls (the per-epoch size).
    public func evaluate(_ state: ModelState, resize: Int, crop: Int, keep: Bool = true) -> Evaluation {
        let exec = executor(size: crop, keep: keep)
        var result = Evaluation(count: 0, lossSum: 0, top1Hits: 0, top5Hits: 0)
        let s = exec.input.shape
        images.withUnsafeImages { imgs in
            var start = 0
            while start < imgs.count {
                let n = min(batch, imgs.count - start)
                for b in 0..<n {
                    let dst = ImageDestination(base: exec.input.pointer + s.offset(b, 0, 0), rowStride: s.rowStride)
                    if resize == imgs.height && crop == imgs.height && imgs.height == imgs.width {
                        normalize(imgs[start + b], into: dst)
                    } else {
                        testTransform(imgs[start + b], resize: resize, crop: crop, scratch: scratch, into: dst)
                    }
                    exec.labels[b] = Int32(images.labels[start + b])
                }
                exec.forward(state, training: false)
                let r = exec.score(count: n)
                result.count += n
                result.lossSum += r.lossSum
                result.top1Hits += r.top1
                result.top5Hits += r.top5
                start += n
            }
        }
        return result
    }
}
