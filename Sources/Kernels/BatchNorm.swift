import Foundation

/// Batch normalisation over NHWC activations, as PyTorch's `BatchNorm2d`: statistics per channel over
/// every (image, y, x); the biased variance normalises, the unbiased one goes into `running_var`.
/// The ReLU that follows and a residual added before it are fused into the same pass.
public final class BatchNormKernels: @unchecked Sendable {
    public let channels: Int
    public let workers: Workers
    public static let epsilon: Float = 1e-5

    /// The batch statistics of the last training forward pass (kept for the backward pass).
    public let mean: FloatBuffer
    public let variance: FloatBuffer
    public let invStd: FloatBuffer
    /// Per-channel affine coefficients of the last forward pass: y = x·scale + shift.
    private let scale: FloatBuffer
    private let shift: FloatBuffer
    /// Per worker, per channel partial sums (two sets), reduced in worker order.
    private let partials: UnsafeMutablePointer<Double>

    public init(channels: Int, workers: Workers) {
        self.channels = channels
        self.workers = workers
        mean = FloatBuffer(count: channels)
        variance = FloatBuffer(count: channels)
        invStd = FloatBuffer(count: channels)
        scale = FloatBuffer(count: channels)
        shift = FloatBuffer(count: channels)
        partials = .allocate(capacity: 2 * channels * workers.count)
    }

    deinit {
        partials.deallocate()
        scratch?.deallocate()
        scratchDouble?.deallocate()
        expanded?.deallocate()
    }

    /// Per-worker scratch: Float partial sums of one image's rows and Double sums over images, each
    /// one value per (pixel, channel) of a row, so the hot loops run straight over contiguous rows.
    private var scratch: UnsafeMutablePointer<Float>?
    private var scratchDouble: UnsafeMutablePointer<Double>?
    private var rowCapacity = 0
    /// Per-channel coefficients repeated along one row (length w·c), shared read-only by the workers:
    /// three backward coefficient rows, then the forward's scale and shift rows.
    private var expanded: UnsafeMutablePointer<Float>?

    private func ensureScratch(rowLength: Int) {
        guard rowLength > rowCapacity else { return }
        scratch?.deallocate()
        scratchDouble?.deallocate()
        expanded?.deallocate()
        scratch = .allocate(capacity: 2 * rowLength * workers.count)
        scratchDouble = .allocate(capacity: 2 * rowLength * workers.count)
        expanded = .allocate(capacity: 5 * rowLength)
        rowCapacity = rowLength
    }

    private func expand(_ perChannel: UnsafeMutablePointer<Float>, into row: UnsafeMutablePointer<Float>, pixels: Int) {
        expand(UnsafePointer(perChannel), into: row, pixels: pixels)
    }

    private func expand(_ perChannel: UnsafePointer<Float>, into row: UnsafeMutablePointer<Float>, pixels: Int) {
        for px in 0..<pixels { (row + px * channels).update(from: perChannel, count: channels) }
    }

    // MARK: statistics gathered by the producer

    /// Set by `beginStatistics`: the next `forwardTraining` uses the sums its producer gathered.
    private var gathered = false

    /// Prepares to receive the rows of the next training forward's input as its producer (the
    /// convolution) writes them, while each row is still in cache: the statistics then cost no
    /// separate pass over memory.
    public func beginStatistics(_ shape: ActivationShape) {
        let length = shape.w * channels
        ensureScratch(rowLength: length)
        scratch!.update(repeating: 0, count: 2 * length * workers.count)
        scratchDouble!.update(repeating: 0, count: 2 * length * workers.count)
        gathered = true
    }

    /// Adds one freshly written row (`w·c` floats) to `worker`'s sums.
    @inline(__always)
    public func addRow(worker: Int, _ row: UnsafePointer<Float>, length: Int) {
        let a = scratch! + worker * 2 * length
        Self.addSumsAndSquares(row, a, a + length, length)
    }

