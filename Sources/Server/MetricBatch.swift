import Experiments
import Foundation
import JSONBytes

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
        try bytes.withUnsafeBufferPointer { buffer in
            var reader = BatchReader(scanner: JSONScanner(buffer), now: now)
            do {
                return try reader.readBatch()
            } catch let e as JSONScanError {
                throw reader.fail("is not valid JSON at byte \(e.offset): \(e.problem)")
            }
        }
    }
}

/// The batch's grammar on ``JSONScanner``: the scanner reads tokens, this reader knows the fields.
private struct BatchReader {
    var s: JSONScanner
    let now: Double
    /// Where the reader is, for refusals: the point's index and the member being read, spelled
    /// `metrics[12].value` only when something is refused (no string is built per field).
    var index: Int?
    var member: String?

    init(scanner: JSONScanner, now: Double) {
        s = scanner
        self.now = now
    }

    var field: String? {
        guard let index else { return member }
        return "metrics[\(index)]" + (member.map { "." + $0 } ?? "")
    }

    func fail(_ message: String) -> APIError {
        APIError.badRequest((field.map { $0 + " " } ?? "") + message, field: field)
    }

    mutating func readBatch() throws -> [MetricPoint] {
        if s.isAtEnd() { throw fail("empty body: expected {\"metrics\": [...]}") }
        guard s.consume(UInt8(ascii: "{")) else { throw fail("expected a JSON object {\"metrics\": [...]} at byte \(s.offset)") }
        var points: [MetricPoint]?
        if !s.consume(UInt8(ascii: "}")) {
            repeat {
                member = nil
                member = try s.readString()
                try s.expect(UInt8(ascii: ":"), "':'")
                guard member == "metrics" else { throw fail("is not a field of a metric batch (expected \"metrics\")") }
                if points != nil { throw fail("appears twice") }
                points = try readPoints()
                (index, member) = (nil, nil)
            } while try s.nextMember(close: UInt8(ascii: "}"), in: "the object")
        }
        member = nil
        if !s.isAtEnd() { throw fail("unexpected text after the JSON object at byte \(s.offset)") }
        guard let points else {
            member = "metrics"
            throw fail("is required: {\"metrics\": [{\"key\", \"step\", \"value\"}, ...]}")
        }
        return points
    }

    mutating func readPoints() throws -> [MetricPoint] {
        guard s.consume(UInt8(ascii: "[")) else { throw fail("must be a list of points") }
        var out: [MetricPoint] = []
        out.reserveCapacity(256)
        if s.consume(UInt8(ascii: "]")) { return out }
        repeat {
            if out.count == MetricBatchReader.maxPoints {
                (index, member) = (nil, "metrics")
                throw fail(
                    "A batch logging request can contain at most \(MetricBatchReader.maxPoints) metrics. "
                        + "Got \(out.count + countRemainingPoints()) metrics. "
                        + "Please split up metrics across multiple requests and try again.")
            }
            (index, member) = (out.count, nil)
            out.append(try readPoint())
            member = nil
        } while try s.nextMember(close: UInt8(ascii: "]"), in: "the list of points")
        return out
    }

    /// The objects left in the list, counted cheaply so a refusal can say how many were sent, as
    /// MLflow's does.
    mutating func countRemainingPoints() -> Int {
        var n = 0
        var depth = 0
        var inString = false
        var i = s.offset
        let p = s.bytes
        while i < p.count {
            let b = p[i]
            if inString {
                if b == UInt8(ascii: "\\") { i += 1 } else if b == UInt8(ascii: "\"") { inString = false }
            } else if b == UInt8(ascii: "\"") {
                inString = true
            } else if b == UInt8(ascii: "{") {
                if depth == 0 { n += 1 }
                depth += 1
            } else if b == UInt8(ascii: "}") {
                depth -= 1
            } else if b == UInt8(ascii: "]"), depth == 0 {
                break
            }
            i += 1
        }
        return n
    }

