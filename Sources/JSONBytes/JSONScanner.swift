/// Why bytes are not the JSON a reader expected: what was wrong and the byte offset where it was
/// found (counted from the start of the buffer, a byte order mark included). Readers turn it into
/// their own error (a field path, a line and column, a file name).
public struct JSONScanError: Error, CustomStringConvertible, Equatable, Sendable {
    public let offset: Int
    public let problem: String

    public init(offset: Int, problem: String) {
        self.offset = offset
        self.problem = problem
    }

    public var description: String { "\(problem) (at byte \(offset))" }
}

/// The one JSON tokenizer of the project (RFC 8259, strict): structure bytes, strings with every
/// escape (surrogate pairs joined, lone surrogates and invalid UTF-8 refused), numbers by JSON's
/// grammar, and the three literals. It reads a borrowed buffer and allocates only the strings it
/// returns, so the metric-batch reader (the ingestion hot path), `JSONValue`'s parser and the
/// safetensors header all share it; each builds its own values and errors on top.
///
/// The scanner never reads past `bytes.count`, needs no terminator, and every method either
/// consumes what it names or throws a ``JSONScanError`` pointing at the offending byte.
public struct JSONScanner {
    /// The first byte of a value, as ``peekValue()`` classifies it.
    public enum ValueKind: Equatable, Sendable {
        case object, array, string, number, `true`, `false`, null
    }

    public let bytes: UnsafeBufferPointer<UInt8>
    /// The byte offset of the next unread byte.
    public var offset: Int

