import Charts
import Foundation

/// How numbers, times and sizes read on the pages (the API keeps raw values).
public enum Format {
    /// Accuracies are fractions in [0, 1] on the wire and percentages on a page.
    public static func isFraction(_ key: String) -> Bool {
        key.hasSuffix("top1") || key.hasSuffix("top5") || key.hasSuffix("acc") || key.hasSuffix("accuracy")
    }

    /// Lower is better for losses; higher for everything else we compare.
    public static func lowerIsBetter(_ key: String) -> Bool { key.hasSuffix("loss") }

    /// A metric value as a reader wants it: "92.14 %" for accuracies, "0.2871" otherwise; a
    /// non-finite value spelled out (the cell is marked by the caller).
    public static func metric(_ x: Double?, key: String, digits: Int = 2) -> String {
        guard let x else { return "—" }
        guard x.isFinite else { return nonFinite(x) }
        if isFraction(key) && isPercentable(x) { return String(format: "%.\(digits)f %%", 100 * x) }
        return number(x, significant: 4)
    }

    /// A spread (std, half-width) in the metric's unit without the sign: "0.17" (percentage points) or "0.0021".
    public static func spread(_ x: Double?, key: String) -> String? {
        guard let x else { return nil }
        guard x.isFinite else { return nonFinite(x) }
        return isFraction(key) && isPercentable(x) ? String(format: "%.2f", 100 * x) : number(x, significant: 3)
    }

    /// A signed difference: "+0.12 pp" for accuracies, "−0.0031" otherwise.
    public static func delta(_ x: Double?, key: String) -> String {
        guard let x else { return "—" }
        guard x.isFinite else { return nonFinite(x) }
        let text =
            isFraction(key) && isPercentable(x) ? String(format: "%.2f pp", abs(100 * x)) : number(abs(x), significant: 3)
        return (x > 0 ? "+" : x < 0 ? "−" : "±") + text
    }

    /// An interval: "[91.72, 92.56] %" or "[−0.19, +0.07] pp".
    public static func interval(_ ci: (low: Double, high: Double)?, key: String, signed: Bool = false) -> String {
        guard let ci else { return "—" }
        func one(_ x: Double) -> String {
            guard x.isFinite else { return nonFinite(x) }
            let v = isFraction(key) && isPercentable(x) ? String(format: "%.2f", abs(100 * x)) : number(abs(x), significant: 3)
            if x < 0 { return "−" + v }
            return (signed && x > 0 ? "+" : "") + v
        }
        let unit = isFraction(key) ? (signed ? " pp" : " %") : ""
        return "[\(one(ci.low)), \(one(ci.high))]\(unit)"
    }

    /// Weight sets in page order (raw, EMA sets, swa, others) with a palette index each, so one
    /// weight set keeps its colour in every chart of a page.
    static func weightColours(_ names: [String]) -> (names: [String], colours: [String: Int]) {
        let sorted = Array(Set(names)).sorted(by: Comparison.weightOrder)
        return (sorted, Dictionary(uniqueKeysWithValues: sorted.enumerated().map { ($1, $0) }))
    }

    public static func nonFinite(_ x: Double) -> String { x.isNaN ? "NaN" : x > 0 ? "Inf" : "−Inf" }

    /// A "fraction" that reads as a percentage in fixed notation; a stored 1e300 would print 300
    /// digits, so such a value is written as a plain number instead.
    public static func isPercentable(_ x: Double) -> Bool { abs(x) < 1e6 }

    /// A stored number as an integer for display, clamped (a garbage 1e300 must not trap).
    public static func whole(_ x: Double) -> Int64 {
        guard !x.isNaN else { return 0 }
        return Int64(max(-9e18, min(9e18, x.rounded(.towardZero))))
    }

    /// `significant` digits, without trailing zeros beyond what the magnitude needs.
    public static func number(_ x: Double, significant: Int) -> String {
        guard x.isFinite else { return nonFinite(x) }
        if x == 0 { return "0" }
        let magnitude = Int(floor(log10(abs(x))))
        if magnitude < -4 || magnitude >= 7 {
            return String(format: "%.\(max(significant - 1, 0))e", x).replacingOccurrences(of: "-", with: "−")
        }
        let decimals = max(0, significant - 1 - magnitude)
        let text = String(format: "%.\(decimals)f", abs(x))
        return (x < 0 ? "−" : "") + text
    }

    /// "12 s", "3 min 20 s", "1 h 02 min".
    public static func duration(_ seconds: Double?) -> String? {
        guard let seconds, seconds.isFinite, seconds >= 0, seconds < 1e15 else { return nil }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return String(format: "%d min %02d s", s / 60, s % 60) }
        return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60)
    }

    /// "1.2 MB", "840 kB", "512 B".
    public static func bytes(_ n: Int64?) -> String {
        guard let n else { return "size unknown" }
        let x = Double(n)
        if x >= 1e9 { return String(format: "%.2f GB", x / 1e9) }
        if x >= 1e6 { return String(format: "%.1f MB", x / 1e6) }
        if x >= 1e3 { return String(format: "%.0f kB", x / 1e3) }
        return "\(n) B"
    }

    /// "2026-11-29 15:38 UTC": the server's clock, unambiguous in every time zone.
    public static func time(_ unix: Double) -> String {
        guard let t = utc(unix) else { return "—" }
        return String(
            format: "%04d-%02d-%02d %02d:%02d UTC", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min)
    }

    /// ISO 8601 for `<time datetime>`.
    static func iso(_ unix: Double) -> String {
        guard let t = utc(unix) else { return "" }
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
            t.tm_sec)
    }

    /// The calendar fields of a Unix time in UTC; nil for times no calendar shows.
    private static func utc(_ unix: Double) -> tm? {
        guard unix.isFinite, abs(unix) < 1e15 else { return nil }
        var t = time_t(unix)
        var parts = tm()
        gmtime_r(&t, &parts)
        return parts
    }
}

extension LineChart {
    /// The y axis of a metric: percentages that stop at 0 and 100 % for accuracies, plain numbers otherwise.
    mutating func showValues(of key: String) {
        guard Format.isFraction(key) else { return }
        yFormat = .percent
        yLimits = 0...1
    }
}
