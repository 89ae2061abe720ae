import XCTest

@testable import Experiments

final class TrainerEventTests: XCTestCase {
    /// One of every case, with the optional parts both present and absent.
    static let examples: [TrainerEvent] = [
        .metric(.init(key: "test/top1", weights: "raw", step: 1404, epoch: 3, value: 0.9012, time: 1_764_000_000.12)),
        .metric(.init(key: "ema/decay", weights: "ema@0.998", step: 7, epoch: 1, value: 0.9957, time: 1_764_000_001.5)),
        .progress(
            .init(epoch: 3, step: 1500, totalSteps: 4680, imagesPerSecond: 5400.2, etaSeconds: 75.1, time: 1_764_000_000.25)),
        .warning(.init(code: "ema_horizon", weights: "ema@0.9999", message: "the average spans more steps than the run")),
        .warning(.init(code: "run_wide", weights: nil, message: "quote \" and newline \n survive")),
        .checkpoint(
            .init(
                epoch: 3, step: 1404, file: "checkpoints/epoch-003.safetensors", bytes: 123_456,
                sha256: String(repeating: "ab", count: 32))),
        .grid(.init(weights: "swa", stage: .base, trainSize: 20, resize: 32, crop: 28, top1: 0.91, top5: 0.998, loss: 0.27)),
        .grid(
            .init(
                weights: "raw", stage: .finetuned, trainSize: nil, resize: 28, crop: 28, top1: 0.5, top5: 1, loss: 2.5,
                images: 10000)),
        .summary(
            .init(
                status: .completed, reason: nil, steps: 4680, wallSeconds: 81.25, imagesPerSecond: 5321.7,
                final: [
                    "raw": .init(top1: 0.91, top5: 0.99, loss: 0.3),
                    "ema@0.998/finetuned": .init(top1: 0.92, top5: 0.995, loss: 0.28),
                ],
                exports: ["raw": "final.safetensors", "ema@0.998/finetuned": "ema@0.998.finetuned.safetensors"],
                timing: .init(trainSeconds: 70.5, evalSeconds: ["raw": 3.25, "ema@0.998": 3.5], batchNormSeconds: 0))),
        .summary(
            .init(
                status: .completed, reason: nil, steps: 16, wallSeconds: 2.75, imagesPerSecond: 5000,
                final: ["raw": .init(top1: 0.8, top5: 0.99, loss: 0.5)], exports: ["raw": "final.safetensors"],
                timing: .init(
                    trainSeconds: 1.5, evalSeconds: ["raw": 0.125, "ema@0.998": 0.25], batchNormSeconds: 0,
                    split: .init(
                        wallSeconds: 2.76, setupSeconds: 0.3, teacherSeconds: 0, checkpointSeconds: 0.04,
                        perWeights: [
                            "raw": .init(evalSeconds: 0.125, exportSeconds: 0.01),
                            "ema@0.998": .init(
                                evalSeconds: 0.25, gridSeconds: 0.5, averagingSeconds: 0.031, batchNormSeconds: 0.002,
                                fixResSeconds: 0.1,
                                exportSeconds: 0.011),
                        ])))),
        .summary(.init(status: .failed, reason: "diverged at step 812", steps: 812, wallSeconds: 9.5, imagesPerSecond: 4000)),
        .summary(
            .init(
                status: .cancelled, reason: "stopped by a signal at step 0; resumable from epoch 0", steps: 0,
                wallSeconds: 0.01, imagesPerSecond: 0)),
        .status(.init(status: .running, error: nil)),
        .status(.init(status: .failed, error: "trainer exited with status 2")),
        .posthoc(
            .init(
                sigmaRel: 0.07, decay: 0.99857, weights: "phema@0.07", step: 4690, batchNorm: .synthesized, top1: 0.9112,
                top5: 0.9987, loss: 0.2541)),
        .posthoc(
            .init(
                sigmaRel: 0.05, decay: 0.998, weights: "phema@0.05", step: 4690, batchNorm: .precise, top1: 0.91, top5: 0.998,
                loss: 0.25, seconds: 1.25)),
        .metric(.init(key: "external/loss", weights: "raw", step: 3, epoch: nil, value: 0.5, time: 1_764_000_002)),
    ]

