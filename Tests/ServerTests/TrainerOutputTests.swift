import Experiments
import Foundation
import Logging
import Store
import XCTest

@testable import Server

/// `TrainerOutput` against a real SQLite file: a trainer's stdout, cut into chunks anywhere (one
/// byte, inside a UTF-8 character, at random), stores the same rows as when it comes whole.
final class TrainerOutputTests: XCTestCase {
    /// Everything the trainer prints, with two lines that are not events and a metric key in
    /// several scripts (multi-byte UTF-8 that a cut can split).
    static func stream(directory: String) throws -> [UInt8] {
        try FileManager.default.createDirectory(atPath: directory + "/checkpoints", withIntermediateDirectories: true)
        // The newest checkpoint and the export are on disk; the first checkpoint was rotated away.
        try Data("ckpt".utf8).write(to: URL(fileURLWithPath: directory + "/checkpoints/step-16.ckpt"))
        try Data("weights".utf8).write(to: URL(fileURLWithPath: directory + "/ema.safetensors"))
        var events: [TrainerEvent] = []
        for step in 1...40 {
            for weights in ["raw", "ema"] {
                events.append(
                    .metric(
                        MetricPoint(
                            key: step % 3 == 0 ? "test/top1 ✓ δ" : "train/loss", weights: weights, step: Int64(step),
                            epoch: Int64(step / 8), value: step == 7 ? .nan : Double(step) / 7, time: 1000 + Double(step))))
            }
            if step % 8 == 0 {
                events.append(
                    .progress(.init(epoch: step / 8, step: step, totalSteps: 40, imagesPerSecond: 12.5, etaSeconds: 3, time: 1)))
            }
        }
        events.insert(.checkpoint(.init(epoch: 1, step: 8, file: "checkpoints/step-8.ckpt", bytes: 4, sha256: "aa")), at: 30)
        events.insert(.checkpoint(.init(epoch: 2, step: 16, file: "checkpoints/step-16.ckpt", bytes: 4, sha256: "bb")), at: 50)
        events.append(.warning(.init(code: "nan_loss", weights: "raw", message: "loss was NaN at step 7 — ignored")))
        events.append(
            .grid(.init(weights: "ema", stage: .base, trainSize: 28, resize: 32, crop: 28, top1: 0.8, top5: 0.99, loss: 0.4)))
        events.append(
            .grid(.init(weights: "ema", stage: .finetuned, trainSize: nil, resize: 36, crop: 32, top1: 0.81, top5: 1, loss: 0.3)))
        events.append(
            .summary(
                .init(
                    status: .completed, reason: nil, steps: 40, wallSeconds: 2, imagesPerSecond: 10,
                    final: ["ema": .init(top1: 0.8, top5: 0.99, loss: 0.4)], exports: ["ema": "ema.safetensors"])))
        var lines = events.map(\.line)
        lines.insert("Loading data… ✓", at: 3)
        lines.insert(#"{"type": "metric", "key":"#, at: 60)
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    struct Stored: Equatable {
        /// As text, so that NaN equals NaN.
        var points: [String]
        var progress: String?
        var summary: String?
        var warnings: String
        var grid: [GridCell]
        var artifacts: [Artifact]
        var summaryStatus: String?
        var garbageCount: Int?
    }

    /// Feeds `bytes` cut at `cuts` into a fresh database and reads back what was stored.
    func feed(_ bytes: [UInt8], cuts: [Int], folder: TempFolder, directory: String) throws -> Stored {
        let store = try TrackingStore(path: folder.url.appendingPathComponent("\(UUID().uuidString).sqlite").path)
        let run = try store.createRun(NewRun(name: "out", specJSON: "{}", codeVersion: "test"))
        var output = TrainerOutput(
            runID: run.id, store: store, hub: EventHub(), directory: directory, logger: Logger(label: "test"))
        var start = 0
        var events = 0
        for cut in cuts + [bytes.count] where cut > start {
            events += output.consume(bytes[start..<cut])
            start = cut
        }
        output.finish()
        XCTAssertEqual(events, 91, "events counted over the chunks")
        let record = try XCTUnwrap(try store.run(run.id))
        return Stored(
            points: try store.points(run: run.id).map {
                "\($0.key) \($0.weights) \($0.step) \($0.epoch ?? -1) \($0.value) \($0.time)"
            }
            .sorted(),
            progress: record.progressJSON, summary: record.summaryJSON, warnings: record.warningsJSON,
            grid: try store.grid(run: run.id), artifacts: try store.artifacts(run: run.id).sorted { $0.name < $1.name },
            summaryStatus: output.summaryStatus, garbageCount: output.garbage?.count)
    }

    func testChunkBoundariesDoNotChangeWhatIsStored() throws {
        let folder = try TempFolder()
        let directory = folder.url.appendingPathComponent("run").path
        let bytes = try Self.stream(directory: directory)
        let whole = try feed(bytes, cuts: [], folder: folder, directory: directory)

        // The whole stream, checked on its own terms first.
        XCTAssertEqual(whole.points.count, 80)
        XCTAssertTrue(whole.points.contains("train/loss raw 7 0 nan 1007.0"), "\(whole.points)")
        XCTAssertEqual(whole.points.filter { $0.hasPrefix("test/top1 ✓ δ ema ") }.count, 13)
        XCTAssertEqual(try JSONValue.parse(XCTUnwrap(whole.progress))["step"]?.intValue, 40)
        XCTAssertEqual(whole.summaryStatus, "completed")
        XCTAssertEqual(try JSONValue.parse(XCTUnwrap(whole.summary))["exports"]?["ema"]?.stringValue, "ema.safetensors")
        XCTAssertEqual(whole.grid.map(\.stage), ["base", "finetuned"])
        XCTAssertEqual(whole.artifacts.map(\.name), ["checkpoint:step-16.ckpt", "ema"], "the rotated checkpoint is gone")
        XCTAssertEqual(whole.artifacts.last?.bytes, 7)
        XCTAssertEqual(whole.garbageCount, 2)
        let warnings = try JSONValue.parse(whole.warnings)
        XCTAssertEqual(warnings.count, 2)
        XCTAssertEqual(warnings[0]?["code"]?.stringValue, "nan_loss")
        XCTAssertEqual(warnings[1]?["code"]?.stringValue, "undecodable_output")
        XCTAssertTrue(warnings[1]?["message"]?.stringValue?.hasPrefix("2 line(s)") == true, whole.warnings)
        XCTAssertTrue(warnings[1]?["message"]?.stringValue?.hasSuffix("the first: Loading data… ✓") == true, whole.warnings)

        // Every byte its own chunk, then fixed and random sizes.
        XCTAssertEqual(
            try feed(bytes, cuts: Array(1..<bytes.count), folder: folder, directory: directory), whole, "1-byte chunks")
        let ellipsis = try XCTUnwrap(bytes.firstIndex(of: 0xE2))  // a 3-byte character, cut inside twice
        XCTAssertEqual(try feed(bytes, cuts: [ellipsis + 1, ellipsis + 2], folder: folder, directory: directory), whole)
        for size in [7, 64, 4096] {
            let cuts = Array(stride(from: size, to: bytes.count, by: size))
            XCTAssertEqual(try feed(bytes, cuts: cuts, folder: folder, directory: directory), whole, "\(size)-byte chunks")
        }
        var random = SplitMix(seed: 15)
        for round in 0..<5 {
            let cuts = (0..<40).map { _ in Int(random.next() % UInt64(bytes.count)) }.sorted()
            XCTAssertEqual(
                try feed(bytes, cuts: cuts, folder: folder, directory: directory), whole, "random cuts, round \(round)")
        }
    }

    /// A line past `maxLine` is one undecodable line wherever the chunks end, and the events after
    /// it are stored.
    func testAnOverlongLineCountsOnceWhateverTheChunks() throws {
        let folder = try TempFolder()
        let directory = folder.url.appendingPathComponent("run").path
        let metric = TrainerEvent.metric(MetricPoint(key: "train/loss", step: 1, value: 0.5, time: 1)).line
        let bytes = Array((String(repeating: "x", count: TrainerOutput.maxLine + 5000) + "\n" + metric + "\n").utf8)
        for size in [bytes.count, 65_536, 1_000_000] {
            let store = try TrackingStore(path: folder.url.appendingPathComponent("\(size).sqlite").path)
            let run = try store.createRun(NewRun(name: "long", specJSON: "{}", codeVersion: "test"))
            var output = TrainerOutput(
                runID: run.id, store: store, hub: EventHub(), directory: directory, logger: Logger(label: "test"))
            for start in stride(from: 0, to: bytes.count, by: size) {
                output.consume(bytes[start..<min(bytes.count, start + size)])
            }
            output.finish()
            XCTAssertEqual(output.garbage?.count, 1, "\(size)-byte chunks")
            XCTAssertEqual(output.garbage?.first, String(repeating: "x", count: 200))
            XCTAssertEqual(try store.points(run: run.id).map(\.value), [0.5], "\(size)-byte chunks")
        }
    }
}

/// SplitMix64: reproducible cut points.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
