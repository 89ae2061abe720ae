/// The shape of one 2-D convolution: `kernel × kernel` taps, `stride` 1 or 2, zero padding `kernel / 2`
/// (so 3×3 convs pad 1 and 1×1 convs pad 0, as in ResNet), no bias.
///
/// Weights are kept as `[kh][kw][cin][cout]` (HWIO): each tap is one column-major `cout × cin` matrix,
/// the A operand of the forward GEMM. Export converts to PyTorch's OIHW.
public struct ConvGeometry: Hashable, Sendable {
    public let cin: Int
    public let cout: Int
    public let kernel: Int
    public let stride: Int
    public let input: ActivationShape

    public init(cin: Int, cout: Int, kernel: Int, stride: Int, input: ActivationShape) {
        precondition(kernel == 1 || kernel == 3, "only 1×1 and 3×3 convolutions")
        precondition(stride == 1 || stride == 2, "only strides 1 and 2")
        precondition(input.c == cin, "input has \(input.c) channels, conv expects \(cin)")
        self.cin = cin
        self.cout = cout
        self.kernel = kernel
        self.stride = stride
        self.input = input
    }

    public var pad: Int { kernel / 2 }
    public var taps: Int { kernel * kernel }
    public var outH: Int { (input.h + 2 * pad - kernel) / stride + 1 }
    public var outW: Int { (input.w + 2 * pad - kernel) / stride + 1 }
    public var output: ActivationShape { ActivationShape(n: input.n, h: outH, w: outW, c: cout) }
    public var weightCount: Int { taps * cin * cout }
    /// Multiply-adds × 2 of the forward pass (the backward passes cost the same each).
    public var forwardFLOPs: Double { 2 * Double(input.n * outH * outW) * Double(cout * cin * taps) }

    /// Offset of tap (kh, kw) in HWIO weights.
    @inline(__always) public func tapOffset(_ t: Int) -> Int { t * cin * cout }
}

/// A direct NHWC convolution whose every output row is one batch-reduce GEMM over the filter taps
/// (oneDNN's brgemm convolutions, libxsmm's "single building block"): no im2col, no transposes of
/// activations. Forward, input gradient and weight gradient, split over the workers by rows.
///
/// All activations carry a one-pixel zero border (`ActivationShape`), which is the padding.
public final class Conv2d: @unchecked Sendable {
    public let geometry: ConvGeometry
    public let workers: Workers

    private let forwardGEMM: BatchReduceGEMM
    /// A single-channel input (the stem) gathers each row's 9 taps into a `[taps × outW]` patch and
    /// runs one GEMM with k = 9, instead of nine rank-1 products with k = 1.
    private let patchForward: BatchReduceGEMM?
    private let patchWeightGrad: BatchReduceGEMM?
    /// Patches of every row a worker owns (weight gradient), or of one row (forward).
    private let patches: FloatBuffer?
    private let weightGradGEMM: BatchReduceGEMM
    /// Input-gradient kernels, one per column phase (input columns iw ≡ φ mod stride), overwriting
    /// or accumulating (a downsample's gradient adds onto the main path's).
    private let dataGEMMs: [(n: Int, overwrite: BatchReduceGEMM, accumulate: BatchReduceGEMM)]
    /// Which passes run Winograd F(4×4, 3×3) (`winogradPlan` unless the caller chose).
    public let winograd: WinogradPlan
    /// The Winograd of this convolution's forward pass and weight gradient (on its input), and of
    /// its input gradient (on dy). Made on first use, by the thread that calls the pass (before its
    /// workers start), so an inference executor's convolutions never hold an input gradient's buffers.
    private lazy var winogradOnInput = Winograd3x3(
        inChannels: geometry.cin, outChannels: geometry.cout, input: geometry.input, workers: workers,
        scratch: winogradScratch)
    private lazy var winogradOnGradient = Winograd3x3(
        inChannels: geometry.cout, outChannels: geometry.cin, input: geometry.output, workers: workers,
        scratch: winogradScratch)
    private let winogradScratch: WinogradScratch
    /// Weights transposed per tap to `[kh][kw][cout][cin]` for the input gradient.
    private let transposed: FloatBuffer
    /// One weight-gradient partial sum per worker, added in worker order (deterministic).
    private let partials: FloatBuffer
    /// Per worker: pointer lists for the weight-gradient reduction over its rows.
    private let aLists: UnsafeMutablePointer<UnsafePointer<Float>?>
    private let bLists: UnsafeMutablePointer<UnsafePointer<Float>?>
    private let listCapacity: Int

