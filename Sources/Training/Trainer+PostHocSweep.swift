import Experiments
import Foundation

/// The EMA-length sweep, the last stage of a run with a `posthoc` averaging entry: after the
/// exports and before the summary, the weights of every width of the sweep are synthesised from
/// the run's snapshots and evaluated, one `posthoc` event each, so any executor (the server's
/// child process, Slurm later) brings the sweep home in the run's own output.
extension Trainer {
    /// Runs the sweep; a failure of the sweep (the run's weights are trained and exported by now)
    /// becomes a `posthoc_sweep_failed` warning instead of failing the run.
    func sweepPostHoc(_ run: TrainingSession) {
        guard let postHoc = spec.postHocSpec else { return }
        let widths = PostHocSweepPlan.widths(postHoc, emaSpecs: spec.emaSpecs, steps: run.step)
        guard !widths.isEmpty else { return }
        let batches =
            postHoc.sweepBatchNorm == .precise ? spec.preciseBN?.batches ?? PostHocSpec.sweepPreciseBatches : nil
        let clock = Date()
        let costClock = CostClock.now()
        // The sweep serves the tracked profiles' variant: its time is their sets' `posthoc_s`.
        defer { run.costs.share(since: costClock, \.postHoc, among: postHoc.weightSetNames) }
        do {
            let sweep = try PostHocSweep(runDirectory: directory, threads: workers.count, profiles: Set(postHoc.sigmaRels))
            try sweep.run(sigmaRels: widths, preciseBatches: batches) { events.emit(.posthoc($0)) }
            log("post-hoc sweep: \(widths.count) widths in \(String(format: "%.1f", Date().timeIntervalSince(clock))) s")
        } catch {
            events.warning(code: "posthoc_sweep_failed", weights: nil, message: "the EMA-length sweep stopped: \(error)")
        }
    }
}

/// Which widths the sweep evaluates.
enum PostHocSweepPlan {
    /// The entry's `sweep` as listed; without one, ``PostHocSpec/defaultSweepWidths``, the tracked
    /// widths and the σ_rel of each of the run's EMA decays at its last step (rounded to three
    /// significant digits; a decay wider than 0.25 of the run cannot be synthesised and is left
    /// out), sorted and unique.
    static func widths(_ postHoc: PostHocSpec, emaSpecs: [EMASpec], steps: Int) -> [Double] {
        if let listed = postHoc.sweep { return listed }
        let decays = emaSpecs.flatMap { ema in
            ema.decays.map { rounded(PostHocSpec.sigmaRel(emaDecay: $0, every: ema.every, steps: steps)) }
        }
        let all = PostHocSpec.defaultSweepWidths + postHoc.sigmaRels + decays
        return Set(all.filter { $0 > 0 && $0 <= PostHocSpec.widestSigmaRel }).sorted()
    }

    /// `x` to three significant digits, as the nearest Double to that decimal.
    static func rounded(_ x: Double) -> Double {
        guard x > 0, x.isFinite else { return x }
        let p = pow(10, 2 - floor(log10(x)))
        return (x * p).rounded() / p
    }
}
