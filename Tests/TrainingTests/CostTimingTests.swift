import Foundation
import PolyakNetwork
import XCTest

@testable import Experiments
@testable import Training

/// Where a run's time goes (the summary's `timing`): real tiny runs, the parts checked against
/// the wall time and against what each strategy does, and kept across a resume.
final class CostTimingTests: XCTestCase {
    let base = RunHarness()

    override func tearDown() { base.cleanUp() }

    func timing(_ run: RunHarness.Run) throws -> TrainerEvent.Summary.Timing {
        let data = try JSONSerialization.data(withJSONObject: run.summary)
        guard case .summary(let s) = try TrainerEvent.decode(line: data) else { throw TrainingError.failed("not a summary") }
        return try XCTUnwrap(s.timing)
    }

    func checkpointTiming(_ path: String) throws -> TrainerEvent.Summary.Timing {
        let text = try XCTUnwrap(try SafetensorsFile.read(from: path).metadata[RunCosts.metadataKey])
        return try TrainerEvent.Summary.Timing(json: try JSONValue.parse(Data(text.utf8)))
    }

    /// Every part is measured, none is negative, together they fit in the wall time, and each lands
    /// where its work is: EMA's updates on its two decays in equal shares, SWA's update_bn on `swa`,
    /// precise BN on `raw`, FixRes and grids on every set.
    func testPartsFitTheWallTimeAndLandWhereTheWorkIs() throws {
        let run = try base.train(
            try base.smallSpec(
                images: 128, testImages: 100,
                extra: #"""
                    , "averaging": [{"kind": "ema", "decays": [0.9, 0.99]}, {"kind": "swa", "start": 0.5, "swa_lr": 0.01}],
                      "precise_bn": {"batches": 1},
                      "resolution": {"test_grid": {"resize": [28], "crop": [28]}, "finetune": {"epochs": 1, "lr": 0.01}}
                    """#), in: base.folder())
        let t = try timing(run)
        let split = try XCTUnwrap(t.split)
        XCTAssertEqual(Set(split.perWeights.keys), ["raw", "ema@0.9", "ema@0.99", "swa"])
        let shared = try XCTUnwrap(t.sharedSeconds)
        let attributed = shared + split.total(\.totalSeconds)
        XCTAssertLessThanOrEqual(attributed, split.wallSeconds)
        // Most of a run is measured: what is left is logging, start-up and exit.
        XCTAssertGreaterThan(attributed, 0.5 * split.wallSeconds, "\(t)")
        // This process's wall time is the whole of it (no resume), as `wall_s` says to 10 ms.
        XCTAssertEqual(split.wallSeconds, (run.summary["wall_s"] as! NSNumber).doubleValue, accuracy: 0.05)
        for x in [t.trainSeconds, t.batchNormSeconds, split.setupSeconds, split.teacherSeconds, split.checkpointSeconds] {
            XCTAssertGreaterThanOrEqual(x, 0)
        }
        XCTAssertGreaterThan(t.trainSeconds, 0)
        XCTAssertGreaterThan(split.checkpointSeconds, 0)
        XCTAssertEqual(split.teacherSeconds, 0)
        for (name, w) in split.perWeights {
            for (key, part) in TrainerEvent.Summary.Timing.parts {
                XCTAssertGreaterThanOrEqual(w[keyPath: part], 0, "\(name) \(key)")
            }
            XCTAssertGreaterThan(w.evalSeconds, 0, name)
            XCTAssertEqual(t.evalSeconds[name], w.evalSeconds, name)
            XCTAssertGreaterThan(w.gridSeconds, 0, name)
            XCTAssertGreaterThan(w.fixResSeconds, 0, name)
            XCTAssertGreaterThan(w.exportSeconds, 0, name)
            XCTAssertGreaterThan(w.batchNormSeconds, 0, name)  // precise BN (raw, EMA) or update_bn (swa)
        }
        let raw = split.perWeights["raw"]!, ema9 = split.perWeights["ema@0.9"]!, ema99 = split.perWeights["ema@0.99"]!
        XCTAssertEqual(raw.averagingSeconds, 0)
        XCTAssertGreaterThan(ema9.averagingSeconds, 0)
        // One pass updates both decays: its time is halved between them.
        XCTAssertEqual(ema9.averagingSeconds, ema99.averagingSeconds)
        XCTAssertGreaterThan(split.perWeights["swa"]!.averagingSeconds, 0)
        XCTAssertGreaterThan(t.batchNormSeconds, 0)  // SWA's update_bn, the older `swa_bn_s`
        XCTAssertLessThanOrEqual(t.batchNormSeconds, split.perWeights["swa"]!.batchNormSeconds)
        try checkOverhead(stepSeconds: t.trainSeconds / (run.summary["steps"] as! NSNumber).doubleValue)
    }

    /// Distillation's teacher forwards are their own part, not training.
    func testTeacherForwardsAreTheirOwnPart() throws {
        let teacherDir = base.folder()
        _ = try base.train(try base.smallSpec(epochs: 1, images: 128, testImages: 100), in: teacherDir)
        let run = try base.train(
            try base.smallSpec(
                epochs: 1, images: 128, testImages: 100,
                extra: #", "distillation": {"teacher": {"path": "\#(teacherDir)/final.safetensors", "model": {"width": 4}}}"#),
            in: base.folder())
        let split = try XCTUnwrap(try timing(run).split)
        XCTAssertGreaterThan(split.teacherSeconds, 0)
        XCTAssertLessThan(split.teacherSeconds, try timing(run).trainSeconds)  // a forward is cheaper than forward + backward
    }

    /// A resumed run reports the time of both processes; a checkpoint from before the costs were
    /// measured (no `timing` metadata) still resumes, counting from the resume.
    func testResumeKeepsTheAccumulatedTime() throws {
        let spec = try base.smallSpec(
            images: 128, testImages: 100, extra: #", "checkpoints": {"keep": 2}, "averaging": {"kind": "ema", "decays": [0.9]}"#)
        let dir = base.folder()
        let straight = try timing(try base.train(spec, in: dir))
        let first = try checkpointTiming(dir + "/checkpoints/epoch-001.safetensors")
        XCTAssertGreaterThan(first.trainSeconds, 0)
        XCTAssertLessThan(first.trainSeconds, straight.trainSeconds)

        try FileManager.default.removeItem(atPath: dir + "/checkpoints/epoch-002.safetensors")
        let resumedRun = try base.train(spec, in: dir, resume: true)
        let resumed = try timing(resumedRun)
        let split = try XCTUnwrap(resumed.split), before = try XCTUnwrap(first.split)
        let processWall = (resumedRun.summary["wall_s"] as! NSNumber).doubleValue
        // Epoch 1's time is in it, on top of this process's.
        XCTAssertGreaterThanOrEqual(split.wallSeconds, before.wallSeconds + processWall - 0.05)
        XCTAssertGreaterThan(resumed.trainSeconds, first.trainSeconds)
        XCTAssertGreaterThan(split.setupSeconds, before.setupSeconds)
        XCTAssertGreaterThan(split.perWeights["ema@0.9"]!.averagingSeconds, before.perWeights["ema@0.9"]!.averagingSeconds)
        XCTAssertGreaterThan(split.perWeights["raw"]!.evalSeconds, before.perWeights["raw"]!.evalSeconds)
        XCTAssertLessThanOrEqual((resumed.sharedSeconds ?? 0) + split.total(\.totalSeconds), split.wallSeconds)

        // The same checkpoint as an older trainer wrote it: no `timing`.
        let path = dir + "/checkpoints/epoch-001.safetensors"
        var file = try SafetensorsFile.read(from: path)
        file.metadata[RunCosts.metadataKey] = nil
        try file.write(to: path)
        try FileManager.default.removeItem(atPath: dir + "/checkpoints/epoch-002.safetensors")
        let oldRun = try base.train(spec, in: dir, resume: true)
        XCTAssertEqual(oldRun.outcome.status, .completed)
        let old = try XCTUnwrap(try timing(oldRun).split)
        XCTAssertEqual(old.wallSeconds, (oldRun.summary["wall_s"] as! NSNumber).doubleValue, accuracy: 0.05)
        XCTAssertGreaterThan(old.perWeights["ema@0.9"]!.averagingSeconds, 0)
    }

    /// The bookkeeping a training step does (two clock readings for the step, one per strategy
    /// plus its share among its weight sets), against a step of the same build: at most 0.1 %.
    func checkOverhead(stepSeconds step: Double) throws {
        let costs = RunCosts(processStart: CostClock.now())
        let strategies = [["ema@0.9", "ema@0.99"], ["swa"]]
        let n = 20_000
        let start = CostClock.now()
        var teacher = CostClock()
        for _ in 0..<n {
            let stepClock = CostClock.now()
            let teacherBefore = teacher.nanoseconds
            var clock = costs.train.add(since: stepClock, excluding: teacher.nanoseconds &- teacherBefore)
            for names in strategies { clock = costs.share(since: clock, \.averaging, among: names) }
            teacher.add(nanoseconds: 0)
        }
        let perStep = Double(CostClock.now() - start) / 1e9 / Double(n)
        print(
            String(
                format: "timing overhead: %.0f ns per step of %.2f ms (%.4f %%)", perStep * 1e9, step * 1000, 100 * perStep / step
            ))
        XCTAssertLessThan(perStep, 0.001 * step)
    }
}