    mutating func readPoint() throws -> MetricPoint {
        guard s.consume(UInt8(ascii: "{")) else { throw fail("must be an object {\"key\", \"step\", \"value\"}") }
        var key: String?, weights: String?, step: Int64?, epoch: Int64?, value: Double?, time: Double?
        if !s.consume(UInt8(ascii: "}")) {
            repeat {
                member = nil
                let name = try s.readString()
                member = name
                try s.expect(UInt8(ascii: ":"), "':'")
                switch name {
                case "key":
                    if key != nil { throw fail("appears twice") }
                    key = try string()
                case "weights":
                    if weights != nil { throw fail("appears twice") }
                    weights = s.consumeNull() ? "raw" : try string()
                case "step":
                    if step != nil { throw fail("appears twice") }
                    step = try integer()
                case "epoch":
                    if epoch != nil { throw fail("appears twice") }
                    epoch = s.consumeNull() ? nil : try integer()
                case "value":
                    if value != nil { throw fail("appears twice") }
                    value = try metricValue()
                case "time":
                    if time != nil { throw fail("appears twice") }
                    if s.consumeNull() { break }
                    let t = try number()
                    guard t.isFinite else { throw fail("must be finite") }
                    time = t
                default:
                    throw fail("is not a field of a metric point (key, step, value, epoch, time, weights)")
                }
            } while try s.nextMember(close: UInt8(ascii: "}"), in: "a metric point")
        }
        func refuse(_ name: String, _ problem: String) -> APIError {
            member = name
            return fail(problem)
        }
        guard let key else { throw refuse("key", "is required") }
        guard !key.isEmpty, key.utf8.count <= 250 else { throw refuse("key", "must be 1 to 250 bytes") }
        guard let step else { throw refuse("step", "is required") }
        guard let value else { throw refuse("value", "is required") }
        let w = weights ?? "raw"
        guard !w.isEmpty, w.utf8.count <= 250 else { throw refuse("weights", "must be 1 to 250 bytes") }
        return MetricPoint(key: key, weights: w, step: step, epoch: epoch, value: value, time: time ?? now)
    }

    mutating func string() throws -> String {
        guard s.peek() == UInt8(ascii: "\"") else { throw fail("must be a string") }
        return try s.readString()
    }

    /// A JSON number; a bare `NaN` or `Infinity` is refused by the scanner, naming the strings to write.
    mutating func number() throws -> Double {
        guard try s.peekValue() == .number else { throw fail("must be a number") }
        return try s.readNumber()
    }

    mutating func integer() throws -> Int64 {
        if s.peek() == UInt8(ascii: "\"") { throw fail("must be an integer, not a string") }
        let x = try number()
        guard x == x.rounded(), abs(x) <= 9_007_199_254_740_992 else { throw fail("must be an integer, got \(x)") }
        guard x >= 0 else { throw fail("must be ≥ 0, got \(Int64(x))") }
        return Int64(x)
    }

    /// A number or one of the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    mutating func metricValue() throws -> Double {
        if s.peek() == UInt8(ascii: "\"") {
            switch try s.readString() {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            case let text: throw fail("must be a number or \"NaN\", \"Infinity\", \"-Infinity\", got \"\(text)\"")
            }
        }
        if s.consumeNull() { throw fail("must be a number, not null") }
        return try number()
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
        JSONText.appendString(key, to: &out)
        out.append(contentsOf: #","weights":"#.utf8)
        JSONText.appendString(weights, to: &out)
        out.append(contentsOf: #","step":"#.utf8)
        return out
    }

    mutating func point(prefix: [UInt8], step: Int64, epoch: Int64?, value: Double, time: Double) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        bytes.append(contentsOf: prefix)
        JSONText.appendInteger(step, to: &bytes)
        bytes.append(contentsOf: #","epoch":"#.utf8)
        if let epoch { JSONText.appendInteger(epoch, to: &bytes) } else { bytes.append(contentsOf: "null".utf8) }
        bytes.append(contentsOf: #","value":"#.utf8)
        JSONText.appendNumber(value, to: &bytes)
        bytes.append(contentsOf: #","time":"#.utf8)
        JSONText.appendNumber(time, to: &bytes)
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func finish() -> [UInt8] {
        bytes.append(contentsOf: "]}".utf8)
        return bytes
    }
}