    /// `winogradScratch`: shared by the convolutions of one executor (they run one at a time).
    /// `winograd`: which passes run Winograd, if not `winogradPlan`'s (`WinogradPlan()` keeps every
    /// pass direct: the machine's peak is measured on those); a shape Winograd cannot run stays direct.
    public init(
        _ geometry: ConvGeometry, workers: Workers, winogradScratch: WinogradScratch = WinogradScratch(),
        winograd plan: WinogradPlan? = nil
    ) {
        self.geometry = geometry
        self.workers = workers
        self.winograd = Winograd3x3.supports(geometry) ? plan ?? Self.winogradPlan(geometry) : WinogradPlan()
        self.winogradScratch = winogradScratch
        let g = geometry
        forwardGEMM = BatchReduceGEMM(
            m: g.cout, n: g.outW, k: g.cin, lda: g.cout, ldb: g.stride * g.cin, ldc: g.cout, beta: 0)
        weightGradGEMM = BatchReduceGEMM(
            m: g.cout, n: g.cin, k: g.outW, lda: g.cout, ldb: g.stride * g.cin, ldc: g.cout, beta: 1,
            transB: true)
        let s = g.stride
        dataGEMMs = (0..<s).map { phi in
            let n = (g.input.w - phi + s - 1) / s
            func make(_ beta: Float) -> BatchReduceGEMM {
                BatchReduceGEMM(m: g.cin, n: max(n, 1), k: g.cout, lda: g.cin, ldb: g.cout, ldc: s * g.cin, beta: beta)
            }
            return (n, make(0), make(1))
        }
        transposed = FloatBuffer(count: g.weightCount)
        partials = FloatBuffer(count: g.weightCount * workers.count)
        listCapacity = (g.input.n * g.outH + workers.count) / workers.count + 1
        if g.cin == 1 && g.taps > 1 {
            patchForward = BatchReduceGEMM(m: g.cout, n: g.outW, k: g.taps, lda: g.cout, ldb: g.taps, ldc: g.cout, beta: 0)
            patchWeightGrad = BatchReduceGEMM(
                m: g.cout, n: g.taps, k: g.outW, lda: g.cout, ldb: g.taps, ldc: g.cout, beta: 1,
                transB: true)
            patches = FloatBuffer(count: listCapacity * workers.count * g.taps * g.outW)
        } else {
            patchForward = nil
            patchWeightGrad = nil
            patches = nil
        }
        aLists = .allocate(capacity: listCapacity * workers.count)
        bLists = .allocate(capacity: listCapacity * workers.count)
    }

    deinit {
        aLists.deallocate()
        bLists.deallocate()
    }

    /// Which passes of a convolution of this shape run Winograd (`bench engine` lists them): every
    /// pass of every shape it supports. Measured (`bench engine --profile`, alternated, AVX-512 and
    /// AVX2, widths 16 and 32): F(4×4, 3×3) takes 0.3–0.8 of the time of what ran before on each
    /// pass of each resnet-mini shape (the direct convolution, or F(2×2, 3×3), which lost to the
    /// direct one at 16 channels on the training forward pass and the weight gradient).
    public static func winogradPlan(_ g: ConvGeometry) -> WinogradPlan {
        Winograd3x3.supports(g) ? WinogradPlan(everyPass: true) : WinogradPlan()
    }

    /// Whether libxsmm runs the forward kernel (false: Swift loops).
    public var isJIT: Bool { forwardGEMM.isJIT }

