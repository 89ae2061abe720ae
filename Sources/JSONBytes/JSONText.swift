/// How the project writes JSON numbers and strings, in one place: `JSONValue`'s writer, the metric
/// series and the safetensors header all call these, so a number looks the same in every answer.
public enum JSONText {
    /// Appends a number: whole values below 10^18 in magnitude without a fraction (`3`, not `3.0`;
    /// `-0` as `0`, since JSON readers disagree on it), others in Swift's shortest round-tripping form
    /// (`0.9012`, `1e-05`, `1.5e+300`), non-finite ones as the strings `"NaN"`, `"Infinity"` and
    /// `"-Infinity"` (MLflow's spelling, and `JSONEncoder`'s with `convertToString`).
    @inlinable
    public static func appendNumber(_ x: Double, to out: inout [UInt8]) {
        if !x.isFinite {
            out.append(contentsOf: (x.isNaN ? #""NaN""# : x < 0 ? #""-Infinity""# : #""Infinity""#).utf8)
        } else if x == x.rounded(.towardZero), x.magnitude < 1e18 {
            appendInteger(Int64(x), to: &out)
        } else {
            // Up to 15 bytes, a String is stored inline: this allocates nothing for "1764000000.12".
            var text = x.description
            text.withUTF8 { out.append(contentsOf: $0) }
        }
    }

    /// A number as ``appendNumber(_:to:)`` writes it.
    public static func number(_ x: Double) -> String {
        var out: [UInt8] = []
        appendNumber(x, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends an integer in decimal.
    @inlinable
    public static func appendInteger(_ x: Int64, to out: inout [UInt8]) {
        if x >= 0 && x < 10 {
            out.append(UInt8(ascii: "0") + UInt8(x))
            return
        }
        if x < 0 { out.append(UInt8(ascii: "-")) }
        var v = x.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var n = 0
            repeat {
                digits[19 - n] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                n += 1
            } while v > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[(20 - n)...]))
        }
    }

    /// Appends `s` as a quoted JSON string: `"` and `\` escaped, control characters as `\n`, `\t`…
    /// or `\u00XX`; everything else, non-ASCII included, as its UTF-8 bytes.
    @inlinable
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0x08: out.append(contentsOf: #"\b"#.utf8)
            case 0x0C: out.append(contentsOf: #"\f"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `s` as a quoted JSON string; see ``appendString(_:to:)``.
    public static func string(_ s: String) -> String {
        var out: [UInt8] = []
        appendString(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
