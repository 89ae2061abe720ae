// Per-image transforms: they read one grey-scale UInt8 image and write normalised Floats
// (v/255 − mean)/std straight into a batch tensor. None of them allocates per call (the resizing
// ones keep their intermediate in a caller-owned `TransformScratch`), and none writes outside the
// output rectangle it is asked for.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One grey-scale image: `height × width` bytes, row-major, at `pointer`.
public struct ImageView {
    public let pointer: UnsafePointer<UInt8>
    public let height: Int
    public let width: Int

    @inlinable
    public init(pointer: UnsafePointer<UInt8>, height: Int, width: Int) {
        precondition(height > 0 && width > 0, "ImageView: bad size \(height)×\(width)")
        self.pointer = pointer
        self.height = height
        self.width = width
    }

    /// A view of `buffer`, which must hold at least `height × width` bytes.
    @inlinable
    public init(_ buffer: UnsafeBufferPointer<UInt8>, height: Int, width: Int) {
        precondition(buffer.count >= height * width, "ImageView: \(buffer.count) bytes for \(height)×\(width)")
        self.init(pointer: buffer.baseAddress!, height: height, width: width)
    }

    /// Pixel (y, x).
    @inlinable
    public subscript(y: Int, x: Int) -> UInt8 { pointer[y * width + x] }
}

/// Where a transform writes its output: element (y, x) goes to `base[y * rowStride + x]`.
/// Typically one image of an NHWC batch with C = 1 (rowStride = the batch tensor's row length),
/// possibly inside a bigger zero-padded buffer; only the output's own h × w elements are written.
public struct ImageDestination {
    public let base: UnsafeMutablePointer<Float>
    public let rowStride: Int

    @inlinable
    public init(base: UnsafeMutablePointer<Float>, rowStride: Int) {
        self.base = base
        self.rowStride = rowStride
    }
}

/// The affine map from pixel values to network inputs: (v/255 − mean)/std.
public struct Normalization: Sendable {
    public let mean: Float
    public let std: Float
    /// Multiplier applied to a raw byte value: 1/(255·std).
    public let byteScale: Float
    /// Added after scaling: −mean/std (the value of a black pixel).
    public let bias: Float

    public init(mean: Float, std: Float) {
        precondition(std > 0, "Normalization: std must be > 0")
        self.mean = mean
        self.std = std
        byteScale = 1 / (255 * std)
        bias = -mean / std
    }

    /// `Normalize(0.2860, 0.3530)`, Fashion-MNIST's training statistics.
    public static let fashionMNIST = Normalization(mean: FashionMNIST.mean, std: FashionMNIST.std)

    /// The normalised value of raw byte `v` (also valid for a resampled value on the 0…255 scale).
    @inlinable
    public func callAsFunction(_ v: Float) -> Float { v * byteScale + bias }
}

/// A rectangle of an image, in pixels.
public struct CropBox: Equatable, CustomStringConvertible, Sendable {
    public var top: Int
    public var left: Int
    public var height: Int
    public var width: Int

    public init(top: Int, left: Int, height: Int, width: Int) {
        self.top = top
        self.left = left
        self.height = height
        self.width = width
    }

    public var description: String { "CropBox(top: \(top), left: \(left), height: \(height), width: \(width))" }
}

/// Working memory of the resizing transforms (filter taps and the horizontally resized rows).
/// Give each thread its own; it grows to the largest size seen and is then reused without
/// allocating.
public final class TransformScratch {
    var tapStart: UnsafeMutablePointer<Int> = .allocate(capacity: 0)
    var tapCount: UnsafeMutablePointer<Int> = .allocate(capacity: 0)
    var taps: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    var tapCapacity = 0  // outputs (both axes together)
    var tapStride = 0  // weights per output
    var rows: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    var rowsCapacity = 0

    public init() {}

    deinit {
        tapStart.deallocate()
        tapCount.deallocate()
        taps.deallocate()
        rows.deallocate()
    }

    func reserve(outputs: Int, stride: Int, rowValues: Int) {
        if outputs > tapCapacity || stride > tapStride {
            let o = max(outputs, tapCapacity), s = max(stride, tapStride)
            tapStart.deallocate(); tapCount.deallocate(); taps.deallocate()
            tapStart = .allocate(capacity: o)
            tapCount = .allocate(capacity: o)
            taps = .allocate(capacity: o * s)
            tapCapacity = o
            tapStride = s
        }
        if rowValues > rowsCapacity {
            rows.deallocate()
            rows = .allocate(capacity: rowValues)
            rowsCapacity = rowValues
        }
    }
}