    /// a += row, b += row² position by position.
    @inline(__always)
    private static func addSumsAndSquares(
        _ row: UnsafePointer<Float>, _ a: UnsafeMutablePointer<Float>,
        _ b: UnsafeMutablePointer<Float>, _ length: Int
    ) {
        vectorLoop(
            length,
            { i in
                let v = load(row + i)
                store(load(a + i) + v, a + i)
                store(load(b + i) + v * v, b + i)
            },
            { i in
                a[i] += row[i]
                b[i] += row[i] * row[i]
            })
    }

    /// Moves `worker`'s Float sums into its Double sums (at the end of each image).
    @inline(__always)
    public func endImage(worker: Int, length: Int) {
        let fa = scratch! + worker * 2 * length
        let da = scratchDouble! + worker * 2 * length
        for i in 0..<(2 * length) { da[i] += Double(fa[i]) }
        fa.update(repeating: 0, count: 2 * length)
    }

    /// Per-channel totals of the workers' Double sums, in worker order.
    private func combine(length: Int) -> (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>) {
        let c = channels, ds = scratchDouble!
        partials.initialize(repeating: 0, count: 2 * c)
        for worker in 0..<workers.count {
            let da = ds + worker * 2 * length, db = da + length
            for i in 0..<length {
                partials[i % c] += da[i]
                partials[c + i % c] += db[i]
            }
        }
        return (partials, partials + c)
    }

    /// Two per-channel sums over every interior element: `body(offset, rowLength, accA, accB)` adds
    /// one row's contributions position by position (a straight, vectorisable loop); rows are
    /// summed in Float within an image, images in Double, workers in worker order.
    private func reduce(
        _ shape: ActivationShape,
        _ body: (_ offset: Int, _ length: Int, _ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>) -> Void
    ) -> (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>) {
        let c = channels, length = shape.w * c
        ensureScratch(rowLength: length)
        let fs = scratch!, ds = scratchDouble!
        workers.run { worker in
            let fa = fs + worker * 2 * length, fb = fa + length
            let da = ds + worker * 2 * length, db = da + length
            da.update(repeating: 0, count: 2 * length)
            for img in workers.range(worker, of: shape.n) {
                fa.update(repeating: 0, count: 2 * length)
                for y in 0..<shape.h { body(shape.offset(img, y, 0), length, fa, fb) }
                for i in 0..<length {
                    da[i] += Double(fa[i])
                    db[i] += Double(fb[i])
                }  // once per image: a 1/h share of the work
            }
        }
        return combine(length: length)
    }

    /// Training forward: batch statistics, running statistics updated with `momentum`, then
    /// `out = [relu](γ·x̂ + β [+ residual])`.
    public func forwardTraining(
        _ x: Activation, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        runningMean: UnsafeMutablePointer<Float>, runningVar: UnsafeMutablePointer<Float>, momentum: Float,
        residual: Activation?, relu: Bool, out: Activation
    ) {
        let s = x.shape, c = channels
        precondition(s.c == c && out.shape == s)
        let xp = UnsafePointer(x.pointer)
        let (sums, squares) =
            gathered
            ? combine(length: s.w * c)
            : reduce(s) { offset, length, a, b in
                Self.addSumsAndSquares(xp + offset, a, b, length)
            }
        gathered = false
        let count = Double(s.n * s.h * s.w)
        for ch in 0..<c {
            let m = sums[ch] / count
            let v = max(squares[ch] / count - m * m, 0)
            mean[ch] = Float(m)
            variance[ch] = Float(v)
            let inv = 1 / (v + Double(Self.epsilon)).squareRoot()
            invStd[ch] = Float(inv)
            scale[ch] = gamma[ch] * Float(inv)
            shift[ch] = beta[ch] - Float(m) * scale[ch]
            let unbiased = count > 1 ? v * count / (count - 1) : v
            runningMean[ch] = (1 - momentum) * runningMean[ch] + momentum * Float(m)
            runningVar[ch] = (1 - momentum) * runningVar[ch] + momentum * Float(unbiased)
        }
        apply(x, residual: residual, relu: relu, out: out)
    }

