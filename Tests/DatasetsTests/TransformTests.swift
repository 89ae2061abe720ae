import XCTest

@testable import Datasets

/// An output image inside a bigger buffer whose border holds a sentinel, to catch stray writes.
struct Canvas {
    static let sentinel: Float = -777
    let height: Int, width: Int, border: Int
    var data: [Float]
    var stride: Int { width + 2 * border + 1 }  // a row stride longer than the row, as in a padded tensor

    init(height: Int, width: Int, border: Int = 3) {
        self.height = height
        self.width = width
        self.border = border
        data = [Float](repeating: Canvas.sentinel, count: (height + 2 * border) * (width + 2 * border + 1))
    }

    mutating func write(_ body: (ImageDestination) -> Void) {
        let (b, s) = (border, stride)
        data.withUnsafeMutableBufferPointer { p in
            body(ImageDestination(base: p.baseAddress! + b * s + b, rowStride: s))
        }
    }

    subscript(y: Int, x: Int) -> Float { data[(y + border) * stride + x + border] }

    /// The h × w output, row-major.
    var values: [Float] { (0..<height).flatMap { y in (0..<width).map { x in self[y, x] } } }

    /// True when every element outside the output rectangle still holds the sentinel and every
    /// element inside was written.
    var clean: Bool {
        for r in 0..<(height + 2 * border) {
            for c in 0..<stride {
                let inside = r >= border && r < border + height && c >= border && c < border + width
                let v = data[r * stride + c]
                if inside == (v == Canvas.sentinel) { return false }
            }
        }
        return true
    }
}

func makeImage(height: Int, width: Int, seed: UInt64) -> [UInt8] {
    var g = Xoshiro256(seed: seed)
    return (0..<(height * width)).map { _ in UInt8(truncatingIfNeeded: g.next() >> 56) }
}

func withView<R>(_ pixels: [UInt8], _ h: Int, _ w: Int, _ body: (ImageView) -> R) -> R {
    pixels.withUnsafeBufferPointer { body(ImageView($0, height: h, width: w)) }
}

let norm = Normalization.fashionMNIST

/// Normalised value of a value on the [0, 1] scale, in Double.
func normalised(_ unit: Double) -> Double { (unit - Double(FashionMNIST.mean)) / Double(FashionMNIST.std) }

/// A direct transcription of PIL's antialiased bilinear coefficients (`precompute_coeffs`), in Double.
func naiveTaps(inSize: Int, outSize: Int) -> [[(Int, Double)]] {
    let scale = Double(inSize) / Double(outSize)
    let fs = max(scale, 1)
    return (0..<outSize).map { i in
        let center = (Double(i) + 0.5) * scale
        let xmin = max(Int(center - fs + 0.5), 0)
        let xmax = min(Int(center + fs + 0.5), inSize)
        var taps: [(Int, Double)] = []
        for x in xmin..<xmax {
            let t = abs((Double(x) - center + 0.5) / fs)
            taps.append((x, max(0, 1 - t)))
        }
        let total = taps.reduce(0) { $0 + $1.1 }
        return taps.map { ($0.0, $0.1 / total) }
    }
}

/// Naive separable resize of a (unit-scale) image.
func naiveResize(_ img: [[Double]], outHeight: Int, outWidth: Int) -> [[Double]] {
    let h = img.count, w = img[0].count
    let tx = naiveTaps(inSize: w, outSize: outWidth), ty = naiveTaps(inSize: h, outSize: outHeight)
    let horizontal = img.map { row in tx.map { taps in taps.reduce(0) { $0 + $1.1 * row[$1.0] } } }
    return ty.map { taps in (0..<outWidth).map { x in taps.reduce(0) { $0 + $1.1 * horizontal[$1.0][x] } } }
}

func unitImage(_ pixels: [UInt8], _ h: Int, _ w: Int) -> [[Double]] {
    (0..<h).map { y in (0..<w).map { x in Double(pixels[y * w + x]) / 255 } }
}