// MARK: - Simple transforms

/// Writes `src` normalised, unchanged in geometry (height × width values).
public func normalize(_ src: ImageView, into dst: ImageDestination, norm: Normalization = .fashionMNIST) {
    for y in 0..<src.height {
        let s = src.pointer + y * src.width
        let d = dst.base + y * dst.rowStride
        for x in 0..<src.width { d[x] = norm(Float(s[x])) }
    }
}

/// The training augmentation of `torch_reference.py`'s `augment`: the image zero-padded (raw value
/// 0, black) by `pad` on every side, a crop of the original size at offsets oy, ox drawn uniformly
/// from 0…2·pad, then, when `hflip`, a horizontal flip with probability ½. Writes height × width
/// values. Draws, in order: oy = `nextInt(below: 2·pad+1)`, ox likewise, then (only when `hflip`)
/// flip = `nextFloat() < 0.5`.
/// - Returns: the drawn offsets and whether the image was flipped.
@discardableResult
public func padCropFlip(
    _ src: ImageView, pad: Int, hflip: Bool, rng: inout Xoshiro256,
    into dst: ImageDestination, norm: Normalization = .fashionMNIST
) -> (oy: Int, ox: Int, flipped: Bool) {
    precondition(pad >= 0, "padCropFlip: pad must be ≥ 0")
    let oy = rng.nextInt(below: 2 * pad + 1)
    let ox = rng.nextInt(below: 2 * pad + 1)
    let flip = hflip ? rng.nextFloat() < 0.5 : false
    let h = src.height, w = src.width
    let black = norm.bias
    // Output column x reads source column sx = dx + x (no flip) or dx + (w−1−x) (flip).
    let dx = ox - pad
    // Output columns whose source column is inside the image: [x0, x1).
    let x0: Int, x1: Int
    if flip {
        x0 = max(0, dx); x1 = min(w, w + dx)  // 0 ≤ dx + w − 1 − x < w
    } else {
        x0 = max(0, -dx); x1 = min(w, w - dx)  // 0 ≤ dx + x < w
    }
    for y in 0..<h {
        let d = dst.base + y * dst.rowStride
        let sy = y + oy - pad
        if sy < 0 || sy >= h || x0 >= x1 {
            for x in 0..<w { d[x] = black }
            continue
        }
        for x in 0..<x0 { d[x] = black }
        let row = src.pointer + sy * w
        if flip {
            let s = row + dx + w - 1
            for x in x0..<x1 { d[x] = norm(Float(s[-x])) }
        } else {
            let s = row + dx
            for x in x0..<x1 { d[x] = norm(Float(s[x])) }
        }
        for x in x1..<w { d[x] = black }
    }
    return (oy, ox, flip)
}

// MARK: - Geometry helpers (torchvision's conventions)

/// torchvision `Resize(shorter)` output size: the shorter side becomes `shorter`, the longer one
/// `Int(shorter · long / short)` (truncated). A square image becomes shorter × shorter.
public func resizedSize(height: Int, width: Int, shorter: Int) -> (height: Int, width: Int) {
    precondition(height > 0 && width > 0 && shorter > 0, "resizedSize: sizes must be > 0")
    if width <= height {
        return (Int(Double(shorter) * Double(height) / Double(width)), shorter)
    }
    return (shorter, Int(Double(shorter) * Double(width) / Double(height)))
}

/// torchvision `center_crop` offsets of a cropHeight × cropWidth window in a height × width image:
/// top = round((height − cropHeight) / 2) with Python's round-half-even, and likewise left. When the
/// crop is bigger than the image, torchvision zero-pads first (floor of half the excess on the top
/// and left), so the offset is −⌊(crop − size)/2⌋ (negative: the window starts in the padding).
public func centerCropOffsets(height: Int, width: Int, cropHeight: Int, cropWidth: Int) -> (top: Int, left: Int) {
    func offset(_ size: Int, _ crop: Int) -> Int {
        if crop > size { return -((crop - size) / 2) }
        return Int((Double(size - crop) / 2).rounded(.toNearestOrEven))
    }
    return (offset(height, cropHeight), offset(width, cropWidth))
}

