import Datasets
import Experiments
import Foundation
import PolyakNetwork
import XCTest

@testable import Training

/// Whole runs with averaging strategies, distillation and FixRes on a few hundred images.
final class AveragingRunTests: XCTestCase {
    let base = RunHarness()

    override func tearDown() { base.cleanUp() }

    func spec(_ extra: String, epochs: Int = 2) throws -> RunSpec {
        try base.smallSpec(epochs: epochs, extra: extra)
    }

    /// Evaluating EMA weights every epoch never changes the training trajectory.
    func testEMADoesNotDisturbTraining() throws {
        let plain = try base.train(try spec(""), in: base.folder())
        let withEMA = try base.train(
            try spec(#", "averaging": {"kind": "ema", "decays": [0.9, 0.99], "warmup": {"kind": "timm"}}"#), in: base.folder())
        for key in ["train/loss", "test/loss", "test/top1"] {
            XCTAssertEqual(
                plain.metrics(key),
                withEMA.lines.filter { $0["weights"] as? String == "raw" && $0["key"] as? String == key }
                    .map { ($0["value"] as! NSNumber).doubleValue }, key)
        }
        let decays = withEMA.lines.filter { $0["key"] as? String == "ema/decay" }
        XCTAssertEqual(Set(decays.compactMap { $0["weights"] as? String }), ["ema@0.9", "ema@0.99"])
        let final = withEMA.summary["final"] as! [String: Any]
        XCTAssertEqual(Set(final.keys), ["raw", "ema@0.9", "ema@0.99"])
        XCTAssertEqual(
            withEMA.summary["exports"] as? [String: String],
            ["raw": "final.safetensors", "ema@0.9": "ema@0.9.safetensors", "ema@0.99": "ema@0.99.safetensors"])
    }

    /// Precise BN re-measures the raw and EMA weights, but not SWA's, whose statistics `update_bn`
    /// has just computed from a whole epoch: the SWA export and its evaluations are the same with
    /// precise BN on or off, while the raw weights' are not.
    func testPreciseBNLeavesSWAItsOwnStatistics() throws {
        let averaging = #", "averaging": [{"kind": "ema", "decays": [0.9]}, {"kind": "swa", "start": 0.5, "swa_lr": 0.01}]"#
        let plainDir = base.folder(), preciseDir = base.folder()
        let plain = try base.train(try spec(averaging), in: plainDir)
        let precise = try base.train(try spec(averaging + #", "precise_bn": {"batches": 2}"#), in: preciseDir)
        func values(_ run: RunHarness.Run, _ weights: String) -> [Double] {
            run.lines.filter { $0["type"] as? String == "metric" && $0["weights"] as? String == weights }
                .map { ($0["value"] as! NSNumber).doubleValue }
        }
        XCTAssertFalse(values(plain, "swa").isEmpty)
        XCTAssertEqual(values(plain, "swa"), values(precise, "swa"))
        XCTAssertNotEqual(values(plain, "raw").suffix(3), values(precise, "raw").suffix(3))
        XCTAssertNotEqual(values(plain, "ema@0.9"), values(precise, "ema@0.9"))
        func tensors(_ dir: String, _ file: String) throws -> [String: Data] {
            let f = try SafetensorsFile.read(from: dir + "/" + file)
            return Dictionary(uniqueKeysWithValues: f.tensors.map { ($0.name, $0.data) })
        }
        XCTAssertEqual(try tensors(plainDir, "swa.safetensors"), try tensors(preciseDir, "swa.safetensors"))
        let rawPlain = try tensors(plainDir, "final.safetensors"), rawPrecise = try tensors(preciseDir, "final.safetensors")
        XCTAssertEqual(rawPlain["fc.weight"], rawPrecise["fc.weight"])
        XCTAssertNotEqual(rawPlain["bn1.running_mean"], rawPrecise["bn1.running_mean"])
    }

    /// 2 epochs straight vs 1 epoch + resume, with EMA-with-warmup, SWA and post-hoc EMA: identical
    /// files (exports and the snapshots written after the checkpoint) and metrics.
    func testResumeWithEMAAndSWAIsBitIdentical() throws {
        let s = try spec(
            #"""
            , "checkpoints": {"keep": 2},
              "averaging": [{"kind": "ema", "decays": [0.95], "warmup": {"kind": "timm", "power": 0.75}},
                            {"kind": "swa", "start": 0.5, "swa_lr": 0.02, "anneal_epochs": 1},
                            {"kind": "posthoc", "sigma_rels": [0.1], "snapshots": 4, "sweep": []}]
            """#)
        let straight = base.folder(), resumed = base.folder()
        let a = try base.train(s, in: straight)
        _ = try base.train(s, in: resumed)
        let lastSnapshot = PostHocEMAStrategy.snapshotPath(
            weights: "phema@0.1", step: try PostHocSynthesis(runDirectory: straight).lastStep)
        for f in [
            "checkpoints/epoch-002.safetensors", "final.safetensors", "ema@0.95.safetensors", "swa.safetensors",
            "phema@0.1.safetensors", lastSnapshot,
        ] {
            try FileManager.default.removeItem(atPath: resumed + "/" + f)
        }
        let b = try base.train(s, in: resumed, resume: true)
        for f in ["final.safetensors", "ema@0.95.safetensors", "swa.safetensors", "phema@0.1.safetensors", lastSnapshot] {
            XCTAssertEqual(
                try Data(contentsOf: URL(fileURLWithPath: straight + "/" + f)),
                try Data(contentsOf: URL(fileURLWithPath: resumed + "/" + f)), f)
        }
        XCTAssertEqual(a.metrics("test/top1").suffix(4), b.metrics("test/top1")[...])  // raw, ema, swa, phema of epoch 2
        // SWA's BN statistics were recomputed: the export's running stats are not the raw model's
        let swa = try SafetensorsFile.read(from: straight + "/swa.safetensors")
        let raw = try SafetensorsFile.read(from: straight + "/final.safetensors")
        XCTAssertNotEqual(swa["bn1.running_mean"]?.floats, raw["bn1.running_mean"]?.floats)
    }

    func testPitfallsAreWarnedBeforeTraining() throws {
        let run = try base.train(
            try spec(
                #", "averaging": [{"kind": "ema", "decays": [0.9999]}, {"kind": "swa", "start": 0.5, "swa_lr": 5}]"#, epochs: 2),
            in: base.folder())
        let codes = run.lines.filter { $0["type"] as? String == "warning" }.compactMap { $0["code"] as? String }
        XCTAssertEqual(Set(codes), ["ema_horizon", "swalr_raises_lr"])
        XCTAssertEqual(run.lines.firstIndex { $0["type"] as? String == "warning" }, 0, "warnings come before training")
    }

    func testDistillationFromAnEarlierRun() throws {
        let teacherDir = base.folder()
        _ = try base.train(try base.smallSpec(epochs: 1, width: 6), in: teacherDir)
        let kd =
            #", "distillation": {"teacher": {"path": "\#(teacherDir)/final.safetensors", "model": {"width": 6}}, "temperature": 4, "alpha": 0.7}"#
        let run = try base.train(try spec(kd), in: base.folder())
        XCTAssertEqual(run.outcome.status, .completed)
        XCTAssertTrue(run.metrics("train/loss").allSatisfy { $0.isFinite })
        // a teacher that is not the declared model is refused before training
        let wrong = #", "distillation": {"teacher": {"path": "\#(teacherDir)/final.safetensors", "model": {"width": 8}}}"#
        XCTAssertThrowsError(try base.train(try spec(wrong), in: base.folder())) { error in
            XCTAssertTrue("\(error)".hasPrefix("distillation.teacher:"), "\(error)")
            XCTAssertTrue("\(error)".contains("conv1.weight has shape [6, 1, 3, 3], expected [8, 1, 3, 3]"), "\(error)")
        }
    }

    func testFixResTrainsSmallGridsAndFineTunes() throws {
        let fixres = #"""
            {"seed": 3, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64, "warmup_epochs": 0.5},
              "data": {"train_limit": 512, "test_limit": 300, "augment": {"random_resized_crop": {"scale": [0.35, 1]}, "hflip": true}},
              "averaging": {"kind": "ema", "decays": [0.9]},
              "resolution": {"train_size": 20, "test_size": 28, "test_grid": {"resize": [24, 28], "crop": [20, 24, 28]},
                             "finetune": {"epochs": 1, "lr": 0.01}},
              "precise_bn": {"batches": 3}}
            """#
        let dir = base.folder()
        let run = try base.train(try RunSpec.decode(Data(fixres.utf8)), in: dir)
        XCTAssertEqual(run.outcome.status, .completed)
        let grid = run.lines.filter { $0["type"] as? String == "grid" }
        // cells with crop ≤ resize: (24,20) (24,24) (28,20) (28,24) (28,28) = 5, × 2 weight sets × 2 stages
        XCTAssertEqual(grid.count, 20)
        XCTAssertEqual(Set(grid.compactMap { $0["stage"] as? String }), ["base", "finetuned"])
        XCTAssertTrue(grid.allSatisfy { ($0["train_size"] as? Int) == 20 })
        let exports = run.summary["exports"] as! [String: String]
        XCTAssertEqual(exports["raw/finetuned"], "final.finetuned.safetensors")
        // fine-tuning changed only fc and the BN statistics feeding the pooling
        let before = try SafetensorsFile.read(from: dir + "/final.safetensors")
        let after = try SafetensorsFile.read(from: dir + "/final.finetuned.safetensors")
        for t in before.tensors {
            let same = t.data == after[t.name]!.data
            let mayChange =
                t.name.hasPrefix("fc.") || t.name.hasPrefix("layer3.0.bn2.running")
                || t.name.hasPrefix("layer3.0.downsample.1.running")
                || t.name.hasSuffix("num_batches_tracked")
            if !mayChange { XCTAssertTrue(same, "\(t.name) changed in fine-tuning") }
        }
        XCTAssertNotEqual(before["fc.weight"]!.data, after["fc.weight"]!.data)
        XCTAssertNotEqual(before["layer3.0.bn2.running_mean"]!.data, after["layer3.0.bn2.running_mean"]!.data)
    }
}

/// FixRes fine-tuning must see the training images at their own size whatever the training
/// resolution was: fitted to 20-px copies upsampled to 28, the classifier loses accuracy at 28.
final class FixResFineTuningTests: XCTestCase {
    let base = RunHarness()

    override func tearDown() { base.cleanUp() }

    func cell28(_ run: RunHarness.Run, stage: String) -> Double {
        let line = run.lines.first {
            $0["type"] as? String == "grid" && $0["stage"] as? String == stage && $0["weights"] as? String == "raw"
                && $0["resize"] as? Int == 28 && $0["crop"] as? Int == 28
        }
        return (line?["top1"] as? NSNumber)?.doubleValue ?? .nan
    }

    func assertFineTuningHelps(
        augment: String, width: Int, epochs: Int, images: Int, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let spec = try RunSpec.decode(
            Data(
                """
                {"seed": 1, "threads": 2, "model": {"width": \(width)},
                 "optim": {"epochs": \(epochs), "batch_size": 64, "warmup_epochs": 0.5},
                 "data": {"train_limit": \(images), "test_limit": 500, "augment": \(augment)},
                 "resolution": {"train_size": 20, "test_size": 28, "test_grid": {"resize": [28], "crop": [28]},
                                "finetune": {"epochs": 1, "lr": 0.01}}}
                """.utf8))
        let run = try base.train(spec, in: base.folder())
        let before = cell28(run, stage: "base"), after = cell28(run, stage: "finetuned")
        XCTAssertFalse(before.isNaN || after.isNaN, "both grids report (28, 28)", file: file, line: line)
        // Fine-tuning at the test size adapts the classifier to it: it must not lose accuracy there.
        XCTAssertGreaterThanOrEqual(after, before - 0.005, "(28, 28): \(before) → \(after)", file: file, line: line)
        let final = run.summary["final"] as! [String: Any]
        let tuned = (final["raw/finetuned"] as! [String: Any])["test/top1"] as! NSNumber
        XCTAssertEqual(
            tuned.doubleValue, after, accuracy: 1e-9, "the headline uses the grid's (28, 28) transform", file: file, line: line)
    }

    /// The case that was broken: with fine-tuning on the 20-px copies this run went 64.8 % → 49.8 %
    /// at (28, 28); on the original images 64.8 % → 67.6 %. A smaller run does not show the drop.
    func testResizedOnceTraining() throws {
        try assertFineTuningHelps(augment: #"{"pad_crop": 2, "hflip": true}"#, width: 8, epochs: 3, images: 2048)
    }

    /// RandomResizedCrop trains on the original images anyway (here 19.6 % → 46.8 %).
    func testRandomResizedCropTraining() throws {
        try assertFineTuningHelps(
            augment: #"{"random_resized_crop": {"scale": [0.35, 1]}, "hflip": true}"#, width: 4, epochs: 2, images: 1024)
    }
}