    /// Gathers the taps of output row `oh` of image `img` of a one-channel input:
    /// `patch[t + taps·ow] = x[s·oh + kh − p, s·ow + kw − p]` (column-major `[taps × outW]`).
    @inline(__always)
    private func gatherPatch(_ xp: UnsafePointer<Float>, _ img: Int, _ oh: Int, into patch: UnsafeMutablePointer<Float>) {
        let g = geometry, xs = g.input
        for t in 0..<g.taps {
            let kh = t / g.kernel, kw = t % g.kernel
            let row = xp + xs.paddedOffset(img, g.stride * oh + kh - g.pad + 1, kw - g.pad + 1)
            for ow in 0..<g.outW { patch[t + g.taps * ow] = row[g.stride * ow] }
        }
    }

    /// y = conv(x, w). x: (n, h, w, cin) padded; w: HWIO; y: (n, outH, outW, cout) padded.
    /// With `statistics`, each output row is also added to the BatchNorm's sums while in cache.
    /// `sameWeights`: `w` holds what it held at the previous call (an inference lane's later images),
    /// so weights derived from it (Winograd's transform) are reused.
    public func forward(
        _ x: Activation, _ w: UnsafePointer<Float>, _ y: Activation, statistics: BatchNormKernels? = nil,
        sameWeights: Bool = false
    ) {
        let g = geometry
        precondition(x.shape == g.input && y.shape == g.output)
        statistics?.beginStatistics(g.output)
        if statistics == nil ? winograd.inferenceForward : winograd.trainingForward {
            let winograd = winogradOnInput
            if !sameWeights { winograd.transformWeights(w, flipped: false) }
            winograd.run(x, y, accumulate: false, statistics: statistics)
            return
        }
        let rowLength = g.outW * g.cout
        /// After row r (of image r / outH) is written: add it, and close the image when it ends.
        @inline(__always) func gathered(_ worker: Int, _ r: Int, _ rows: Range<Int>, _ row: UnsafePointer<Float>) {
            guard let statistics else { return }
            statistics.addRow(worker: worker, row, length: rowLength)
            if r % g.outH == g.outH - 1 || r == rows.upperBound - 1 { statistics.endImage(worker: worker, length: rowLength) }
        }
        if let gemm = patchForward, let patches {
            let xp = UnsafePointer(x.pointer), yp = y.pointer, ys = y.shape
            let stride = g.taps * g.outW
            workers.run { worker in
                let patch = patches.pointer + worker * listCapacity * stride
                withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 2) { lists in
                    let a = lists.baseAddress!, b = a + 1
                    let rows = workers.range(worker, of: g.input.n * g.outH)
                    for r in rows {
                        gatherPatch(xp, r / g.outH, r % g.outH, into: patch)
                        a[0] = w
                        b[0] = UnsafePointer(patch)
                        let out = yp + ys.offset(r / g.outH, r % g.outH, 0)
                        gemm(a, b, out, count: 1)
                        gathered(worker, r, rows, out)
                    }
                }
            }
            return
        }
        let xs = x.shape, ys = y.shape
        let xp = UnsafePointer(x.pointer), yp = y.pointer
        let gemm = forwardGEMM
        workers.run { worker in
            let rows = workers.range(worker, of: xs.n * g.outH)
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 18) { lists in
                let a = lists.baseAddress!, b = a + 9
                for r in rows {
                    let img = r / g.outH, oh = r % g.outH
                    for t in 0..<g.taps {
                        let kh = t / g.kernel, kw = t % g.kernel
                        a[t] = w + g.tapOffset(t)
                        // padded input row/col of output (oh, 0) at this tap
                        b[t] = xp + xs.paddedOffset(img, g.stride * oh + kh - g.pad + 1, kw - g.pad + 1)
                    }
                    let out = yp + ys.offset(img, oh, 0)
                    gemm(a, b, out, count: g.taps)
                    gathered(worker, r, rows, out)
                }
            }
        }
    }

    /// dx (+)= ∂L/∂x given dy = ∂L/∂y. Each input row is a batch-reduce over the taps that reach it;
    /// a stride-2 conv splits each row into its even and odd columns (ldc = 2·cin), whose taps differ.
    public func backwardData(_ dy: Activation, _ w: UnsafePointer<Float>, _ dx: Activation, accumulate: Bool) {
        let g = geometry
        precondition(dy.shape == g.output && dx.shape == g.input)
        if winograd.inputGradient {
            let winograd = winogradOnGradient
            winograd.transformWeights(w, flipped: true)
            winograd.run(dy, dx, accumulate: accumulate, statistics: nil)
            return
        }
        transposeWeights(w)
        let s = g.stride, p = g.pad, k = g.kernel
        let xs = dx.shape, ys = dy.shape
        let wt = UnsafePointer(transposed.pointer)
        let dyp = UnsafePointer(dy.pointer), dxp = dx.pointer
        let phases = dataGEMMs
        workers.forEachSlice(xs.n * xs.h) { rows in
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 18) { lists in
                let a = lists.baseAddress!, b = a + 9
                for r in rows {
                    let img = r / xs.h, ih = r % xs.h
                    for phi in 0..<s where phases[phi].n > 0 {
                        var count = 0
                        // Taps reaching input (ih, iw = s·j + φ): s·oh + kh − p = ih, s·ow + kw − p = iw.
                        for kh in 0..<k where (ih + p - kh).isMultiple(of: s) {
                            let oh = floorDivide(ih + p - kh, s)  // may be −1 or outH: the zero border
                            for kw in 0..<k where (phi + p - kw).isMultiple(of: s) {
                                let ow0 = floorDivide(phi + p - kw, s)
                                a[count] = wt + g.tapOffset(kh * k + kw)
                                b[count] = dyp + ys.paddedOffset(img, oh + 1, ow0 + 1)
                                count += 1
                            }
                        }
                        let c = dxp + xs.offset(img, ih, phi)
                        if count > 0 {
                            (accumulate ? phases[phi].accumulate : phases[phi].overwrite)(a, b, c, count: count)
                        } else if !accumulate {
                            for j in 0..<phases[phi].n { (c + j * s * g.cin).update(repeating: 0, count: g.cin) }
                        }
                    }
                }
            }
        }
    }

    /// dw = ∂L/∂w (overwritten), a reduction over every output row: each worker sums its rows per
    /// tap into its own partial, then the partials are added in worker order.
    public func backwardWeights(_ dy: Activation, _ x: Activation, _ dw: UnsafeMutablePointer<Float>) {
        let g = geometry
        precondition(dy.shape == g.output && x.shape == g.input)
        let xs = x.shape, ys = dy.shape
        let xp = UnsafePointer(x.pointer), dyp = UnsafePointer(dy.pointer)
        let total = xs.n * g.outH
        let wc = g.weightCount
        if winograd.weightGradient {
            return winogradOnInput.weightGradient(x: x, dy: dy, dw)
        }
        partials.zero()
        if let gemm = patchWeightGrad, let patches {
            let stride = g.taps * g.outW
            workers.run { worker in
                let rows = workers.range(worker, of: total)
                if rows.isEmpty { return }
                let a = aLists + worker * listCapacity, b = bLists + worker * listCapacity
                let mine = patches.pointer + worker * listCapacity * stride
                for (i, r) in rows.enumerated() {
                    gatherPatch(xp, r / g.outH, r % g.outH, into: mine + i * stride)
                    a[i] = dyp + ys.offset(r / g.outH, r % g.outH, 0)
                    b[i] = UnsafePointer(mine + i * stride)
                }
                gemm(a, b, partials.pointer + worker * wc, count: rows.count)
            }
        } else {
            batchReduceWeightGradient(dy: dyp, x: xp, total: total)
        }
        dw.update(from: partials.pointer, count: wc)
        for worker in 1..<workers.count {
            let part = partials.pointer + worker * wc
            for i in 0..<wc { dw[i] += part[i] }
        }
    }

    /// Each worker sums its output rows into its own partial, a block of rows at a time with all
    /// taps per block, so the block's dy and x rows stay in cache across the nine taps (tap-outer
    /// order streamed them from memory nine times).
    private func batchReduceWeightGradient(dy dyp: UnsafePointer<Float>, x xp: UnsafePointer<Float>, total: Int) {
        let g = geometry, xs = g.input, ys = g.output
        let gemm = weightGradGEMM
        let wc = g.weightCount
        // rows per block: about 64 KiB of dy and x together
        let block = max(8, 65_536 / (4 * g.outW * (g.cout + g.stride * g.cin)))
        workers.run { worker in
            let rows = workers.range(worker, of: total)
            if rows.isEmpty { return }
            let a = aLists + worker * listCapacity, b = bLists + worker * listCapacity
            let part = partials.pointer + worker * wc
            var start = rows.lowerBound
            while start < rows.upperBound {
                let end = min(rows.upperBound, start + block)
                for t in 0..<g.taps {
                    let kh = t / g.kernel, kw = t % g.kernel
                    for (i, r) in (start..<end).enumerated() {
                        a[i] = dyp + ys.offset(r / g.outH, r % g.outH, 0)
                        b[i] = xp + xs.paddedOffset(r / g.outH, g.stride * (r % g.outH) + kh - g.pad + 1, kw - g.pad + 1)
                    }
                    gemm(a, b, part + g.tapOffset(t), count: end - start)
                }
                start = end
            }
        }
    }

    private func transposeWeights(_ w: UnsafePointer<Float>) {
        let g = geometry
        let wt = transposed.pointer
        for t in 0..<g.taps {
            let src = w + g.tapOffset(t), dst = wt + g.tapOffset(t)
            for i in 0..<g.cin {
                for o in 0..<g.cout { dst[o * g.cin + i] = src[i * g.cout + o] }
            }
        }
    }
}

