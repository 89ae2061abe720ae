import Foundation

/// Power-function EMA and its post-hoc synthesis (Karras et al., CVPR 2024, "Analyzing and
/// Improving the Training Dynamics of Diffusion Models", §3 and appendix C), as pure functions.
///
/// A power-function profile averages the weights of steps 1…t with weights ∝ τ^γ: its relative
/// width σ_rel (the profile's standard deviation over t) is fixed by γ alone, so one tracked
/// profile is "the same EMA length" at every point of training. Tracking two such profiles and
/// saving their snapshots lets any other length be synthesised after training by least squares
/// over the snapshots' profiles (Algorithm 3), instead of guessing a decay before training.
public enum PowerFunctionEMA {
    /// σ_rel of exponent γ (the paper's eq. 123): √((γ+1) / ((γ+2)²(γ+3))).
    public static func sigmaRel(gamma: Double) -> Double {
        ((gamma + 1) / ((gamma + 2) * (gamma + 2) * (gamma + 3))).squareRoot()
    }

    /// The widest σ_rel a power-function profile can have with γ ≥ 0 (γ = 0: a uniform average).
    public static let widestSigmaRel = sigmaRel(gamma: 0)

    /// γ of relative width `sigmaRel` (eq. 126, Algorithm 2: the largest real root of
    /// γ³ + 7γ² + (16 − σ⁻²)γ + (12 − σ⁻²)). σ_rel must lie in (0, ``widestSigmaRel``]; σ_rel is
    /// strictly decreasing in γ there, so bisection on a log scale finds the root to full precision.
    public static func gamma(sigmaRel sigma: Double) -> Double {
        precondition(sigma > 0 && sigma <= widestSigmaRel, "σ_rel \(sigma) outside (0, \(widestSigmaRel)]")
        let t = 1 / (sigma * sigma)
        func f(_ g: Double) -> Double { ((g + 7) * g + 16 - t) * g + 12 - t }
        var low = 0.0, high = 1.0
        while f(high) < 0 { high *= 2 }
        for _ in 0..<200 {
            let mid = (low + high) / 2
            if mid == low || mid == high { break }
            if f(mid) < 0 { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }

    /// The update's decay at step `t` (1, 2, …; eq. 127 with one step per update): (1 − 1/t)^(γ+1).
    /// Step 1 gives 0: the profile starts as a copy of the weights.
    public static func beta(step t: Int, gamma: Double) -> Double {
        pow(1 - 1 / Double(t), gamma + 1)
    }

    /// ⟨p_a, p_b⟩ of two power-function profiles ending at steps `a.t` and `b.t` (eq. 151): the
    /// Gram entry the least-squares synthesis needs, in the continuous-time limit the paper uses.
    public static func innerProduct(_ a: (t: Double, gamma: Double), _ b: (t: Double, gamma: Double)) -> Double {
        let ratio = a.t / b.t
        let exponent = a.t < b.t ? b.gamma : -a.gamma
        return (a.gamma + 1) * (b.gamma + 1) * pow(ratio, exponent) / ((a.gamma + b.gamma + 1) * max(a.t, b.t))
    }

    /// The weights of each snapshot in the profile `target` (Algorithm 3): solve G x = c with
    /// G_ij = ⟨p_i, p_j⟩ over the snapshots and c_i = ⟨p_i, p_target⟩, then scale x to sum to 1
    /// so the synthesised weights stay an average. Snapshots are (step, γ) pairs.
    public static func coefficients(
        snapshots: [(t: Double, gamma: Double)], target: (t: Double, gamma: Double)
    ) throws -> [Double] {
        let n = snapshots.count
        var gram = [Double](repeating: 0, count: n * n)
        var rhs = [Double](repeating: 0, count: n)
        for i in 0..<n {
            for j in 0..<n { gram[i * n + j] = innerProduct(snapshots[i], snapshots[j]) }
            rhs[i] = innerProduct(snapshots[i], target)
        }
        let x = try solve(gram, rhs, n: n)
        let sum = x.reduce(0, +)
        guard sum.isFinite, sum != 0 else { throw PostHocError.singular }
        return x.map { $0 / sum }
    }

    /// The decay of a classical EMA whose geometric weights d^k have the standard deviation
    /// σ_rel · t steps (√d / (1 − d) = s): how post-hoc lengths are shown to people who know
    /// decays. At t = 10 000 steps, σ_rel 0.05 ↔ 0.998 and 0.10 ↔ 0.999.
    public static func classicalDecay(sigmaRel sigma: Double, steps t: Int) -> Double {
        let s = sigma * Double(t)
        let u = ((1 + 4 * s * s).squareRoot() - 1) / (2 * s)
        return u * u
    }

    /// σ_rel of a classical EMA of decay `d` seen at step `t` (the inverse of ``classicalDecay``).
    public static func sigmaRel(classicalDecay d: Double, steps t: Int) -> Double {
        d.squareRoot() / (1 - d) / Double(t)
    }

    /// Gaussian elimination with partial pivoting, in Double: the Gram matrices are small
    /// (2 × ~100 snapshots) and badly conditioned, which is why the paper solves them in float64.
    static func solve(_ a: [Double], _ b: [Double], n: Int) throws -> [Double] {
        var m = a, x = b
        for col in 0..<n {
            var pivot = col
            for r in col + 1..<max(n, col + 1) where abs(m[r * n + col]) > abs(m[pivot * n + col]) { pivot = r }
            guard m[pivot * n + col] != 0, m[pivot * n + col].isFinite else { throw PostHocError.singular }
            if pivot != col {
                for c in 0..<n { m.swapAt(col * n + c, pivot * n + c) }
                x.swapAt(col, pivot)
            }
            let p = m[col * n + col]
            for r in col + 1..<max(n, col + 1) {
                let f = m[r * n + col] / p
                if f == 0 { continue }
                for c in col..<n { m[r * n + c] -= f * m[col * n + c] }
                x[r] -= f * x[col]
            }
        }
        for col in stride(from: n - 1, through: 0, by: -1) {
            var s = x[col]
            for c in col + 1..<max(n, col + 1) { s -= m[col * n + c] * x[c] }
            x[col] = s / m[col * n + col]
        }
        return x
    }
}

public enum PostHocError: Error, CustomStringConvertible {
    case singular

    public var description: String {
        "the snapshots' profiles are linearly dependent (two snapshots at the same step and width?)"
    }
}
