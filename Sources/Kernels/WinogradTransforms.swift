/// The transforms of Winograd F(4×4, 3×3) (Lavin & Gray's points 0, ±1, ±2, ∞): a 6×6 input
/// patch per 4×4 output tile, 36 products per (input, output) channel pair instead of 144.
///
///     Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
///     G = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
///     Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
///
/// Position ξ = 6·i + j of a tile's 36 is row i, column j of the transformed patch. Each transform
/// works on eight channels at a time, row by row into 24 or 36 vectors on the stack, then down the
/// columns.
extension Winograd3x3 {
    // The three small transforms below are written with fused multiply-adds (`addingProduct`:
    // vfmadd in release builds, which target Haswell): about 40 % fewer vector operations than
    // separate multiplies and adds, and one rounding less on each product.

    /// Bᵀ applied to six values (a patch row or column).
    @inline(__always)
    private static func inputTransform(
        _ d0: Vec, _ d1: Vec, _ d2: Vec, _ d3: Vec, _ d4: Vec, _ d5: Vec
    ) -> (Vec, Vec, Vec, Vec, Vec, Vec) {
        let a = d4 - d2, b = d3 - d1
        return (
            d4.addingProduct(-5, d2).addingProduct(4, d0),
            (d3 + d4).addingProduct(-4, d1 + d2),
            (d4 - d3).addingProduct(4, d1 - d2),
            a.addingProduct(2, b),
            a.addingProduct(-2, b),
            d5.addingProduct(-5, d3).addingProduct(4, d1)
        )
    }

    /// Aᵀ applied to six values (a product row or column).
    @inline(__always)
    private static func outputTransform(
        _ m0: Vec, _ m1: Vec, _ m2: Vec, _ m3: Vec, _ m4: Vec, _ m5: Vec
    ) -> (Vec, Vec, Vec, Vec) {
        let sum = m1 + m2, difference = m1 - m2, sum2 = m3 + m4, difference2 = m3 - m4
        return (
            m0 + sum + sum2, difference.addingProduct(2, difference2), sum.addingProduct(4, sum2),
            (difference + m5).addingProduct(8, difference2)
        )
    }

    /// A (= (Aᵀ)ᵀ) applied to four values (an output-gradient row or column).
    @inline(__always)
    private static func gradientTransform(_ a0: Vec, _ a1: Vec, _ a2: Vec, _ a3: Vec) -> (Vec, Vec, Vec, Vec, Vec, Vec) {
        let even = a0 + a2, odd = a1 + a3
        let even4 = a0.addingProduct(4, a2), odd4 = (a1 + a1).addingProduct(8, a3)
        return (a0, even + odd, even - odd, even4 + odd4, even4 - odd4, a3)
    }

    /// Six transformed values into consecutive scratch vectors (a row pass's output).
    @inline(__always)
    private static func putRow(_ t: (Vec, Vec, Vec, Vec, Vec, Vec), _ p: UnsafeMutablePointer<Vec>) {
        p[0] = t.0
        p[1] = t.1
        p[2] = t.2
        p[3] = t.3
        p[4] = t.4
        p[5] = t.5
    }

    /// Six transformed values stored `stride` floats apart (a column of positions, or of U's planes).
    @inline(__always)
    private static func storeColumn(_ t: (Vec, Vec, Vec, Vec, Vec, Vec), _ o: UnsafeMutablePointer<Float>, stride: Int) {
        store(t.0, o)
        store(t.1, o + stride)
        store(t.2, o + 2 * stride)
        store(t.3, o + 3 * stride)
        store(t.4, o + 4 * stride)
        store(t.5, o + 5 * stride)
    }

    /// V = Bᵀ d B for one tile. `rows` × `columns` of the 6×6 patch lie in the padded image; one
    /// more row or column reads a zero border (the next row's or image's, or the slack past the
    /// last image: `Activation`), so such a patch (sizes 4k + 3) is read as it lies; a patch
    /// further out (sizes 4k + 1 and 4k + 2) reads zeros for what lies outside.
    @inline(__always)
    static func transformInput(
        _ d: UnsafePointer<Float>, rowStride: Int, channels: Int, rows: Int, columns: Int,
        into out: UnsafeMutablePointer<Float>, scratch r: UnsafeMutablePointer<Vec>
    ) {
        if rows >= 5 && columns >= 5 {
            transformInput(d, rowStride: rowStride, channels: channels, into: out, scratch: r) { _, _ in true }
        } else {
            transformInput(d, rowStride: rowStride, channels: channels, into: out, scratch: r) { i, j in
                i < rows && j < columns
            }
        }
    }