func assertClose(
    _ got: [Float], _ expected: [Double], accuracy: Double = 2e-5,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(got.count, expected.count, file: file, line: line)
    var worst = 0.0
    for (g, e) in zip(got, expected) { worst = max(worst, abs(Double(g) - e)) }
    XCTAssertLessThanOrEqual(worst, accuracy, "max abs difference \(worst)", file: file, line: line)
}

final class TransformTests: XCTestCase {
    let scratch = TransformScratch()

    // MARK: normalisation and plain copies

    func testNormalizeValues() {
        let px: [UInt8] = [0, 255, 73, 128]
        var c = Canvas(height: 2, width: 2)
        withView(px, 2, 2) { v in c.write { normalize(v, into: $0) } }
        XCTAssertTrue(c.clean)
        assertClose(c.values, px.map { normalised(Double($0) / 255) }, accuracy: 1e-6)
        XCTAssertEqual(c[0, 0], norm.bias)
    }

    // MARK: resize

    func testFactorTwoShrinkHandComputed() {
        // v(y, x) = 40y + 10x. A factor-2 shrink with the antialiased triangle filter (support 2) has
        // taps at source pixels 0,1,2 (weights .75,.75,.25 → 3/7,3/7,1/7) for output 0 and 1,2,3
        // (1/7,3/7,3/7) for output 1. (Not a 2×2 box average: that is PIL's BOX filter, not BILINEAR.)
        // torch: interpolate(arange(4), size=2, bilinear, antialias=True) = [5/7, 16/7].
        let px = (0..<16).map { (i: Int) -> UInt8 in UInt8(40 * (i / 4) + 10 * (i % 4)) }
        var c = Canvas(height: 2, width: 2)
        withView(px, 4, 4) { v in c.write { resizeBilinear(v, height: 2, width: 2, scratch: scratch, into: $0) } }
        XCTAssertTrue(c.clean)
        let a = [5.0 / 7, 16.0 / 7]
        let expected = (0..<2).flatMap { y in (0..<2).map { x in (40 * a[y] + 10 * a[x]) / 255 } }
        assertClose(c.values, expected.map(normalised))
    }

    func testIdentityResizeIsExact() {
        let px = makeImage(height: 28, width: 28, seed: 1)
        var a = Canvas(height: 28, width: 28), b = Canvas(height: 28, width: 28)
        withView(px, 28, 28) { v in
            a.write { resizeBilinear(v, height: 28, width: 28, scratch: scratch, into: $0) }
            b.write { normalize(v, into: $0) }
        }
        XCTAssertTrue(a.clean)
        XCTAssertEqual(a.values, b.values)
    }

