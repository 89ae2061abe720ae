import Experiments
import Foundation
import PolyakNetwork
import XCTest

@testable import Server

/// The three readers built on the one scanner: what each makes of escapes and of bytes that are not
/// JSON, and that each names the place (a field, a line and column, a header byte).
final class ScannerReadersTests: XCTestCase {
    func refusal(_ body: String) -> APIError? {
        do {
            _ = try MetricBatchReader.parse(Array(body.utf8), now: 0)
            return nil
        } catch {
            return error as? APIError
        }
    }

    func testMetricBatchReadsEscapesItself() throws {
        let body =
            #"{"metrics": [{"key": "a\/b \"q\" \u00e9 \ud83d\ude00\n", "step": 1, "value": "NaN", "weights": "ema\u00400.9"}]}"#
        let p = try XCTUnwrap(try MetricBatchReader.parse(Array(body.utf8), now: 5).first)
        XCTAssertEqual(p.key, "a/b \"q\" é 😀\n")
        XCTAssertEqual(p.weights, "ema@0.9")
        XCTAssertTrue(p.value.isNaN)
        XCTAssertEqual(p.time, 5)
        let lone = try XCTUnwrap(
            refusal(#"{"metrics": [{"key": "x", "step": 1, "value": 1}, {"key": "\ud800", "step": 1, "value": 1}]}"#))
        XCTAssertEqual(lone.field, "metrics[1].key")
        XCTAssertTrue(lone.message.contains("at byte 59: an unpaired surrogate"), lone.message)
        let bad = try XCTUnwrap(refusal(#"{"metrics": [{"key": "x", "step": 1, "value": 1.}]}"#))
        XCTAssertEqual(bad.field, "metrics[0].value")
        XCTAssertTrue(bad.message.contains("no digits after '.'"), bad.message)
        XCTAssertEqual(
            refusal(#"{"metrics": [{"key": "x", "step": 1, "value": true}]}"#)?.message, "metrics[0].value must be a number")
        XCTAssertEqual(refusal(#"{"metrics": [{"key": "x" "step": 1}]}"#)?.field, "metrics[0].key")
        XCTAssertEqual(refusal(#"{"metrics": [{"key": "x", "step": 1, "value": 1} {}]}"#)?.field, "metrics[0]")
        XCTAssertEqual(refusal(#"{"metrics": [], "metrics": []}"#)?.message, "metrics appears twice")
    }

    func testSpecParserCountsLinesOverEscapes() {
        XCTAssertThrowsError(try JSONValue.parse("{\"name\": \"\\u00e9\\ud83d\\ude00\",\n \"seed\": \"\\x\"}")) { error in
            let e = error as! SpecError
            XCTAssertEqual(e.field, "seed")
            XCTAssertTrue(e.message.contains("line 2, column 11"), e.message)
            XCTAssertTrue(e.message.contains("invalid escape"), e.message)
        }
        XCTAssertEqual(try JSONValue.parse(#"{"a": "\ud83d\ude00", "b": [1e2, -0.5]}"#), ["a": "😀", "b": [100, -0.5]])
    }

    func header(_ json: String, data: Int = 0) -> Data {
        var out = Data()
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: Array(json.utf8))
        out.append(Data(count: data))
        return out
    }

    func testSafetensorsHeaderThroughTheScanner() throws {
        // Escaped names, unknown members skipped, metadata anywhere, trailing padding.
        let file = try SafetensorsFile.decode(
            header(
                #"{"b\u002ew": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16], "extra": {"x": [1, null]}}, "__metadata__": {"format": "pt"}, "a": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}}   "#,
                data: 16))
        XCTAssertEqual(file.tensors.map(\.name), ["a", "b.w"])
        XCTAssertEqual(file.metadata, ["format": "pt"])
        // Names and metadata that need escaping survive a round trip.
        let named = SafetensorsFile(
            tensors: [.init(name: "w \"1\"/é\n", floats: [1, 2], shape: [2])], metadata: ["note": "a\\b\t\u{1}"])
        let back = try SafetensorsFile.decode(named.encoded())
        XCTAssertEqual(back.tensors.first?.name, "w \"1\"/é\n")
        XCTAssertEqual(back.metadata, named.metadata)
        let refusals: [(String, String)] = [
            (#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}"#, "a appears twice"),
            (#"{"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#, "tensor a: malformed entry"),
            (#"{"a": {"dtype": "F32", "shape": [1]}}"#, "tensor a: malformed entry"),
            (#"{"__metadata__": {"k": 1}}"#, "__metadata__ must map strings to strings"),
            (#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},}"#, "header byte 61: expected a string"),
            (#"[]"#, "header byte 0: expected '{'"),
            (#"{"a": {"dtype": "F32", "shape": [NaN]}}"#, "header byte 33: a bare NaN"),
        ]
        for (json, problem) in refusals {
            XCTAssertThrowsError(try SafetensorsFile.decode(header(json, data: 4)), json) { error in
                XCTAssertTrue((error as? SafetensorsError)?.problem.contains(problem) ?? false, "\(json): \(error)")
            }
        }
    }
}
