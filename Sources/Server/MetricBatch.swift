import Experiments
import Foundation
import Store

/// The body of `POST /api/runs/{id}/metrics`, read straight from bytes.
///
/// `{"metrics": [{"key": "test/top1", "step": 1404, "value": 0.9012, "epoch": 3, "time": 1764000000.1,
/// "weights": "raw"}, …]}`: `key`, `step` and `value` are required; `weights` defaults to `raw`,
/// `time` to the time of arrival. A value is a JSON number or one of the strings `"NaN"`,
/// `"Infinity"`, `"-Infinity"`. This is the ingestion hot path: `JSONDecoder` would spend ≈ 2.6 ms
/// on a 1000-point batch, this reader a fraction of it, and it names the offending field
/// (`metrics[12].value`) in every refusal. Tests check it against `JSONDecoder`.
enum MetricBatchReader {
    /// MLflow's caps for `runs/log-batch`.
    static let maxPoints = 1000
    static let maxBytes = 1_000_000

    static func parse(_ bytes: [UInt8], now: Double) throws -> [MetricPoint] {
        var copy = bytes
        copy.append(0)  // strtod needs a terminator past the last number
        return try copy.withUnsafeBufferPointer { buffer in
            var scanner = ByteScanner(buffer, count: bytes.count)
            return try scanner.readBatch(now: now)
        }
    }
}

private struct ByteScanner {
    let p: UnsafeBufferPointer<UInt8>
    let count: Int
    var i = 0

    init(_ p: UnsafeBufferPointer<UInt8>, count: Int) {
        self.p = p
        self.count = count
        if count >= 3, p[0] == 0xEF, p[1] == 0xBB, p[2] == 0xBF { i = 3 }
    }

    func fail(_ field: String?, _ message: String) -> APIError {
        APIError.badRequest((field.map { $0 + " " } ?? "") + message, field: field)
    }

    mutating func skip() {
        while i < count {
            let b = p[i]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { i += 1 } else { return }
        }
    }

    mutating func expect(_ c: UInt8, _ field: String?, _ what: String) throws {
        skip()
        guard i < count, p[i] == c else { throw fail(field, "expected \(what) at byte \(i)") }
        i += 1
    }

