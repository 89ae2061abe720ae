import Datasets
import Experiments
import PolyakNetwork

/// Writes one augmented training batch into an executor's input: pad-and-random-crop + flip
/// (the reference recipe), or RandomResizedCrop to the training size (FixRes).
final class BatchFiller {
    let images: ImageSet
    let augment: AugmentSpec
    let size: Int
    private let scratch = TransformScratch()

    init(images: ImageSet, augment: AugmentSpec, size: Int) {
        self.images = images
        self.augment = augment
        self.size = size
    }

    func fill(_ exec: ResNetExecutor, indices: ArraySlice<Int32>, rng: inout Xoshiro256) {
        let s = exec.input.shape
        images.withUnsafeImages { imgs in
            for (b, index) in indices.enumerated() {
                let i = Int(index)
                let dst = ImageDestination(base: exec.input.pointer + s.offset(b, 0, 0), rowStride: s.rowStride)
                if let rrc = augment.randomResizedCrop {
                    randomResizedCrop(
                        imgs[i], size: size, scale: (rrc.scale.lowerBound, rrc.scale.upperBound),
                        ratio: (rrc.ratio.lowerBound, rrc.ratio.upperBound), hflip: augment.hflip,
                        rng: &rng, scratch: scratch, into: dst)
                } else {
                    padCropFlip(imgs[i], pad: augment.padCrop, hflip: augment.hflip, rng: &rng, into: dst)
                }
                exec.labels[b] = Int32(images.labels[i])
            }
        }
    }
}
