import Foundation

/// How many seeds a comparison needs, from the spread of its paired differences: the smallest
/// effect a paired t-test at α = 0.05 (two-sided) detects with 80 % power with the seeds at hand,
/// and the seeds needed to detect a given effect. Uses the usual approximation
/// `δ = (t(1 − α/2, n − 1) + t(power, n − 1)) · s_Δ / √n` (the noncentral t's exact power differs
/// by well under a seed at these sizes), with `s_Δ` the sample standard deviation of the paired Δ.
public enum SeedAdvisor {
    static let alpha = 0.05
    static let power = 0.80
    /// The effect people ask about by default: 0.2 points of top-1.
    static let targetEffect = 0.002
    /// Past this many seeds the advice is "more than 1 000" rather than a number.
    static let maximumSeeds = 1000

    /// The smallest |Δ| detectable with `n` pairs whose differences have standard deviation `spread`;
    /// nil for n < 2 (no spread yet).
    static func minimumDetectableEffect(spread: Double, n: Int) -> Double? {
        guard n >= 2, spread.isFinite, spread >= 0 else { return nil }
        let df = Double(n - 1)
        return (Statistics.tQuantile(1 - alpha / 2, df: df) + Statistics.tQuantile(power, df: df)) * spread
            / Double(n).squareRoot()
    }

    /// The fewest pairs that detect `effect` given the spread seen so far (at least 2); nil when
    /// the spread is unknown, and ``maximumSeeds`` + 1 when even that many would not do.
    static func seedsNeeded(effect: Double = targetEffect, spread: Double) -> Int? {
        guard spread.isFinite, spread >= 0, effect > 0 else { return nil }
        if spread == 0 { return 2 }
        // The detectable effect shrinks as n grows: bisect for the first n that reaches `effect`.
        func enough(_ n: Int) -> Bool { minimumDetectableEffect(spread: spread, n: n)! <= effect }
        guard enough(maximumSeeds) else { return maximumSeeds + 1 }
        var low = 2, high = maximumSeeds
        while low < high {
            let mid = (low + high) / 2
            if enough(mid) { high = mid } else { low = mid + 1 }
        }
        return low
    }

    /// Whether `metric` is an accuracy, whose differences are counted in points (top-1, top-5).
    public static func countsPoints(_ metric: String) -> Bool { metric.contains("top") }

    /// The advice in words for a row: "with 3 seeds, differences under 0.6 pt cannot be told from
    /// noise; 8 seeds would resolve 0.2 pt".
    static func sentence(n: Int, spread: Double?) -> String? {
        guard let spread, let mde = minimumDetectableEffect(spread: spread, n: n), let needed = seedsNeeded(spread: spread)
        else { return nil }
        return sentence(n: n, minimumDetectable: mde, seedsNeeded: needed)
    }

    /// The same sentence from what a compare row carries (`min_detectable_delta`, `seeds_needed`),
    /// so `polyak compare` says what the page says; a zero detectable Δ means no spread at all.
    public static func sentence(n: Int, minimumDetectable mde: Double, seedsNeeded needed: Int) -> String {
        if mde == 0 { return "the \(n) seeds give exactly the same Δ: there is no seed-to-seed noise to resolve" }
        let points = String(format: "%.1f", mde * 100)
        let target = String(format: "%.1f", targetEffect * 100)
        let seeds = needed > maximumSeeds ? "more than \(maximumSeeds) seeds" : "\(needed) seeds"
        if needed <= n { return "with \(n) seeds, differences of \(points) pt and more show; \(target) pt is resolved" }
        return "with \(n) seeds, differences under \(points) pt cannot be told from noise; \(seeds) would resolve \(target) pt"
    }
}
