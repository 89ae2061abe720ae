import Foundation
import Store

/// The comparison an experiment exists for, as pure functions: the final values of its runs in,
/// the table out (``compare(_:baseline:variants:metric:)``), and the seeds' resize × crop cells in,
/// the averaged grid out (``grid(_:variants:)``). No store, no HTTP: the API, the CSV and the page
/// all read these rows.
public enum Comparison {
    /// `raw` first, then EMA weight sets, then `swa`, then post-hoc EMA's profiles, then anything
    /// else by name (the order a run spec lists its weight sets in).
    public static func weightOrder(_ a: String, _ b: String) -> Bool {
        func rank(_ w: String) -> Int {
            w == "raw" ? 0 : w.hasPrefix("ema@") ? 1 : w == "swa" ? 2 : w.hasPrefix("phema@") ? 3 : 4
        }
        return rank(a) != rank(b) ? rank(a) < rank(b) : a < b
    }

    struct Row {
        var variant: String
        var weights: String
        var summary: Statistics.Summary
        var delta: Statistics.Summary?
        var wins = 0, losses = 0, ties = 0
        /// The baseline's own raw weights: its Δ is zero by construction.
        var isReference = false
        /// Wall-time cost and gain per extra minute (``CostColumns``), filled in after the rows are built.
        var cost = CostColumns.Cost()

        /// The smallest Δ this many seeds can tell from noise (``SeedAdvisor``), from the paired
        /// Δ's spread; nil for the reference row and below two pairs.
        var minimumDetectableDelta: Double? {
            guard !isReference, let d = delta, let spread = d.std else { return nil }
            return SeedAdvisor.minimumDetectableEffect(spread: spread, n: d.n)
        }

        /// Seeds needed to resolve 0.2 points of an accuracy metric; nil for other metrics.
        func seedsNeeded(metric: String) -> Int? {
            guard !isReference, SeedAdvisor.countsPoints(metric), let spread = delta?.std else { return nil }
            return SeedAdvisor.seedsNeeded(spread: spread)
        }

        /// The seed advisor's sentence for this row (an accuracy metric, not the reference row).
        func advice(metric: String) -> String? {
            guard !isReference, SeedAdvisor.countsPoints(metric), let d = delta else { return nil }
            return SeedAdvisor.sentence(n: d.n, spread: d.std)
        }
    }

    /// One row per variant × weight set over completed runs' final values of `metric`, variants in
    /// the experiment's order; the Δ is paired by seed against the baseline variant's raw weights.
    /// For metrics where lower is better (names ending in `loss`), a win is a lower value.
    static func compare(_ values: [FinalValue], baseline: String, variants: [String], metric: String) -> [Row] {
        var groups: [String: [String: [Int64: Double]]] = [:]  // variant → weights → seed → value
        for v in values { groups[v.variant, default: [:]][v.weights, default: [:]][v.seed] = v.value }
        let reference = groups[baseline]?["raw"] ?? [:]
        let lowerIsBetter = metric.hasSuffix("loss")
        var rows: [Row] = []
        for variant in variants {
            guard let sets = groups[variant] else { continue }
            for weights in sets.keys.sorted(by: weightOrder) {
                let bySeed = sets[weights]!
                let seeds = bySeed.keys.sorted()
                guard let summary = Statistics.summarize(seeds.map { bySeed[$0]! }) else { continue }
                var row = Row(variant: variant, weights: weights, summary: summary)
                row.isReference = variant == baseline && weights == "raw"
                let deltas = seeds.filter { reference[$0] != nil }.map { bySeed[$0]! - reference[$0]! }
                row.delta = Statistics.summarize(deltas)
                for d in deltas {
                    if d == 0 {
                        row.ties += 1
                    } else if (d > 0) != lowerIsBetter {
                        row.wins += 1
                    } else if !d.isNaN {
                        row.losses += 1
                    }
                }
                rows.append(row)
            }
        }
        return rows
    }

    struct GridKey: Hashable { var variant, weights, stage: String; var trainSize, resize, crop: Int64 }
    /// One cell of the experiment's grid: the seeds' cells of a variant × weight set × stage × size.
    struct GridRow { var key: GridKey; var n: Int; var top1: Statistics.Summary?; var top5: Double?; var loss: Double? }

