import Foundation
import JSONBytes

/// A JSON document as a plain value: what specs, presets and variants are merged as before they
/// are decoded into typed specs.
///
/// Objects are dictionaries, so equality ignores key order; ``data(pretty:)`` writes keys sorted,
/// which makes the output deterministic. Numbers are `Double`s: integers up to 2^53 are exact, and
/// are written back without a fraction (`3`, not `3.0`).
///
/// Non-finite numbers cannot appear in JSON. ``data(pretty:)`` writes them as the strings
/// `"NaN"`, `"Infinity"` and `"-Infinity"` (as MLflow and `JSONEncoder`'s
/// `nonConformingFloatEncodingStrategy` do); the parser leaves those strings as strings, and a
/// bare `NaN` token is refused naming the field it stands in.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    // MARK: Reading

    /// Parses one JSON document (any value at the top, surrounded by optional whitespace).
    ///
    /// - Throws: ``SpecError`` whose `field` is the path of the value being read when the text
    ///   went wrong (`""` at the top level, `optim.lr` inside an object) and whose message says what
    ///   was wrong and where (line and column).
    public static func parse(_ data: Data) throws -> JSONValue {
        try data.withUnsafeBytes { try JSONParser.parse($0) }
    }

    /// Parses a JSON document from text; see ``parse(_:)-swift.type.method``.
    public static func parse(_ text: String) throws -> JSONValue {
        try parse(Data(text.utf8))
    }

    // MARK: Merging

    /// This value with `overlay` laid over it: objects are merged key by key, recursively; any
    /// other overlay value (a list, a scalar, `null`) replaces what was there.
    ///
    /// This is how an experiment's run spec is built: base, then preset, then the variant's spec.
    public func merged(with overlay: JSONValue) -> JSONValue {
        guard case .object(var base) = self, case .object(let top) = overlay else { return overlay }
        for (key, value) in top {
            base[key] = base[key].map { $0.merged(with: value) } ?? value
        }
        return .object(base)
    }

    // MARK: Accessors

    /// The member `key` of an object; `nil` for a missing key or a value that is not an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The number, or `nil` for any other kind of value.
    public var doubleValue: Double? {
        if case .number(let x) = self { return x }
        return nil
    }

    /// The string, or `nil` for any other kind of value.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// A non-finite `Double` as the spec's wire form (`"NaN"`, `"Infinity"`, `"-Infinity"`), a
    /// finite one as a number.
    public init(_ number: Double) {
        if number.isNaN {
            self = .string("NaN")
        } else if number.isInfinite {
            self = .string(number < 0 ? "-Infinity" : "Infinity")
        } else {
            self = .number(number)
        }
    }

    // MARK: Writing

    /// The JSON text: compact on one line, or `pretty` with two-space indentation (lists of
    /// scalars stay on one line). Keys are sorted; non-finite numbers become strings.
    public func data(pretty: Bool = false) -> Data {
        Data(bytes(pretty: pretty))
    }

    /// The JSON text as a `String`; see ``data(pretty:)``.
    public func text(pretty: Bool = false) -> String {
        String(decoding: bytes(pretty: pretty), as: UTF8.self)
    }

    /// The JSON text as UTF-8 bytes; see ``data(pretty:)``.
    public func bytes(pretty: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(to out: inout [UInt8], pretty: Bool, indent: Int) {
        func newline(_ level: Int) {
            out.append(0x0A)
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * level))
        }
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let x): JSONText.appendNumber(x, to: &out)
        case .string(let s): JSONText.appendString(s, to: &out)
        case .array(let items):
            let scalarsOnly = items.allSatisfy { !$0.isContainer }
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                if pretty && !scalarsOnly {
                    newline(indent + 1)
                } else if pretty && i > 0 {
                    out.append(UInt8(ascii: " "))
                }
                item.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty && !scalarsOnly && !items.isEmpty { newline(indent) }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            let keys = members.keys.sorted()
            for (i, key) in keys.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                if pretty { newline(indent + 1) }
                JSONText.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                if pretty { out.append(UInt8(ascii: " ")) }
                members[key]!.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty && !keys.isEmpty { newline(indent) }
            out.append(UInt8(ascii: "}"))
        }
    }

    private var isContainer: Bool {
        switch self {
        case .array, .object: return true
        default: return false
        }
    }

    /// A number as JSON text (``JSONText/appendNumber(_:to:)``): integral values below 10^18
    /// without a fraction (`3`, not `3.0`), others in Swift's shortest round-tripping form (`0.999`,
    /// `1e-05`), non-finite ones as the quoted strings.
    static func format(_ x: Double) -> String {
        JSONText.number(x)
    }
}