    mutating func readBatch(now: Double) throws -> [MetricPoint] {
        skip()
        if i == count { throw fail(nil, "empty body: expected {\"metrics\": [...]}") }
        try expect(UInt8(ascii: "{"), nil, "a JSON object {\"metrics\": [...]}")
        var points: [MetricPoint]?
        skip()
        if i < count, p[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skip()
                let key = try readString(nil)
                try expect(UInt8(ascii: ":"), key, "':'")
                guard key == "metrics" else { throw fail(key, "is not a field of a metric batch (expected \"metrics\")") }
                if points != nil { throw fail("metrics", "appears twice") }
                points = try readPoints(now: now)
                skip()
                guard i < count else { throw fail(nil, "body ends inside the object") }
                if p[i] == UInt8(ascii: ",") { i += 1; continue }
                if p[i] == UInt8(ascii: "}") { i += 1; break }
                throw fail(nil, "expected ',' or '}' at byte \(i)")
            }
        }
        skip()
        if i < count { throw fail(nil, "unexpected text after the JSON object at byte \(i)") }
        guard let points else { throw fail("metrics", "is required: {\"metrics\": [{\"key\", \"step\", \"value\"}, ...]}") }
        return points
    }

    mutating func readPoints(now: Double) throws -> [MetricPoint] {
        skip()
        guard i < count, p[i] == UInt8(ascii: "[") else { throw fail("metrics", "must be a list of points") }
        i += 1
        var out: [MetricPoint] = []
        out.reserveCapacity(256)
        skip()
        if i < count, p[i] == UInt8(ascii: "]") { i += 1; return out }
        while true {
            if out.count == MetricBatchReader.maxPoints {
                // Count the rest cheaply so the message can say how many were sent, as MLflow's does.
                var n = out.count
                var depth = 0
                var inString = false
                while i < count {
                    let b = p[i]
                    if inString {
                        if b == UInt8(ascii: "\\") { i += 1 } else if b == UInt8(ascii: "\"") { inString = false }
                    } else if b == UInt8(ascii: "\"") {
                        inString = true
                    } else if b == UInt8(ascii: "{") {
                        if depth == 0 { n += 1 }; depth += 1
                    } else if b == UInt8(ascii: "}") {
                        depth -= 1
                    } else if b == UInt8(ascii: "]"), depth == 0 {
                        break
                    }
                    i += 1
                }
                throw fail(
                    "metrics",
                    "A batch logging request can contain at most \(MetricBatchReader.maxPoints) metrics. "
                        + "Got \(n) metrics. Please split up metrics across multiple requests and try again.")
            }
            out.append(try readPoint(index: out.count, now: now))
            skip()
            guard i < count else { throw fail("metrics", "list is not closed") }
            if p[i] == UInt8(ascii: ",") { i += 1; skip(); continue }
            if p[i] == UInt8(ascii: "]") { i += 1; return out }
            throw fail("metrics[\(out.count - 1)]", "expected ',' or ']' after the point at byte \(i)")
        }
    }

    mutating func readPoint(index: Int, now: Double) throws -> MetricPoint {
        let base = "metrics[\(index)]"
        skip()
        guard i < count, p[i] == UInt8(ascii: "{") else { throw fail(base, "must be an object {\"key\", \"step\", \"value\"}") }
        i += 1
        var key: String?, weights: String?, step: Int64?, epoch: Int64?, value: Double?, time: Double?
        skip()
        if i < count, p[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skip()
                let name = try readString(base)
                let field = base + "." + name
                try expect(UInt8(ascii: ":"), field, "':'")
                skip()
                switch name {
                case "key":
                    if key != nil { throw fail(field, "appears twice") }
                    guard i < count, p[i] == UInt8(ascii: "\"") else { throw fail(field, "must be a string") }
                    key = try readString(field)
                case "weights":
                    if weights != nil { throw fail(field, "appears twice") }
                    if isNull() { weights = "raw"; break }
                    guard i < count, p[i] == UInt8(ascii: "\"") else { throw fail(field, "must be a string") }
                    weights = try readString(field)
                case "step":
                    if step != nil { throw fail(field, "appears twice") }
                    step = try readInteger(field)
                case "epoch":
                    if epoch != nil { throw fail(field, "appears twice") }
                    epoch = isNull() ? nil : try readInteger(field)
                case "value":
                    if value != nil { throw fail(field, "appears twice") }
                    value = try readValue(field)
                case "time":
                    if time != nil { throw fail(field, "appears twice") }
                    if isNull() { break }
                    let t = try readNumber(field)
                    guard t.isFinite else { throw fail(field, "must be finite") }
                    time = t
                default:
                    throw fail(field, "is not a field of a metric point (key, step, value, epoch, time, weights)")
                }
                skip()
                guard i < count else { throw fail(base, "is not closed") }
                if p[i] == UInt8(ascii: ",") { i += 1; continue }
                if p[i] == UInt8(ascii: "}") { i += 1; break }
                throw fail(base, "expected ',' or '}' at byte \(i)")
            }
        }
        guard let key else { throw fail(base + ".key", "is required") }
        guard !key.isEmpty, key.utf8.count <= 250 else { throw fail(base + ".key", "must be 1 to 250 bytes") }
        guard let step else { throw fail(base + ".step", "is required") }
        guard let value else { throw fail(base + ".value", "is required") }
        let w = weights ?? "raw"
        guard !w.isEmpty, w.utf8.count <= 250 else { throw fail(base + ".weights", "must be 1 to 250 bytes") }
        return MetricPoint(key: key, weights: w, step: step, epoch: epoch, value: value, time: time ?? now)
    }

    /// Consumes `null` if it is next.
    mutating func isNull() -> Bool {
        if i + 4 <= count, p[i] == UInt8(ascii: "n"), p[i + 1] == UInt8(ascii: "u"), p[i + 2] == UInt8(ascii: "l"),
            p[i + 3] == UInt8(ascii: "l")
        {
            i += 4
            return true
        }
        return false
    }

    mutating func readString(_ field: String?) throws -> String {
        guard i < count, p[i] == UInt8(ascii: "\"") else { throw fail(field, "expected a string at byte \(i)") }
        i += 1
        let start = i
        // Fast path: no escapes (nearly every key and weight-set name).
        while i < count {
            let b = p[i]
            if b == UInt8(ascii: "\"") {
                // Validating, not decoding: decoding would turn bad bytes into U+FFFD and store that.
                guard let s = String(validating: UnsafeBufferPointer(rebasing: p[start..<i]), as: UTF8.self) else {
                    throw fail(field, "is not valid UTF-8")
                }
                i += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail(field, "has an unescaped control character") }
            i += 1
        }
        // Escapes: hand the whole string to the strict general parser.
        i = start - 1
        var end = start
        while end < count, p[end] != UInt8(ascii: "\"") { end += p[end] == UInt8(ascii: "\\") ? 2 : 1 }
        guard end < count else { throw fail(field, "unterminated string") }
        let slice = Data(UnsafeBufferPointer(rebasing: p[i...end]))
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse(slice)
        } catch let e as SpecError {
            throw fail(field, "is not a valid JSON string: " + e.message)
        }
        guard case .string(let s) = parsed else { throw fail(field, "has an invalid escape") }
        i = end + 1
        return s
    }

    /// An RFC 8259 number (grammar checked here, converted by strtod).
    mutating func readNumber(_ field: String) throws -> Double {
        guard i < count else { throw fail(field, "expected a number") }
        let b0 = p[i]
        if b0 == UInt8(ascii: "N") || b0 == UInt8(ascii: "I")
            || (b0 == UInt8(ascii: "-") && i + 1 < count && p[i + 1] == UInt8(ascii: "I"))
        {
            throw fail(
                field, "is a bare NaN or Infinity, which is not JSON; write the string \"NaN\", \"Infinity\" or \"-Infinity\"")
        }
        let start = i
        if p[i] == UInt8(ascii: "-") { i += 1 }
        func digit(_ k: Int) -> Bool { k < count && p[k] >= 0x30 && p[k] <= 0x39 }
        guard digit(i) else { throw fail(field, "must be a number") }
        if p[i] == 0x30 {
            i += 1
            if digit(i) { throw fail(field, "is a number with a leading zero") }
        } else {
            while digit(i) { i += 1 }
        }
        if i < count, p[i] == UInt8(ascii: ".") {
            i += 1
            guard digit(i) else { throw fail(field, "is a malformed number") }
            while digit(i) { i += 1 }
        }
        if i < count, p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E") {
            i += 1
            if i < count, p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") { i += 1 }
            guard digit(i) else { throw fail(field, "is a malformed number") }
            while digit(i) { i += 1 }
        }
        let x = p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: count + 1) { strtod($0 + start, nil) }
        // strtod gives ±HUGE_VAL (Infinity) for 1e400: refuse it as the general parser does, rather
        // than store an infinity nobody sent.
        guard x.isFinite else { throw fail(field, "is out of Double's range (about ±1.8e308)") }
        return x
    }

    mutating func readInteger(_ field: String) throws -> Int64 {
        if i < count, p[i] == UInt8(ascii: "\"") { throw fail(field, "must be an integer, not a string") }
        let x = try readNumber(field)
        guard x == x.rounded(), abs(x) <= 9_007_199_254_740_992 else { throw fail(field, "must be an integer, got \(x)") }
        guard x >= 0 else { throw fail(field, "must be ≥ 0, got \(Int64(x))") }
        return Int64(x)
    }

    mutating func readValue(_ field: String) throws -> Double {
        if i < count, p[i] == UInt8(ascii: "\"") {
            switch try readString(field) {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            case let s: throw fail(field, "must be a number or \"NaN\", \"Infinity\", \"-Infinity\", got \"\(s)\"")
            }
        }
        if isNull() { throw fail(field, "must be a number, not null") }
        return try readNumber(field)
    }
}

