/// Image sizes for training and testing, the FixRes grid and fine-tuning (`resolution`).
public struct ResolutionSpec: Equatable, Sendable {
    /// `train_size` ≥ 8: side of the training images.
    public var trainSize: Int
    /// `test_size` ≥ 8: side of the test images (and of FixRes fine-tuning).
    public var testSize: Int
    /// `test_grid`: evaluate every resize × crop pair with crop ≤ resize after training; `nil` = no grid.
    public var testGrid: TestGrid?
    /// `finetune`: FixRes fine-tuning at `test_size`; `nil` = none.
    public var finetune: FinetuneSpec?

    public init(trainSize: Int = 28, testSize: Int = 28, testGrid: TestGrid? = nil, finetune: FinetuneSpec? = nil) {
        self.trainSize = trainSize
        self.testSize = testSize
        self.testGrid = testGrid
        self.finetune = finetune
    }

    static func read(_ r: SpecReader) throws -> ResolutionSpec {
        ResolutionSpec(
            trainSize: try r.int("train_size", default: 28, .atLeast(8)),
            testSize: try r.int("test_size", default: 28, .atLeast(8)),
            testGrid: try r.object("test_grid", TestGrid.read),
            finetune: try r.object("finetune", FinetuneSpec.read))
    }

    /// The full `resolution` object.
    public func json() -> JSONValue {
        [
            "train_size": .number(Double(trainSize)), "test_size": .number(Double(testSize)),
            "test_grid": testGrid?.json() ?? .null, "finetune": finetune?.json() ?? .null,
        ]
    }
}

/// The FixRes evaluation grid (`resolution.test_grid`): resize to `resize`, center-crop `crop`.
public struct TestGrid: Equatable, Sendable {
    /// `resize`: sides (≥ 8, distinct) the test image is resized to.
    public var resize: [Int]
    /// `crop`: center-crop sides (≥ 8, distinct).
    public var crop: [Int]

    public init(resize: [Int], crop: [Int]) {
        self.resize = resize
        self.crop = crop
    }

    /// Every (resize, crop) pair with crop ≤ resize, resize-major in the order written.
    public var cells: [(resize: Int, crop: Int)] {
        resize.flatMap { r in crop.filter { $0 <= r }.map { (resize: r, crop: $0) } }
    }

    static func read(_ r: SpecReader) throws -> TestGrid {
        let grid = TestGrid(resize: try sides(r, "resize"), crop: try sides(r, "crop"))
        if grid.cells.isEmpty {
            throw SpecError(field: r.path, message: "has no pair with crop ≤ resize, so nothing would be evaluated")
        }
        return grid
    }

    private static func sides(_ r: SpecReader, _ key: String) throws -> [Int] {
        guard let list = try r.list(key, { v, path in try SpecReader.int(v, path, .atLeast(8)) }) else {
            throw SpecError(field: r.path(key), message: "is required (a list of image sides ≥ 8)")
        }
        if list.isEmpty { throw SpecError(field: r.path(key), message: "must list at least one size") }
        for (i, side) in list.enumerated() where list[..<i].contains(side) {
            throw SpecError(field: SpecReader.path(r.path(key), index: i), message: "repeats the size \(side)")
        }
        return list
    }

    /// The full `test_grid` object.
    public func json() -> JSONValue {
        ["resize": .array(resize.map { .number(Double($0)) }), "crop": .array(crop.map { .number(Double($0)) })]
    }
}

/// FixRes fine-tuning of the classifier at the test size (`resolution.finetune`).
public struct FinetuneSpec: Equatable, Sendable {
    /// `epochs` ≥ 1.
    public var epochs: Int
    /// `lr` > 0.
    public var lr: Double

    public init(epochs: Int = 1, lr: Double = 0.01) {
        self.epochs = epochs
        self.lr = lr
    }

    static func read(_ r: SpecReader) throws -> FinetuneSpec {
        FinetuneSpec(
            epochs: try r.int("epochs", default: 1, .atLeast(1)),
            lr: try r.double("lr", default: 0.01, .greaterThan(0)))
    }

    /// The full `finetune` object.
    public func json() -> JSONValue { ["epochs": .number(Double(epochs)), "lr": .number(lr)] }
}
