import Foundation

/// Number → text for tick labels and SVG coordinates. Deterministic and locale-independent.
enum NumberText {
    static let minus = "\u{2212}"

    static func labels(_ values: [Double], format: ValueFormat) -> [String] {
        switch format {
        case .fixed(let digits):
            return values.map { fixed($0, max(0, min(digits, 15)), minus: minus) }
        case .percent, .percentPoints:
            let scaled = values.map { $0 * 100 }
            // A lone value (no neighbour to tell apart) gets at most one decimal: 0.9123 → "91.2 %".
            let finiteCount = scaled.filter { $0.isFinite }.count
            let d = finiteCount > 1 ? decimals(scaled) : min(1, decimals(scaled))
            let unit = format == .percent ? " %" : " pp"
            return scaled.map { $0.isFinite ? fixed($0, d, minus: minus) + unit : "" }
        case .automatic:
            let finite = values.filter { $0.isFinite }
            let maxAbs = finite.map { abs($0) }.max() ?? 0
            if maxAbs > 0 && (maxAbs < 1e-3 || maxAbs >= 1e7) {
                return values.map { scientific($0) }
            }
            let d = decimals(values)
            return values.map { trimZeros(fixed($0, d, minus: minus)) }
        }
    }

    /// The fewest decimals (≤ 12) that write every value exactly (relative to the gap between
    /// values) and keep all of them distinct.
    static func decimals(_ values: [Double]) -> Int {
        let v = values.filter { $0.isFinite }.sorted()
        guard !v.isEmpty else { return 0 }
        var minGap = Double.infinity
        for i in 1..<max(1, v.count) where v[i] > v[i - 1] { minGap = min(minGap, v[i] - v[i - 1]) }
        let maxAbs = v.map { abs($0) }.max() ?? 0
        let tol = minGap.isFinite ? minGap * 1e-6 : max(maxAbs * 1e-9, 1e-12)
        for d in 0...12 {
            let p = Ticks.pow10(d)
            let exact = v.allSatisfy { abs(($0 * p).rounded() / p - $0) <= tol }
            if !exact { continue }
            let texts = v.map { fixed($0, d, minus: "-") }
            var distinct = true
            for i in 1..<max(1, texts.count) where v[i] != v[i - 1] && texts[i] == texts[i - 1] {
                distinct = false
            }
            if distinct { return d }
        }
        return 12
    }

    /// `v` with exactly `d` decimals; "0" is never negative.
    static func fixed(_ v: Double, _ d: Int, minus: String) -> String {
        guard v.isFinite else { return "" }
        let scaled = (abs(v) * Ticks.pow10(d)).rounded()
        var s: String
        if scaled < 9e15 {
            let n = UInt64(scaled)
            if n == 0 { return d > 0 ? "0." + String(repeating: "0", count: d) : "0" }
            var digits = String(n)
            if d > 0 {
                if digits.count <= d {
                    digits = String(repeating: "0", count: d - digits.count + 1) + digits
                }
                let cut = digits.index(digits.endIndex, offsetBy: -d)
                s = digits[..<cut] + "." + digits[cut...]
            } else {
                s = digits
            }
        } else if abs(v) < 1e15 {
            s = String(format: "%.\(d)f", abs(v))
        } else {
            // Fixed notation of 1e300 is 301 digits: no label should be that wide.
            return scientific(v)
        }
        return v < 0 ? minus + s : s
    }

    static func trimZeros(_ s: String) -> String {
        guard s.contains(".") else { return s }
        var t = Substring(s)
        while t.hasSuffix("0") { t = t.dropLast() }
        if t.hasSuffix(".") { t = t.dropLast() }
        return String(t)
    }

    /// 0.0001 → "1e-4", −0.00025 → "−2.5e-4".
    static func scientific(_ v: Double) -> String {
        guard v.isFinite else { return "" }
        if v == 0 { return "0" }
        var e = Int(log10(abs(v)).rounded(.down))  // −324...308
        // 10^324 overflows: scale a denormal up in two steps.
        var m = e >= 0 ? abs(v) / Ticks.pow10(e) : abs(v) * Ticks.pow10(min(-e, 300)) * Ticks.pow10(max(-e - 300, 0))
        if m >= 10 { m /= 10; e += 1 }
        if m < 1 { m *= 10; e -= 1 }
        var d = 0
        while d < 6 && abs((m * Ticks.pow10(d)).rounded() / Ticks.pow10(d) - m) > 1e-9 * m { d += 1 }
        var ms = trimZeros(fixed(m, d, minus: minus))
        if ms == "10" { ms = "1"; e += 1 }
        return (v < 0 ? minus : "") + ms + "e" + String(e)
    }
}

/// A byte buffer for SVG output with fast, compact coordinate writing.
struct SVGBuffer {
    var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func put(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// A coordinate rounded to one decimal: 12.34 → "12.3", 12.0 → "12", -0.04 → "0".
    mutating func num(_ v: Double) {
        guard v.isFinite else { bytes.append(UInt8(ascii: "0")); return }  // never reached for drawn data
        // Scales keep drawn coordinates near the plot; the clamp makes the integer conversion safe anyway.
        let r = (min(max(v, -1e12), 1e12) * 10).rounded()
        var i = Int64(r)
        if i < 0 { bytes.append(UInt8(ascii: "-")); i = -i }
        let whole = i / 10, frac = i % 10
        putInt(whole)
        if frac != 0 {
            bytes.append(UInt8(ascii: "."))
            bytes.append(UInt8(ascii: "0") + UInt8(frac))
        }
    }

    private mutating func putInt(_ n: Int64) {
        if n < 10 { bytes.append(UInt8(ascii: "0") + UInt8(n)); return }
        bytes.append(contentsOf: String(n).utf8)
    }

    /// Caller text, XML-escaped (& < > " ') with characters XML forbids replaced by a space.
    mutating func text(_ s: String) {
        for u in s.unicodeScalars {
            switch u {
            case "&": put("&amp;")
            case "<": put("&lt;")
            case ">": put("&gt;")
            case "\"": put("&quot;")
            case "'": put("&#39;")
            case "\t", "\n", "\r": bytes.append(UInt8(ascii: " "))
            default:
                if u.value < 0x20 || (u.value >= 0x7F && u.value < 0xA0) || u.value == 0xFFFE || u.value == 0xFFFF {
                    bytes.append(UInt8(ascii: " "))
                } else {
                    bytes.append(contentsOf: String(u).utf8)
                }
            }
        }
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}

/// XML escaping for callers who build their own markup around a chart.
func xmlEscaped(_ s: String) -> String {
    var b = SVGBuffer(capacity: s.utf8.count + 8)
    b.text(s)
    return b.string
}
