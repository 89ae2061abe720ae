import Experiments
import Foundation
import JSONBytes

/// The body of MLflow's `runs/log-batch`, read: the run it names and the rows the store takes.
struct MLflowBatch {
    var runID: String
    var points: [MetricPoint]
    var params: [(key: String, value: String)]
    var tags: [(key: String, value: String)]
}

/// `runs/log-batch`'s body read straight from bytes on ``JSONScanner`` into ``MLflowBatch``: the
/// ingestion hot path, where building a `JSONValue` tree first cost 3.7× the store's share.
///
/// It answers exactly as the tree-based reading did (a test compares the two on thousands of
/// bodies): malformed JSON anywhere is refused before anything else, with `JSONValue`'s message
/// (line and column; the body is parsed again only then), duplicate keys and nesting past 256 levels
/// included; then MLflow's checks in MLflow's order, whatever order the members come in: the byte
/// cap, the shapes of `metrics`, `params` and `tags`, the batch caps, each metric in index order,
/// the params, the tags, the run id. The scan records the first refusal of each kind and goes on;
/// refusals of fields that are not plain strings or numbers go through ``MLflowArgs``, so their
/// wording cannot drift from the other routes'.
enum MLflowBatchReader {
    /// A body of zero bytes is `{}` (then refused for its missing run id), as for every MLflow route.
    static func read(_ raw: UnsafeRawBufferPointer) throws -> MLflowBatch {
        var reader = LogBatchReader(JSONScanner(raw))
        if !raw.isEmpty {
            do {
                guard reader.s.peek() == UInt8(ascii: "{") else { throw NotAnObject() }
                try reader.readBody()
            } catch is NotAnObject {
                throw malformed(raw) ?? MLflowError(.badRequest, "The request body must be a JSON object")
            } catch {
                // Only JSON the parser refuses gets here (refusals of fields are kept for later).
                throw malformed(raw) ?? MLflowError(.badRequest, "Malformed JSON body")
            }
        }
        return try reader.finish(byteCount: raw.count)
    }

    /// The refusal of a body that is not JSON, worded by `JSONValue`'s parser (line, column, what);
    /// nil when it is JSON.
    static func malformed(_ raw: UnsafeRawBufferPointer) -> MLflowError? {
        do {
            _ = try JSONValue.parse(Data(raw))
            return nil
        } catch let e as SpecError {
            return MLflowError(.badRequest, "Malformed JSON body: \(e.message)")
        } catch {
            return MLflowError(.badRequest, "Malformed JSON body")
        }
    }
}

private struct NotAnObject: Error {}

/// JSON that `JSONValue`'s parser refuses but the scanner alone does not see (a duplicate key,
/// nesting too deep): the message comes from parsing the body again.
private struct Malformed: Error {}

/// A member's value as the checks need it: plain numbers and strings without a tree, anything else
/// (a list, an object, a boolean) as the `JSONValue` MLflow's wording quotes.
private enum Field {
    case absent  // missing or null, as MLflowArgs reads both
    case number(Double)
    case string(String)
    case other(JSONValue)

    var json: JSONValue? {
        switch self {
        case .absent: nil
        case .number(let x): .number(x)
        case .string(let s): .string(s)
        case .other(let v): v
        }
    }

    /// The field alone as MLflowArgs holds it, for refusals worded exactly as the other routes'.
    func args(_ name: String) -> MLflowArgs { MLflowArgs(json: json.map { [name: $0] } ?? [:]) }
}

private struct LogBatchReader {
    /// JSONValue's parser refuses containers nested deeper than this (the body's object is level 1).
    static let maxDepth = 256

    var s: JSONScanner
    var runID = Field.absent
    var runUUID = Field.absent
    var metricCount = 0
    var points: [MetricPoint] = []
    var params: [(key: String, value: String)] = []
    var tags: [(key: String, value: String)] = []
    /// The first refusal of each kind, thrown in MLflow's order once the whole body is known to be JSON.
    var metricsShape: MLflowError?
    var paramsShape: MLflowError?
    var tagsShape: MLflowError?
    var pointRefusal: MLflowError?
    /// The last metric key read, by its raw bytes: a batch mostly repeats a few keys, and a hit costs
    /// a byte comparison instead of a String, its split at the weight-set colon and its checks.
    var cachedKeyBytes: [UInt8] = []
    var cachedKey: (key: String, weights: String, refusal: MLflowError?)?

    init(_ scanner: JSONScanner) { s = scanner }

