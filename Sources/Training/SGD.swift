import Experiments
import Kernels
import PolyakNetwork

/// Stochastic gradient descent exactly as `torch.optim.SGD` (dampening 0):
/// d = g + λ·p (λ only on conv/linear weights), b ← μ·b + d (b = d on the first step),
/// d ← d + μ·b (Nesterov) or d ← b, p ← p − lr·d.
public final class SGD: @unchecked Sendable {
    public let momentum: Float
    public let nesterov: Bool
    public let weightDecay: Float
    /// The momentum buffer, same layout as the parameters.
    public let velocity: FloatBuffer
    /// False until the first step has filled `velocity` (PyTorch's lazily created buffer).
    public var started = false
    private let layout: ParameterLayout

    public init(layout: ParameterLayout, optim: OptimSpec) {
        self.layout = layout
        momentum = Float(optim.momentum)
        nesterov = optim.nesterov
        weightDecay = Float(optim.weightDecay)
        velocity = FloatBuffer(count: layout.parameterCount)
    }

    /// One update of every parameter from `state.gradients`; with `only`, of the entries it accepts (the rest,
    /// and their momentum, are left untouched: FixRes fine-tunes `fc` alone this way).
    public func step(_ state: ModelState, lr: Float, only: ((TensorEntry) -> Bool)? = nil) {
        let mu = momentum
        for e in layout.entries where e.role == .parameter && (only?(e) ?? true) {
            let p = state.pointer(e), g = state.gradient(e), b = velocity.pointer + e.offset
            let wd = e.decays ? weightDecay : 0
            let n = e.count
            if mu == 0 {
                for i in 0..<n { p[i] -= lr * (g[i] + wd * p[i]) }
            } else if !started {
                for i in 0..<n {
                    let d = g[i] + wd * p[i]
                    b[i] = d
                    p[i] -= lr * (nesterov ? d + mu * d : d)
                }
            } else if nesterov {
                for i in 0..<n {
                    let d = g[i] + wd * p[i]
                    let v = mu * b[i] + d
                    b[i] = v
                    p[i] -= lr * (d + mu * v)
                }
            } else {
                for i in 0..<n {
                    let v = mu * b[i] + g[i] + wd * p[i]
                    b[i] = v
                    p[i] -= lr * v
                }
            }
        }
        started = true
    }
}
