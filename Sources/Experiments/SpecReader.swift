/// Pulls typed fields out of one JSON object of a spec, remembering its path for error messages
/// and which keys it has read, so that ``finish()`` can refuse the ones nobody asked for.
///
/// Conventions shared by every spec group:
/// - a missing key and an explicit `null` mean the same: the default (or `nil` for optional fields);
/// - integers may be written `2` or `2.0`, never `2.5`;
/// - the strings `"NaN"`, `"Infinity"`, `"-Infinity"` are refused for numeric fields as not finite;
/// - every error is a ``SpecError`` naming the field by its full path.
final class SpecReader {
    /// Path of this object (`""` at the top, `optim`, `averaging[1]`).
    let path: String
    private let fields: [String: JSONValue]
    private var consumed: Set<String> = []

    /// A reader over `value`, which must be an object.
    init(_ value: JSONValue, path: String) throws {
        guard case .object(let fields) = value else {
            throw SpecError(field: path, message: "must be an object, got \(SpecReader.show(value))")
        }
        self.fields = fields
        self.path = path
    }

    /// Path of `key` inside `parent`: `optim` + `lr` → `optim.lr`.
    static func path(_ parent: String, _ key: String) -> String {
        parent.isEmpty ? key : parent + "." + key
    }

    /// Path of element `index` of the list at `parent`: `averaging[0]`.
    static func path(_ parent: String, index: Int) -> String {
        "\(parent)[\(index)]"
    }

    /// Path of `key` in this object.
    func path(_ key: String) -> String { SpecReader.path(path, key) }

    /// The value of `key`, `nil` when it is missing or `null`; marks the key as read.
    func value(_ key: String) -> JSONValue? {
        consumed.insert(key)
        guard let v = fields[key], v != .null else { return nil }
        return v
    }

    /// Whether `key` is present with a non-null value (does not mark it as read).
    func has(_ key: String) -> Bool {
        if let v = fields[key], v != .null { return true }
        return false
    }

    /// Refuses every key that was not read: `optim.learning_rate is not a known field`.
    func finish() throws {
        if let unknown = fields.keys.filter({ !consumed.contains($0) }).sorted().first {
            throw SpecError(field: path(unknown), message: "is not a known field")
        }
    }

    // MARK: Typed fields

    /// An integer field, `default` when missing or null, checked against `range`.
    func int(_ key: String, default def: Int, _ range: Interval = .any) throws -> Int {
        try optionalInt(key, range) ?? def
    }

    func optionalInt(_ key: String, _ range: Interval = .any) throws -> Int? {
        try value(key).map { try SpecReader.int($0, path(key), range) }
    }

    /// A number field, `default` when missing or null, finite and checked against `range`.
    func double(_ key: String, default def: Double, _ range: Interval = .any) throws -> Double {
        try value(key).map { try SpecReader.double($0, path(key), range) } ?? def
    }

    func bool(_ key: String, default def: Bool) throws -> Bool {
        guard let v = value(key) else { return def }
        guard case .bool(let b) = v else { throw SpecReader.typeError(path(key), "a boolean", v) }
        return b
    }

    func optionalString(_ key: String) throws -> String? {
        try value(key).map { try SpecReader.string($0, path(key)) }
    }

    func string(_ key: String, default def: String) throws -> String {
        try optionalString(key) ?? def
    }

    /// A string field that must be one of `E`'s raw values.
    func choice<E: RawRepresentable & CaseIterable>(_ key: String, default def: E) throws -> E
    where E.RawValue == String {
        try optionalChoice(key, E.self) ?? def
    }