    // MARK: Structure

    mutating func readBody() throws {
        s.offset += 1  // the `{` the caller saw
        if s.consume(UInt8(ascii: "}")) { return try end() }
        var seen = Set<String>()
        repeat {
            let name = try memberName()
            guard seen.insert(name).inserted else { throw Malformed() }
            switch name {
            case "metrics": try readMetrics()
            case "params": (params, paramsShape) = try readKeyValues("params")
            case "tags": (tags, tagsShape) = try readKeyValues("tags")
            case "run_id": runID = try field(parentDepth: 1)
            case "run_uuid": runUUID = try field(parentDepth: 1)
            default: try skip(parentDepth: 1)
            }
        } while try s.nextMember(close: UInt8(ascii: "}"), in: "an object")
        try end()
    }

    mutating func end() throws {
        if !s.isAtEnd() { throw Malformed() }
    }

    /// A member's name and its colon.
    mutating func memberName() throws -> String {
        guard s.peek() == UInt8(ascii: "\"") else { throw Malformed() }
        let name = try s.readString()
        try s.expect(UInt8(ascii: ":"), "':'")
        return name
    }

    /// `metrics`: a list (level 2) of metric objects (level 3).
    mutating func readMetrics() throws {
        switch try s.peekValue() {
        case .null: return try s.readNull()
        case .array: s.offset += 1
        default:
            let v = try capture(parentDepth: 1)
            metricsShape = .invalid(MLflowArgs.invalidValue("metrics", v, "must be a list"))
            return
        }
        points.reserveCapacity(min(MLflowService.maxMetricsPerBatch, s.bytes.count / 48))
        if s.consume(UInt8(ascii: "]")) { return }
        repeat {
            if s.peek() == UInt8(ascii: "{") {
                try readMetric(index: metricCount)
            } else {
                let v = try capture(parentDepth: 2)
                if metricsShape == nil {
                    metricsShape = .invalid(MLflowArgs.invalidValue("metrics[\(metricCount)]", v, "must be an object"))
                }
            }
            metricCount += 1
        } while try s.nextMember(close: UInt8(ascii: "]"), in: "a list")
    }

    /// `params` or `tags`: a list of `{"key", "value"}` objects; the first refusal in index order.
    mutating func readKeyValues(_ list: String) throws -> ([(key: String, value: String)], MLflowError?) {
        var items: [(key: String, value: String)] = []
        var refusal: MLflowError?
        switch try s.peekValue() {
        case .null:
            try s.readNull()
            return ([], nil)
        case .array: s.offset += 1
        default:
            let v = try capture(parentDepth: 1)
            return ([], .invalid(MLflowArgs.invalidValue(list, v, "must be a list")))
        }
        if s.consume(UInt8(ascii: "]")) { return ([], nil) }
        var i = 0
        repeat {
            if s.peek() == UInt8(ascii: "{") {
                s.offset += 1
                var key = Field.absent, value = Field.absent
                try readObject(parentDepth: 2) { reader, name in
                    switch name {
                    case "key": key = try reader.field(parentDepth: 3)
                    case "value": value = try reader.field(parentDepth: 3)
                    default: return false
                    }
                    return true
                }
                if refusal == nil {
                    do {
                        let k = try key.args("key").required("key", path: "\(list)[\(i)].key")
                        let v = try value.args("value").required("value", path: "\(list)[\(i)].value")
                        items.append((k, v))
                    } catch let e as MLflowError {
                        refusal = e
                    }
                }
            } else {
                let v = try capture(parentDepth: 2)
                if refusal == nil { refusal = .invalid(MLflowArgs.invalidValue("\(list)[\(i)]", v, "must be an object")) }
            }
            i += 1
        } while try s.nextMember(close: UInt8(ascii: "]"), in: "a list")
        return (items, refusal)
    }

    /// The members of an object whose `{` is consumed, at level `parentDepth + 1`: `member` reads
    /// the value of a name it knows and returns true, or returns false to have it skipped.
    mutating func readObject(parentDepth: Int, _ member: (inout LogBatchReader, String) throws -> Bool) throws {
        if s.consume(UInt8(ascii: "}")) { return }
        var seen = Set<String>()
        repeat {
            let name = try memberName()
            guard seen.insert(name).inserted else { throw Malformed() }
            if try !member(&self, name) { try skip(parentDepth: parentDepth + 1) }
        } while try s.nextMember(close: UInt8(ascii: "}"), in: "an object")
    }