    /// A scanner at the start of `bytes`; a UTF-8 byte order mark there is skipped.
    @inlinable
    public init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        let bom = bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF
        offset = bom ? 3 : 0
    }

    /// An error at `offset` (the current position unless given).
    @inlinable
    public func error(_ problem: String, at offset: Int? = nil) -> JSONScanError {
        JSONScanError(offset: offset ?? self.offset, problem: problem)
    }

    // MARK: Structure

    /// True when only whitespace is left.
    @inlinable
    public mutating func isAtEnd() -> Bool {
        skipWhitespace()
        return offset == bytes.count
    }

    @inlinable @inline(__always)
    public mutating func skipWhitespace() {
        while offset < bytes.count {
            let b = bytes[offset]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            offset += 1
        }
    }

    /// The next byte after whitespace, not consumed; nil at the end.
    @inlinable @inline(__always)
    public mutating func peek() -> UInt8? {
        skipWhitespace()
        return offset < bytes.count ? bytes[offset] : nil
    }

    /// Consumes `byte` (after whitespace) if it is next.
    @inlinable @inline(__always)
    public mutating func consume(_ byte: UInt8) -> Bool {
        guard peek() == byte else { return false }
        offset += 1
        return true
    }

    /// Consumes `byte` (after whitespace) or throws "expected `what`".
    public mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard consume(byte) else {
            throw error(
                offset < bytes.count
                    ? "expected \(what), found \(Self.describe(bytes[offset]))" : "expected \(what), found the end")
        }
    }

    /// After a member or an element: true for `,` (another follows), false for `close`; anything
    /// else throws "expected ',' or 'close' in `container`".
    @inlinable
    public mutating func nextMember(close: UInt8, in container: String) throws -> Bool {
        if consume(UInt8(ascii: ",")) { return true }
        if consume(close) { return false }
        throw error("expected ',' or '\(Character(Unicode.Scalar(close)))' in \(container)")
    }

    /// What kind of value starts at the next byte (after whitespace), not consumed. Throws for
    /// anything that cannot start a value, naming bare `NaN`/`Infinity` (JSON has neither) apart.
    @inlinable
    public mutating func peekValue() throws -> ValueKind {
        guard let b = peek() else { throw error("input ends where a value was expected") }
        switch b {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"): return .true
        case UInt8(ascii: "f"): return .false
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        case UInt8(ascii: "-"):
            if offset + 1 < bytes.count, bytes[offset + 1] == UInt8(ascii: "I") {
                throw error("a bare -Infinity is not JSON; write the string \"-Infinity\"")
            }
            return .number
        case UInt8(ascii: "N"), UInt8(ascii: "I"):
            throw error("a bare NaN or Infinity is not JSON; write the string \"NaN\", \"Infinity\" or \"-Infinity\"")
        default:
            throw error("unexpected character \(Self.describe(b)) where a value was expected")
        }
    }

    // MARK: Literals

    /// Consumes `null` (after whitespace) if it is next.
    @inlinable
    public mutating func consumeNull() -> Bool {
        skipWhitespace()
        guard offset + 4 <= bytes.count, bytes[offset] == UInt8(ascii: "n"), bytes[offset + 1] == UInt8(ascii: "u"),
            bytes[offset + 2] == UInt8(ascii: "l"), bytes[offset + 3] == UInt8(ascii: "l")
        else { return false }
        offset += 4
        return true
    }

    /// Reads `true` or `false`.
    public mutating func readBool() throws -> Bool {
        if consumeWord("true") { return true }
        if consumeWord("false") { return false }
        throw error("unexpected word where a value was expected (true, false and null are lowercase)")
    }

    /// Reads `null`.
    public mutating func readNull() throws {
        guard consumeWord("null") else {
            throw error("unexpected word where a value was expected (true, false and null are lowercase)")
        }
    }

    private mutating func consumeWord(_ word: StaticString) -> Bool {
        skipWhitespace()
        let n = word.utf8CodeUnitCount
        guard offset + n <= bytes.count else { return false }
        let w = word.utf8Start
        for k in 0..<n where bytes[offset + k] != w[k] { return false }
        offset += n
        return true
    }

    /// Reads past one value of any kind (after whitespace), checking it as strictly as the
    /// readers do; containers nested deeper than `maxDepth` are refused.
    public mutating func skipValue(maxDepth: Int = 256) throws {
        switch try peekValue() {
        case .string: _ = try readString()
        case .number: _ = try readNumber()
        case .true, .false: _ = try readBool()
        case .null: try readNull()
        case .object, .array:
            guard maxDepth > 0 else { throw error("nested too deeply") }
            let isObject = bytes[offset] == UInt8(ascii: "{")
            let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
            offset += 1
            if consume(close) { return }
            repeat {
                if isObject {
                    _ = try readString()
                    try expect(UInt8(ascii: ":"), "':'")
                }
                try skipValue(maxDepth: maxDepth - 1)
            } while try nextMember(close: close, in: isObject ? "an object" : "a list")
        }
    }

    // MARK: Strings

    /// Reads a string (after whitespace): escapes decoded, surrogate pairs joined into one scalar;
    /// invalid UTF-8, lone surrogates, raw control characters and unknown escapes are refused.
    @inlinable
    public mutating func readString() throws -> String {
        guard peek() == UInt8(ascii: "\"") else { throw error("expected a string") }
        let start = offset + 1
        var i = start
        // Fast path: no escapes (nearly every key and weight-set name) is one validated copy.
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                offset = i + 1
                return try validated(UnsafeBufferPointer(rebasing: bytes[start..<i]), at: start)
            }
            if b == UInt8(ascii: "\\") { return try readEscapedString(from: start, escapeAt: i) }
            if b < 0x20 { throw error("unescaped control character in a string", at: i) }
            i += 1
        }
        throw error("unterminated string", at: start - 1)
    }

    /// The rest of ``readString()`` once an escape is found at `i`.
    @usableFromInline
    mutating func readEscapedString(from start: Int, escapeAt first: Int) throws -> String {
        var utf8 = Array(UnsafeBufferPointer(rebasing: bytes[start..<first]))
        var i = first
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                offset = i + 1
                return try utf8.withUnsafeBufferPointer { try validated($0, at: start) }
            }
            if b < 0x20 { throw error("unescaped control character in a string", at: i) }
            guard b == UInt8(ascii: "\\") else {
                utf8.append(b)
                i += 1
                continue
            }
            guard i + 1 < bytes.count else { break }
            let escape = bytes[i + 1]
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4(at: i + 2)
                var length = 6
                if (0xD800..<0xDC00).contains(code) {
                    // A high surrogate must be followed at once by an escaped low one.
                    guard i + 7 < bytes.count, bytes[i + 6] == UInt8(ascii: "\\"), bytes[i + 7] == UInt8(ascii: "u"),
                        case let low = try hex4(at: i + 8), (0xDC00..<0xE000).contains(low)
                    else { throw error("an unpaired surrogate in a \\u escape", at: i) }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    length = 12
                } else if (0xDC00..<0xE000).contains(code) {
                    throw error("an unpaired surrogate in a \\u escape", at: i)
                }
                utf8.append(contentsOf: UTF8.encode(Unicode.Scalar(code)!)!)
                i += length
                continue
            default:
                throw error("invalid escape \\\(Self.describe(escape)) in a string", at: i)
            }
            i += 2
        }
        throw error("unterminated string", at: start - 1)
    }

    /// Validating, not decoding: decoding would turn bad bytes into U+FFFD and store that.
    @usableFromInline
    func validated(_ utf8: UnsafeBufferPointer<UInt8>, at start: Int) throws -> String {
        guard let s = String(validating: utf8, as: UTF8.self) else { throw error("a string that is not valid UTF-8", at: start) }
        return s
    }

    private func hex4(at k: Int) throws -> UInt32 {
        guard k + 4 <= bytes.count else { throw error("invalid \\u escape (four hex digits expected)", at: k - 2) }
        var code: UInt32 = 0
        for b in bytes[k..<k + 4] {
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape (four hex digits expected)", at: k - 2)
            }
            code = code << 4 | UInt32(digit)
        }
        return code
    }

    /// A byte as an error message shows it: `'x'` when printable, `0x1F` otherwise.
    public static func describe(_ byte: UInt8) -> String {
        if byte >= 0x20 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        let hex = Array("0123456789ABCDEF".utf8)
        return "0x" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
    }
}

extension JSONScanner {
    /// A scanner over raw bytes (`Data.withUnsafeBytes`, `Array.withUnsafeBytes`).
    public init(_ raw: UnsafeRawBufferPointer) {
        self.init(raw.bindMemory(to: UInt8.self))
    }
}
