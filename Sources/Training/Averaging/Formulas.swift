import Experiments
import Foundation
import Kernels

/// The averaging formulas of `spec/averaging.md`, as pure functions (tested on vectors T1–T10).
public enum AveragingMath {
    /// The EMA decay at update `n` (1, 2, …) for target `d` under a warmup kind.
    public static func emaDecay(update n: Int, target d: Double, warmup: EMAWarmup) -> Double {
        switch warmup {
        case .none:
            // timm ModelEmaV3: the first update copies (s = n − 1 ≤ 0 ⇒ decay 0)
            return n <= 1 ? 0 : d
        case .timm(let gamma, let power, let minDecay):
            let s = Double(n - 1)
            if s <= 0 { return 0 }
            return min(max(1 - pow(1 + s / gamma, -power), minDecay), d)
        case .yolo(let tau):
            return d * (1 - exp(-Double(n) / tau))
        case .threshold:
            // TF ExponentialMovingAverage(num_updates): counter from 0 at the first update
            let c = Double(n - 1)
            return min(d, (1 + c) / (10 + c))
        }
    }

    /// `torch.lerp(e, m, w)` as ATen computes it for floats: `|w| < ½ ? e + w(m − e) : m − (m − e)(1 − w)`.
    @inline(__always)
    public static func lerp(_ e: Float, _ m: Float, _ w: Float) -> Float {
        abs(w) < 0.5 ? e + w * (m - e) : m - (m - e) * (1 - w)
    }

    /// `e ← lerp(e, m, w)` for every shadow `e` of `source` with its own weight, in one pass over
    /// memory: the source is read a chunk at a time, and each chunk (in L1) is folded into every
    /// shadow before the next (EMA at several decays, post-hoc EMA's profiles).
    static func lerp(_ source: FloatBuffer, into targets: [FloatBuffer], weights: [Float]) {
        let n = source.count, chunk = 2048
        let src = source.pointer
        var start = 0
        while start < n {
            let end = min(n, start + chunk)
            for (t, w) in zip(targets, weights) {
                let e = t.pointer
                if abs(w) < 0.5 {
                    for i in start..<end { e[i] = e[i] + w * (src[i] - e[i]) }
                } else {
                    let v = 1 - w
                    for i in start..<end { e[i] = src[i] - (src[i] - e[i]) * v }
                }
            }
            start = end
        }
    }

    /// SWALR: the rate `k` epochs after SWA starts, annealing from `from` to `swaLR` over
    /// `annealEpochs` epochs: `from·(1 − α) + swa_lr·α` with α(t) = (1 − cos πt)/2 (cos) or t (linear).
    public static func swaLearningRate(
        epochsSinceStart k: Int, from lr0: Double, swaLR: Double,
        annealEpochs: Int, anneal: SWASpec.Anneal
    ) -> Double {
        let t = annealEpochs <= 0 ? 1 : min(1, Double(k) / Double(annealEpochs))
        let alpha = anneal == .cos ? (1 - cos(Double.pi * t)) / 2 : t
        return lr0 * (1 - alpha) + swaLR * alpha
    }

    /// Distillation loss of one batch (Hinton 2015; timm): `α·T²·KL(softmax(t/T) ‖ softmax(s/T))
    /// + (1 − α)·CE(s, y)`, KL averaged over the batch ('batchmean'). Writes ∂loss/∂s to `dStudent`.
    /// Returns (total, kd term, ce term), each a batch mean.
    @discardableResult
    public static func distillation(
        student s: UnsafePointer<Float>, teacher t: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
        n: Int, classes k: Int, temperature: Double, alpha: Double, labelSmoothing: Double = 0,
        dStudent: UnsafeMutablePointer<Float>?
    ) -> (total: Double, kd: Double, ce: Double) {
        var kdSum = 0.0, ceSum = 0.0
        let T = temperature
        var ps = [Double](repeating: 0, count: k), pt = ps, p1 = ps
        for b in 0..<n {
            let sr = s + b * k, tr = t + b * k
            func softmax(_ z: UnsafePointer<Float>, _ scale: Double, into out: inout [Double]) -> Double {
                var m = -Double.infinity
                for j in 0..<k { m = max(m, Double(z[j]) / scale) }
                var sum = 0.0
                for j in 0..<k {
                    out[j] = exp(Double(z[j]) / scale - m)
                    sum += out[j]
                }
                for j in 0..<k { out[j] /= sum }
                return m + log(sum)  // log-sum-exp
            }
            let lseS = softmax(sr, T, into: &ps)
            let lseT = softmax(tr, T, into: &pt)
            let lse1 = softmax(sr, 1, into: &p1)
            var kl = 0.0
            for j in 0..<k where pt[j] > 0 {
                let logPt = Double(tr[j]) / T - lseT, logPs = Double(sr[j]) / T - lseS
                kl += pt[j] * (logPt - logPs)
            }
            kdSum += kl
            let y = Int(labels[b])
            var ce = 0.0
            for j in 0..<k {
                let q = labelSmoothing / Double(k) + (j == y ? 1 - labelSmoothing : 0)
                ce -= q * (Double(sr[j]) - lse1)
                if let d = dStudent {
                    // ∂/∂s of α·T²·KL = α·T·(p_s − p_t); of CE = p − q; both /n for the batch mean
                    d[b * k + j] = Float((alpha * T * (ps[j] - pt[j]) + (1 - alpha) * (p1[j] - q)) / Double(n))
                }
            }
            ceSum += ce
        }
        let kd = T * T * kdSum / Double(n), ce = ceSum / Double(n)
        return (alpha * kd + (1 - alpha) * ce, kd, ce)
    }
}