    // MARK: Metrics (the hot path)

    /// The members a metric's checks read; any other is skipped (MLflow ignores it).
    enum MetricMember { case key, value, timestamp, step, other(String) }

    /// One metric object (level 3), checked in MLflow's order once all its members are read: key,
    /// value, timestamp, step. Only the first refusal over the whole list is kept.
    mutating func readMetric(index: Int) throws {
        s.offset += 1
        var key = Field.absent, value = Field.absent, timestamp = Field.absent, step = Field.absent
        var cachedKeyHit = false
        var seen: UInt8 = 0
        var others: Set<String>?
        if !s.consume(UInt8(ascii: "}")) {
            repeat {
                let member = try metricMember()
                let bit: UInt8
                switch member {
                case .key:
                    bit = 1
                    if s.peek() == UInt8(ascii: "\""), matchCachedKey() {
                        cachedKeyHit = true
                    } else {
                        key = try keyField()
                    }
                case .value:
                    bit = 2
                    value = try field(parentDepth: 3)
                case .timestamp:
                    bit = 4
                    timestamp = try field(parentDepth: 3)
                case .step:
                    bit = 8
                    step = try field(parentDepth: 3)
                case .other(let name):
                    bit = 0
                    if others == nil { others = [] }
                    guard others!.insert(name).inserted else { throw Malformed() }
                    try skip(parentDepth: 3)
                }
                if seen & bit != 0 { throw Malformed() }
                seen |= bit
            } while try s.nextMember(close: UInt8(ascii: "}"), in: "an object")
        }
        guard pointRefusal == nil else { return }
        do {
            let path = { "metrics[\(index)]." }
            let name: (key: String, weights: String)
            if cachedKeyHit, let cached = cachedKey {
                if let refusal = cached.refusal { throw refusal }
                name = (cached.key, cached.weights)
            } else {
                guard let text = try key.args("key").string("key") else { throw MLflowError.missing(path() + "key") }
                try MLflowService.checkKey(text, "Metric")
                name = MLflowMetricKey.split(text)
            }
            let x: Double
            switch value {
            case .number(let n): x = n
            case .absent: throw MLflowError.missing(path() + "value")
            default: x = try value.args("value").double("value", path: path() + "value")!
            }
            guard let time = try Self.int64(timestamp, "timestamp") else { throw MLflowError.missing(path() + "timestamp") }
            if time < 0 {
                throw MLflowError.invalid(
                    MLflowArgs.invalidValue(path() + "timestamp", .number(Double(time)), "Timestamp must be a nonnegative long"))
            }
            let at = try Self.int64(step, "step") ?? 0
            points.append(MetricPoint(key: name.key, weights: name.weights, step: at, value: x, time: Double(time) / 1000))
        } catch let e as MLflowError {
            pointRefusal = e
        }
    }

    /// A 64-bit integer as ``MLflowArgs/int64(_:)`` reads it; a whole JSON number without a detour.
    static func int64(_ f: Field, _ name: String) throws -> Int64? {
        if case .number(let x) = f, x == x.rounded(), abs(x) <= 9.007_199_254_740_992e15 { return Int64(x) }
        return try f.args(name).int64(name)
    }

    /// A metric member's name and colon, the four the checks read matched on their bytes.
    mutating func metricMember() throws -> MetricMember {
        guard s.peek() == UInt8(ascii: "\"") else { throw Malformed() }
        let member: MetricMember
        if consumeLiteral(#""key""#) {
            member = .key
        } else if consumeLiteral(#""value""#) {
            member = .value
        } else if consumeLiteral(#""timestamp""#) {
            member = .timestamp
        } else if consumeLiteral(#""step""#) {
            member = .step
        } else {
            // Escapes may still spell a known name ("k\u0065y" is "key").
            switch try s.readString() {
            case "key": member = .key
            case "value": member = .value
            case "timestamp": member = .timestamp
            case "step": member = .step
            case let other: member = .other(other)
            }
        }
        try s.expect(UInt8(ascii: ":"), "':'")
        return member
    }

    mutating func consumeLiteral(_ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard s.offset + n <= s.bytes.count else { return false }
        let p = literal.utf8Start
        for k in 0..<n where s.bytes[s.offset + k] != p[k] { return false }
        s.offset += n
        return true
    }