    /// `transformInput` with the patch pixels `inside` says are there (a constant `true` compiles to
    /// plain loads).
    @inline(__always)
    private static func transformInput(
        _ d: UnsafePointer<Float>, rowStride: Int, channels: Int, into out: UnsafeMutablePointer<Float>,
        scratch r: UnsafeMutablePointer<Vec>, inside: (Int, Int) -> Bool
    ) {
        var c = 0
        while c < channels {
            @inline(__always) func pixel(_ i: Int, _ j: Int) -> Vec {
                inside(i, j) ? load(d + i * rowStride + j * channels + c) : Vec()
            }
            for i in 0..<6 {
                putRow(inputTransform(pixel(i, 0), pixel(i, 1), pixel(i, 2), pixel(i, 3), pixel(i, 4), pixel(i, 5)), r + 6 * i)
            }
            for j in 0..<6 {
                let t = inputTransform(r[j], r[6 + j], r[12 + j], r[18 + j], r[24 + j], r[30 + j])
                storeColumn(t, out + j * channels + c, stride: 6 * channels)
            }
            c += 8
        }
    }

    /// Y = Aᵀ M A for one tile: writes (or adds) its first `rows` × `columns` output pixels at `y`.
    @inline(__always)
    static func transformOutput(
        _ mp: UnsafePointer<Float>, channels: Int, into y: UnsafeMutablePointer<Float>, rowStride: Int, accumulate: Bool,
        rows: Int, columns: Int, scratch s: UnsafeMutablePointer<Vec>
    ) {
        // s = Aᵀ M, 4×6
        var c = 0
        while c < channels {
            @inline(__always) func at(_ i: Int, _ j: Int) -> Vec { load(mp + (6 * i + j) * channels + c) }
            for j in 0..<6 {
                let t = outputTransform(at(0, j), at(1, j), at(2, j), at(3, j), at(4, j), at(5, j))
                s[j] = t.0
                s[6 + j] = t.1
                s[12 + j] = t.2
                s[18 + j] = t.3
            }
            for i in 0..<rows {
                let q = s + 6 * i
                let t = outputTransform(q[0], q[1], q[2], q[3], q[4], q[5])
                let p = y + i * rowStride + c
                @inline(__always) func put(_ v: Vec, _ k: Int) {
                    let at = p + k * channels
                    store(accumulate ? load(at) + v : v, at)
                }
                put(t.0, 0)
                if columns > 1 { put(t.1, 1) }
                if columns > 2 { put(t.2, 2) }
                if columns > 3 { put(t.3, 3) }
            }
            c += 8
        }
    }

    /// dM = A dY Aᵀ for one tile's 4×4 output gradient (6×6 at `out + ξ·channels`). Pixels past the
    /// image's `rows` × `columns` count as zero: one more reads the zero border, further ones are skipped.
    @inline(__always)
    static func transformOutputGradient(
        _ dy: UnsafePointer<Float>, rowStride: Int, channels: Int, rows: Int, columns: Int,
        into out: UnsafeMutablePointer<Float>, scratch r: UnsafeMutablePointer<Vec>
    ) {
        if rows >= 3 && columns >= 3 {
            transformOutputGradient(dy, rowStride: rowStride, channels: channels, into: out, scratch: r) { _, _ in true }
        } else {
            transformOutputGradient(dy, rowStride: rowStride, channels: channels, into: out, scratch: r) { i, j in
                i < rows && j < columns
            }
        }
    }

    @inline(__always)
    private static func transformOutputGradient(
        _ dy: UnsafePointer<Float>, rowStride: Int, channels: Int, into out: UnsafeMutablePointer<Float>,
        scratch r: UnsafeMutablePointer<Vec>, inside: (Int, Int) -> Bool
    ) {
        // r = dY Aᵀ, 4×6
        var c = 0
        while c < channels {
            @inline(__always) func pixel(_ i: Int, _ j: Int) -> Vec {
                inside(i, j) ? load(dy + i * rowStride + j * channels + c) : Vec()
            }
            for i in 0..<4 { putRow(gradientTransform(pixel(i, 0), pixel(i, 1), pixel(i, 2), pixel(i, 3)), r + 6 * i) }
            for j in 0..<6 {
                let t = gradientTransform(r[j], r[6 + j], r[12 + j], r[18 + j])
                storeColumn(t, out + j * channels + c, stride: 6 * channels)
            }
            c += 8
        }
    }