/// Writes the centre `size × size` crop of `src` (torchvision `CenterCrop(size)`; parts outside the
/// image are black).
public func centerCrop(_ src: ImageView, size: Int, into dst: ImageDestination, norm: Normalization = .fashionMNIST) {
    precondition(size > 0, "centerCrop: size must be > 0")
    let (top, left) = centerCropOffsets(height: src.height, width: src.width, cropHeight: size, cropWidth: size)
    copyWindow(src, top: top, left: left, height: size, width: size, flip: false, into: dst, norm: norm)
}

/// Copies the window (top, left, height, width) of `src` — which may stick out of the image, the
/// outside being black — optionally mirrored left–right.
func copyWindow(
    _ src: ImageView, top: Int, left: Int, height: Int, width: Int, flip: Bool,
    into dst: ImageDestination, norm: Normalization
) {
    let black = norm.bias
    for y in 0..<height {
        let d = dst.base + y * dst.rowStride
        let sy = top + y
        if sy < 0 || sy >= src.height {
            for x in 0..<width { d[x] = black }
            continue
        }
        let row = src.pointer + sy * src.width
        for x in 0..<width {
            let sx = left + (flip ? width - 1 - x : x)
            d[x] = sx >= 0 && sx < src.width ? norm(Float(row[sx])) : black
        }
    }
}

// MARK: - Antialiased bilinear resampling (PIL / torch `antialias=True`)

/// Filter taps of an antialiased bilinear resize of an axis from `inSize` to `outSize` samples, for
/// the output indices `first ..< first + count`, as PIL's `precompute_coeffs` and torch's
/// `_upsample_bilinear2d_aa`: scale = in/out, support = max(scale, 1) (the triangle filter widened
/// when shrinking), centre = (i + 0.5)·scale, taps j ∈ [max(Int(centre − support + 0.5), 0),
/// min(Int(centre + support + 0.5), inSize)), weight triangle((j − centre + 0.5) / max(scale, 1)),
/// normalised to sum 1. Writes tap starts, counts and weights (`stride` apart) from `offset`.
@inline(__always)
func computeTaps(
    inSize: Int, outSize: Int, first: Int, count: Int,
    start: UnsafeMutablePointer<Int>, number: UnsafeMutablePointer<Int>,
    weights: UnsafeMutablePointer<Float>, stride: Int
) {
    let scale = Double(inSize) / Double(outSize)
    let filterScale = max(scale, 1)
    let support = filterScale  // the triangle's support is 1
    let invFilterScale = 1 / filterScale
    for k in 0..<count {
        let i = first + k
        let center = (Double(i) + 0.5) * scale
        let lo = max(Int(center - support + 0.5), 0)
        let hi = min(Int(center + support + 0.5), inSize)
        let n = max(hi - lo, 0)
        let w = weights + k * stride
        var total = 0.0
        for j in 0..<n {
            let t = abs((Double(j + lo) - center + 0.5) * invFilterScale)
            total += t < 1 ? 1 - t : 0
        }
        // Normalised in Double, then rounded once to Float.
        let norm = total != 0 ? total : 1
        for j in 0..<n {
            let t = abs((Double(j + lo) - center + 0.5) * invFilterScale)
            w[j] = Float((t < 1 ? 1 - t : 0) / norm)
        }
        start[k] = lo
        number[k] = n
    }
}