    /// Values from torch 2.13: F.interpolate(x / 255, size, mode="bilinear", antialias=True) of
    /// this 5×5 image.
    func testMatchesTorchOnA5x5Image() {
        let px: [UInt8] = [
            0, 50, 126, 228, 213, 224, 5, 68, 157, 129, 127, 151, 201, 21, 123,
            108, 119, 156, 219, 52, 24, 22, 46, 96, 172,
        ]
        let a33: [Double] = [0.2667467, 0.4192966, 0.7286915, 0.5107376, 0.5318325, 0.4032991, 0.2412965, 0.3879241, 0.5201281]
        let a22: [Double] = [0.3835845, 0.549133, 0.3950575, 0.4783422]
        let a77: [Double] = [
            0.0, 0.1120448, 0.2812325, 0.4941176, 0.7798319, 0.8689076, 0.8352941, 0.5019608, 0.2695478,
            0.1720688, 0.3641457, 0.6290516, 0.6973189, 0.6470588, 0.7697479, 0.4345738, 0.2496198,
            0.4156863, 0.4496999, 0.4786715, 0.4991597, 0.4980392, 0.5518207, 0.6481793, 0.7882353,
            0.2840336, 0.2537815, 0.4823529, 0.4448179, 0.4777911, 0.5481393, 0.6621849, 0.6441777,
            0.4854742, 0.2834734, 0.2823529, 0.2945178, 0.3388555, 0.4268908, 0.5877551, 0.5464586,
            0.4056022, 0.0941176, 0.0896359, 0.1131653, 0.1803922, 0.3204482, 0.5042017, 0.6745098,
        ]
        let a38: [Double] = [
            0.3764706, 0.2644608, 0.1377101, 0.3103291, 0.5148109, 0.7511555, 0.7294118, 0.6941176,
            0.5660131, 0.5095861, 0.4492919, 0.571841, 0.5519608, 0.3896514, 0.4028322, 0.4257081,
            0.2352941, 0.2414216, 0.2565476, 0.3290266, 0.4333683, 0.5695728, 0.5211134, 0.4728291,
        ]
        let cases: [(Int, Int, [Double])] = [
            (3, 3, a33),
            (2, 2, a22),
            (7, 7, a77),
            (3, 8, a38),
        ]
        for (h, w, expected) in cases {
            var c = Canvas(height: h, width: w)
            withView(px, 5, 5) { v in c.write { resizeBilinear(v, height: h, width: w, scratch: scratch, into: $0) } }
            XCTAssertTrue(c.clean, "\(h)×\(w)")
            assertClose(c.values, expected.map(normalised), accuracy: 1e-5)
        }
        // Resize(9) then CenterCrop(4): top = round(2.5) = 2 (half to even).
        let r9c4 = [
            0.121617, 0.1515372, 0.291939, 0.4889857, 0.3224401, 0.3738078, 0.4984749, 0.4319051,
            0.5816993, 0.6793028, 0.7882353, 0.3960784, 0.5151295, 0.5969983, 0.6901961, 0.5921569,
        ]
        var c = Canvas(height: 4, width: 4)
        withView(px, 5, 5) { v in c.write { testTransform(v, resize: 9, crop: 4, scratch: scratch, into: $0) } }
        XCTAssertTrue(c.clean)
        assertClose(c.values, r9c4.map(normalised), accuracy: 1e-5)
    }

    func testResizeMatchesNaiveReferenceForManySizes() {
        let px = makeImage(height: 28, width: 28, seed: 3)
        let unit = unitImage(px, 28, 28)
        for (h, w) in [
            (1, 1), (5, 9), (13, 13), (14, 14), (20, 20), (24, 24), (27, 28), (29, 29), (32, 32),
            (36, 36), (56, 56), (61, 17),
        ] {
            var c = Canvas(height: h, width: w)
            withView(px, 28, 28) { v in c.write { resizeBilinear(v, height: h, width: w, scratch: scratch, into: $0) } }
            XCTAssertTrue(c.clean, "\(h)×\(w)")
            assertClose(c.values, naiveResize(unit, outHeight: h, outWidth: w).flatMap { $0 }.map(normalised))
        }
    }

    // MARK: centre crop and the test transform

    func testCenterCropOffsets() {
        func off(_ size: Int, _ crop: Int) -> Int {
            centerCropOffsets(height: size, width: size, cropHeight: crop, cropWidth: crop).top
        }
        XCTAssertEqual(off(28, 24), 2)
        XCTAssertEqual(off(28, 28), 0)
        XCTAssertEqual(off(9, 4), 2)  // round(2.5) = 2
        XCTAssertEqual(off(7, 4), 2)  // round(1.5) = 2
        XCTAssertEqual(off(11, 4), 4)  // round(3.5) = 4
        XCTAssertEqual(off(36, 24), 6)
        XCTAssertEqual(off(32, 28), 2)
        XCTAssertEqual(off(4, 7), -1)  // torchvision pads 1 on top, 2 below
        let o = centerCropOffsets(height: 10, width: 20, cropHeight: 4, cropWidth: 5)
        XCTAssertEqual(o.top, 3)
        XCTAssertEqual(o.left, 8)  // round(7.5) = 8
    }