    func optionalChoice<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type) throws -> E?
    where E.RawValue == String {
        guard let v = value(key) else { return nil }
        let s = try SpecReader.string(v, path(key))
        guard let e = E(rawValue: s) else {
            let names = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw SpecError(field: path(key), message: "must be one of \(names), got \(SpecReader.show(v))")
        }
        return e
    }

    /// A nested object, read by `read` and then checked for unknown keys; `nil` when missing or null.
    func object<T>(_ key: String, _ read: (SpecReader) throws -> T) throws -> T? {
        guard let v = value(key) else { return nil }
        return try SpecReader.object(v, path(key), read)
    }

    /// A list field; `nil` when missing or null. `element` gets each value and its path.
    func list<T>(_ key: String, _ element: (JSONValue, String) throws -> T) throws -> [T]? {
        guard let v = value(key) else { return nil }
        guard case .array(let items) = v else { throw SpecReader.typeError(path(key), "a list", v) }
        return try items.enumerated().map { try element($1, SpecReader.path(path(key), index: $0)) }
    }

    // MARK: Values (also used for list elements)

    static func object<T>(_ v: JSONValue, _ path: String, _ read: (SpecReader) throws -> T) throws -> T {
        let reader = try SpecReader(v, path: path)
        let result = try read(reader)
        try reader.finish()
        return result
    }

    static func double(_ v: JSONValue, _ path: String, _ range: Interval = .any) throws -> Double {
        switch v {
        case .number(let x):
            try range.check(x, path)
            return x
        case .string("NaN"), .string("Infinity"), .string("-Infinity"):
            throw SpecError(field: path, message: "must be a finite number, got \(show(v))")
        default:
            throw typeError(path, "a number", v)
        }
    }

    static func int(_ v: JSONValue, _ path: String, _ range: Interval = .any) throws -> Int {
        switch v {
        case .number(let x) where x == x.rounded():
            try range.check(x, path)
            // Beyond 2^53 a Double no longer holds every integer: refuse rather than round.
            guard abs(x) <= 9_007_199_254_740_992, let i = Int(exactly: x) else {
                throw SpecError(field: path, message: "is too large, got \(show(v))")
            }
            return i
        case .string("NaN"), .string("Infinity"), .string("-Infinity"):
            throw SpecError(field: path, message: "must be a finite integer, got \(show(v))")
        default:
            throw typeError(path, "an integer", v)
        }
    }

    static func string(_ v: JSONValue, _ path: String) throws -> String {
        guard case .string(let s) = v else { throw typeError(path, "a string", v) }
        return s
    }

    static func typeError(_ path: String, _ expected: String, _ got: JSONValue) -> SpecError {
        SpecError(field: path, message: "must be \(expected), got \(show(got))")
    }

    /// A value as it appears in messages: compact JSON, long ones shortened.
    static func show(_ v: JSONValue) -> String {
        let text = v.text()
        return text.count <= 60 ? text : String(text.prefix(57)) + "..."
    }
}

/// An allowed range of a numeric field, written in messages the mathematical way:
/// `must be in (0, 1)`, `must be in [1, 64]`, `must be at least 1`, `must be greater than 0`.
struct Interval: Sendable {
    var lower: Double?
    var lowerOpen = false
    var upper: Double?
    var upperOpen = false

    static let any = Interval()
    /// `x ≥ lo`.
    static func atLeast(_ lo: Double) -> Interval { Interval(lower: lo) }
    /// `x > lo`.
    static func greaterThan(_ lo: Double) -> Interval { Interval(lower: lo, lowerOpen: true) }
    /// `[lo, hi]`.
    static func closed(_ lo: Double, _ hi: Double) -> Interval { Interval(lower: lo, upper: hi) }
    /// `(lo, hi)`.
    static func open(_ lo: Double, _ hi: Double) -> Interval {
        Interval(lower: lo, lowerOpen: true, upper: hi, upperOpen: true)
    }
    /// `[lo, hi)`.
    static func closedOpen(_ lo: Double, _ hi: Double) -> Interval {
        Interval(lower: lo, upper: hi, upperOpen: true)
    }
    /// `(lo, hi]`.
    static func openClosed(_ lo: Double, _ hi: Double) -> Interval {
        Interval(lower: lo, lowerOpen: true, upper: hi)
    }

    func contains(_ x: Double) -> Bool {
        if let lo = lower, lowerOpen ? !(x > lo) : !(x >= lo) { return false }
        if let hi = upper, upperOpen ? !(x < hi) : !(x <= hi) { return false }
        return true
    }

    var text: String {
        switch (lower, upper) {
        case (nil, nil): return "any number"
        case (let lo?, nil): return lowerOpen ? "greater than \(n(lo))" : "at least \(n(lo))"
        case (nil, let hi?): return upperOpen ? "less than \(n(hi))" : "at most \(n(hi))"
        case (let lo?, let hi?):
            return "in " + (lowerOpen ? "(" : "[") + n(lo) + ", " + n(hi) + (upperOpen ? ")" : "]")
        }
    }

    /// Throws `<path> must be <range>, got <x>` when `x` is outside.
    func check(_ x: Double, _ path: String, note: String = "") throws {
        guard !contains(x) else { return }
        throw SpecError(field: path, message: "must be \(text)\(note), got \(JSONValue.format(x))")
    }

    private func n(_ x: Double) -> String { JSONValue.format(x) }
}