/// The core of every resizing transform. Conceptually: crop `box` out of `src`, resize it to
/// outHeight × outWidth (antialiased bilinear), take the window (top, left, height, width) of that
/// (outside the resized image = black), mirror it when `flip`, normalise, write. Only the window's
/// pixels are computed. When the resize is the identity it is an exact copy.
func resampleWindow(
    _ src: ImageView, box: CropBox, outHeight: Int, outWidth: Int,
    top: Int, left: Int, height: Int, width: Int, flip: Bool,
    scratch: TransformScratch, into dst: ImageDestination, norm: Normalization
) {
    precondition(
        box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0
            && box.top + box.height <= src.height && box.left + box.width <= src.width,
        "resample: \(box) outside a \(src.height)×\(src.width) image")
    precondition(outHeight > 0 && outWidth > 0 && height > 0 && width > 0, "resample: sizes must be > 0")
    let windowInside = top >= 0 && left >= 0 && top + height <= outHeight && left + width <= outWidth
    let boxIsImage = box.height == src.height && box.width == src.width
    if outHeight == box.height && outWidth == box.width && (windowInside || boxIsImage) {
        // Identity resize: an exact copy (the general path below would give the same values).
        copyWindow(
            src, top: box.top + top, left: box.left + left, height: height, width: width,
            flip: flip, into: dst, norm: norm)
        return
    }
    // Rows and columns of the window that fall inside the resized image.
    let r0 = max(top, 0), r1 = min(top + height, outHeight)
    let c0 = max(left, 0), c1 = min(left + width, outWidth)
    let black = norm.bias
    if r0 >= r1 || c0 >= c1 {
        for y in 0..<height { for x in 0..<width { dst.base[y * dst.rowStride + x] = black } }
        return
    }
    let nr = r1 - r0, nc = c1 - c0
    let strideY = Int((max(Double(box.height) / Double(outHeight), 1)).rounded(.up)) * 2 + 1
    let strideX = Int((max(Double(box.width) / Double(outWidth), 1)).rounded(.up)) * 2 + 1
    let stride = max(strideX, strideY)
    // Taps: columns at [0, nc), rows at [nc, nc + nr). At most box.height source rows are used.
    scratch.reserve(outputs: nc + nr, stride: stride, rowValues: box.height * nc)
    let xs = scratch.tapStart, xn = scratch.tapCount, xw = scratch.taps
    let ys = scratch.tapStart + nc, yn = scratch.tapCount + nc, yw = scratch.taps + nc * stride
    computeTaps(
        inSize: box.width, outSize: outWidth, first: c0, count: nc,
        start: xs, number: xn, weights: xw, stride: stride)
    computeTaps(
        inSize: box.height, outSize: outHeight, first: r0, count: nr,
        start: ys, number: yn, weights: yw, stride: stride)
    // Horizontal pass over the source rows the vertical taps use: rows[sr − firstRow][c].
    let firstRow = ys[0]
    let lastRow = ys[nr - 1] + yn[nr - 1]  // tap starts are non-decreasing
    let rows = scratch.rows
    for sr in firstRow..<lastRow {
        let s = src.pointer + (box.top + sr) * src.width + box.left
        let out = rows + (sr - firstRow) * nc
        for c in 0..<nc {
            let p = s + xs[c]
            let w = xw + c * stride
            var acc: Float = 0
            for j in 0..<xn[c] { acc += w[j] * Float(p[j]) }
            out[c] = acc
        }
    }
    // Vertical pass, normalise, write (mirrored when flip).
    for y in 0..<height {
        let d = dst.base + y * dst.rowStride
        let ry = top + y
        if ry < r0 || ry >= r1 {
            for x in 0..<width { d[x] = black }
            continue
        }
        let k = ry - r0
        let w = yw + k * stride
        let base = rows + (ys[k] - firstRow) * nc
        let n = yn[k]
        for x in 0..<width {
            let rx = left + (flip ? width - 1 - x : x)
            if rx < c0 || rx >= c1 { d[x] = black; continue }
            let c = rx - c0
            var acc: Float = 0
            for j in 0..<n { acc += w[j] * base[j * nc + c] }
            d[x] = norm(acc)
        }
    }
}

/// Resizes `src` to height × width with antialiased bilinear interpolation (torch
/// `interpolate(mode: bilinear, antialias: true, align_corners: false)`, PIL `BILINEAR`), computed
/// in Float on 0…255 values and normalised at the end. Same size → an exact copy.
public func resizeBilinear(
    _ src: ImageView, height: Int, width: Int, scratch: TransformScratch,
    into dst: ImageDestination, norm: Normalization = .fashionMNIST
) {
    resampleWindow(
        src, box: CropBox(top: 0, left: 0, height: src.height, width: src.width),
        outHeight: height, outWidth: width, top: 0, left: 0, height: height, width: width,
        flip: false, scratch: scratch, into: dst, norm: norm)
}