    func testCenterCropAndLargerCropPadsBlack() {
        let px = makeImage(height: 6, width: 6, seed: 4)
        var c = Canvas(height: 4, width: 4)
        withView(px, 6, 6) { v in c.write { centerCrop(v, size: 4, into: $0) } }
        XCTAssertTrue(c.clean)
        XCTAssertEqual(c.values, (1..<5).flatMap { y in (1..<5).map { x in norm(Float(px[y * 6 + x])) } })
        var big = Canvas(height: 9, width: 9)
        withView(px, 6, 6) { v in big.write { centerCrop(v, size: 9, into: $0) } }
        XCTAssertTrue(big.clean)
        // Pad (9 − 6) // 2 = 1 on the top and left.
        for y in 0..<9 {
            for x in 0..<9 {
                let inside = (1..<7).contains(y) && (1..<7).contains(x)
                XCTAssertEqual(big[y, x], inside ? norm(Float(px[(y - 1) * 6 + x - 1])) : norm.bias)
            }
        }
    }

    func testTestTransformAtNativeSizeIsExactlyACrop() {
        let px = makeImage(height: 28, width: 28, seed: 5)
        for crop in [20, 24, 28] {
            var a = Canvas(height: crop, width: crop), b = Canvas(height: crop, width: crop)
            withView(px, 28, 28) { v in
                a.write { testTransform(v, resize: 28, crop: crop, scratch: scratch, into: $0) }
                b.write { centerCrop(v, size: crop, into: $0) }
            }
            XCTAssertTrue(a.clean)
            XCTAssertEqual(a.values, b.values)
        }
    }

    func testTestTransformGridMatchesNaive() {
        let px = makeImage(height: 28, width: 28, seed: 6)
        let unit = unitImage(px, 28, 28)
        for r in [20, 24, 32, 36] {
            let full = naiveResize(unit, outHeight: r, outWidth: r)
            for crop in [20, 24, 28, 32] where crop <= r {
                let top = centerCropOffsets(height: r, width: r, cropHeight: crop, cropWidth: crop).top
                var c = Canvas(height: crop, width: crop)
                withView(px, 28, 28) { v in c.write { testTransform(v, resize: r, crop: crop, scratch: scratch, into: $0) } }
                XCTAssertTrue(c.clean, "r \(r) c \(crop)")
                let expected = (0..<crop).flatMap { y in (0..<crop).map { x in normalised(full[top + y][top + x]) } }
                assertClose(c.values, expected)
            }
        }
    }

    // MARK: pad-crop-flip

    func testPadCropFlipAgainstDirectLoop() {
        let (h, w) = (28, 28)
        let px = makeImage(height: h, width: w, seed: 8)
        var rng = Xoshiro256(seed: 42)
        var flips = 0
        var offsets = Set<[Int]>()
        for trial in 0..<300 {
            let pad = trial % 3 == 2 ? 3 : 2
            let hflip = trial % 5 != 0
            // The draws, replayed on a copy: oy, ox, then the flip.
            var copy = rng
            let oy = copy.nextInt(below: 2 * pad + 1), ox = copy.nextInt(below: 2 * pad + 1)
            let flip = hflip ? copy.nextFloat() < 0.5 : false
            var c = Canvas(height: h, width: w)
            let got = withView(px, h, w) { v -> (oy: Int, ox: Int, flipped: Bool) in
                var result = (oy: 0, ox: 0, flipped: false)
                c.write { result = padCropFlip(v, pad: pad, hflip: hflip, rng: &rng, into: $0) }
                return result
            }
            XCTAssertEqual(rng.state, copy.state)
            XCTAssertEqual(got.oy, oy); XCTAssertEqual(got.ox, ox); XCTAssertEqual(got.flipped, flip)
            XCTAssertTrue(c.clean)
            // Direct loop over the zero-padded image, as torch_reference.py's gather.
            let ph = h + 2 * pad, pw = w + 2 * pad
            var padded = [UInt8](repeating: 0, count: ph * pw)
            for y in 0..<h { for x in 0..<w { padded[(y + pad) * pw + x + pad] = px[y * w + x] } }
            var expected: [Float] = []
            for y in 0..<h {
                for x in 0..<w {
                    let col = ox + (flip ? w - 1 - x : x)
                    expected.append(norm(Float(padded[(oy + y) * pw + col])))
                }
            }
            XCTAssertEqual(c.values, expected, "trial \(trial)")
            if flip { flips += 1 }
            offsets.insert([oy, ox])
        }
        XCTAssertGreaterThan(flips, 80)
        XCTAssertGreaterThanOrEqual(offsets.count, 25)  // every (oy, ox) of 0...4 (and more with pad 3)
    }

