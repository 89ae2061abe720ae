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

    deinit { partials.deallocate() }

    /// Sums f(row element) per channel over every interior pixel, per worker, then in worker order.
    /// `rowSums` gets (sumA, sumB) for one row of `w × c` values starting at the given offset.
    private func reduce(
        _ shape: ActivationShape,
        _ perRow: (_ offset: Int, _ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>) -> Void
    ) -> (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>) {
        let c = channels
        partials.initialize(repeating: 0, count: 2 * c * workers.count)
        workers.run { worker in
            let images = workers.range(worker, of: shape.n)
            let sa = partials + worker * 2 * c, sb = sa + c
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * c) { tmp in
                let ra = tmp.baseAddress!, rb = ra + c
                for img in images {
                    for y in 0..<shape.h {
                        ra.update(repeating: 0, count: 2 * c)
                        perRow(shape.offset(img, y, 0), ra, rb)
                        for ch in 0..<c {
                            sa[ch] += Double(ra[ch])
                            sb[ch] += Double(rb[ch])
                        }
                    }
                }
            }
        }
        for worker in 1..<workers.count {
            let src = partials + worker * 2 * c
            for i in 0..<(2 * c) { partials[i] += src[i] }
        }
        return (partials, partials + c)
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
        let (sums, squares) = reduce(s) { offset, a, b in
            let row = xp + offset
            for px in 0..<s.w {
                let v = row + px * c
                for ch in 0..<c {
                    a[ch] += v[ch]
                    b[ch] += v[ch] * v[ch]
                }
            }
        }
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
        let s = x.shape, c = channels
        let xp = UnsafePointer(x.pointer), op = out.pointer
        let rp = residual.map { UnsafePointer($0.pointer) }
        if let residual { precondition(residual.shape == s) }
        let sc = UnsafePointer(scale.pointer), sh = UnsafePointer(shift.pointer)
        workers.forEachSlice(s.n * s.h) { rows in
            for r in rows {
                let offset = s.offset(r / s.h, r % s.h, 0)
                let xr = xp + offset, orow = op + offset
                if let rp {
                    let rr = rp + offset
                    for px in 0..<s.w {
                        for ch in 0..<c {
                            let i = px * c + ch
                            let v = xr[i] * sc[ch] + sh[ch] + rr[i]
                            orow[i] = relu ? max(v, 0) : v
                        }
                    }
                } else {
                    for px in 0..<s.w {
                        for ch in 0..<c {
                            let i = px * c + ch
                            let v = xr[i] * sc[ch] + sh[ch]
                            orow[i] = relu ? max(v, 0) : v
                        }
                    }
                }
            }
        }
    }

    /// Training backward of `out = [relu](γ·x̂ + β [+ residual])`.
    ///
    /// With g = dOut ⊙ [out > 0]: dβ = Σg, dγ = Σ g·x̂, and
    /// dx = γ·σ⁻¹·(g − Σg/M − x̂·Σ(g·x̂)/M) (Ioffe & Szegedy 2015, eq. for ∂ℓ/∂xᵢ).
    /// `dResidual`, when given, receives g (the gradient flowing into the shortcut).
    public func backward(
        _ dOut: Activation, out: Activation, x: Activation, gamma: UnsafePointer<Float>,
        relu: Bool, dx: Activation, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>,
        dResidual: Activation?
    ) {
        let s = x.shape, c = channels
        let dop = UnsafePointer(dOut.pointer), outp = UnsafePointer(out.pointer), xp = UnsafePointer(x.pointer)
        let drp = dResidual?.pointer
        let (sumG, sumGX) = reduce(s) { offset, a, b in
            let d = dop + offset, o = outp + offset, xr = xp + offset
            let dr = drp.map { $0 + offset }
            for px in 0..<s.w {
                for ch in 0..<c {
                    let i = px * c + ch
                    let g = (relu && o[i] <= 0) ? 0 : d[i]
                    dr?[i] = g
                    a[ch] += g
                    b[ch] += g * xr[i]
                }
            }
        }
        let m = Double(s.n * s.h * s.w)
        let k1 = scale, k2 = shift  // reused as the coefficients of dx = k1·g + k2·x + k3
        withUnsafeTemporaryAllocation(of: Float.self, capacity: c) { k3 in
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
            let a = UnsafePointer(k1.pointer), b = UnsafePointer(k2.pointer), cc = UnsafePointer(k3.baseAddress!)
            let dxp = dx.pointer
            workers.forEachSlice(s.n * s.h) { rows in
                for r in rows {
                    let offset = s.offset(r / s.h, r % s.h, 0)
                    let d = dop + offset, o = outp + offset, xr = xp + offset, dxr = dxp + offset
                    for px in 0..<s.w {
                        for ch in 0..<c {
                            let i = px * c + ch
                            let g = (relu && o[i] <= 0) ? 0 : d[i]
                            dxr[i] = a[ch] * g + b[ch] * xr[i] + cc[ch]
                        }
                    }
                }
            }
        }
    }
}
