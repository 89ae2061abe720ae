import Experiments
import Foundation
import Hummingbird

/// A request's fields as MLflow sends them: a JSON body for writes and searches, the query string
/// for reads. Protobuf's JSON writes 64-bit integers as strings and NaN or ±Inf as the strings
/// `"NaN"`, `"Infinity"`, `"-Infinity"`, so both spellings are read. Refusals use MLflow's wording.
struct MLflowArgs {
    private var body: [String: JSONValue]
    private var query: [String: String]

    init(json: [String: JSONValue]) {
        body = json
        query = [:]
    }

    init(query: [String: String]) {
        body = [:]
        self.query = query
    }

    /// GET: the query string; otherwise the JSON object in the body (an empty body is `{}`).
    static func read(_ request: Request, context: some RequestContext) async throws -> MLflowArgs {
        if request.method == .get {
            var q: [String: String] = [:]
            for (k, v) in request.uri.queryParameters { q[String(k)] = String(v) }
            return MLflowArgs(query: q)
        }
        let data = Data(try await body(request).readableBytesView)
        if data.isEmpty { return MLflowArgs(json: [:]) }
        let value: JSONValue
        do { value = try JSONValue.parse(data) } catch let e as SpecError {
            throw MLflowError(.badRequest, "Malformed JSON body: \(e.message)")
        }
        guard case .object(let members) = value else { throw MLflowError(.badRequest, "The request body must be a JSON object") }
        return MLflowArgs(json: members)
    }

    /// The request's body, up to the cap (413 past it).
    static func body(_ request: Request) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: Limits.bodyBytes)
        } catch let e as HTTPResponseError where e.status == .contentTooLarge {
            throw Limits.bodyTooLarge()
        } catch {
            throw MLflowError.invalid("the request body could not be read completely")
        }
    }

    private func raw(_ name: String) -> JSONValue? {
        if let v = body[name], v != .null { return v }
        return query[name].map { .string($0) }
    }

    func has(_ name: String) -> Bool { raw(name) != nil }

    func string(_ name: String) throws -> String? {
        guard let v = raw(name) else { return nil }
        guard let s = v.stringValue else { throw MLflowError.invalid(Self.invalidValue(name, v, "must be a string")) }
        return s
    }

    func required(_ name: String) throws -> String {
        guard let s = try string(name) else { throw MLflowError.missing(name) }
        return s
    }

    /// A 64-bit integer (a JSON number or a numeric string).
    func int64(_ name: String) throws -> Int64? {
        guard let v = raw(name) else { return nil }
        switch v {
        case .number(let x) where x == x.rounded() && abs(x) <= 9.007_199_254_740_992e15: return Int64(x)
        case .string(let s):
            if let i = Int64(s.trimmingCharacters(in: .whitespaces)) { return i }
        default: break
        }
        throw MLflowError.invalid(Self.invalidValue(name, v, "must be a 64-bit integer"))
    }

    /// A double: a JSON number or a string naming one (protobuf's `"NaN"`, `"Infinity"`, `"-Infinity"` too).
    func double(_ name: String, path: String? = nil) throws -> Double? {
        guard let v = raw(name) else { return nil }
        switch v {
        case .number(let x): return x
        case .string(let s):
            switch s {
            case "NaN", "nan": return .nan
            case "Infinity", "inf": return .infinity
            case "-Infinity", "-inf": return -.infinity
            default: if let x = Double(s) { return x }
            }
        default: break
        }
        throw MLflowError.invalid(
            Self.invalidValue(path ?? name, v, "Please specify value as a valid double (64-bit floating point)"))
    }

    func array(_ name: String) throws -> [JSONValue] {
        guard let v = raw(name) else { return [] }
        if case .string(let s) = v, body[name] == nil { return [.string(s)] }  // one repeated field in a query string
        guard case .array(let items) = v else { throw MLflowError.invalid(Self.invalidValue(name, v, "must be a list")) }
        return items
    }

    func strings(_ name: String) throws -> [String] {
        try array(name).enumerated().map { i, v in
            guard let s = v.stringValue else {
                throw MLflowError.invalid(Self.invalidValue("\(name)[\(i)]", v, "must be a string"))
            }
            return s
        }
    }

    /// `[{"key": …, "value": …}]` (params, tags).
    func keyValues(_ name: String) throws -> [(key: String, value: String)] {
        try array(name).enumerated().map { i, item in
            guard case .object(let m) = item else {
                throw MLflowError.invalid(Self.invalidValue("\(name)[\(i)]", item, "must be an object"))
            }
            let a = MLflowArgs(json: m)
            return (try a.required("key", path: "\(name)[\(i)].key"), try a.required("value", path: "\(name)[\(i)].value"))
        }
    }

    func required(_ name: String, path: String) throws -> String {
        guard let v = raw(name) else { throw MLflowError.missing(path) }
        guard let s = v.stringValue else { throw MLflowError.invalid(Self.invalidValue(path, v, "must be a string")) }
        return s
    }

    /// MLflow's sentence for a bad value: `Invalid value "x" for parameter 'name' supplied: …`.
    static func invalidValue(_ path: String, _ v: JSONValue, _ problem: String) -> String {
        "Invalid value \(v.text()) for parameter '\(path)' supplied: \(problem)"
    }
}