    func testEveryCaseRoundTrips() throws {
        var types = Set<String>()
        for event in Self.examples {
            types.insert(event.type)
            let line = event.line
            XCTAssertEqual(try TrainerEvent.decode(line: line), event, line)
            XCTAssertEqual(try TrainerEvent.decode(line: Array(line.utf8)), event, line)
            XCTAssertEqual(try TrainerEvent.decode(line: Data(line.utf8)), event, line)
            XCTAssertEqual(try TrainerEvent.decode(line: line).line, line)
        }
        XCTAssertEqual(types, ["metric", "progress", "warning", "checkpoint", "grid", "summary", "status", "posthoc"])
    }

    /// Lines exactly as `polyak train` and `polyak eval` wrote them before `TrainerEvent` existed:
    /// decoding then encoding gives the same bytes.
    func testTodaysLinesComeBackByteForByte() throws {
        let lines = [
            #"{"epoch":1,"key":"train/loss","step":8,"time":1764460000.123456,"type":"metric","value":1.6180339887,"weights":"raw"}"#,
            #"{"epoch":2,"key":"test/top1","step":16,"time":1764460001.5,"type":"metric","value":0.8125,"weights":"ema@0.998"}"#,
            #"{"epoch":1,"key":"train/loss","step":3,"time":1764460000.5,"type":"metric","value":"NaN","weights":"raw"}"#,
            #"{"epoch":1,"eta_s":12.3,"images_per_sec":5400.2,"step":8,"time":1764460002.25,"total_steps":16,"type":"progress"}"#,
            #"{"epoch":0,"eta_s":0,"images_per_sec":0,"step":0,"time":1764460002,"total_steps":16,"type":"progress"}"#,
            #"{"code":"swalr_raises_lr","message":"SWALR anneals the learning rate up","type":"warning","weights":"swa"}"#,
            #"{"code":"note","message":"x","type":"warning","weights":null}"#,
            #"{"bytes":40960,"epoch":2,"file":"checkpoints/epoch-002.safetensors","sha256":"00ff","step":16,"type":"checkpoint"}"#,
            #"{"crop":28,"loss":0.4,"resize":32,"stage":"base","top1":0.85,"top5":0.99,"train_size":20,"type":"grid","weights":"swa"}"#,
            #"{"crop":28,"images":500,"loss":0.4,"resize":28,"stage":"base","top1":0.85,"top5":1,"train_size":null,"type":"grid","weights":"raw"}"#,
            #"{"exports":{"raw":"final.safetensors","swa":"swa.safetensors","swa/finetuned":"swa.finetuned.safetensors"},"#
                + #""final":{"raw":{"test/loss":0.5,"test/top1":0.8,"test/top5":0.99},"swa":{"test/loss":0.45,"test/top1":0.82,"test/top5":1},"#
                + #""swa/finetuned":{"test/loss":0.44,"test/top1":0.83,"test/top5":1}},"images_per_sec":5123.4,"reason":null,"#
                + #""status":"completed","steps":16,"timing":{"eval_s":{"raw":0.12,"swa":0.13},"swa_bn_s":0.05,"train_s":1.5},"#
                + #""type":"summary","wall_s":2.75}"#,
            #"{"exports":{},"final":{},"images_per_sec":4000,"reason":"diverged at step 3","status":"failed","steps":3,"timing":{},"type":"summary","wall_s":0.5}"#,
            #"{"error":null,"status":"queued","type":"status"}"#,
        ]
        for line in lines {
            XCTAssertEqual(try TrainerEvent.decode(line: line).line, line)
        }
        let nan = try TrainerEvent.decode(line: lines[2])
        guard case .metric(let m) = nan else { return XCTFail("\(nan)") }
        XCTAssertTrue(m.value.isNaN)
    }

