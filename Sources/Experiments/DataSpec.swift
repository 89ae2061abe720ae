/// Where the images come from and how training images are augmented (`data` in a run spec).
public struct DataSpec: Equatable, Sendable {
    /// The only dataset there is: `fashion-mnist`.
    public enum Dataset: String, CaseIterable, Sendable {
        case fashionMNIST = "fashion-mnist"
    }

    /// `dataset`: `fashion-mnist`.
    public var dataset: Dataset
    /// `root`: folder holding the four IDX `.gz` files.
    public var root: String
    /// `train_limit`: use the first N training images; `nil` for all.
    public var trainLimit: Int?
    /// `test_limit`: use the first N test images; `nil` for all.
    public var testLimit: Int?
    /// `augment`: training-time augmentation.
    public var augment: AugmentSpec

    public static let defaultRoot = "/usr/share/datasets/fashion-mnist"

    public init(
        dataset: Dataset = .fashionMNIST, root: String = DataSpec.defaultRoot, trainLimit: Int? = nil,
        testLimit: Int? = nil, augment: AugmentSpec = AugmentSpec()
    ) {
        self.dataset = dataset
        self.root = root
        self.trainLimit = trainLimit
        self.testLimit = testLimit
        self.augment = augment
    }

    static func read(_ r: SpecReader) throws -> DataSpec {
        let root = try r.string("root", default: defaultRoot)
        if root.isEmpty { throw SpecError(field: r.path("root"), message: "must not be empty") }
        return DataSpec(
            dataset: try r.choice("dataset", default: .fashionMNIST),
            root: root,
            trainLimit: try r.optionalInt("train_limit", .atLeast(1)),
            testLimit: try r.optionalInt("test_limit", .atLeast(1)),
            augment: try r.object("augment", AugmentSpec.read) ?? AugmentSpec())
    }

    /// The full `data` object, every default written out.
    public func json() -> JSONValue {
        [
            "dataset": .string(dataset.rawValue), "root": .string(root),
            "train_limit": trainLimit.map { .number(Double($0)) } ?? .null,
            "test_limit": testLimit.map { .number(Double($0)) } ?? .null,
            "augment": augment.json(),
        ]
    }
}

/// Training-time augmentation (`data.augment`). Keys left out take their defaults.
///
/// `pad_crop` defaults to 2 (pad by 2, random 28×28 crop), except when `random_resized_crop` is
/// given: then it defaults to 0, because FixRes training replaces the padded crop with the
/// random-resized one (service.md's FixRes example lists only `random_resized_crop` and `hflip`).
public struct AugmentSpec: Equatable, Sendable {
    /// `pad_crop`: zero-padding in pixels before a random crop back to size; 0 = off.
    public var padCrop: Int
    /// `hflip`: random horizontal flip with probability 1/2.
    public var hflip: Bool
    /// `random_resized_crop`: torchvision's RandomResizedCrop to `resolution.train_size`; `nil` = off.
    public var randomResizedCrop: RandomResizedCropSpec?

    public init(padCrop: Int? = nil, hflip: Bool = true, randomResizedCrop: RandomResizedCropSpec? = nil) {
        self.padCrop = padCrop ?? (randomResizedCrop == nil ? 2 : 0)
        self.hflip = hflip
        self.randomResizedCrop = randomResizedCrop
    }

    static func read(_ r: SpecReader) throws -> AugmentSpec {
        let rrc = try r.object("random_resized_crop", RandomResizedCropSpec.read)
        return AugmentSpec(
            padCrop: try r.optionalInt("pad_crop", .atLeast(0)),
            hflip: try r.bool("hflip", default: true),
            randomResizedCrop: rrc)
    }

    /// The full `augment` object.
    public func json() -> JSONValue {
        [
            "pad_crop": .number(Double(padCrop)), "hflip": .bool(hflip),
            "random_resized_crop": randomResizedCrop?.json() ?? .null,
        ]
    }
}

/// torchvision `RandomResizedCrop` parameters (`data.augment.random_resized_crop`).
public struct RandomResizedCropSpec: Equatable, Sendable {
    /// `scale` `[lo, hi]`: fraction of the image area kept, `0 < lo ≤ hi ≤ 1`.
    public var scale: ClosedRange<Double>
    /// `ratio` `[lo, hi]`: aspect ratio range of the crop, `0 < lo ≤ hi`.
    public var ratio: ClosedRange<Double>

    public init(scale: ClosedRange<Double> = 0.35...1, ratio: ClosedRange<Double> = 0.75...1.3333) {
        self.scale = scale
        self.ratio = ratio
    }

    static func read(_ r: SpecReader) throws -> RandomResizedCropSpec {
        let scale = try r.value("scale").map { try pair($0, r.path("scale"), .openClosed(0, 1)) }
        let ratio = try r.value("ratio").map { try pair($0, r.path("ratio"), .greaterThan(0)) }
        return RandomResizedCropSpec(scale: scale ?? 0.35...1, ratio: ratio ?? 0.75...1.3333)
    }

    /// `[lo, hi]` with both ends in `range` and `lo ≤ hi`.
    private static func pair(_ v: JSONValue, _ path: String, _ range: Interval) throws -> ClosedRange<Double> {
        guard case .array(let items) = v, items.count == 2 else {
            throw SpecReader.typeError(path, "a list [lo, hi] of two numbers", v)
        }
        let lo = try SpecReader.double(items[0], SpecReader.path(path, index: 0), range)
        let hi = try SpecReader.double(items[1], SpecReader.path(path, index: 1), range)
        guard lo <= hi else {
            throw SpecError(field: path, message: "must have lo ≤ hi, got \(v.text())")
        }
        return lo...hi
    }

    /// The full `random_resized_crop` object.
    public func json() -> JSONValue {
        [
            "scale": [.number(scale.lowerBound), .number(scale.upperBound)],
            "ratio": [.number(ratio.lowerBound), .number(ratio.upperBound)],
        ]
    }
}

/// The network to train (`model`; also a distillation teacher's `model`).
public struct ModelSpec: Equatable, Sendable {
    /// `arch`: `resnet-mini`, the one model the trainer builds (any width and depth).
    public enum Arch: String, CaseIterable, Sendable {
        case resnetMini = "resnet-mini"
    }

    /// `arch`.
    public var arch: Arch
    /// `width`: channels of the first stage, 1–256.
    public var width: Int
    /// `depth`: blocks per stage, 1–8.
    public var depth: Int

    public init(arch: Arch = .resnetMini, width: Int = 16, depth: Int = 1) {
        self.arch = arch
        self.width = width
        self.depth = depth
    }

    static func read(_ r: SpecReader) throws -> ModelSpec {
        ModelSpec(
            arch: try r.choice("arch", default: .resnetMini),
            width: try r.int("width", default: 16, .closed(1, 256)),
            depth: try r.int("depth", default: 1, .closed(1, 8)))
    }

    /// The full `model` object.
    public func json() -> JSONValue {
        ["arch": .string(arch.rawValue), "width": .number(Double(width)), "depth": .number(Double(depth))]
    }
}