    /// G applied to three values (a filter row or column).
    @inline(__always)
    private static func weightTransform(_ a: Vec, _ b: Vec, _ c: Vec) -> (Vec, Vec, Vec, Vec, Vec, Vec) {
        let outer = a + c, outer4 = 0.25 * a + c
        return (
            0.25 * a, -(outer + b) / 6, -(outer - b) / 6, (outer4 + 0.5 * b) / 6, (outer4 - 0.5 * b) / 6, c
        )
    }

    /// Gᵀ applied to six values (a row or column of dU).
    @inline(__always)
    private static func weightGradientTransform(
        _ u0: Vec, _ u1: Vec, _ u2: Vec, _ u3: Vec, _ u4: Vec, _ u5: Vec
    ) -> (Vec, Vec, Vec) {
        let plus = (u1 + u2) / -6, minus = (u2 - u1) / 6
        let plus4 = (u3 + u4) / 24, minus4 = (u3 - u4) / 12
        return (0.25 * u0 + plus + plus4, minus + minus4, plus + 4 * plus4 + u5)
    }

    /// U = G g Gᵀ for every (in, out) pair, eight output channels at a time. `flipped`: the
    /// weights are those of the convolution whose input gradient this computes (`[t][out][in]`,
    /// taps rotated by 180°), else `[t][in][out]`.
    func transformWeights(_ w: UnsafePointer<Float>, flipped: Bool) {
        let ci = inChannels, co = outChannels, up = u.pointer, plane = ci * co
        withUnsafeTemporaryAllocation(of: Vec.self, capacity: 18) { buffer in
            let r = buffer.baseAddress!  // G g, 6×3
            for i in 0..<ci {
                var o = 0
                while o < co {
                    @inline(__always) func g(_ kh: Int, _ kw: Int) -> Vec {
                        let t = kh * 3 + kw
                        if !flipped { return load(w + t * plane + i * co + o) }
                        let p = w + (8 - t) * plane + o * ci + i
                        return Vec(p[0], p[ci], p[2 * ci], p[3 * ci], p[4 * ci], p[5 * ci], p[6 * ci], p[7 * ci])
                    }
                    for kw in 0..<3 {
                        let t = Self.weightTransform(g(0, kw), g(1, kw), g(2, kw))
                        r[kw] = t.0
                        r[3 + kw] = t.1
                        r[6 + kw] = t.2
                        r[9 + kw] = t.3
                        r[12 + kw] = t.4
                        r[15 + kw] = t.5
                    }
                    for row in 0..<6 {
                        let t = Self.weightTransform(r[3 * row], r[3 * row + 1], r[3 * row + 2])
                        Self.storeColumn(t, up + (6 * row) * plane + i * co + o, stride: plane)
                    }
                    o += 8
                }
            }
        }
    }

    /// dw = Gᵀ dU G (HWIO, overwritten) from the summed products `[36][in][out]`.
    static func weightsFromProducts(
        _ du: UnsafePointer<Float>, inChannels ci: Int, outChannels co: Int, _ dw: UnsafeMutablePointer<Float>
    ) {
        let plane = ci * co
        withUnsafeTemporaryAllocation(of: Vec.self, capacity: 18) { buffer in
            let q = buffer.baseAddress!  // Gᵀ dU, 3×6
            for i in 0..<ci {
                var o = 0
                while o < co {
                    @inline(__always) func at(_ r: Int, _ c: Int) -> Vec { load(du + (6 * r + c) * plane + i * co + o) }
                    for c in 0..<6 {
                        let t = weightGradientTransform(at(0, c), at(1, c), at(2, c), at(3, c), at(4, c), at(5, c))
                        q[c] = t.0
                        q[6 + c] = t.1
                        q[12 + c] = t.2
                    }
                    for kh in 0..<3 {
                        let p = q + 6 * kh
                        let t = weightGradientTransform(p[0], p[1], p[2], p[3], p[4], p[5])
                        let base = dw + (3 * kh) * plane + i * co + o
                        store(t.0, base)
                        store(t.1, base + plane)
                        store(t.2, base + 2 * plane)
                    }
                    o += 8
                }
            }
        }
    }
}
