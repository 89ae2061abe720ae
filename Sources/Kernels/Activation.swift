/// The shape of an activation (or its gradient): `n` images of `h × w` pixels with `c` channels, stored
/// NHWC with a one-pixel zero border, i.e. as `(n, h + 2, w + 2, c)`.
///
/// Every tensor between layers carries the border so that any 3×3 convolution can read its padded
/// input in place: writers only ever write the interior, and the border stays zero for life.
public struct ActivationShape: Hashable, Sendable, CustomStringConvertible {
    public let n: Int
    public let h: Int
    public let w: Int
    public let c: Int

    public init(n: Int, h: Int, w: Int, c: Int) {
        precondition(n > 0 && h > 0 && w > 0 && c > 0, "bad activation shape \(n)x\(h)x\(w)x\(c)")
        self.n = n
        self.h = h
        self.w = w
        self.c = c
    }

    public var paddedH: Int { h + 2 }
    public var paddedW: Int { w + 2 }
    /// Floats between two consecutive padded rows.
    public var rowStride: Int { paddedW * c }
    /// Floats per image, border included.
    public var imageStride: Int { paddedH * paddedW * c }
    /// Floats in the whole padded buffer.
    public var storageCount: Int { n * imageStride }
    /// Interior elements: what a reduction over "all pixels" counts.
    public var elementCount: Int { n * h * w * c }

    /// Offset of interior pixel (y, x) of image b, channel 0.
    @inline(__always)
    public func offset(_ b: Int, _ y: Int, _ x: Int) -> Int {
        ((b * paddedH + y + 1) * paddedW + x + 1) * c
    }

    /// Offset of the padded position (row, col) of image b (row 0 / col 0 are the border).
    @inline(__always)
    public func paddedOffset(_ b: Int, _ row: Int, _ col: Int) -> Int {
        ((b * paddedH + row) * paddedW + col) * c
    }

    /// The same image size and channels for `n` images.
    public func resized(n: Int) -> ActivationShape { ActivationShape(n: n, h: h, w: w, c: c) }

    public var description: String { "(\(n), \(h), \(w), \(c))" }
}

/// An activation buffer together with its shape.
public final class Activation: @unchecked Sendable {
    public let shape: ActivationShape
    private let storage: FloatBuffer
    /// The tensor's first float (row 0, col 0 of image 0: a border element).
    public let pointer: UnsafeMutablePointer<Float>

    public init(_ shape: ActivationShape) {
        self.shape = shape
        // A zero row and pixel of slack past the last image: the last Winograd tiles of an image
        // whose size is 4k + 3 read a patch row (and column) one past the padded image (the next
        // image's or row's zero border, or this slack for the last image).
        storage = FloatBuffer(count: shape.storageCount + shape.rowStride + shape.c)
        pointer = storage.pointer
    }

    /// Every float of the padded tensor, border included.
    public var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: shape.storageCount)) }

    /// Reads interior element (b, y, x, ch).
    public subscript(b: Int, y: Int, x: Int, ch: Int) -> Float {
        get { pointer[shape.offset(b, y, x) + ch] }
        set { pointer[shape.offset(b, y, x) + ch] = newValue }
    }

    /// Zeroes the interior (the border is zero already).
    public func zeroInterior() {
        let s = shape
        for b in 0..<s.n {
            for y in 0..<s.h {
                (pointer + s.offset(b, y, 0)).update(repeating: 0, count: s.w * s.c)
            }
        }
    }
}