    /// The resize × crop cells averaged over seeds, in variant (the experiment's order), weight-set,
    /// stage, size order.
    static func grid(_ cells: [ExperimentGridCell], variants: [String]) -> [GridRow] {
        var groups: [GridKey: [GridCell]] = [:]
        for c in cells {
            let key = GridKey(
                variant: c.variant, weights: c.cell.weights, stage: c.cell.stage, trainSize: c.cell.trainSize,
                resize: c.cell.resize, crop: c.cell.crop)
            groups[key, default: []].append(c.cell)
        }
        let order = Dictionary(variants.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let keys = groups.keys.sorted {
            if $0.variant != $1.variant { return (order[$0.variant] ?? .max) < (order[$1.variant] ?? .max) }
            if $0.weights != $1.weights { return weightOrder($0.weights, $1.weights) }
            if $0.stage != $1.stage { return $0.stage < $1.stage }
            return ($0.trainSize, $0.resize, $0.crop) < ($1.trainSize, $1.resize, $1.crop)
        }
        func mean(_ xs: [Double?]) -> Double? {
            let v = xs.compactMap { $0 }
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        return keys.map { k -> GridRow in
            let cells = groups[k]!
            return GridRow(
                key: k, n: cells.count, top1: Statistics.summarize(cells.compactMap(\.top1)),
                top5: mean(cells.map(\.top5)), loss: mean(cells.map(\.loss)))
        }
    }
}

/// Sample statistics for comparisons over seeds.
enum Statistics {
    struct Summary: Equatable {
        var n: Int
        var mean: Double
        /// Sample standard deviation (n − 1 in the denominator); nil for n < 2.
        var std: Double?
        /// 95 % confidence interval of the mean, mean ± t(0.975, n − 1) · std / √n; nil for n < 2.
        var ci95: (low: Double, high: Double)?

        static func == (a: Summary, b: Summary) -> Bool {
            a.n == b.n && a.mean.sameBits(b.mean) && a.std == b.std && a.ci95?.low == b.ci95?.low && a.ci95?.high == b.ci95?.high
        }
    }

    /// n, mean, sample std and the Student-t 95 % CI of `values` (nil for none).
    static func summarize(_ values: [Double]) -> Summary? {
        guard !values.isEmpty else { return nil }
        let n = values.count
        let mean = values.reduce(0, +) / Double(n)
        guard n > 1 else { return Summary(n: 1, mean: mean, std: nil, ci95: nil) }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
        let std = variance.squareRoot()
        let half = tQuantile975(df: n - 1) * std / Double(n).squareRoot()
        return Summary(n: n, mean: mean, std: std, ci95: (mean - half, mean + half))
    }

    private struct QuantileKey: Hashable { var p: Double, df: Double }
    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [QuantileKey: Double] = [:]

    /// The 0.975 quantile of Student's t with `df` degrees of freedom (12.706 for df = 1,
    /// 4.303 for 2, 1.960 in the limit).
    static func tQuantile975(df: Int) -> Double { tQuantile(0.975, df: Double(df)) }

    /// The p-quantile (p ≥ ½) of Student's t with `df` degrees of freedom, by bisection on the CDF;
    /// cached per (p, df): a 1 000-run page asks for the same few dozen.
    static func tQuantile(_ p: Double, df: Double) -> Double {
        let key = QuantileKey(p: p, df: df)
        if let q = cacheLock.withLock({ cache[key] }) { return q }
        var lo = 0.0, hi = 1000.0
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if tCDF(mid, df: df) < p { lo = mid } else { hi = mid }
        }
        let q = (lo + hi) / 2
        cacheLock.withLock { cache[key] = q }
        return q
    }

    /// P(T ≤ t) for t ≥ 0: 1 − I_x(df/2, 1/2) / 2 with x = df / (df + t²).
    static func tCDF(_ t: Double, df: Double) -> Double {
        1 - 0.5 * regularizedIncompleteBeta(df / (df + t * t), a: df / 2, b: 0.5)
    }

    /// I_x(a, b) by Lentz's continued fraction (Numerical Recipes, `betai`/`betacf`).
    static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnBeta: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let lnFront: Double = lnBeta + a * log(x) + b * log(1 - x)
        if x < (a + 1) / (a + b + 2) {
            return exp(lnFront) * continuedFraction(x, a: a, b: b) / a
        }
        return 1 - exp(lnFront) * continuedFraction(1 - x, a: b, b: a) / b
    }

    private static func continuedFraction(_ x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...300 {
            let m = Double(m)
            var aa = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            aa = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return h
    }
}

extension Double {
    func sameBits(_ other: Double) -> Bool { (isNaN && other.isNaN) || self == other }
}
