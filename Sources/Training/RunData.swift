import Datasets
import Experiments
import Foundation
import Kernels

/// The images of one run. `train` is what the training loop samples (resized once to
/// `train_size` when RandomResizedCrop is off); `original` is the same images at their native
/// size, for anything that must see training images at another size (FixRes fine-tuning at
/// `test_size`): upsampling the 20-px copies would fit the classifier to blurred images the
/// test set never shows.
struct RunData {
    let train: ImageSet
    let original: ImageSet
    let test: ImageSet

    /// Loads the spec's Fashion-MNIST subsets; a missing or corrupt file is bad input.
    init(spec: RunSpec) throws {
        do {
            original = try FashionMNIST.load(root: spec.data.root, split: .train, limit: spec.data.trainLimit)
            test = try FashionMNIST.load(root: spec.data.root, split: .test, limit: spec.data.testLimit)
        } catch let e as DatasetError {
            throw TrainingError.badInput(e.description)
        }
        let size = spec.resolution.trainSize
        if spec.data.augment.randomResizedCrop == nil && (size != original.height || size != original.width) {
            train = Self.resized(original, to: size)
        } else {
            train = original
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
                    resizeBilinear(
                        imgs[i], height: size, width: size, scratch: scratch,
                        into: ImageDestination(base: buf.baseAddress!, rowStride: size), norm: raw)
                }
                for j in 0..<(size * size) { pixels[i * size * size + j] = UInt8(max(0, min(255, row[j].rounded()))) }
            }
        }
        return ImageSet(count: set.count, height: size, width: size, pixels: pixels, labels: set.labels)
    }
}
