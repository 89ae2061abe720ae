import Datasets
import Dispatch
import PolyakNetwork

/// The data pipeline measured against the step: microseconds to augment one training batch into
/// the executor's input on the trainer's thread, before every step (the trainer does not overlap
/// it with the previous step: `bench engine` shows whether that would pay). Median of 31 batches.
struct AugmentationCost {
    /// The default recipe's pad-and-random-crop + flip.
    let padCropFlip: Double
    /// FixRes's RandomResizedCrop to the training size (bilinear).
    let randomResizedCrop: Double

    static func measure(_ images: ImageSet, into exec: ResNetExecutor) -> AugmentationCost {
        let shape = exec.input.shape
        let scratch = TransformScratch()
        var rng = Xoshiro256(seed: 1)
        func median(_ fill: (ImageView, ImageDestination) -> Void) -> Double {
            var times: [UInt64] = []
            images.withUnsafeImages { imgs in
                for k in 0..<31 {
                    let start = DispatchTime.now().uptimeNanoseconds
                    for b in 0..<exec.batch {
                        let i = (k * exec.batch + b) % imgs.count
                        fill(
                            imgs[i],
                            ImageDestination(base: exec.input.pointer + shape.offset(b, 0, 0), rowStride: shape.rowStride))
                        exec.labels[b] = Int32(images.labels[i])
                    }
                    times.append(DispatchTime.now().uptimeNanoseconds - start)
                }
            }
            return Double(times.sorted()[times.count / 2]) / 1000
        }
        let crop = median { image, dst in _ = Datasets.padCropFlip(image, pad: 2, hflip: true, rng: &rng, into: dst) }
        let resized = median { image, dst in
            _ = Datasets.randomResizedCrop(image, size: shape.h, hflip: true, rng: &rng, scratch: scratch, into: dst)
        }
        return AugmentationCost(padCropFlip: crop, randomResizedCrop: resized)
    }
}
