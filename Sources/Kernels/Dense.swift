import Foundation

/// Global average pooling, the classifier layer and the loss: small, row-major `[n × features]`.
public enum GlobalAveragePool {
    /// out[b][ch] = mean over the interior of x[b, :, :, ch]. out: `[n × c]`.
    public static func forward(_ x: Activation, _ out: UnsafeMutablePointer<Float>) {
        let s = x.shape
        let inv = 1 / Float(s.h * s.w)
        for b in 0..<s.n {
            let o = out + b * s.c
            o.update(repeating: 0, count: s.c)
            for y in 0..<s.h {
                let row = x.pointer + s.offset(b, y, 0)
                for px in 0..<s.w {
                    for ch in 0..<s.c { o[ch] += row[px * s.c + ch] }
                }
            }
            for ch in 0..<s.c { o[ch] *= inv }
        }
    }

    /// dx[b, y, x, ch] = dOut[b][ch] / (h·w).
    public static func backward(_ dOut: UnsafePointer<Float>, _ dx: Activation) {
        let s = dx.shape
        let inv = 1 / Float(s.h * s.w)
        for b in 0..<s.n {
            let d = dOut + b * s.c
            for y in 0..<s.h {
                let row = dx.pointer + s.offset(b, y, 0)
                for px in 0..<s.w {
                    for ch in 0..<s.c { row[px * s.c + ch] = d[ch] * inv }
                }
            }
        }
    }
}

/// `y = x·Wᵀ + b` with PyTorch's layout: W `[out × in]`, x `[n × in]`, y `[n × out]`.
public enum Linear {
    public static func forward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
        _ y: UnsafeMutablePointer<Float>, n: Int, inputs: Int, outputs: Int
    ) {
        for b in 0..<n {
            let xr = x + b * inputs
            for o in 0..<outputs {
                let wr = w + o * inputs
                var sum: Float = 0
                for i in 0..<inputs { sum += wr[i] * xr[i] }
                y[b * outputs + o] = sum + bias[o]
            }
        }
    }

    /// dx = dy·W; dW = dyᵀ·x and db = Σ dy (both overwritten).
    public static func backward(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
        n: Int, inputs: Int, outputs: Int
    ) {
        dw.update(repeating: 0, count: outputs * inputs)
        db.update(repeating: 0, count: outputs)
        for b in 0..<n {
            let xr = x + b * inputs, dyr = dy + b * outputs, dxr = dx + b * inputs
            dxr.update(repeating: 0, count: inputs)
            for o in 0..<outputs {
                let g = dyr[o]
                db[o] += g
                let wr = w + o * inputs, dwr = dw + o * inputs
                for i in 0..<inputs {
                    dwr[i] += g * xr[i]
                    dxr[i] += g * wr[i]
                }
            }
        }
    }
}

/// Softmax cross-entropy with optional label smoothing, as `F.cross_entropy(…, label_smoothing: ε)`:
/// targets q = (1 − ε)·onehot + ε/K, loss = mean over the batch of −Σ q·log softmax(z).
public enum SoftmaxCrossEntropy {
    /// Returns the summed loss over the batch and the number of top-1 hits; writes
    /// `dLogits = (softmax(z) − q) / n` when given.
    @discardableResult
    public static func forward(
        logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, n: Int, classes k: Int,
        labelSmoothing eps: Float = 0, dLogits: UnsafeMutablePointer<Float>? = nil
    ) -> (lossSum: Double, correct: Int) {
        var lossSum: Double = 0
        var correct = 0
        for b in 0..<n {
            let z = logits + b * k
            let y = Int(labels[b])
            var maxZ = z[0], arg = 0
            for j in 1..<k where z[j] > maxZ {
                maxZ = z[j]
                arg = j
            }
            if arg == y { correct += 1 }
            var sumExp: Double = 0
            for j in 0..<k { sumExp += Foundation.exp(Double(z[j] - maxZ)) }
            let logSum = Foundation.log(sumExp)
            var loss: Double = 0
            for j in 0..<k {
                let logP = Double(z[j] - maxZ) - logSum
                let q = Double(eps) / Double(k) + (j == y ? Double(1 - eps) : 0)
                loss -= q * logP
                if let d = dLogits {
                    d[b * k + j] = Float((Foundation.exp(logP) - q) / Double(n))
                }
            }
            lossSum += loss
        }
        return (lossSum, correct)
    }

    /// Whether the label is among the `k` largest logits (ties count against: a strict rank).
    public static func inTopK(_ logits: UnsafePointer<Float>, label: Int, classes: Int, k: Int) -> Bool {
        let target = logits[label]
        var above = 0
        for j in 0..<classes where logits[j] > target || (logits[j] == target && j < label) { above += 1 }
        return above < k
    }
}
