import Experiments
import Foundation
import PolyakTestSupport
import XCTest

@testable import Server

/// `runs/log-batch`'s byte-level reader (``MLflowBatchReader``) against the tree-based reading it
/// replaced (the body parsed into a `JSONValue`, then ``MLflowArgs``), kept here as the reference:
/// on every body both give the same batch, or the same refusal (code, status and message), in the
/// same order of checks whatever the order of the members.
extension ParserPropertyTests {
    func testMLflowLogBatchReaderAgreesWithTheTreeOnHandWrittenBodies() throws {
        let deep = { (levels: Int) in String(repeating: "[", count: levels) + String(repeating: "]", count: levels) }
        let longKey = String(repeating: "k", count: 251)
        let bodies = [
            "", " ", "{}", "[]", "null", "{} x", "{\"run_id\": \"1\"}", "{\"run_uuid\": \"2\"}",
            #"{"run_id": null, "run_uuid": "3"}"#, #"{"run_id": 3}"#, #"{"run_id": ""}"#, #"{"run_id": "1", "run_id": "1"}"#,
            #"{"run_id": "1", "metrics": null, "params": null, "tags": null}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 5, "step": 2}]}"#,
            #"{"metrics": [{"step": "7", "timestamp": " 12 ", "value": "NaN", "key": "a:ema@0.999"}], "run_id": "4"}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": "inf", "timestamp": 1}, {"key": "m", "value": "-Infinity", "timestamp": 2, "step": 1}, {"key": "m", "value": "1e3", "timestamp": 3, "step": 2}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "tr\u0061in", "value": 1, "timestamp": 1}, {"k\u0065y": "train", "value": 2, "timestamp": 2, "step": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "a", "value": 1, "timestamp": 1}, {"key": "b", "value": 1, "timestamp": 1}, {"key": "a", "value": 1, "timestamp": 1, "step": 3}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1, "extra": {"a": [1, {"b": null}]}, "more": true}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1, "extra": {"a": 1, "a": 2}}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1, "key": "m"}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1, "x": 1, "x": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": 5, "value": 1, "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "", "value": 1, "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "\#(longKey)", "value": 1, "timestamp": 1}, {"key": "\#(longKey)", "value": 1, "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"value": 1, "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": "x", "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": [1], "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": true, "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": -1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1.5}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1e300}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": "x"}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": {"a": 1}}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": -4}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1}, 7, {"key": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": 1}], "params": 7}"#,
            #"{"tags": [{"key": "a"}], "params": [{"value": "b"}], "run_id": "1"}"#,
            #"{"tags": [{"key": "a", "value": 1}], "run_id": 1}"#,
            #"{"run_id": "1", "params": [{"key": "lr", "value": "0.1"}, {"key": "lr", "value": "0.2"}]}"#,
            #"{"run_id": "1", "params": [{"key": "lr", "value": "0.1"}, {"key": "lr", "value": "0.1"}], "tags": [{"key": "polyak.seed", "value": "x"}]}"#,
            #"{"run_id": "1", "tags": [{"key": "polyak.seed", "value": "-1"}], "metrics": [{"key": "m", "value": 1}]}"#,
            #"{"run_id": "1", "tags": [{"key": "polyak.variant", "value": "ema", "note": [1, 2]}, {"key": "", "value": "x"}]}"#,
            #"{"run_id": "1", "params": [[]], "tags": [null]}"#,
            #"{"run_id": "1", "metrics": "m"}"#, #"{"run_id": "1", "metrics": {}}"#,
            "{\"run_id\": \"1\", \"unknown\": \(deep(255))}", "{\"run_id\": \"1\", \"unknown\": \(deep(256))}",
            "{\"run_id\": \"1\", \"metrics\": [{\"key\": \"m\", \"value\": 1, \"timestamp\": 1, \"x\": \(deep(253))}]}",
            "{\"run_id\": \"1\", \"metrics\": [{\"key\": \"m\", \"value\": 1, \"timestamp\": 1, \"x\": \(deep(254))}]}",
            "{\"run_id\": \"1\", \"metrics\": [\(deep(254))]}", "{\"run_id\": \"1\", \"metrics\": [\(deep(255))]}",
            "\u{FEFF}{\"run_id\": \"1\"}", #"{"run_id": "1", "metrics": [{"key": "m", "value": NaN, "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1}],}"#,
            #"{"run_id": "1", "metrics": [{"key": "m\ud800", "value": 1, "timestamp": 1}]}"#,
            #"{"run_id": "1", "metrics": [{"key": "m", "value": 1, "timestamp": 1} {"key": "m"}]}"#,
        ]
        for body in bodies { try assertSameReading(Array(body.utf8)) }
        // The caps: 1 001 metrics, 101 params or tags, 1 000 entities in all, and the byte cap.
        let metric = #"{"key": "m", "value": 1, "timestamp": 1, "step": 0}"#
        let param = { (i: Int) in #"{"key": "p\#(i)", "value": "v"}"# }
        for (metrics, params, tags) in [(1001, 0, 0), (1000, 0, 0), (0, 101, 0), (0, 0, 101), (900, 100, 1), (0, 100, 100)] {
            let body =
                #"{"run_id": "1", "metrics": [\#(Array(repeating: metric, count: metrics).joined(separator: ","))], "#
                + #""params": [\#((0..<params).map(param).joined(separator: ","))], "#
                + #""tags": [\#((0..<tags).map(param).joined(separator: ","))]}"#
            try assertSameReading(Array(body.utf8))
        }
        let padded = #"{"run_id": "1", "pad": "\#(String(repeating: "x", count: 1_000_000))"}"#
        try assertSameReading(Array(padded.utf8))
    }

    /// Bodies put together from valid and invalid parts in random order, then mutated byte by byte:
    /// the two readers agree on every one, and on the refusals' order when several parts are wrong.
    func testMLflowLogBatchReaderAgreesWithTheTreeOnGeneratedBodies() throws {
        var rng = SplitMix64(seed: 0x5EED_0018)
        let keys = [
            #""train/loss""#, #""test/top1:ema@0.998""#, #""tr\u0061in/loss""#, #""""#, "7", "null", #""a:""#, #"":b""#,
            "[\"k\"]",
        ]
        let values = ["0.25", "-3", "\"NaN\"", "\"Infinity\"", "\"-inf\"", "\"2.5\"", "\"x\"", "true", "null", "1e5", "{}"]
        let integers = ["12", "\"13\"", "\" 14 \"", "-1", "1.5", "\"x\"", "null", "[1]", "9007199254740993", "0"]
        let strings = [#""lr""#, #""0.1""#, #""polyak.seed""#, #""polyak.variant""#, #""5""#, #""""#, "3", "null", #""ema""#]
        func pick(_ list: [String]) -> String { list[Int(rng.next() % UInt64(list.count))] }
        func members(_ parts: [(String, [String])]) -> String {
            var chosen = parts.filter { _ in rng.next() % 6 != 0 }.map { "\"\($0.0)\": \(pick($0.1))" }
            if rng.next() % 8 == 0 { chosen.append(#""extra": [1, {"x": null}]"#) }
            chosen.shuffle(using: &rng)
            return "{" + chosen.joined(separator: ", ") + "}"
        }
        var seeds: [[UInt8]] = []
        for _ in 0..<600 {
            let metrics = (0..<Int(rng.next() % 6)).map { _ in
                rng.next() % 20 == 0
                    ? pick(["1", "null", "[]"])
                    : members([("key", keys), ("value", values), ("timestamp", integers), ("step", integers)])
            }
            let pairs = { (n: Int) in
                (0..<n).map { _ in rng.next() % 20 == 0 ? "2" : members([("key", strings), ("value", strings)]) }
            }
            var top = [
                "\"run_id\": \(pick(["\"1\"", "\"1\"", "\"1\"", "1", "null", "\"\""]))",
                "\"metrics\": [\(metrics.joined(separator: ", "))]",
                "\"params\": [\(pairs(Int(rng.next() % 3)).joined(separator: ", "))]",
                "\"tags\": [\(pairs(Int(rng.next() % 3)).joined(separator: ", "))]",
            ].filter { _ in rng.next() % 7 != 0 }
            if rng.next() % 10 == 0 { top.append("\"run_uuid\": \(pick(["\"2\"", "2"]))") }
            top.shuffle(using: &rng)
            seeds.append(Array(("{" + top.joined(separator: ", ") + "}").utf8))
        }
        var accepted = 0
        for (i, seed) in seeds.enumerated() {
            if try assertSameReading(seed) { accepted += 1 }
            try assertSameReading(mutate(seed, &rng))
            if i % 3 == 0 { try assertSameReading(rng.bytes(count: Int(rng.next() % 48))) }
        }
        XCTAssertGreaterThan(accepted, 20, "the generator should make some valid batches")
        XCTAssertLessThan(accepted, seeds.count, "and some refused ones")
    }