    func testPadZeroNoFlipIsNormalize() {
        let px = makeImage(height: 5, width: 7, seed: 9)
        var rng = Xoshiro256(seed: 1)
        var a = Canvas(height: 5, width: 7), b = Canvas(height: 5, width: 7)
        withView(px, 5, 7) { v in
            a.write { padCropFlip(v, pad: 0, hflip: false, rng: &rng, into: $0) }
            b.write { normalize(v, into: $0) }
        }
        XCTAssertEqual(a.values, b.values)
    }

    func testPadLargerThanImageGivesBlackOrPartial() {
        // pad 6 around a 3×3 image: some crops are entirely padding.
        let px = makeImage(height: 3, width: 3, seed: 10)
        var rng = Xoshiro256(seed: 2)
        for _ in 0..<200 {
            var c = Canvas(height: 3, width: 3)
            withView(px, 3, 3) { v in c.write { padCropFlip(v, pad: 6, hflip: true, rng: &rng, into: $0) } }
            XCTAssertTrue(c.clean)
        }
    }

    // MARK: RandomResizedCrop

    func testRandomResizedCropParamsRespectRanges() {
        var rng = Xoshiro256(seed: 12)
        let scale = (0.35, 1.0), ratio = (0.75, 4.0 / 3)
        var fractions: [Double] = []
        for _ in 0..<20_000 {
            let b = randomResizedCropParams(height: 28, width: 28, scale: scale, ratio: ratio, rng: &rng)
            XCTAssertTrue(b.top >= 0 && b.left >= 0 && b.height > 0 && b.width > 0)
            XCTAssertTrue(b.top + b.height <= 28 && b.left + b.width <= 28)
            let f = Double(b.height * b.width) / 784
            fractions.append(f)
            // Rounding each side to an integer moves the area a little outside the drawn range.
            XCTAssertGreaterThanOrEqual(f, 0.35 * 0.85)
            let aspect = Double(b.width) / Double(b.height)
            XCTAssertTrue(aspect > 0.75 * 0.85 && aspect < 4.0 / 3 / 0.85, "aspect \(aspect)")
        }
        let mean = fractions.reduce(0, +) / Double(fractions.count)
        // Uniform area in [0.35, 1] has mean 0.675; large areas with extreme aspect ratios do not
        // fit and are redrawn, which pulls the mean down a little.
        XCTAssertTrue(mean > 0.55 && mean < 0.7, "mean area fraction \(mean)")
        XCTAssertLessThan(fractions.min()!, 0.38)
        XCTAssertGreaterThan(fractions.max()!, 0.95)
        // The lower third and upper third of the scale range are both well populated.
        XCTAssertGreaterThan(fractions.filter { $0 < 0.57 }.count, 3000)
        XCTAssertGreaterThan(fractions.filter { $0 > 0.78 }.count, 3000)
    }

