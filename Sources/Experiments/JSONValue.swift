import Foundation

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
        var parser = JSONParser(bytes: [UInt8](data))
        return try parser.parseDocument()
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
        Data(text(pretty: pretty).utf8)
    }

    /// The JSON text as a `String`; see ``data(pretty:)``.
    public func text(pretty: Bool = false) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: "")
        return out
    }

    private func write(to out: inout String, pretty: Bool, indent: String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let x): out += JSONValue.format(x)
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            let scalarsOnly = items.allSatisfy { !$0.isContainer }
            if !pretty || scalarsOnly || items.isEmpty {
                out += "["
                for (i, item) in items.enumerated() {
                    if i > 0 { out += pretty ? ", " : "," }
                    item.write(to: &out, pretty: pretty, indent: indent)
                }
                out += "]"
            } else {
                let inner = indent + "  "
                out += "[\n"
                for (i, item) in items.enumerated() {
                    out += inner
                    item.write(to: &out, pretty: pretty, indent: inner)
                    out += i + 1 < items.count ? ",\n" : "\n"
                }
                out += indent + "]"
            }
        case .object(let members):
            let keys = members.keys.sorted()
            if keys.isEmpty {
                out += "{}"
                return
            }
            let inner = indent + "  "
            out += pretty ? "{\n" : "{"
            for (i, key) in keys.enumerated() {
                if pretty { out += inner }
                JSONValue.writeString(key, to: &out)
                out += pretty ? ": " : ":"
                members[key]!.write(to: &out, pretty: pretty, indent: inner)
                if i + 1 < keys.count { out += pretty ? ",\n" : "," }
            }
            out += pretty ? "\n" + indent + "}" : "}"
        }
    }

    private var isContainer: Bool {
        switch self {
        case .array, .object: return true
        default: return false
        }
    }

    /// A number as JSON text: integral values below 10^18 without a fraction (`3`, not `3.0`),
    /// others in Swift's shortest round-tripping form (`0.999`, `1e-05`), non-finite ones as the
    /// quoted strings.
    static func format(_ x: Double) -> String {
        if x.isNaN { return "\"NaN\"" }
        if x.isInfinite { return x < 0 ? "\"-Infinity\"" : "\"Infinity\"" }
        if x == x.rounded(), abs(x) < 1e18 {
            // -0.0 is written as 0: JSON readers do not agree on "-0".
            return String(Int64(x))
        }
        return "\(x)"
    }

    private static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
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

/// A strict RFC 8259 reader over UTF-8 bytes that knows the field path of the value it is in, so
/// that errors name the field (`optim.lr: bare NaN is not JSON`). Duplicate keys are refused.
private struct JSONParser {
    let bytes: [UInt8]
    var position = 0
    /// Path of the value being parsed, as ``SpecReader`` spells it.
    var path = ""
    var depth = 0
    static let maxDepth = 256

    init(bytes: [UInt8]) {
        self.bytes = bytes
        // A UTF-8 byte order mark is tolerated at the very start.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
    }

    mutating func parseDocument() throws -> JSONValue {
        skipWhitespace()
        if position == bytes.count { throw fail("empty input, expected a JSON value") }
        let value = try parseValue()
        skipWhitespace()
        if position < bytes.count {
            path = ""
            throw fail("unexpected text after the JSON value")
        }
        return value
    }