    // MARK: The reference

    /// Both readings of `bytes`; fails the test where they differ. True when the batch was accepted.
    @discardableResult
    func assertSameReading(_ bytes: [UInt8], line: UInt = #line) throws -> Bool {
        let fast = Result { try bytes.withUnsafeBytes { try MLflowBatchReader.read($0) } }
        let tree = Result { try Self.treeRead(bytes) }
        let text = String(decoding: bytes.prefix(400), as: UTF8.self)
        switch (fast, tree) {
        case (.success(let a), .success(let b)):
            XCTAssertEqual(a.runID, b.runID, text, line: line)
            XCTAssertEqual(a.points, b.points, text, line: line)
            XCTAssertEqual(a.params.map { [$0.key, $0.value] }, b.params.map { [$0.key, $0.value] }, text, line: line)
            XCTAssertEqual(a.tags.map { [$0.key, $0.value] }, b.tags.map { [$0.key, $0.value] }, text, line: line)
            return true
        case (.failure(let a), .failure(let b)):
            guard let a = a as? MLflowError, let b = b as? MLflowError else {
                XCTFail("not MLflow's refusals: \(a) / \(b) for \(text)", line: line)
                return false
            }
            XCTAssertEqual(a.code, b.code, text, line: line)
            XCTAssertEqual(a.status, b.status, text, line: line)
            XCTAssertEqual(a.message, b.message, text, line: line)
            return false
        case (.success, .failure(let e)):
            XCTFail("the byte reader accepted what the tree refused (\(e)): \(text)", line: line)
        case (.failure(let e), .success):
            XCTFail("the byte reader refused what the tree accepted (\(e)): \(text)", line: line)
        }
        return false
    }