/// Writes `{"points": [{key, weights, step, epoch, value, time}, …]}` straight into bytes: a
/// 100 000-point series is the read hot path (JSONEncoder would take ≈ 200 ms). Non-finite values
/// are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`. Tests compare it with `JSONEncoder`.
struct MetricSeriesWriter {
    var bytes: [UInt8] = []
    private var first = true

    init(capacity: Int = 1 << 16) {
        bytes.reserveCapacity(capacity)
        bytes.append(contentsOf: #"{"points":["#.utf8)
    }

    /// The `{"key":…,"weights":…,` prefix of a series' points, escaped once per series.
    static func prefix(key: String, weights: String) -> [UInt8] {
        var out: [UInt8] = []
        out.append(contentsOf: #"{"key":"#.utf8)
        appendString(key, to: &out)
        out.append(contentsOf: #","weights":"#.utf8)
        appendString(weights, to: &out)
        out.append(contentsOf: #","step":"#.utf8)
        return out
    }

    mutating func point(prefix: [UInt8], step: Int64, epoch: Int64?, value: Double, time: Double) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        bytes.append(contentsOf: prefix)
        appendInt(step)
        bytes.append(contentsOf: #","epoch":"#.utf8)
        if let epoch { appendInt(epoch) } else { bytes.append(contentsOf: "null".utf8) }
        bytes.append(contentsOf: #","value":"#.utf8)
        appendDouble(value)
        bytes.append(contentsOf: #","time":"#.utf8)
        appendDouble(time)
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func finish() -> [UInt8] {
        bytes.append(contentsOf: "]}".utf8)
        return bytes
    }

    private mutating func appendInt(_ x: Int64) {
        if x >= 0 && x < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(x))
            return
        }
        var v = x.magnitude
        var tmp:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            repeat {
                t[19 - n] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                n += 1
            } while v > 0
            if x < 0 { bytes.append(UInt8(ascii: "-")) }
            bytes.append(contentsOf: t[(20 - n)...])
        }
    }

    private mutating func appendDouble(_ x: Double) {
        if !x.isFinite {
            bytes.append(contentsOf: (x.isNaN ? #""NaN""# : x < 0 ? #""-Infinity""# : #""Infinity""#).utf8)
        } else if x == x.rounded(), abs(x) < 1e15 {
            appendInt(Int64(x))
        } else {
            // Swift's shortest round-tripping digits ("0.9012", "1764000000.12", "1e-05").
            var s = x.description
            s.withUTF8 { bytes.append(contentsOf: $0) }
        }
    }

    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
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
}