    mutating func parseValue() throws -> JSONValue {
        guard let byte = peek() else { throw fail("input ends where a value was expected") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectWord("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectWord("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectWord("null"); return .null
        case UInt8(ascii: "N"), UInt8(ascii: "I"):
            throw fail("a bare NaN or Infinity is not JSON; write the string \"NaN\", \"Infinity\" or \"-Infinity\"")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            if byte == UInt8(ascii: "-"), peek(at: position + 1) == UInt8(ascii: "I") {
                throw fail("a bare -Infinity is not JSON; write the string \"-Infinity\"")
            }
            return .number(try parseNumber())
        default:
            throw fail("unexpected character \(describe(byte)) where a value was expected")
        }
    }

    mutating func parseObject() throws -> JSONValue {
        try enter()
        position += 1  // {
        var members: [String: JSONValue] = [:]
        let parent = path
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a quoted key in an object") }
            let key = try parseString()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw fail("expected ':' after the key \"\(key)\"") }
            position += 1
            skipWhitespace()
            path = SpecReader.path(parent, key)
            if members[key] != nil { throw fail("this key appears twice in one object") }
            members[key] = try parseValue()
            path = parent
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                depth -= 1
                return .object(members)
            default: throw fail("expected ',' or '}' in an object")
            }
        }
    }

    mutating func parseArray() throws -> JSONValue {
        try enter()
        position += 1  // [
        var items: [JSONValue] = []
        let parent = path
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            position += 1
            depth -= 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            path = SpecReader.path(parent, index: items.count)
            items.append(try parseValue())
            path = parent
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"):
                position += 1
                depth -= 1
                return .array(items)
            default: throw fail("expected ',' or ']' in a list")
            }
        }
    }

    mutating func parseString() throws -> String {
        position += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard let byte = peek() else { throw fail("unterminated string") }
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let s = String(validating: utf8, as: UTF8.self) else {
                    throw fail("a string that is not valid UTF-8")
                }
                return s
            case UInt8(ascii: "\\"):
                guard let escape = peek() else { throw fail("unterminated string") }
                position += 1
                switch escape {
                case UInt8(ascii: "\""): utf8.append(0x22)
                case UInt8(ascii: "\\"): utf8.append(0x5C)
                case UInt8(ascii: "/"): utf8.append(0x2F)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        // A high surrogate must be followed by an escaped low one.
                        guard peek() == UInt8(ascii: "\\"), peek(at: position + 1) == UInt8(ascii: "u") else {
                            throw fail("an unpaired surrogate in a \\u escape")
                        }
                        position += 2
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else {
                            throw fail("an unpaired surrogate in a \\u escape")
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw fail("an unpaired surrogate in a \\u escape")
                    }
                    utf8.append(contentsOf: Array(String(Unicode.Scalar(code)!).utf8))
                default:
                    throw fail("invalid escape \\\(describe(escape)) in a string")
                }
            default:
                if byte < 0x20 { throw fail("unescaped control character in a string") }
                utf8.append(byte)
            }
        }
    }

    mutating func parseHex4() throws -> UInt32 {
        guard position + 4 <= bytes.count,
            let code = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16)
        else { throw fail("invalid \\u escape") }
        position += 4
        return code
    }

    /// RFC 8259 number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    mutating func parseNumber() throws -> Double {
        let start = position
        func digits() -> Int {
            let first = position
            while let b = peek(), b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") { position += 1 }
            return position - first
        }
        if peek() == UInt8(ascii: "-") { position += 1 }
        if peek() == UInt8(ascii: "0") {
            position += 1
            if let b = peek(), b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") {
                throw fail("a number with a leading zero")
            }
        } else if digits() == 0 {
            throw fail("malformed number")
        }
        if peek() == UInt8(ascii: ".") {
            position += 1
            if digits() == 0 { throw fail("malformed number (no digits after '.')") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            if digits() == 0 { throw fail("malformed number (no digits in the exponent)") }
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        // Swift's Double(String) rounds correctly; it overflows to infinity for 1e400.
        guard let value = Double(text), value.isFinite else {
            throw fail("the number \(text) is too large for a Double")
        }
        return value
    }

    mutating func expectWord(_ word: String) throws {
        let w = Array(word.utf8)
        guard position + w.count <= bytes.count, Array(bytes[position..<position + w.count]) == w else {
            throw fail("unexpected word where a value was expected (true, false and null are lowercase)")
        }
        position += w.count
    }

    mutating func enter() throws {
        depth += 1
        if depth > JSONParser.maxDepth { throw fail("nested deeper than \(JSONParser.maxDepth) levels") }
    }

    mutating func skipWhitespace() {
        while let b = peek(), b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { position += 1 }
    }

    func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }
    func peek(at index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }

    func describe(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? "'\(Character(Unicode.Scalar(byte)))'" : String(format: "0x%02X", byte)
    }

    /// An error at the current position: "invalid JSON at line L, column C: <what>".
    func fail(_ what: String) -> SpecError {
        var line = 1
        var column = 1
        for b in bytes[..<min(position, bytes.count)] {
            if b == 0x0A {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {
                column += 1  // count characters, not UTF-8 continuation bytes
            }
        }
        return SpecError(field: path, message: "is not valid JSON (line \(line), column \(column)): \(what)")
    }
}