// MARK: Literals (handy for presets and tests)

extension JSONValue: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue: CustomStringConvertible {
    /// Compact JSON text.
    public var description: String { text() }
}

// MARK: Parser

/// A strict RFC 8259 reader on ``JSONScanner`` that knows the field path of the value it is in, so
/// that errors name the field (`optim.lr: bare NaN is not JSON`). Duplicate keys are refused.
private struct JSONParser {
    var scanner: JSONScanner
    /// Path of the value being parsed, as ``SpecReader`` spells it.
    var path = ""
    var depth = 0
    static let maxDepth = 256

    /// Parses the document in `raw`; a scanner error becomes a ``SpecError`` naming the path and
    /// the line and column.
    static func parse(_ raw: UnsafeRawBufferPointer) throws -> JSONValue {
        var parser = JSONParser(scanner: JSONScanner(raw))
        do {
            if parser.scanner.isAtEnd() { throw parser.scanner.error("empty input, expected a JSON value") }
            let value = try parser.parseValue()
            if !parser.scanner.isAtEnd() {
                parser.path = ""
                throw parser.scanner.error("unexpected text after the JSON value")
            }
            return value
        } catch let e as JSONScanError {
            throw parser.specError(e)
        }
    }

    mutating func parseValue() throws -> JSONValue {
        switch try scanner.peekValue() {
        case .object: return try parseObject()
        case .array: return try parseArray()
        case .string: return .string(try scanner.readString())
        case .number: return .number(try scanner.readNumber())
        case .true, .false: return .bool(try scanner.readBool())
        case .null:
            try scanner.readNull()
            return .null
        }
    }

    mutating func parseObject() throws -> JSONValue {
        try enter()
        try scanner.expect(UInt8(ascii: "{"), "'{'")
        var members: [String: JSONValue] = [:]
        let parent = path
        if scanner.consume(UInt8(ascii: "}")) {
            depth -= 1
            return .object(members)
        }
        repeat {
            guard scanner.peek() == UInt8(ascii: "\"") else { throw scanner.error("expected a quoted key in an object") }
            let at = scanner.offset
            let key = try scanner.readString()
            try scanner.expect(UInt8(ascii: ":"), "':' after the key \"\(key)\"")
            path = SpecReader.path(parent, key)
            if members[key] != nil { throw scanner.error("this key appears twice in one object", at: at) }
            members[key] = try parseValue()
            path = parent
        } while try scanner.nextMember(close: UInt8(ascii: "}"), in: "an object")
        depth -= 1
        return .object(members)
    }

    mutating func parseArray() throws -> JSONValue {
        try enter()
        try scanner.expect(UInt8(ascii: "["), "'['")
        var items: [JSONValue] = []
        let parent = path
        if scanner.consume(UInt8(ascii: "]")) {
            depth -= 1
            return .array(items)
        }
        repeat {
            path = SpecReader.path(parent, index: items.count)
            items.append(try parseValue())
            path = parent
        } while try scanner.nextMember(close: UInt8(ascii: "]"), in: "a list")
        depth -= 1
        return .array(items)
    }

    mutating func enter() throws {
        depth += 1
        if depth > JSONParser.maxDepth { throw scanner.error("nested deeper than \(JSONParser.maxDepth) levels") }
    }

    /// "invalid JSON at line L, column C: <what>", for the value at `path`.
    func specError(_ e: JSONScanError) -> SpecError {
        var line = 1
        var column = 1
        for b in scanner.bytes[..<min(e.offset, scanner.bytes.count)] {
            if b == 0x0A {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {
                column += 1  // count characters, not UTF-8 continuation bytes
            }
        }
        return SpecError(field: path, message: "is not valid JSON (line \(line), column \(column)): \(e.problem)")
    }
}
