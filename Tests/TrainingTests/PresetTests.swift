import Experiments
import Foundation
import PolyakNetwork
import XCTest

@testable import Training

/// Presets expand to valid specs whose averaging shows none of the pitfalls of `averaging.md`.
final class PresetTests: XCTestCase {
    func warnings(_ spec: RunSpec) -> [AveragingWarning] {
        let steps = (spec.data.trainLimit ?? 60_000) / spec.optim.batchSize
        let plan = TrainingPlan(
            epochs: spec.optim.epochs, stepsPerEpoch: steps,
            schedule: LearningRateSchedule(optim: spec.optim, stepsPerEpoch: steps))
        let model = ModelState(layout: ResNetMini(width: 1).layout)
        return makeAveragingStrategies(spec, plan: plan, model: model).flatMap { $0.warnings() }
    }

    func testDefaultRecipe() throws {
        let ema = try Presets.expand(base: [:], preset: "ema", variant: nil)
        XCTAssertEqual(ema.weightSetNames, ["raw", "ema@0.996", "ema@0.999"])
        let warm = try Presets.expand(base: [:], preset: "ema-warmup", variant: nil)
        XCTAssertEqual(warm.weightSetNames, ["raw", "ema@0.996", "ema@0.998"])
        let swa = try Presets.expand(base: [:], preset: "swa", variant: nil)
        guard case .swa(let s) = swa.averaging.first else { return XCTFail("no swa") }
        XCTAssertEqual(s.swaLR, 0.02)  // the cosine schedule is at 0.025 where SWA starts (epoch index 7)
        XCTAssertEqual(try Presets.expand(base: [:], preset: "none", variant: nil).weightSetNames, ["raw"])
        for spec in [ema, warm, swa] { XCTAssertEqual(warnings(spec), [], "\(spec.weightSetNames)") }
    }

    func testShortRunsGetShorterHorizons() throws {
        let base: JSONValue = ["data": ["train_limit": 6400], "optim": ["epochs": 2]]
        for name in ["ema", "ema-warmup", "swa"] {
            let spec = try Presets.expand(base: base, preset: name, variant: nil)
            XCTAssertEqual(warnings(spec), [], name)
            XCTAssertEqual(spec.data.trainLimit, 6400, "the base survives the merge")
        }
    }

    func testVariantSpecOverridesThePreset() throws {
        let spec = try Presets.expand(
            base: ["model": ["width": 8]], preset: "ema",
            variant: ["averaging": ["kind": "ema", "decays": [0.99]]])
        XCTAssertEqual(spec.weightSetNames, ["raw", "ema@0.99"])
        XCTAssertEqual(spec.model.width, 8)
    }

    func testDistillationAndFixRes() throws {
        XCTAssertThrowsError(try Presets.expand(base: [:], preset: "kd", variant: nil)) { error in
            XCTAssertTrue((error as? SpecError)?.field.hasPrefix("distillation") ?? false, "\(error)")
        }
        let kd = try Presets.expand(base: [:], preset: "kd", variant: ["distillation": ["teacher_run": 12]])
        XCTAssertEqual(kd.distillation?.teacherRun, 12)
        XCTAssertEqual(kd.distillation?.temperature, 4)
        let fixres = try Presets.expand(base: [:], preset: "fixres", variant: nil)
        XCTAssertEqual(fixres.resolution.trainSize, 20)
        XCTAssertNotNil(fixres.resolution.finetune)
        XCTAssertNotNil(fixres.data.augment.randomResizedCrop)
        XCTAssertThrowsError(try Presets.expand(base: [:], preset: "polyak", variant: nil)) {
            XCTAssertEqual(($0 as? SpecError)?.field, "preset")
        }
        XCTAssertEqual(Presets.all.map(\.name), ["none", "ema", "ema-warmup", "swa", "kd", "fixres"])
        XCTAssertTrue(Presets.all.allSatisfy { !$0.summary.isEmpty })
    }
}
