import Foundation

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

    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [Int: Double] = [:]

    /// The 0.975 quantile of Student's t with `df` degrees of freedom (12.706 for df = 1,
    /// 4.303 for 2, 1.960 in the limit), by bisection on the CDF; cached per df.
    static func tQuantile975(df: Int) -> Double {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let q = cache[df] { return q }
        var lo = 0.0, hi = 1000.0
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if tCDF(mid, df: Double(df)) < 0.975 { lo = mid } else { hi = mid }
        }
        let q = (lo + hi) / 2
        cache[df] = q
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
