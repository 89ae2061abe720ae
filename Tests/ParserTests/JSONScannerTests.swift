import Foundation
import JSONBytes
import PolyakTestSupport
import XCTest

/// The one JSON tokenizer (strings, numbers, literals, structure, byte offsets in errors) and the
/// one number and string writer, against Swift's own parsers and hand-checked cases.
final class JSONScannerTests: XCTestCase {
    func scan<R>(_ text: String, _ body: (inout JSONScanner) throws -> R) throws -> R {
        try Array(text.utf8).withUnsafeBytes { raw in
            var s = JSONScanner(raw)
            return try body(&s)
        }
    }

    func string(_ json: String) throws -> String { try scan(json) { try $0.readString() } }
    func number(_ json: String) throws -> Double { try scan(json) { try $0.readNumber() } }

    /// The scanner's error for `json`, read by `read`: its offset and problem.
    func refusal(_ json: String, _ read: (inout JSONScanner) throws -> Void) -> JSONScanError? {
        do {
            try scan(json, read)
            return nil
        } catch {
            return error as? JSONScanError
        }
    }

    func testStringsDecodeEveryEscape() throws {
        XCTAssertEqual(try string(#""plain""#), "plain")
        XCTAssertEqual(try string(#""\" \\ \/ \b \f \n \r \t""#), "\" \\ / \u{08} \u{0C} \n \r \t")
        XCTAssertEqual(try string(#""\u00e9\u00E9 ü""#), "éé ü")
        XCTAssertEqual(try string(#""a\ud83d\ude00b""#), "a😀b", "a surrogate pair is one scalar")
        XCTAssertEqual(try string(#""\u0000""#), "\u{0}")
        XCTAssertEqual(try string(#"  "x" "#), "x", "leading whitespace is skipped")
    }

    func testStringRefusalsNameTheByte() {
        let cases: [(String, Int, String)] = [
            (#""ab"#, 0, "unterminated"),
            (#""a\"#, 0, "unterminated"),
            (#""ab\ud800""#, 3, "unpaired surrogate"),
            (#""\ud800\u0041""#, 1, "unpaired surrogate"),
            (#""\udc00""#, 1, "unpaired surrogate"),
            (#""x\q""#, 2, "invalid escape \\'q'"),
            (#""\u12G4""#, 1, "invalid \\u escape"),
            ("\"a\u{1}b\"", 2, "control character"),
            ("\"a\tb\"", 2, "control character"),
            ("\"a\\n\u{1}\"", 4, "control character"),
            ("x", 0, "expected a string"),
        ]
        for (json, offset, problem) in cases {
            let e = refusal(json) { _ = try $0.readString() }
            XCTAssertEqual(e?.offset, offset, json)
            XCTAssertTrue(e?.problem.contains(problem) ?? false, "\(json): \(String(describing: e))")
        }
        // Invalid UTF-8 is refused, not replaced by U+FFFD, with or without escapes.
        for bytes in [[0x22, 0x61, 0xFF, 0x22], [0x22, 0x5C, 0x6E, 0xC3, 0x22]] as [[UInt8]] {
            XCTAssertThrowsError(
                try bytes.withUnsafeBytes { raw in
                    var s = JSONScanner(raw)
                    return try s.readString()
                }
            ) { XCTAssertTrue("\($0)".contains("not valid UTF-8"), "\($0)") }
        }
    }

    func testNumbersFollowJSONGrammar() throws {
        XCTAssertEqual(try number("0"), 0)
        XCTAssertEqual(try number("-0").sign, .minus)
        XCTAssertEqual(try number("1404"), 1404)
        XCTAssertEqual(try number("0.9012"), 0.9012)
        XCTAssertEqual(try number("-1.5e-3"), -0.0015)
        XCTAssertEqual(try number("1E+2"), 100)
        XCTAssertEqual(try number("1764000000.1"), 1_764_000_000.1)
        XCTAssertEqual(try number("123456789012345678901234567890"), 1.2345678901234568e29)
        XCTAssertEqual(try number("4.9406564584124654e-324"), .leastNonzeroMagnitude)
        XCTAssertEqual(try number("1.7976931348623157e308"), .greatestFiniteMagnitude)
        for (json, offset, problem) in [
            ("01", 0, "leading zero"), ("-", 1, "malformed"), ("1.", 2, "no digits after '.'"), ("1e", 2, "exponent"),
            ("1e+", 3, "exponent"), (".5", 0, "malformed"), ("+1", 0, "malformed"), ("1e400", 0, "too large for a Double"),
            ("-1e400", 0, "out of its range"),
        ] {
            let e = refusal(json) { _ = try $0.readNumber() }
            XCTAssertEqual(e?.offset, offset, json)
            XCTAssertTrue(e?.problem.contains(problem) ?? false, "\(json): \(String(describing: e))")
        }
        // The grammar stops where JSON's does: "0x10" is the number 0 followed by other text.
        XCTAssertEqual(try scan("0x10") { s in try [s.readNumber(), Double(s.offset)] }, [0, 1])
    }

    /// The fast path (exact digits times an exact power of ten) and strtod agree with Swift's own
    /// correctly rounded `Double(String)` on random decimals of every length and exponent.
    func testNumbersRoundCorrectly() throws {
        var rng = SplitMix64(seed: 0x4A53_4F4E)
        for _ in 0..<20000 {
            let digits = 1 + Int(rng.next() % 20)
            var text = (rng.next() % 2 == 0 ? "-" : "") + String(1 + rng.next() % 9)
            for _ in 1..<digits { text += String(rng.next() % 10) }
            if rng.next() % 2 == 0 {
                let point = 1 + Int(rng.next() % UInt64(digits))
                if point < digits { text.insert(".", at: text.index(text.endIndex, offsetBy: -(digits - point))) }
            }
            if rng.next() % 3 == 0 { text += "e" + String(Int(rng.next() % 80) - 40) }
            XCTAssertEqual(try number(text), Double(text)!, text)
        }
        for _ in 0..<20000 {
            let x = Double(bitPattern: rng.next())
            guard x.isFinite else { continue }
            XCTAssertEqual(try number(x.description), x, x.description)
        }
    }

    func testValuesLiteralsAndStructure() throws {
        XCTAssertEqual(try scan(" true") { try $0.readBool() }, true)
        XCTAssertEqual(try scan("false") { try $0.readBool() }, false)
        XCTAssertEqual(try scan(" null ,") { s in (s.consumeNull(), s.consume(UInt8(ascii: ","))) }.0, true)
        XCTAssertEqual(refusal("True") { _ = try $0.readBool() }?.offset, 0)
        let kinds: [(String, JSONScanner.ValueKind)] = [
            ("{", .object), ("[", .array), ("\"", .string), ("-1", .number), ("7", .number), ("t", .true), ("f", .false),
            ("n", .null),
        ]
        for (json, kind) in kinds { XCTAssertEqual(try scan(json) { try $0.peekValue() }, kind, json) }
        for (json, problem) in [
            ("NaN", "bare NaN"), ("Infinity", "bare NaN or Infinity"), ("-Infinity", "-Infinity"), ("'", "'''"),
        ] {
            XCTAssertTrue(refusal(json) { _ = try $0.peekValue() }?.problem.contains(problem) ?? false, json)
        }
        // skipValue reads nested values whole and stops after them.
        let rest = try scan(#" {"a": [1, {"b": "\u00e9"}, null, true], "c": -2e3} ,"#) { s -> Bool in
            try s.skipValue()
            return s.consume(UInt8(ascii: ","))
        }
        XCTAssertTrue(rest)
        XCTAssertEqual(refusal("[[[1]]]") { try $0.skipValue(maxDepth: 2) }?.problem, "nested too deeply")
        XCTAssertEqual(refusal("[1 2]") { try $0.skipValue() }?.offset, 3)
        // A byte order mark is skipped, and offsets count it.
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("[1,]".utf8)
        let e = bom.withUnsafeBytes { raw -> JSONScanError? in
            var s = JSONScanner(raw)
            do {
                try s.skipValue()
                return nil
            } catch { return error as? JSONScanError }
        }
        XCTAssertEqual(e?.offset, 6)
    }

    func testNumbersAreWrittenOneWay() {
        let cases: [(Double, String)] = [
            (3, "3"), (-0.0, "0"), (-12, "-12"), (0.9012, "0.9012"), (1e-5, "1e-05"), (1_764_000_000.12, "1764000000.12"),
            (1e17, "100000000000000000"), (1e18, "1e+18"), (.nan, #""NaN""#), (.infinity, #""Infinity""#),
            (-.infinity, #""-Infinity""#), (Double(Int64.max), "9.223372036854776e+18"),
        ]
        for (x, text) in cases { XCTAssertEqual(JSONText.number(x), text, "\(x)") }
        var rng = SplitMix64(seed: 7)
        for _ in 0..<10000 {
            let x = Double(bitPattern: rng.next())
            guard x.isFinite else { continue }
            XCTAssertEqual(try number(JSONText.number(x)), x == 0 ? 0 : x)
        }
        var out: [UInt8] = []
        for k: Int64 in [0, 9, 10, -1, Int64.max, Int64.min] {
            out.removeAll()
            JSONText.appendInteger(k, to: &out)
            XCTAssertEqual(String(decoding: out, as: UTF8.self), String(k))
        }
    }

    func testStringsAreWrittenAndReadBack() throws {
        XCTAssertEqual(JSONText.string("a\"b\\c\n\u{1}/é"), #""a\"b\\c\n\u0001/é""#)
        var rng = SplitMix64(seed: 11)
        for _ in 0..<2000 {
            let scalars = (0..<Int(rng.next() % 12)).compactMap { _ -> Unicode.Scalar? in
                let pick = rng.next()
                return Unicode.Scalar(UInt32(pick % 4 == 0 ? pick % 0x20 : pick % 3 == 0 ? pick % 0x11_0000 : pick % 0x80))
            }
            var text = ""
            text.unicodeScalars.append(contentsOf: scalars)
            XCTAssertEqual(try string(JSONText.string(text)), text)
        }
    }
}