    /// Inference forward with the running statistics.
    public func forwardInference(
        _ x: Activation, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
        residual: Activation?, relu: Bool, out: Activation
    ) {
        for ch in 0..<channels {
            let inv = 1 / (runningVar[ch] + Self.epsilon).squareRoot()
            scale[ch] = gamma[ch] * inv
            shift[ch] = beta[ch] - runningMean[ch] * scale[ch]
        }
        apply(x, residual: residual, relu: relu, out: out)
    }

    private func apply(_ x: Activation, residual: Activation?, relu: Bool, out: Activation) {
        let s = x.shape
        let length = s.w * channels
        ensureScratch(rowLength: length)
        let sc = expanded!, sh = sc + length
        expand(scale.pointer, into: sc, pixels: s.w)
        expand(shift.pointer, into: sh, pixels: s.w)
        let xp = UnsafePointer(x.pointer), op = out.pointer
        if let residual { precondition(residual.shape == s) }
        let rp = residual.map { UnsafePointer($0.pointer) }
        workers.forEachSlice(s.n * s.h) { rows in
            for r in rows {
                let offset = s.offset(r / s.h, r % s.h, 0)
                let xr = xp + offset, o = op + offset
                // Four straight loops rather than branches inside one: each vectorises.
                switch (rp, relu) {
                case (let rp?, true):
                    let rr = rp + offset
                    vectorLoop(
                        length,
                        { i in
                            let v = load(xr + i) * load(sc + i) + load(sh + i) + load(rr + i)
                            store(v.replacing(with: 0, where: v .< .zero), o + i)
                        }, { i in o[i] = max(xr[i] * sc[i] + sh[i] + rr[i], 0) })
                case (let rp?, false):
                    let rr = rp + offset
                    vectorLoop(
                        length, { i in store(load(xr + i) * load(sc + i) + load(sh + i) + load(rr + i), o + i) },
                        { i in o[i] = xr[i] * sc[i] + sh[i] + rr[i] })
                case (nil, true):
                    vectorLoop(
                        length,
                        { i in
                            let v = load(xr + i) * load(sc + i) + load(sh + i)
                            store(v.replacing(with: 0, where: v .< .zero), o + i)
                        }, { i in o[i] = max(xr[i] * sc[i] + sh[i], 0) })
                case (nil, false):
                    vectorLoop(
                        length, { i in store(load(xr + i) * load(sc + i) + load(sh + i), o + i) },
                        { i in o[i] = xr[i] * sc[i] + sh[i] })
                }
            }
        }
    }

