import Datasets
import Experiments
import Foundation
import Kernels
import PolyakNetwork
import XCTest

@testable import Training

/// Real training runs on a few hundred Fashion-MNIST images (the Debian package `dataset-fashion-mnist`,
/// which `scripts/setup.sh` installs).
final class TrainerTests: XCTestCase {
    let h = RunHarness()
    override func tearDown() { h.cleanUp() }
    func folder() -> String { h.folder() }
    func smallSpec(epochs: Int = 2, images: Int = 512, width: Int = 4, extra: String = "") throws -> RunSpec {
        try h.smallSpec(epochs: epochs, images: images, width: width, extra: extra)
    }
    func train(_ spec: RunSpec, in dir: String, resume: Bool = false) throws -> RunHarness.Run {
        try h.train(spec, in: dir, resume: resume)
    }

    func testShortRunLearnsAndExportsALoadableStateDict() throws {
        let dir = folder()
        let run = try train(try smallSpec(epochs: 3, images: 1024, width: 8), in: dir)
        XCTAssertEqual(run.outcome.status, .completed)
        let loss = run.metrics("train/loss"), top1 = run.metrics("test/top1")
        XCTAssertEqual(loss.count, 3)
        XCTAssertLessThan(loss[2], loss[0] * 0.8, "training loss must fall: \(loss)")
        XCTAssertGreaterThan(top1.last!, 0.5, "10 classes: chance is 0.1; got \(top1)")
        XCTAssertEqual(run.metrics("test/top5").count, 3)
        XCTAssertEqual(run.metrics("train/lr").count, 3)
        // progress lines carry the totals
        let progress = run.lines.filter { $0["type"] as? String == "progress" }
        XCTAssertEqual(progress.last?["total_steps"] as? Int, 48)
        XCTAssertEqual(progress.last?["step"] as? Int, 48)

        // final.safetensors is a plain state dict that scores what the summary says
        let file = try SafetensorsFile.read(from: dir + "/final.safetensors")
        XCTAssertEqual(file["layer1.0.bn1.num_batches_tracked"]?.int64s, [48])
        let model = try ResNetMini.infer(fromShapes: file.shapes)
        XCTAssertEqual(model, ResNetMini(width: 8))
        let state = ModelState(layout: model.layout)
        try state.load(stateDict: file)
        let test = try FashionMNIST.load(split: .test, limit: 500)
        let e = Evaluator(images: test, model: model, workers: Workers(1)).evaluate(state, resize: 28, crop: 28)
        let final = (run.summary["final"] as! [String: [String: Double]])["raw"]!
        XCTAssertEqual(e.top1, final["test/top1"]!, accuracy: 1e-9)
        XCTAssertEqual(run.summary["exports"] as? [String: String], ["raw": "final.safetensors"])
        // spec.json records the full spec, which decodes back to the one that ran
        let recorded = try RunSpec.decode(try Data(contentsOf: URL(fileURLWithPath: dir + "/spec.json")))
        XCTAssertEqual(recorded, try smallSpec(epochs: 3, images: 1024, width: 8))
        // only `checkpoints.keep` (1) epoch checkpoints stay
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/checkpoints"), ["epoch-003.safetensors"])
    }

    /// Same spec, seed and thread count: the same numbers, bit for bit.
    func testRunsAreDeterministic() throws {
        let a = try train(try smallSpec(epochs: 1), in: folder())
        let b = try train(try smallSpec(epochs: 1), in: folder())
        for key in ["train/loss", "test/loss", "test/top1"] { XCTAssertEqual(a.metrics(key), b.metrics(key), key) }
    }

    /// 2 epochs straight, and 1 epoch + (lost second epoch) + resume, give identical weights and metrics.
    func testResumeFromACheckpointIsBitIdentical() throws {
        let spec = try smallSpec(epochs: 2, extra: #", "checkpoints": {"keep": 2}"#)
        let straight = folder(), resumed = folder()
        let a = try train(spec, in: straight)
        _ = try train(spec, in: resumed)
        // as if the process had died during epoch 2
        try FileManager.default.removeItem(atPath: resumed + "/checkpoints/epoch-002.safetensors")
        try FileManager.default.removeItem(atPath: resumed + "/final.safetensors")
        let b = try train(spec, in: resumed, resume: true)
        XCTAssertEqual(b.metrics("test/top1"), [a.metrics("test/top1")[1]])
        XCTAssertEqual(b.metrics("train/loss"), [a.metrics("train/loss")[1]])
        let wa = try Data(contentsOf: URL(fileURLWithPath: straight + "/final.safetensors"))
        let wb = try Data(contentsOf: URL(fileURLWithPath: resumed + "/final.safetensors"))
        XCTAssertEqual(wa, wb)
    }

    func testDivergenceStopsTheRunAsFailed() throws {
        var spec = try smallSpec(epochs: 2)
        spec.optim.lr = 1e30
        let run = try train(spec, in: folder())
        XCTAssertEqual(run.outcome.status, .failed)
        XCTAssertEqual(run.outcome.exitCode, 1)
        let reason = try XCTUnwrap(run.outcome.reason)
        XCTAssertTrue(reason.hasPrefix("diverged at step "), reason)
        XCTAssertEqual(run.summary["status"] as? String, "failed")
    }

    func testAStopRequestEndsTheRunCancelled() throws {
        StopRequest.set()
        let run = try train(try smallSpec(epochs: 1), in: folder())
        XCTAssertEqual(run.outcome.status, .cancelled)
        XCTAssertEqual(run.summary["steps"] as? Int, 0)
    }

    func testBadInputIsRefusedBeforeTraining() throws {
        var spec = try smallSpec()
        spec.data.root = "/nonexistent/fashion"
        XCTAssertThrowsError(try train(spec, in: folder())) { error in
            guard case TrainingError.badInput(let m) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("/nonexistent/fashion"), m)
        }
        spec = try smallSpec()
        spec.optim.batchSize = 1000
        XCTAssertThrowsError(try train(spec, in: folder())) { error in
            XCTAssertEqual("\(error)", "optim.batch_size: 1000 is more than the 512 training images")
        }
    }