    /// log-batch as the routes read it before ``MLflowBatchReader``: a `JSONValue` tree, then ``MLflowArgs``.
    static func treeRead(_ bytes: [UInt8]) throws -> MLflowBatch {
        var a = MLflowArgs(json: [:])
        if !bytes.isEmpty {
            let value: JSONValue
            do { value = try JSONValue.parse(Data(bytes)) } catch let e as SpecError {
                throw MLflowError(.badRequest, "Malformed JSON body: \(e.message)")
            }
            guard case .object(let members) = value else {
                throw MLflowError(.badRequest, "The request body must be a JSON object")
            }
            a = MLflowArgs(json: members)
        }
        if bytes.count > MLflowService.maxBatchBytes {
            throw MLflowError.invalid(
                "Batched logging API requests must be at most \(MLflowService.maxBatchBytes) bytes, got a request of size \(bytes.count)."
            )
        }
        let metricArgs = try a.array("metrics").enumerated().map { i, item in
            guard case .object(let m) = item else {
                throw MLflowError.invalid(MLflowArgs.invalidValue("metrics[\(i)]", item, "must be an object"))
            }
            return MLflowArgs(json: m)
        }
        let params = try a.keyValues("params")
        let tags = try a.keyValues("tags")
        try MLflowService.checkBatchLimit("metrics", MLflowService.maxMetricsPerBatch, metricArgs.count)
        try MLflowService.checkBatchLimit("params", MLflowService.maxParamsTagsPerBatch, params.count)
        try MLflowService.checkBatchLimit("tags", MLflowService.maxParamsTagsPerBatch, tags.count)
        try MLflowService.checkBatchLimit(
            "metrics, params, and tags", MLflowService.maxEntitiesPerBatch, metricArgs.count + params.count + tags.count)
        let points = try metricArgs.enumerated().map { i, m in try MLflowService.point(m, path: "metrics[\(i)].") }
        try MLflowService.checkParams(params)
        try MLflowService.checkTags(tags)
        let id = try a.string("run_id") ?? a.string("run_uuid") ?? ""
        if id.isEmpty { throw MLflowError.missing("run_id") }
        return MLflowBatch(runID: id, points: points, params: params, tags: tags)
    }
}