    /// True (and past the string) when the next string's raw bytes are the cached key's: those bytes
    /// were read and checked once already, so they are the same valid key.
    mutating func matchCachedKey() -> Bool {
        guard cachedKey != nil else { return false }
        let n = cachedKeyBytes.count
        let start = s.offset + 1
        guard start + n < s.bytes.count, s.bytes[start + n] == UInt8(ascii: "\"") else { return false }
        let text = s.bytes.baseAddress! + start
        let same = cachedKeyBytes.withUnsafeBytes { cached in memcmp(cached.baseAddress!, text, n) == 0 }
        if same { s.offset = start + n + 1 }
        return same
    }

    /// A metric's `key` field; a string written without escapes becomes the cached key.
    mutating func keyField() throws -> Field {
        s.skipWhitespace()
        let start = s.offset
        let f = try field(parentDepth: 3)
        guard case .string(let text) = f, text.utf8.count == s.offset - start - 2, text.utf8.count > 0 else { return f }
        cachedKeyBytes = Array(UnsafeBufferPointer(rebasing: s.bytes[(start + 1)..<(s.offset - 1)]))
        do {
            try MLflowService.checkKey(text, "Metric")
            let split = MLflowMetricKey.split(text)
            cachedKey = (split.key, split.weights, nil)
        } catch let e as MLflowError {
            cachedKey = ("", "", e)
        }
        return f
    }

    // MARK: Values

    /// A member's value: null is absent, as MLflowArgs reads it.
    mutating func field(parentDepth: Int) throws -> Field {
        switch try s.peekValue() {
        case .number: return .number(try s.readNumber())
        case .string: return .string(try s.readString())
        case .null:
            try s.readNull()
            return .absent
        default: return .other(try capture(parentDepth: parentDepth))
        }
    }

    /// The next value as a `JSONValue`, for a refusal that quotes it: checked as strictly as the
    /// whole body would be, then its bytes parsed alone.
    mutating func capture(parentDepth: Int) throws -> JSONValue {
        s.skipWhitespace()
        let start = s.offset
        try skip(parentDepth: parentDepth)
        do {
            return try JSONValue.parse(Data(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(s.bytes)[start..<s.offset])))
        } catch {
            throw Malformed()
        }
    }

    /// Reads past a value inside a container at level `parentDepth`, refusing what `JSONValue`'s
    /// parser refuses there: a duplicate key, nesting past ``maxDepth``.
    mutating func skip(parentDepth: Int) throws {
        switch try s.peekValue() {
        case .string: _ = try s.readString()
        case .number: _ = try s.readNumber()
        case .true, .false: _ = try s.readBool()
        case .null: try s.readNull()
        case .object:
            guard parentDepth < Self.maxDepth else { throw Malformed() }
            s.offset += 1
            try readObject(parentDepth: parentDepth) { _, _ in false }
        case .array:
            guard parentDepth < Self.maxDepth else { throw Malformed() }
            s.offset += 1
            if s.consume(UInt8(ascii: "]")) { return }
            repeat {
                try skip(parentDepth: parentDepth + 1)
            } while try s.nextMember(close: UInt8(ascii: "]"), in: "a list")
        }
    }

    // MARK: MLflow's checks, in its order

    func finish(byteCount: Int) throws -> MLflowBatch {
        if byteCount > MLflowService.maxBatchBytes {
            throw MLflowError.invalid(
                "Batched logging API requests must be at most \(MLflowService.maxBatchBytes) bytes, got a request of size \(byteCount)."
            )
        }
        if let e = metricsShape ?? paramsShape ?? tagsShape { throw e }
        try MLflowService.checkBatchLimit("metrics", MLflowService.maxMetricsPerBatch, metricCount)
        try MLflowService.checkBatchLimit("params", MLflowService.maxParamsTagsPerBatch, params.count)
        try MLflowService.checkBatchLimit("tags", MLflowService.maxParamsTagsPerBatch, tags.count)
        try MLflowService.checkBatchLimit(
            "metrics, params, and tags", MLflowService.maxEntitiesPerBatch, metricCount + params.count + tags.count)
        if let e = pointRefusal { throw e }
        try MLflowService.checkParams(params)
        try MLflowService.checkTags(tags)
        let ids = MLflowArgs(json: ["run_id": runID.json, "run_uuid": runUUID.json].compactMapValues { $0 })
        let id = try ids.string("run_id") ?? ids.string("run_uuid") ?? ""
        if id.isEmpty { throw MLflowError.missing("run_id") }
        return MLflowBatch(runID: id, points: points, params: params, tags: tags)
    }
}
