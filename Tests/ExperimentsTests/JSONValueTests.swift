import XCTest

@testable import Experiments

final class JSONValueTests: XCTestCase {
    func testParsesEveryKindOfValue() throws {
        let v = try JSONValue.parse(
            #"{"a": null, "b": true, "c": false, "d": -12.5e1, "e": "x\"\u00e9\ud83d\ude00\n", "f": [1, [2], {}]}"#)
        XCTAssertEqual(
            v,
            .object([
                "a": .null, "b": .bool(true), "c": .bool(false), "d": .number(-125), "e": .string("x\"é😀\n"),
                "f": .array([.number(1), .array([.number(2)]), .object([:])]),
            ]))
    }

    func testBoolsAreNotNumbers() throws {
        XCTAssertEqual(try JSONValue.parse("[true, 1, 0, false]"), [.bool(true), 1, 0, .bool(false)])
    }

    func testIntegersStayExactAndAreWrittenWithoutFraction() throws {
        let v = try JSONValue.parse("[9007199254740992, 3, 2.0, -7, 0.1, 5e-4]")
        XCTAssertEqual(v, [.number(9_007_199_254_740_992), 3, 2, -7, 0.1, 0.0005])
        XCTAssertEqual(v.text(), "[9007199254740992,3,2,-7,0.1,0.0005]")
    }

    func testWritesNonFiniteNumbersAsStrings() {
        let v: JSONValue = [.number(.nan), .number(.infinity), .number(-.infinity), JSONValue(Double.nan)]
        XCTAssertEqual(v.text(), #"["NaN","Infinity","-Infinity","NaN"]"#)
        XCTAssertEqual(JSONValue(-Double.infinity), .string("-Infinity"))
        XCTAssertEqual(JSONValue(1.5), .number(1.5))
    }

    func testRoundTripsThroughText() throws {
        let v: JSONValue = [
            "z": [1, 2.5, "a\u{1}b\\"], "a": ["nested": ["deep": .null]], "m": [["x": true], []], "e": [:],
        ]
        XCTAssertEqual(try JSONValue.parse(v.data()), v)
        XCTAssertEqual(try JSONValue.parse(v.data(pretty: true)), v)
        XCTAssertEqual(v.text(), #"{"a":{"nested":{"deep":null}},"e":{},"m":[{"x":true},[]],"z":[1,2.5,"a\u0001b\\"]}"#)
    }

    func testPrettyOutputKeepsScalarListsOnOneLine() {
        let v: JSONValue = ["grid": [24, 28], "o": ["k": 1]]
        XCTAssertEqual(v.text(pretty: true), "{\n  \"grid\": [24, 28],\n  \"o\": {\n    \"k\": 1\n  }\n}")
    }

    func testRefusesInvalidJSONWithPosition() {
        for text in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "tru", "\"abc", "[1] x", "{\"a\":1,\"a\":2}", "1e400", "'a'"] {
            XCTAssertThrowsError(try JSONValue.parse(text), text) { error in
                let e = error as? SpecError
                XCTAssertNotNil(e, text)
                XCTAssertTrue(e?.message.hasPrefix("is not valid JSON (line ") ?? false, "\(text): \(String(describing: e))")
            }
        }
    }

    func testBareNaNNamesTheField() {
        let text = "{\"optim\": {\n  \"lr\": NaN}}"
        XCTAssertThrowsError(try JSONValue.parse(text)) { error in
            let e = error as! SpecError
            XCTAssertEqual(e.field, "optim.lr")
            XCTAssertTrue(e.message.contains("line 2, column 9"), e.message)
            XCTAssertTrue(e.description.hasPrefix("optim.lr is not valid JSON"), e.description)
        }
        XCTAssertThrowsError(try JSONValue.parse(#"{"averaging": [{"decays": [0.9, -Infinity]}]}"#)) { error in
            XCTAssertEqual((error as! SpecError).field, "averaging[0].decays[1]")
        }
        XCTAssertThrowsError(try JSONValue.parse("Infinity")) { error in
            XCTAssertEqual((error as! SpecError).field, "")
            XCTAssertTrue((error as! SpecError).description.hasPrefix("document is not valid JSON"))
        }
    }

    func testMergeDeepMergesObjectsAndReplacesListsAndScalars() {
        let base: JSONValue = [
            "optim": ["epochs": 10, "lr": 0.1, "milestones": [3, 6]],
            "averaging": [["kind": "ema", "decays": [0.99, 0.999]]],
            "distillation": ["teacher_run": 3],
            "name": "base",
        ]
        let preset: JSONValue = ["averaging": ["kind": "swa"], "optim": ["milestones": [5]]]
        let variant: JSONValue = ["optim": ["lr": 0.05], "distillation": .null, "model": ["width": 8]]
        XCTAssertEqual(
            base.merged(with: preset).merged(with: variant),
            [
                "optim": ["epochs": 10, "lr": 0.05, "milestones": [5]],
                "averaging": ["kind": "swa"],
                "distillation": .null,
                "name": "base",
                "model": ["width": 8],
            ])
    }

    func testMergeOfNonObjectsReplaces() {
        XCTAssertEqual(JSONValue.number(1).merged(with: ["a": 1]), ["a": 1])
        XCTAssertEqual((["a": 1] as JSONValue).merged(with: [1, 2]), [1, 2])
        XCTAssertEqual((["a": ["b": 1]] as JSONValue).merged(with: ["a": [:]]), ["a": ["b": 1]])
    }
}
