import Foundation
import Store

/// The cost columns of a comparison, as pure functions: what a variant × weight set costs in
/// wall time, what it costs beyond the baseline's raw weights, and the Δ it buys per extra minute.
///
/// The attribution rule (README, "Cost columns"): weight set W of a run costs the run's shared
/// part (setup, training steps, teacher forwards, checkpoints) + `raw`'s own part (every run
/// evaluates and exports its raw weights) + W's own part when W is not `raw` (its evaluation,
/// grid, averaging updates, BN recomputation, FixRes, export). A strategy's update that serves
/// several sets (one EMA pass, several decays) is split equally among them by the trainer.
enum CostColumns {
    /// A compare row's cost columns; nil where a run's costs are unknown (it finished before costs
    /// were measured, or is external).
    struct Cost: Equatable {
        /// Mean over seeds of the row's attributable wall time (`cost_minutes`).
        var minutes: Double?
        /// Mean over seeds of the row's cost minus the baseline's raw weights' cost in the same
        /// seed's run (`extra_minutes`).
        var extraMinutes: Double?
        /// Δ mean / extra minutes (`gain_per_extra_minute`); nil when extra ≤ 0 or unknown.
        var gainPerExtraMinute: Double?
    }

    /// What weight set `weights` of one run costs, in seconds, from that run's `RunCost` rows
    /// (weights → seconds, `""` the shared part); nil when they do not cover it.
    static func seconds(of weights: String, in run: [String: Double]) -> Double? {
        guard let shared = run[RunCost.shared], let raw = run["raw"] else { return nil }
        if weights == "raw" { return shared + raw }
        guard let own = run[weights] else { return nil }
        return shared + raw + own
    }

    /// Each run's costs: run → weights → seconds.
    static func byRun(_ costs: [RunCost]) -> [Int64: [String: Double]] {
        var out: [Int64: [String: Double]] = [:]
        for c in costs { out[c.runID, default: [:]][c.weights] = c.seconds }
        return out
    }

    /// The cost columns of the row `variant` × `weights`: its runs are the `values` of that
    /// variant and set (one per seed), the baseline's those of `baseline` × `raw`.
    static func cost(
        variant: String, weights: String, deltaMean: Double?, values: [FinalValue], costs: [Int64: [String: Double]],
        baseline: String
    ) -> Cost {
        var own: [Int64: Double] = [:]  // seed → seconds
        var reference: [Int64: Double] = [:]
        for v in values {
            if v.variant == variant && v.weights == weights, let s = costs[v.runID].flatMap({ seconds(of: v.runWeights, in: $0) })
            {
                own[v.seed] = s
            }
            if v.variant == baseline && v.weights == "raw", let s = costs[v.runID].flatMap({ seconds(of: "raw", in: $0) }) {
                reference[v.seed] = s
            }
        }
        func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }
        let seeds = own.keys.sorted()
        let minutes = mean(seeds.map { own[$0]! / 60 })
        let extra = mean(seeds.compactMap { s in reference[s].map { (own[s]! - $0) / 60 } })
        return Cost(minutes: minutes, extraMinutes: extra, gainPerExtraMinute: gain(deltaMean: deltaMean, extraMinutes: extra))
    }

    /// Δ per extra minute; nil when there is no extra cost to divide by, or no finite Δ.
    static func gain(deltaMean: Double?, extraMinutes: Double?) -> Double? {
        guard let d = deltaMean, d.isFinite, let x = extraMinutes, x > 0 else { return nil }
        return d / x
    }

    /// Fills in the cost of every row of a comparison built from `values`.
    /// Each row reads only its own values and the baseline's raw ones (in their order), not every
    /// value of the experiment: 20 rows × 2 000 values on the 1 000-run page.
    static func annotate(_ rows: inout [Comparison.Row], values: [FinalValue], costs: [RunCost], baseline: String) {
        let runs = byRun(costs)
        struct Key: Hashable { var variant: String; var weights: String }
        var byRow: [Key: [FinalValue]] = [:]
        for v in values { byRow[Key(variant: v.variant, weights: v.weights), default: []].append(v) }
        let reference = byRow[Key(variant: baseline, weights: "raw")] ?? []
        for i in rows.indices {
            let key = Key(variant: rows[i].variant, weights: rows[i].weights)
            let own = key == Key(variant: baseline, weights: "raw") ? reference : (byRow[key] ?? []) + reference
            rows[i].cost = cost(
                variant: key.variant, weights: key.weights, deltaMean: rows[i].delta?.mean, values: own, costs: runs,
                baseline: baseline)
        }
    }
}