    func testRandomResizedCropFallback() {
        var rng = Xoshiro256(seed: 13)
        // A scale above 1 can never fit: 10 failed attempts, then the centred fallback.
        let square = randomResizedCropParams(height: 28, width: 28, scale: (2, 3), ratio: (0.75, 4.0 / 3), rng: &rng)
        XCTAssertEqual(square, CropBox(top: 0, left: 0, height: 28, width: 28))
        // Too wide an image: height kept, width = round(10 · 4/3) = 13, centred.
        let wide = randomResizedCropParams(height: 10, width: 30, scale: (2, 3), ratio: (0.75, 4.0 / 3), rng: &rng)
        XCTAssertEqual(wide, CropBox(top: 0, left: 8, height: 10, width: 13))
        // Too tall: width kept, height = round(10 / 0.75) = 13.
        let tall = randomResizedCropParams(height: 30, width: 10, scale: (2, 3), ratio: (0.75, 4.0 / 3), rng: &rng)
        XCTAssertEqual(tall, CropBox(top: 8, left: 0, height: 13, width: 10))
    }

    func testRandomResizedCropOutputMatchesCropThenResize() {
        let px = makeImage(height: 28, width: 28, seed: 14)
        let unit = unitImage(px, 28, 28)
        var rng = Xoshiro256(seed: 15)
        var flips = 0
        for trial in 0..<60 {
            let size = [20, 24, 28, 32, 36][trial % 5]
            var copy = rng
            let box = randomResizedCropParams(height: 28, width: 28, scale: (0.35, 1), ratio: (0.75, 4.0 / 3), rng: &copy)
            let flip = copy.nextFloat() < 0.5
            var c = Canvas(height: size, width: size)
            let got = withView(px, 28, 28) { v -> (box: CropBox, flipped: Bool) in
                var r = (box: box, flipped: false)
                c.write {
                    r = randomResizedCrop(
                        v, size: size, scale: (0.35, 1), ratio: (0.75, 4.0 / 3), hflip: true,
                        rng: &rng, scratch: scratch, into: $0)
                }
                return r
            }
            XCTAssertEqual(got.box, box)
            XCTAssertEqual(got.flipped, flip)
            XCTAssertEqual(rng.state, copy.state)
            XCTAssertTrue(c.clean, "trial \(trial): wrote outside \(size)×\(size)")
            let crop = (0..<box.height).map { y in Array(unit[box.top + y][box.left..<(box.left + box.width)]) }
            let resized = naiveResize(crop, outHeight: size, outWidth: size)
            let expected = resized.flatMap { row in (flip ? Array(row.reversed()) : row).map(normalised) }
            assertClose(c.values, expected)
            if flip { flips += 1 }
        }
        XCTAssertGreaterThan(flips, 10)
        XCTAssertLessThan(flips, 50)
    }

    func testRandomResizedCropWithoutFlipDrawsNoFlip() {
        let px = makeImage(height: 28, width: 28, seed: 16)
        var rng = Xoshiro256(seed: 17)
        var copy = rng
        _ = randomResizedCropParams(height: 28, width: 28, scale: (0.08, 1), ratio: (0.75, 4.0 / 3), rng: &copy)
        var c = Canvas(height: 28, width: 28)
        let r = withView(px, 28, 28) { v -> Bool in
            var flipped = true
            c.write { flipped = randomResizedCrop(v, size: 28, hflip: false, rng: &rng, scratch: scratch, into: $0).flipped }
            return flipped
        }
        XCTAssertFalse(r)
        XCTAssertEqual(rng.state, copy.state)
        XCTAssertTrue(c.clean)
    }

    func testScratchIsReusedAcrossSizes() {
        // Growing and shrinking sizes through one scratch give the same answers as fresh scratches.
        let px = makeImage(height: 28, width: 28, seed: 18)
        for size in [8, 64, 20, 100, 3, 28, 36] {
            var a = Canvas(height: size, width: size), b = Canvas(height: size, width: size)
            withView(px, 28, 28) { v in
                a.write { resizeBilinear(v, height: size, width: size, scratch: scratch, into: $0) }
                b.write { resizeBilinear(v, height: size, width: size, scratch: TransformScratch(), into: $0) }
            }
            XCTAssertEqual(a.values, b.values)
            XCTAssertTrue(a.clean)
        }
    }
}