    func testBadLinesAreRefusedNamingTheProblem() {
        let cases: [(String, String)] = [
            ("progress 3", "not JSON"),
            ("[1, 2]", "not a JSON object"),
            (#"{"key": "x"}"#, #"no "type" string"#),
            (#"{"type": "heartbeat"}"#, #"unknown event type "heartbeat""#),
            (
                #"{"type": "metric", "key": "x", "epoch": 1, "value": 1, "time": 0, "weights": "raw"}"#,
                "metric event: step is missing"
            ),
            (
                #"{"type": "metric", "key": "x", "step": 1.5, "epoch": 1, "value": 1, "time": 0, "weights": "raw"}"#,
                "metric event: step must be a whole number"
            ),
            (
                #"{"type": "metric", "key": "x", "step": 1, "epoch": 1, "value": "one", "time": 0, "weights": "raw"}"#,
                "metric event: value must be a number"
            ),
            (
                #"{"type": "warning", "code": "c", "weights": 3, "message": "m"}"#,
                "warning event: weights must be a string or null"
            ),
            (
                #"{"type": "grid", "weights": "raw", "stage": "late", "train_size": 20, "resize": 28, "crop": 28, "top1": 1, "top5": 1, "loss": 0}"#,
                "grid event: stage must be base or finetuned"
            ),
            (
                #"{"type": "summary", "status": "done", "reason": null, "steps": 1, "wall_s": 1, "images_per_sec": 1, "final": {}, "exports": {}, "timing": {}}"#,
                "summary event: status must be one of completed, failed, cancelled"
            ),
            (
                #"{"type": "summary", "status": "completed", "reason": null, "steps": 1, "wall_s": 1, "images_per_sec": 1, "final": {"raw": {"test/top1": 1}}, "exports": {}, "timing": {}}"#,
                "summary event: final.raw.test/top5 is missing"
            ),
            (
                #"{"type": "summary", "status": "completed", "reason": null, "steps": 1, "wall_s": 1, "images_per_sec": 1, "final": {}, "exports": {}, "timing": {"train_s": 1, "eval_s": {}}}"#,
                "summary event: timing.swa_bn_s is missing"
            ),
        ]
        for (line, expected) in cases {
            XCTAssertThrowsError(try TrainerEvent.decode(line: line), line) { error in
                let message = (error as? TrainerEventError)?.message ?? "\(error)"
                XCTAssertTrue(message.hasPrefix(expected), "\(line): \(message)")
            }
        }
    }

    /// The split's timing carries its totals for readers (`shared_s`, `averaging_s`, each set's
    /// `total_s`), worked out here by hand; a reader recomputes them, and a missing part is named.
    func testTimingSplitWritesItsTotalsAndNamesAMissingPart() throws {
        let timing = TrainerEvent.Summary.Timing(
            trainSeconds: 10, evalSeconds: ["raw": 1, "ema@0.9": 1.5], batchNormSeconds: 0,
            split: .init(
                wallSeconds: 20, setupSeconds: 2, teacherSeconds: 3, checkpointSeconds: 0.5,
                perWeights: [
                    "raw": .init(evalSeconds: 1, exportSeconds: 0.25),
                    "ema@0.9": .init(evalSeconds: 1.5, averagingSeconds: 0.75, batchNormSeconds: 0.5),
                ]))
        let json = timing.json
        XCTAssertEqual(json["shared_s"], .number(15.5))  // 10 + 2 + 3 + 0.5
        XCTAssertEqual(json["averaging_s"], .number(0.75))
        XCTAssertEqual(json["bn_s"], .number(0.5))
        XCTAssertEqual(json["export_s"], .number(0.25))
        XCTAssertEqual(json["eval_s"]?["ema@0.9"], .number(1.5))  // still the per-set map older readers know
        XCTAssertEqual(json["per_weights"]?["ema@0.9"]?["total_s"], .number(2.75))
        XCTAssertEqual(try TrainerEvent.Summary.Timing(json: json), timing)
        guard case .object(var o) = json, case .object(var sets) = o["per_weights"]!, case .object(var ema) = sets["ema@0.9"]!
        else { return XCTFail("\(json)") }
        ema["bn_s"] = nil
        sets["ema@0.9"] = .object(ema)
        o["per_weights"] = .object(sets)
        XCTAssertThrowsError(try TrainerEvent.Summary.Timing(json: .object(o))) { error in
            XCTAssertEqual("\(error)", "summary event: timing.per_weights.ema@0.9.bn_s is missing")
        }
    }

    func testFieldsItDoesNotKnowAreIgnored() throws {
        let line = #"{"type": "warning", "code": "c", "weights": null, "message": "m", "added_later": [1]}"#
        XCTAssertEqual(try TrainerEvent.decode(line: line), .warning(.init(code: "c", weights: nil, message: "m")))
    }
}
