import Foundation
import XCTest

@testable import Datasets

final class FashionMNISTTests: XCTestCase {
    /// Writes a tiny split (n images h×w, given labels) under `dir`, gzip'd or plain.
    func writeSplit(
        _ dir: FixtureDir, _ split: FashionMNIST.Split, n: Int, h: Int = 3, w: Int = 2,
        labels: [UInt8]? = nil, gzip: Bool = true
    ) throws {
        let pixels = (0..<(n * h * w)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let lab = labels ?? (0..<n).map { UInt8($0 % 10) }
        let img = idxBytes(dims: [n, h, w], payload: pixels)
        let lbl = idxBytes(dims: [lab.count], payload: lab)
        if gzip {
            try dir.write(split.imagesFile, gzipped(img))
            try dir.write(split.labelsFile, gzipped(lbl))
        } else {
            try dir.write(String(split.imagesFile.dropLast(3)), img)
            try dir.write(String(split.labelsFile.dropLast(3)), lbl)
        }
    }

    func testLoadGzipAndPlainAndLimit() throws {
        let dir = try FixtureDir()
        try writeSplit(dir, .train, n: 5)
        try writeSplit(dir, .test, n: 4, gzip: false)
        let train = try FashionMNIST.load(root: dir.url.path, split: .train, limit: nil)
        XCTAssertEqual(train.count, 5)
        XCTAssertEqual(train.height, 3)
        XCTAssertEqual(train.width, 2)
        XCTAssertEqual(train.pixels.count, 30)
        XCTAssertEqual(train.labels, [0, 1, 2, 3, 4])
        XCTAssertEqual(train.pixels[7], 49)
        let test = try FashionMNIST.load(root: dir.url.path + "/", split: .test, limit: 2)
        XCTAssertEqual(test.count, 2)
        XCTAssertEqual(test.pixels, (0..<12).map { UInt8($0 * 7) })
        XCTAssertEqual(test.labels, [0, 1])
        XCTAssertEqual(try FashionMNIST.load(root: dir.url.path, split: .test, limit: 100).count, 4)
        XCTAssertEqual(try FashionMNIST.load(root: dir.url.path, split: .test, limit: 0).count, 0)
        train.withUnsafeImages { images in
            XCTAssertEqual(images.count, 5)
            XCTAssertEqual(images[1][0, 1], UInt8(7 * 7))
        }
    }

    func testMissingFileNamesPathAndPackage() throws {
        let dir = try FixtureDir()
        let expected = dir.path("t10k-images-idx3-ubyte.gz")
        assertDatasetError(
            try FashionMNIST.load(root: dir.url.path, split: .test, limit: nil),
            contains: [expected + ": not found", "dataset-fashion-mnist", "data.root"])
    }

    func testLabelOutOfRange() throws {
        let dir = try FixtureDir()
        try writeSplit(dir, .train, n: 4, labels: [1, 9, 10, 200])
        assertDatasetError(
            try FashionMNIST.load(root: dir.url.path, split: .train, limit: nil),
            contains: [dir.path("train-labels-idx1-ubyte.gz") + ":", "label 10 at index 2"])
    }

    func testCountMismatch() throws {
        let dir = try FixtureDir()
        try writeSplit(dir, .train, n: 4, labels: [1, 2, 3])
        assertDatasetError(
            try FashionMNIST.load(root: dir.url.path, split: .train, limit: nil),
            contains: [dir.path("train-labels-idx1-ubyte.gz") + ":", "3 labels", "4 images"])
    }

    func testWrongRanks() throws {
        let dir = try FixtureDir()
        try dir.write(
            FashionMNIST.Split.test.imagesFile, gzipped(idxBytes(dims: [2, 4], payload: Array(repeating: 1, count: 8))))
        try dir.write(FashionMNIST.Split.test.labelsFile, gzipped(idxBytes(dims: [2], payload: [0, 1])))
        assertDatasetError(
            try FashionMNIST.load(root: dir.url.path, split: .test, limit: nil),
            contains: [dir.path("t10k-images-idx3-ubyte.gz") + ":", "rank 3"])
        try dir.write(FashionMNIST.Split.test.imagesFile, gzipped(idxBytes(dims: [2, 1, 1], payload: [5, 6])))
        try dir.write(FashionMNIST.Split.test.labelsFile, gzipped(idxBytes(dims: [2, 1], payload: [0, 1])))
        assertDatasetError(
            try FashionMNIST.load(root: dir.url.path, split: .test, limit: nil),
            contains: [dir.path("t10k-labels-idx1-ubyte.gz") + ":", "rank 1"])
    }

    func testNegativeLimitIsRefused() throws {
        let dir = try FixtureDir()
        try writeSplit(dir, .test, n: 2)
        assertDatasetError(try FashionMNIST.load(root: dir.url.path, split: .test, limit: -1), contains: ["limit"])
    }

    func testRealTestSplit() throws {
        let root = FashionMNIST.defaultRoot
        guard
            FileManager.default.fileExists(atPath: root + "/t10k-images-idx3-ubyte.gz")
                || FileManager.default.fileExists(atPath: root + "/t10k-images-idx3-ubyte")
        else {
            throw XCTSkip("\(root) is not installed")
        }
        let set = try FashionMNIST.load(root: root, split: .test, limit: nil)
        XCTAssertEqual(set.count, 10_000)
        XCTAssertEqual(set.height, 28)
        XCTAssertEqual(set.width, 28)
        XCTAssertEqual(set.pixels.count, 10_000 * 784)
        XCTAssertTrue(set.labels.allSatisfy { $0 < 10 })
        // Each class holds 1 000 test images.
        var perClass = [Int](repeating: 0, count: 10)
        for l in set.labels { perClass[Int(l)] += 1 }
        XCTAssertEqual(perClass, [Int](repeating: 1000, count: 10))
        // The test images' mean is close to the training mean used for normalisation.
        let mean = Double(set.pixels.reduce(0) { $0 + Int($1) }) / Double(set.pixels.count) / 255
        XCTAssertEqual(mean, Double(FashionMNIST.mean), accuracy: 0.01)
        XCTAssertEqual(set.labels.first, 9)  // the first t10k item is an ankle boot
    }
}