    /// Training backward of `out = [relu](γ·x̂ + β [+ residual])`.
    ///
    /// With g = dOut ⊙ [out > 0]: dβ = Σg, dγ = Σ g·x̂, and
    /// dx = γ·σ⁻¹·(g − Σg/M − x̂·Σ(g·x̂)/M) (Ioffe & Szegedy 2015, eq. for ∂ℓ/∂xᵢ).
    /// `out == nil` (a ReLU without a residual) derives the mask from x and the forward's
    /// coefficients instead — bit for bit the same test, one array fewer to stream from memory.
    /// `dResidual`, when given, receives g (the gradient flowing into the shortcut).
    public func backward(
        _ dOut: Activation, out: Activation?, x: Activation, gamma: UnsafePointer<Float>,
        relu: Bool, dx: Activation, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>,
        dResidual: Activation?
    ) {
        let s = x.shape, c = channels
        let length = s.w * c
        ensureScratch(rowLength: length)
        let dop = UnsafePointer(dOut.pointer), xp = UnsafePointer(x.pointer)
        let outp = out.map { UnsafePointer($0.pointer) }
        let drp = dResidual?.pointer
        // the forward's coefficients along a row, for the mask from x
        let fsc = expanded! + 3 * length, fsh = fsc + length
        if relu && outp == nil {
            expand(scale.pointer, into: fsc, pixels: s.w)
            expand(shift.pointer, into: fsh, pixels: s.w)
        }
        /// g for 8 elements at i of a row starting at `offset`.
        @inline(__always) func g(_ offset: Int, _ i: Int) -> Vec {
            let d = load(dop + offset + i)
            guard relu else { return d }
            if let outp { return d.replacing(with: 0, where: load(outp + offset + i) .<= .zero) }
            let pre = load(xp + offset + i) * load(fsc + i) + load(fsh + i)
            return d.replacing(with: 0, where: pre .<= .zero)
        }
        @inline(__always) func g1(_ offset: Int, _ i: Int) -> Float {
            let d = dop[offset + i]
            guard relu else { return d }
            if let outp { return outp[offset + i] <= 0 ? 0 : d }
            return xp[offset + i] * fsc[i] + fsh[i] <= 0 ? 0 : d
        }
        // Pass 1: Σg and Σg·x per channel (g written to dResidual when asked).
        let (sumG, sumGX) = reduce(s) { offset, length, a, b in
            let xr = xp + offset
            if let drp {
                let dr = drp + offset
                vectorLoop(
                    length,
                    { i in
                        let v = g(offset, i)
                        store(v, dr + i)
                        store(load(a + i) + v, a + i)
                        store(load(b + i) + v * load(xr + i), b + i)
                    },
                    { i in
                        let v = g1(offset, i)
                        dr[i] = v
                        a[i] += v
                        b[i] += v * xr[i]
                    })
            } else {
                vectorLoop(
                    length,
                    { i in
                        let v = g(offset, i)
                        store(load(a + i) + v, a + i)
                        store(load(b + i) + v * load(xr + i), b + i)
                    },
                    { i in
                        let v = g1(offset, i)
                        a[i] += v
                        b[i] += v * xr[i]
                    })
            }
        }
        // Pass 2: dx = k1·g + k2·x + k3 per channel.
        let m = Double(s.n * s.h * s.w)
        let e1 = expanded!, e2 = e1 + length, e3 = e2 + length
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * c) { k in
            let k1 = k.baseAddress!, k2 = k1 + c, k3 = k2 + c
            for ch in 0..<c {
                let inv = Double(invStd[ch]), mu = Double(mean[ch]), gm = Double(gamma[ch])
                let sg = sumG[ch]
                let sgxhat = inv * (sumGX[ch] - mu * sg)
                dBeta[ch] = Float(sg)
                dGamma[ch] = Float(sgxhat)
                k1[ch] = Float(gm * inv)
                k2[ch] = Float(-gm * inv * inv * sgxhat / m)
                k3[ch] = Float(-gm * inv * sg / m + gm * inv * inv * mu * sgxhat / m)
            }
            expand(k1, into: e1, pixels: s.w)
            expand(k2, into: e2, pixels: s.w)
            expand(k3, into: e3, pixels: s.w)
        }
        let dxp = dx.pointer
        workers.forEachSlice(s.n * s.h) { rows in
            for r in rows {
                let offset = s.offset(r / s.h, r % s.h, 0)
                let xr = xp + offset, dxr = dxp + offset
                if let drp {
                    // g is in dResidual since pass 1: one tensor read instead of dOut and out
                    let gr = UnsafePointer(drp + offset)
                    vectorLoop(
                        length,
                        { i in store(load(e1 + i) * load(gr + i) + load(e2 + i) * load(xr + i) + load(e3 + i), dxr + i) },
                        { i in dxr[i] = e1[i] * gr[i] + e2[i] * xr[i] + e3[i] })
                } else {
                    vectorLoop(
                        length,
                        { i in
                            store(load(e1 + i) * g(offset, i) + load(e2 + i) * load(xr + i) + load(e3 + i), dxr + i)
                        }, { i in dxr[i] = e1[i] * g1(offset, i) + e2[i] * xr[i] + e3[i] })
                }
            }
        }
    }
}
