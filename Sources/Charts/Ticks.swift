import Foundation

/// "Nice" axis tick positions: multiples of 1, 2 or 5 × 10ⁿ.
public enum Ticks {
    /// Ticks for a log axis over `[low, high]` (both > 0): the 1-2-5 × 10ⁿ values inside it, thinned
    /// to 1 × 10ⁿ, then to every other decade, until at most `maxCount` (at least 2) remain; a
    /// range with fewer than two such values gets its two ends. Exact decimals (0.02, not 0.0200…01).
    public static func logarithmic(_ low: Double, _ high: Double, maxCount: Int) -> [Double] {
        guard low.isFinite, high.isFinite, low > 0, high >= low else { return [] }
        let maxCount = max(2, maxCount)
        let first = Int(floor(log10(low))), last = Int(ceil(log10(high)))
        func value(_ m: Int, _ e: Int) -> Double { e >= 0 ? Double(m) * pow(10, Double(e)) : Double(m) / pow(10, Double(-e)) }
        func inside(_ mantissas: [Int], every: Int) -> [Double] {
            var out: [Double] = []
            for e in first...last where (e - first) % every == 0 {
                for m in mantissas {
                    let v = value(m, e)
                    if v >= low * (1 - 1e-12) && v <= high * (1 + 1e-12) { out.append(v) }
                }
            }
            return out
        }
        for (mantissas, every) in [([1, 2, 5], 1), ([1], 1), ([1], 2), ([1], 3)] {
            let ticks = inside(mantissas, every: every)
            if ticks.count >= 2 && ticks.count <= maxCount { return ticks }
        }
        return [low, high]
    }

    /// At most `maxCount` (values below 3 count as 3) evenly spaced ticks with a 1-2-5 step that cover
    /// `[low, high]`: the first tick is ≤ `low`, the last ≥ `high`. The smallest such step is used.
    /// Values are exact decimals (0.3, not 0.30000000000000004).
    /// A degenerate range (`low == high`) gives `[low]`; non-finite input gives `[]`.
    public static func nice(_ low: Double, _ high: Double, maxCount: Int) -> [Double] {
        compute(low, high, maxCount: maxCount, integerOnly: false)
    }

    /// Like `nice`, but the step is at least 1 when `integerOnly` (epochs, steps).
    static func compute(_ low: Double, _ high: Double, maxCount: Int, integerOnly: Bool) -> [Double] {
        guard low.isFinite, high.isFinite else { return [] }
        var lo = low, hi = high
        if lo > hi { swap(&lo, &hi) }
        if lo == hi { return [lo] }
        let maxCount = max(3, maxCount)  // 3 ticks can always cover a range; 2 cannot if it spans 0
        let span = hi / 2 - lo / 2  // half span: cannot overflow
        // span × 2/(n−1) ≤ span for n ≥ 3, so the raw step is finite even for ±greatestFiniteMagnitude.
        guard var step = Step.atLeast(span * (2 / Double(maxCount - 1))) else { return [lo, hi] }
        if integerOnly && step.exponent < 0 { step = Step(mantissa: 1, exponent: 0) }
        for _ in 0..<64 {
            let v = step.value
            // A step that overflows (near ±1.8e308) or underflows to 0 (denormal spans): the ends are the ticks.
            guard v.isFinite, v > 0 else { return [lo, hi] }
            let a = lo / v, b = hi / v
            guard abs(a) < 1e15, abs(b) < 1e15 else { return [lo, hi] }
            // Snap to a multiple when within rounding noise, so 1.0 / 0.2 = 5.000000000000001 counts as 5.
            let ra = a.rounded(), rb = b.rounded()
            let first = abs(a - ra) < 1e-9 ? ra : a.rounded(.down)
            let last = abs(b - rb) < 1e-9 ? rb : b.rounded(.up)
            let count = Int(last - first) + 1
            if count <= maxCount {
                let k0 = Int64(first)
                let ticks = (0..<count).map { step.multiple(k0 + Int64($0)) }
                // k × step can still overflow by one step past ±greatestFiniteMagnitude.
                return ticks.allSatisfy(\.isFinite) ? ticks : [lo, hi]
            }
            step = step.next
        }
        return [lo, hi]
    }

    /// A 1-2-5 step: mantissa × 10^exponent.
    struct Step {
        var mantissa: Int64  // 1, 2 or 5
        var exponent: Int

        /// The smallest 1-2-5 step ≥ raw (with a small tolerance for rounding noise); nil unless
        /// raw is finite and positive.
        static func atLeast(_ raw: Double) -> Step? {
            guard raw.isFinite, raw > 0 else { return nil }
            let e = Int(log10(raw).rounded(.down))  // −324...308
            let f = raw / pow10(e)
            guard f.isFinite, f > 0 else { return nil }  // 10^e underflowed (a denormal raw)
            let tol = 1 + 1e-9
            if f <= 1 * tol { return Step(mantissa: 1, exponent: e) }
            if f <= 2 * tol { return Step(mantissa: 2, exponent: e) }
            if f <= 5 * tol { return Step(mantissa: 5, exponent: e) }
            return Step(mantissa: 1, exponent: e + 1)
        }

        var next: Step {
            switch mantissa {
            case 1: return Step(mantissa: 2, exponent: exponent)
            case 2: return Step(mantissa: 5, exponent: exponent)
            default: return Step(mantissa: 1, exponent: exponent + 1)
            }
        }

        var value: Double { multiple(1) }

        /// k × step as the double nearest to the exact decimal.
        func multiple(_ k: Int64) -> Double {
            let n = Double(k * mantissa)
            return exponent >= 0 ? n * Ticks.pow10(exponent) : n / Ticks.pow10(-exponent)
        }
    }

    static func pow10(_ e: Int) -> Double {
        // Exact for |e| ≤ 22, which covers every realistic axis; 0 or +Inf beyond Double's range.
        pow(10.0, Double(e))
    }

    /// Ticks inside `[low, high]` (the chart's domain), at least two if the range allows.
    static func inside(_ low: Double, _ high: Double, maxCount: Int, integerOnly: Bool) -> [Double] {
        let eps = (high / 2 - low / 2) * 2e-9
        var count = max(2, maxCount)
        var best: [Double] = []
        for _ in 0..<4 {
            let t = compute(low, high, maxCount: count, integerOnly: integerOnly)
                .filter { $0 >= low - eps && $0 <= high + eps }
            if t.count > best.count { best = t }
            if t.count >= 2 { return t }
            count += 2
        }
        return best
    }
}
