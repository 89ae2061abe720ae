import Datasets
import Foundation
import Kernels
import PolyakNetwork

/// Re-estimates a weight set's BatchNorm running statistics from training batches, in train-mode
/// forward passes through the training executor. Averaged parameters come with statistics that
/// belong to no model (SWA) or that lag behind (EMA, raw with momentum), so they are measured again.
///
/// Augmentation is drawn from a generator of its own, seeded from the run's seed: the training
/// stream is never touched, which keeps a resumed run bit-identical to an uninterrupted one.
struct BatchNormRecompute {
    enum Method {
        /// SWA's `update_bn` (torch.optim.swa_utils): reset, then an equal-weight average of every
        /// batch's statistics (unbiased variance) over one epoch of batches.
        case updateBN
        /// Precise BN (fvcore): pooled mean and biased population variance over all samples of
        /// `batches` batches, leaving the other buffers as they are.
        case precise(batches: Int)
    }

    let exec: ResNetExecutor
    let filler: BatchFiller
    let stepsPerEpoch: Int
    let seed: UInt64

    func recompute(_ state: ModelState, _ method: Method) {
        let layout = state.layout
        var count = stepsPerEpoch
        var precise = false
        if case .precise(let batches) = method {
            count = batches
            precise = true
        }
        var rng = Xoshiro256(seed: seed ^ 0x5EED_BA7C_4E0F)
        let order = rng.permutation(count: filler.images.count)
        let stats = exec.batchNormStatistics
        var pooled = stats.map { PooledStatistics(channels: $0.mean.count) }
        if !precise {
            for e in layout.entries where e.role == .buffer {
                state.pointer(e).update(repeating: e.name.hasSuffix("running_var") ? 1 : 0, count: e.count)
            }
            state.batchesTracked = 0
        }
        let saved = exec.batchNormMomentum
        defer { exec.batchNormMomentum = saved }
        let batch = exec.batch
        for k in 0..<count {
            let i = k % stepsPerEpoch
            filler.fill(exec, indices: order[(i * batch)..<((i + 1) * batch)], rng: &rng)
            // Momentum 1/(k+1) makes the running value the plain mean of the k+1 batches so far;
            // precise BN pools the batch statistics itself and leaves the buffers alone meanwhile.
            exec.batchNormMomentum = precise ? 0 : 1 / Float(k + 1)
            exec.forward(state, training: true)
            if precise {
                let samples = batch * exec.height * exec.width
                for (j, s) in stats.enumerated() {
                    pooled[j].add(mean: s.batchMean.pointer, variance: s.batchVariance.pointer, count: samples)
                }
            }
        }
        guard precise else { return }
        for (j, s) in stats.enumerated() {
            let mean = state.pointer(s.mean), variance = state.pointer(s.variance)
            for c in 0..<s.mean.count {
                let r = pooled[j].result(channel: c)
                mean[c] = Float(r.mean)
                variance[c] = Float(r.variance)
            }
        }
    }
}