    func testOneFolderOneTrainer() throws {
        let dir = folder()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fd = open(dir + "/train.lock", O_CREAT | O_RDWR, 0o644)
        defer { close(fd) }
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        XCTAssertThrowsError(try train(try smallSpec(epochs: 1), in: dir)) { error in
            XCTAssertTrue("\(error)".contains("another trainer holds"), "\(error)")
        }
    }
}

final class OptimizationTests: XCTestCase {
    func testCosineScheduleWithWarmupMatchesTheReference() throws {
        let optim = try RunSpec.decode(Data(#"{"optim": {"lr": 0.1, "epochs": 10, "warmup_epochs": 1}}"#.utf8)).optim
        let s = LearningRateSchedule(optim: optim, stepsPerEpoch: 468)
        // torch_reference.py: peak·(step+1)/warm, then peak·½(1+cos(π(step−warm)/(total−warm)))
        XCTAssertEqual(s.rate(at: 0), 0.1 / 468, accuracy: 1e-15)
        XCTAssertEqual(s.rate(at: 467), 0.1, accuracy: 1e-15)
        XCTAssertEqual(s.rate(at: 468), 0.1, accuracy: 1e-15)
        XCTAssertEqual(s.rate(at: 468 + 2106), 0.05, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 4679), 0.1 * 0.5 * (1 + cos(Double.pi * 4211 / 4212)), accuracy: 1e-15)
    }

    func testStepAndConstantSchedules() throws {
        let optim = try RunSpec.decode(
            Data(
                #"{"optim": {"lr": 1, "epochs": 6, "warmup_epochs": 0, "schedule": "step", "milestones": [2, 4], "gamma": 0.5}}"#
                    .utf8)
        ).optim
        let s = LearningRateSchedule(optim: optim, stepsPerEpoch: 10)
        XCTAssertEqual([0, 19, 20, 39, 40, 59].map(s.rate), [1, 1, 0.5, 0.5, 0.25, 0.25])
        var c = optim
        c.schedule = .constant
        XCTAssertEqual(LearningRateSchedule(optim: c, stepsPerEpoch: 10).rate(at: 55), 1)
    }

    /// torch.optim.SGD(nesterov=True, momentum=.9, weight_decay=λ on weights only), two steps by hand.
    func testSGDMatchesPyTorch() throws {
        let model = ResNetMini(width: 1)
        let state = ModelState(layout: model.layout)
        let optim = try RunSpec.decode(Data(#"{"optim": {"momentum": 0.9, "weight_decay": 0.01}}"#.utf8)).optim
        let sgd = SGD(layout: model.layout, optim: optim)
        let w = model.layout.entry(named: "fc.weight")!, b = model.layout.entry(named: "fc.bias")!
        state.pointer(w)[0] = 1
        state.pointer(b)[0] = 1
        var pw = 1.0, pb = 1.0, vw = 0.0, vb = 0.0
        for (k, g) in [0.5, -0.25].enumerated() {
            state.gradient(w)[0] = Float(g)
            state.gradient(b)[0] = Float(g)
            sgd.step(state, lr: 0.1)
            let dw = g + 0.01 * pw, db = g
            vw = k == 0 ? dw : 0.9 * vw + dw
            vb = k == 0 ? db : 0.9 * vb + db
            pw -= 0.1 * (dw + 0.9 * vw)
            pb -= 0.1 * (db + 0.9 * vb)
            XCTAssertEqual(Double(state.pointer(w)[0]), pw, accuracy: 1e-6)
            XCTAssertEqual(Double(state.pointer(b)[0]), pb, accuracy: 1e-6)
        }
    }
}
