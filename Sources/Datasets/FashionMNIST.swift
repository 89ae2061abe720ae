#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Grey-scale images of one size with one class label each.
public struct ImageSet: Sendable {
    /// Number of images.
    public let count: Int
    public let height: Int
    public let width: Int
    /// `count × height × width` bytes, image after image, each row-major (0 = black, 255 = white).
    public let pixels: [UInt8]
    /// One class index per image.
    public let labels: [UInt8]

    public init(count: Int, height: Int, width: Int, pixels: [UInt8], labels: [UInt8]) {
        precondition(count >= 0 && height > 0 && width > 0, "ImageSet: bad shape \(count)×\(height)×\(width)")
        precondition(pixels.count == count * height * width, "ImageSet: \(pixels.count) pixels for \(count)×\(height)×\(width)")
        precondition(labels.count == count, "ImageSet: \(labels.count) labels for \(count) images")
        self.count = count
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
    }

    /// Pixels per image (`height × width`).
    public var imageSize: Int { height * width }

    /// Calls `body` with unsafe views of all images (valid only inside `body`): `images[i]` is image `i`.
    /// This is how a batch builder hands images to the transforms without copying them.
    public func withUnsafeImages<R>(_ body: (UnsafeImages) throws -> R) rethrows -> R {
        try pixels.withUnsafeBufferPointer { buffer in
            try body(UnsafeImages(base: buffer.baseAddress!, count: count, height: height, width: width))
        }
    }

    /// The first `n` images (all of them when `n ≥ count`).
    public func prefix(_ n: Int) -> ImageSet {
        let k = max(0, min(n, count))
        if k == count { return self }
        return ImageSet(
            count: k, height: height, width: width,
            pixels: Array(pixels[0..<(k * imageSize)]), labels: Array(labels[0..<k]))
    }
}

/// Unsafe access to the images of an `ImageSet`, from `ImageSet.withUnsafeImages`.
public struct UnsafeImages {
    public let base: UnsafePointer<UInt8>
    public let count: Int
    public let height: Int
    public let width: Int

    /// Image `i` (0 ≤ i < count).
    @inlinable
    public subscript(i: Int) -> ImageView {
        precondition(i >= 0 && i < count, "image index \(i) out of range 0..<\(count)")
        return ImageView(pointer: base + i * height * width, height: height, width: width)
    }
}

/// Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 28×28 grey-scale clothes, 10 classes,
/// 60 000 training and 10 000 test images, as four IDX files.
public enum FashionMNIST {
    /// Where Debian's `dataset-fashion-mnist` package installs the files.
    public static let defaultRoot = "/usr/share/datasets/fashion-mnist"
    /// Mean of the training pixels on the [0, 1] scale (the usual `Normalize(0.2860, 0.3530)`).
    public static let mean: Float = 0.2860
    /// Standard deviation of the training pixels on the [0, 1] scale.
    public static let std: Float = 0.3530
    /// Number of classes.
    public static let classes = 10
    /// Image side in pixels.
    public static let imageSize = 28

    public enum Split: String, CaseIterable {
        case train
        case test

        /// The file-name prefix: `train` or `t10k`.
        public var filePrefix: String { self == .train ? "train" : "t10k" }
        /// `train-images-idx3-ubyte.gz` or `t10k-images-idx3-ubyte.gz`.
        public var imagesFile: String { "\(filePrefix)-images-idx3-ubyte.gz" }
        /// `train-labels-idx1-ubyte.gz` or `t10k-labels-idx1-ubyte.gz`.
        public var labelsFile: String { "\(filePrefix)-labels-idx1-ubyte.gz" }
    }

    /// The path of `fileName` under `root`: the `.gz` name when it exists, else the same name
    /// without `.gz` when that exists.
    /// - Throws: `DatasetError` naming the `.gz` path when neither exists.
    public static func locate(root: String, fileName: String) throws -> String {
        let dir = root.hasSuffix("/") ? String(root.dropLast()) : root
        let gz = "\(dir)/\(fileName)"
        if fileExists(gz) { return gz }
        if fileName.hasSuffix(".gz") {
            let plain = String(gz.dropLast(3))
            if fileExists(plain) { return plain }
        }
        throw DatasetError(path: gz, "not found; install the Debian package dataset-fashion-mnist or set data.root")
    }

    /// Loads one split from the IDX files under `root`.
    ///
    /// Checks that the images have rank 3 and the labels rank 1, that both hold the same number of
    /// items, and that every label is below `classes`. With `limit`, only the first `limit` images
    /// are kept (all of them when `limit` is nil or at least the number of images).
    /// - Throws: `DatasetError` naming the offending file.
    public static func load(root: String = defaultRoot, split: Split, limit: Int? = nil) throws -> ImageSet {
        if let limit, limit < 0 {
            throw DatasetError(path: nil, "limit must be ≥ 0, got \(limit)")
        }
        let imagesPath = try locate(root: root, fileName: split.imagesFile)
        let labelsPath = try locate(root: root, fileName: split.labelsFile)
        let images = try IDXArray.read(path: imagesPath)
        guard images.dims.count == 3 else {
            throw DatasetError(
                path: imagesPath, "expected images of rank 3 (count, height, width), got rank \(images.dims.count) \(images.dims)"
            )
        }
        let labels = try IDXArray.read(path: labelsPath)
        guard labels.dims.count == 1 else {
            throw DatasetError(path: labelsPath, "expected labels of rank 1, got rank \(labels.dims.count) \(labels.dims)")
        }
        let n = images.dims[0]
        guard labels.dims[0] == n else {
            throw DatasetError(path: labelsPath, "holds \(labels.dims[0]) labels but \(imagesPath) holds \(n) images")
        }
        if let bad = labels.bytes.firstIndex(where: { Int($0) >= classes }) {
            throw DatasetError(path: labelsPath, "label \(labels.bytes[bad]) at index \(bad) is out of range 0..<\(classes)")
        }
        let set = ImageSet(
            count: n, height: images.dims[1], width: images.dims[2],
            pixels: images.bytes, labels: labels.bytes)
        if let limit { return set.prefix(limit) }
        return set
    }

    static func fileExists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFDIR
    }
}