/// The evaluation transform: torchvision `Resize(resize)` (antialiased bilinear; shorter side →
/// `resize`) then `CenterCrop(crop)`. Writes crop × crop values; only the cropped pixels are
/// computed. When `resize` equals the image's shorter side this is exactly a centre crop.
public func testTransform(
    _ src: ImageView, resize: Int, crop: Int, scratch: TransformScratch,
    into dst: ImageDestination, norm: Normalization = .fashionMNIST
) {
    precondition(resize > 0 && crop > 0, "testTransform: sizes must be > 0")
    let (h, w) = resizedSize(height: src.height, width: src.width, shorter: resize)
    let (top, left) = centerCropOffsets(height: h, width: w, cropHeight: crop, cropWidth: crop)
    resampleWindow(
        src, box: CropBox(top: 0, left: 0, height: src.height, width: src.width),
        outHeight: h, outWidth: w, top: top, left: left, height: crop, width: crop,
        flip: false, scratch: scratch, into: dst, norm: norm)
}

// MARK: - RandomResizedCrop

/// torchvision `RandomResizedCrop.get_params`: up to 10 attempts of area = height·width·U(scale),
/// aspect = exp(U(log ratio.0, log ratio.1)), w = round(√(area·aspect)), h = round(√(area/aspect))
/// (round-half-even), accepted when 0 < w ≤ width and 0 < h ≤ height, then top = randint(0, height − h)
/// and left = randint(0, width − w), both inclusive. Draws per attempt: the area, then the aspect;
/// on success top, then left. If all 10 fail: a centred crop of the whole image with its aspect
/// ratio clamped into `ratio`.
public func randomResizedCropParams(
    height: Int, width: Int, scale: (Double, Double), ratio: (Double, Double), rng: inout Xoshiro256
) -> CropBox {
    precondition(height > 0 && width > 0, "randomResizedCrop: empty image")
    precondition(scale.0 <= scale.1 && ratio.0 <= ratio.1 && ratio.0 > 0, "randomResizedCrop: bad scale/ratio ranges")
    let area = Double(height * width)
    let logR0 = log(ratio.0), logR1 = log(ratio.1)
    for _ in 0..<10 {
        let targetArea = area * rng.nextDouble(in: scale.0, scale.1)
        let aspect = exp(rng.nextDouble(in: logR0, logR1))
        let w = Int((targetArea * aspect).squareRoot().rounded(.toNearestOrEven))
        let h = Int((targetArea / aspect).squareRoot().rounded(.toNearestOrEven))
        if w > 0 && w <= width && h > 0 && h <= height {
            let top = rng.nextInt(in: 0...(height - h))
            let left = rng.nextInt(in: 0...(width - w))
            return CropBox(top: top, left: left, height: h, width: w)
        }
    }
    let inRatio = Double(width) / Double(height)
    var w = width, h = height
    if inRatio < ratio.0 {
        h = Int((Double(w) / ratio.0).rounded(.toNearestOrEven))
    } else if inRatio > ratio.1 {
        w = Int((Double(h) * ratio.1).rounded(.toNearestOrEven))
    }
    w = min(max(w, 1), width)
    h = min(max(h, 1), height)
    return CropBox(top: (height - h) / 2, left: (width - w) / 2, height: h, width: w)
}

/// torchvision `RandomResizedCrop(size, scale, ratio, antialias=True)` followed, when `hflip`, by
/// `RandomHorizontalFlip()`: the box from `randomResizedCropParams`, resized (antialiased bilinear)
/// to size × size, then mirrored when `nextFloat() < 0.5` (drawn after the box, only when `hflip`).
/// Writes exactly size × size values.
/// - Returns: the crop box and whether the output was flipped.
@discardableResult
public func randomResizedCrop(
    _ src: ImageView, size: Int, scale: (Double, Double) = (0.08, 1), ratio: (Double, Double) = (3.0 / 4, 4.0 / 3),
    hflip: Bool, rng: inout Xoshiro256, scratch: TransformScratch,
    into dst: ImageDestination, norm: Normalization = .fashionMNIST
) -> (box: CropBox, flipped: Bool) {
    precondition(size > 0, "randomResizedCrop: size must be > 0")
    let box = randomResizedCropParams(height: src.height, width: src.width, scale: scale, ratio: ratio, rng: &rng)
    let flip = hflip ? rng.nextFloat() < 0.5 : false
    resampleWindow(
        src, box: box, outHeight: size, outWidth: size, top: 0, left: 0, height: size, width: size,
        flip: flip, scratch: scratch, into: dst, norm: norm)
    return (box, flip)
}