@inline(__always)
private func floorDivide(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

/// Plain-loop convolution over logical (unpadded) coordinates: the tests' oracle.
public enum ReferenceConv {
    public static func forward(_ g: ConvGeometry, _ x: Activation, _ w: UnsafePointer<Float>, _ y: Activation) {
        let xs = g.input
        for b in 0..<xs.n {
            for oy in 0..<g.outH {
                for ox in 0..<g.outW {
                    for o in 0..<g.cout {
                        var sum: Double = 0
                        for kh in 0..<g.kernel {
                            for kw in 0..<g.kernel {
                                let iy = g.stride * oy + kh - g.pad, ix = g.stride * ox + kw - g.pad
                                if iy < 0 || iy >= xs.h || ix < 0 || ix >= xs.w { continue }
                                for i in 0..<g.cin {
                                    sum += Double(w[((kh * g.kernel + kw) * g.cin + i) * g.cout + o]) * Double(x[b, iy, ix, i])
                                }
                            }
                        }
                        y[b, oy, ox, o] = Float(sum)
                    }
                }
            }
        }
    }

    public static func backwardData(_ g: ConvGeometry, _ dy: Activation, _ w: UnsafePointer<Float>, _ dx: Activation) {
        dx.zeroInterior()
        let xs = g.input
        for b in 0..<xs.n {
            for oy in 0..<g.outH {
                for ox in 0..<g.outW {
                    for kh in 0..<g.kernel {
                        for kw in 0..<g.kernel {
                            let iy = g.stride * oy + kh - g.pad, ix = g.stride * ox + kw - g.pad
                            if iy < 0 || iy >= xs.h || ix < 0 || ix >= xs.w { continue }
                            for i in 0..<g.cin {
                                var sum: Float = 0
                                for o in 0..<g.cout {
                                    sum += w[((kh * g.kernel + kw) * g.cin + i) * g.cout + o] * dy[b, oy, ox, o]
                                }
                                dx[b, iy, ix, i] += sum
                            }
                        }
                    }
                }
            }
        }
    }

    public static func backwardWeights(_ g: ConvGeometry, _ dy: Activation, _ x: Activation, _ dw: UnsafeMutablePointer<Float>) {
        let xs = g.input
        for kh in 0..<g.kernel {
            for kw in 0..<g.kernel {
                for i in 0..<g.cin {
                    for o in 0..<g.cout {
                        var sum: Double = 0
                        for b in 0..<xs.n {
                            for oy in 0..<g.outH {
                                for ox in 0..<g.outW {
                                    let iy = g.stride * oy + kh - g.pad, ix = g.stride * ox + kw - g.pad
                                    if iy < 0 || iy >= xs.h || ix < 0 || ix >= xs.w { continue }
                                    sum += Double(dy[b, oy, ox, o]) * Double(x[b, iy, ix, i])
                                }
                            }
                        }
                        dw[((kh * g.kernel + kw) * g.cin + i) * g.cout + o] = Float(sum)
                    }
                }
            }
        }
    }
}
