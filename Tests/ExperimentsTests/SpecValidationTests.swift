import Foundation
import XCTest

@testable import Experiments

/// Every refusal names the field by its path in the JSON the user wrote, and says why.
final class SpecValidationTests: XCTestCase {
    /// Asserts that `json` is refused with exactly `description` (`<field> <message>`) and `field`.
    func assertRefused(
        _ json: String, field: String, _ description: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try RunSpec.decode(Data(json.utf8)), json, file: file, line: line) { error in
            guard let e = error as? SpecError else { return XCTFail("\(error) is not a SpecError", file: file, line: line) }
            XCTAssertEqual(e.field, field, json, file: file, line: line)
            XCTAssertEqual(e.description, description, json, file: file, line: line)
        }
    }

    func testUnknownFieldsAnywhere() {
        assertRefused(
            #"{"optim": {"learning_rate": 0.1}}"#, field: "optim.learning_rate", "optim.learning_rate is not a known field")
        assertRefused(#"{"bogus": 1}"#, field: "bogus", "bogus is not a known field")
        assertRefused(
            #"{"data": {"augment": {"vflip": true}}}"#, field: "data.augment.vflip", "data.augment.vflip is not a known field")
        assertRefused(
            #"{"averaging": [{"kind": "none", "decays": [0.9]}]}"#, field: "averaging[0].decays",
            "averaging[0].decays is not a known field")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.9], "warmup": {"kind": "timm", "tau": 10}}}"#,
            field: "averaging.warmup.tau", "averaging.warmup.tau is not a known field")
        assertRefused(
            #"{"distillation": {"teacher": {"path": "t", "model": {"size": 1}}}}"#,
            field: "distillation.teacher.model.size", "distillation.teacher.model.size is not a known field")
    }

    func testWrongTypes() {
        assertRefused(#"{"optim": {"epochs": "ten"}}"#, field: "optim.epochs", #"optim.epochs must be an integer, got "ten""#)
        assertRefused(#"{"optim": {"epochs": 2.5}}"#, field: "optim.epochs", "optim.epochs must be an integer, got 2.5")
        assertRefused(
            #"{"optim": {"nesterov": "yes"}}"#, field: "optim.nesterov", #"optim.nesterov must be a boolean, got "yes""#)
        assertRefused(#"{"optim": {"lr": true}}"#, field: "optim.lr", "optim.lr must be a number, got true")
        assertRefused(#"{"optim": 5}"#, field: "optim", "optim must be an object, got 5")
        assertRefused(#"{"name": 3}"#, field: "name", "name must be a string, got 3")
        assertRefused(#"{"seed": [1]}"#, field: "seed", "seed must be an integer, got [1]")
        assertRefused(#"{"averaging": 3}"#, field: "averaging", "averaging must be an object or a list of objects, got 3")
        assertRefused(#"{"averaging": [3]}"#, field: "averaging[0]", "averaging[0] must be an object, got 3")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": 0.9}}"#, field: "averaging.decays",
            "averaging.decays must be a list, got 0.9")
        assertRefused(
            #"{"resolution": {"test_grid": {"resize": ["28"], "crop": [28]}}}"#, field: "resolution.test_grid.resize[0]",
            #"resolution.test_grid.resize[0] must be an integer, got "28""#)
        assertRefused("[1]", field: "", "document must be an object, got [1]")
    }

    func testNonFiniteStringsAreRefused() {
        assertRefused(#"{"optim": {"lr": "NaN"}}"#, field: "optim.lr", #"optim.lr must be a finite number, got "NaN""#)
        assertRefused(
            #"{"optim": {"momentum": "-Infinity"}}"#, field: "optim.momentum",
            #"optim.momentum must be a finite number, got "-Infinity""#)
        assertRefused(
            #"{"optim": {"epochs": "Infinity"}}"#, field: "optim.epochs",
            #"optim.epochs must be a finite integer, got "Infinity""#)
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": ["NaN"]}}"#,
            field: "averaging.decays[0]", #"averaging.decays[0] must be a finite number, got "NaN""#)
    }

    func testInvalidJSON() {
        XCTAssertThrowsError(try RunSpec.decode(Data("{\"seed\": 1,}".utf8))) { error in
            let e = error as! SpecError
            XCTAssertEqual(e.field, "")
            XCTAssertTrue(e.description.hasPrefix("document is not valid JSON (line 1, column 12)"), e.description)
        }
        XCTAssertThrowsError(try RunSpec.decode(Data(#"{"optim": {"lr": NaN}}"#.utf8))) { error in
            XCTAssertEqual((error as! SpecError).field, "optim.lr")
        }
    }

    func testRanges() {
        assertRefused(#"{"threads": 0}"#, field: "threads", "threads must be in [1, 64], got 0")
        assertRefused(#"{"threads": 65}"#, field: "threads", "threads must be in [1, 64], got 65")
        assertRefused(#"{"seed": -1}"#, field: "seed", "seed must be in [0, 9007199254740992], got -1")
        assertRefused(#"{"log_every": 0}"#, field: "log_every", "log_every must be at least 1, got 0")
        assertRefused(
            #"{"data": {"dataset": "mnist"}}"#, field: "data.dataset", #"data.dataset must be one of fashion-mnist, got "mnist""#)
        assertRefused(#"{"data": {"root": ""}}"#, field: "data.root", "data.root must not be empty")
        assertRefused(#"{"data": {"train_limit": 0}}"#, field: "data.train_limit", "data.train_limit must be at least 1, got 0")
        assertRefused(
            #"{"data": {"augment": {"pad_crop": -1}}}"#, field: "data.augment.pad_crop",
            "data.augment.pad_crop must be at least 0, got -1")
        assertRefused(
            #"{"data": {"augment": {"random_resized_crop": {"scale": [0.5, 0.2]}}}}"#,
            field: "data.augment.random_resized_crop.scale",
            "data.augment.random_resized_crop.scale must have lo ≤ hi, got [0.5,0.2]")
        assertRefused(
            #"{"data": {"augment": {"random_resized_crop": {"scale": [0, 1]}}}}"#,
            field: "data.augment.random_resized_crop.scale[0]",
            "data.augment.random_resized_crop.scale[0] must be in (0, 1], got 0")
        assertRefused(
            #"{"data": {"augment": {"random_resized_crop": {"ratio": [1]}}}}"#,
            field: "data.augment.random_resized_crop.ratio",
            "data.augment.random_resized_crop.ratio must be a list [lo, hi] of two numbers, got [1]")
        assertRefused(#"{"model": {"arch": "vit"}}"#, field: "model.arch", #"model.arch must be one of resnet-mini, got "vit""#)
        assertRefused(#"{"model": {"width": 257}}"#, field: "model.width", "model.width must be in [1, 256], got 257")
        assertRefused(#"{"model": {"depth": 0}}"#, field: "model.depth", "model.depth must be in [1, 8], got 0")
        assertRefused(#"{"optim": {"epochs": 0}}"#, field: "optim.epochs", "optim.epochs must be at least 1, got 0")
        assertRefused(#"{"optim": {"batch_size": 0}}"#, field: "optim.batch_size", "optim.batch_size must be at least 1, got 0")
        assertRefused(#"{"optim": {"lr": 0}}"#, field: "optim.lr", "optim.lr must be greater than 0, got 0")
        assertRefused(#"{"optim": {"momentum": 1}}"#, field: "optim.momentum", "optim.momentum must be in [0, 1), got 1")
        assertRefused(
            #"{"optim": {"weight_decay": -0.1}}"#, field: "optim.weight_decay", "optim.weight_decay must be at least 0, got -0.1")
        assertRefused(
            #"{"optim": {"schedule": "linear"}}"#, field: "optim.schedule",
            #"optim.schedule must be one of cosine, step, constant, got "linear""#)
        assertRefused(
            #"{"optim": {"warmup_epochs": 11}}"#, field: "optim.warmup_epochs", "optim.warmup_epochs must be in [0, 10], got 11")
        assertRefused(
            #"{"optim": {"label_smoothing": 1}}"#, field: "optim.label_smoothing",
            "optim.label_smoothing must be in [0, 1), got 1")
        assertRefused(#"{"optim": {"gamma": 0}}"#, field: "optim.gamma", "optim.gamma must be greater than 0, got 0")
        assertRefused(
            #"{"precise_bn": {"batches": 0}}"#, field: "precise_bn.batches", "precise_bn.batches must be at least 1, got 0")
        assertRefused(#"{"checkpoints": {"keep": -1}}"#, field: "checkpoints.keep", "checkpoints.keep must be at least 0, got -1")
    }

    func testStepScheduleMilestones() {
        assertRefused(
            #"{"optim": {"schedule": "step"}}"#,
            field: "optim.milestones", "optim.milestones must list at least one epoch for the step schedule")
        assertRefused(
            #"{"optim": {"schedule": "step", "milestones": []}}"#,
            field: "optim.milestones", "optim.milestones must list at least one epoch for the step schedule")
        assertRefused(
            #"{"optim": {"schedule": "step", "milestones": [5, 5]}}"#,
            field: "optim.milestones[1]", "optim.milestones[1] must be greater than the milestone before it (5), got 5")
        assertRefused(
            #"{"optim": {"schedule": "step", "milestones": [3, 10]}}"#,
            field: "optim.milestones[1]", "optim.milestones[1] must be in [1, 10), got 10")
        XCTAssertEqual(
            try RunSpec.decode(Data(#"{"optim": {"schedule": "step", "milestones": [3, 6]}}"#.utf8)).optim.milestones, [3, 6])
    }

    func testAveragingPathsFollowTheJSONShape() {
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [1.5]}}"#,
            field: "averaging.decays[0]", "averaging.decays[0] must be in (0, 1), got 1.5")
        assertRefused(
            #"{"averaging": [{"kind": "none"}, {"kind": "ema", "decays": [0.5, 1.5]}]}"#,
            field: "averaging[1].decays[1]", "averaging[1].decays[1] must be in (0, 1), got 1.5")
        assertRefused(
            #"{"averaging": [{"kind": "swa"}, {"kind": "ema", "decays": [0]}]}"#,
            field: "averaging[1].decays[0]", "averaging[1].decays[0] must be in (0, 1), got 0")
    }

    func testAveragingRules() {
        assertRefused(
            #"{"averaging": {"decays": [0.9]}}"#, field: "averaging.kind",
            "averaging.kind is required (one of none, ema, swa, posthoc)")
        assertRefused(
            #"{"averaging": [{"kind": "polyak"}]}"#, field: "averaging[0].kind",
            #"averaging[0].kind must be one of none, ema, swa, posthoc, got "polyak""#)
        assertRefused(
            #"{"averaging": {"kind": "ema"}}"#, field: "averaging.decays",
            "averaging.decays is required (a list of decays in (0, 1), e.g. [0.998])")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": []}}"#, field: "averaging.decays",
            "averaging.decays must list at least one decay")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.9], "every": 0}}"#, field: "averaging.every",
            "averaging.every must be at least 1, got 0")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.9], "warmup": {"gamma": 1}}}"#,
            field: "averaging.warmup.kind", "averaging.warmup.kind is required (one of none, timm, yolo, threshold)")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.9], "warmup": {"kind": "cosine"}}}"#,
            field: "averaging.warmup.kind", #"averaging.warmup.kind must be one of none, timm, yolo, threshold, got "cosine""#)
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.9], "warmup": {"kind": "timm", "gamma": 0}}}"#,
            field: "averaging.warmup.gamma", "averaging.warmup.gamma must be greater than 0, got 0")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.9], "warmup": {"kind": "timm", "power": -1}}}"#,
            field: "averaging.warmup.power", "averaging.warmup.power must be greater than 0, got -1")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.9], "warmup": {"kind": "timm", "min_decay": 1}}}"#,
            field: "averaging.warmup.min_decay", "averaging.warmup.min_decay must be in [0, 1), got 1")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.9, 0.99], "warmup": {"kind": "timm", "min_decay": 0.95}}}"#,
            field: "averaging.warmup.min_decay", "averaging.warmup.min_decay must be at most the smallest decay (0.9), got 0.95")
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.9], "warmup": {"kind": "yolo", "tau": 0}}}"#,
            field: "averaging.warmup.tau", "averaging.warmup.tau must be greater than 0, got 0")
    }

    func testDecaysUniqueAcrossTheRun() {
        assertRefused(
            #"{"averaging": [{"kind": "ema", "decays": [0.99, 0.999]}, {"kind": "ema", "decays": [0.9, 0.999], "warmup": {"kind": "timm"}}]}"#,
            field: "averaging[1].decays[1]",
            "averaging[1].decays[1] repeats the decay 0.999 of averaging[0].decays[1]; each decay names one weight set (ema@0.999) and must be unique in a run"
        )
        assertRefused(
            #"{"averaging": {"kind": "ema", "decays": [0.99, 0.99]}}"#,
            field: "averaging.decays[1]",
            "averaging.decays[1] repeats the decay 0.99 of averaging.decays[0]; each decay names one weight set (ema@0.99) and must be unique in a run"
        )
    }

    func testSWARules() {
        assertRefused(
            #"{"averaging": {"kind": "swa", "start": 0.5, "start_epoch": 3}}"#,
            field: "averaging.start_epoch", "averaging.start_epoch cannot be given together with start; give one of them")
        assertRefused(
            #"{"averaging": [{"kind": "ema", "decays": [0.9]}, {"kind": "swa", "start": 0.5, "start_epoch": 3}]}"#,
            field: "averaging[1].start_epoch", "averaging[1].start_epoch cannot be given together with start; give one of them")
        assertRefused(
            #"{"averaging": {"kind": "swa", "start": 1}}"#, field: "averaging.start", "averaging.start must be in (0, 1), got 1")
        assertRefused(
            #"{"optim": {"epochs": 10}, "averaging": {"kind": "swa", "start_epoch": 11}}"#,
            field: "averaging.start_epoch", "averaging.start_epoch must be in [1, 10], got 11")
        assertRefused(
            #"{"averaging": {"kind": "swa", "start_epoch": 0}}"#, field: "averaging.start_epoch",
            "averaging.start_epoch must be in [1, 10], got 0")
        assertRefused(
            #"{"averaging": {"kind": "swa", "swa_lr": 0}}"#, field: "averaging.swa_lr",
            "averaging.swa_lr must be greater than 0, got 0")
        assertRefused(
            #"{"averaging": {"kind": "swa", "anneal_epochs": -1}}"#, field: "averaging.anneal_epochs",
            "averaging.anneal_epochs must be at least 0, got -1")
        assertRefused(
            #"{"averaging": {"kind": "swa", "anneal": "exp"}}"#, field: "averaging.anneal",
            #"averaging.anneal must be one of cos, linear, got "exp""#)
        assertRefused(
            #"{"averaging": {"kind": "swa", "every": 0}}"#, field: "averaging.every", "averaging.every must be at least 1, got 0")
        assertRefused(
            #"{"averaging": [{"kind": "swa"}, {"kind": "swa", "start": 0.5}]}"#,
            field: "averaging[1]",
            "averaging[1] is a second swa strategy (the first is averaging[0]); a run holds at most one, its weights are named swa"
        )
    }

    func testPostHocRules() {
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sigma_rels": []}}"#, field: "averaging.sigma_rels",
            "averaging.sigma_rels must list at least one width, e.g. [0.05, 0.10]")
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sigma_rels": [0.05, 0.3]}}"#, field: "averaging.sigma_rels[1]",
            "averaging.sigma_rels[1] must be in (0, 0.25], got 0.3")
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sigma_rels": [0.05, 0.05]}}"#, field: "averaging.sigma_rels[1]",
            "averaging.sigma_rels[1] repeats the width 0.05; each names one weight set (phema@0.05)")
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "snapshots": 1}}"#, field: "averaging.snapshots",
            "averaging.snapshots must be in [2, 1000], got 1")
        assertRefused(
            #"{"averaging": [{"kind": "posthoc"}, {"kind": "posthoc", "sigma_rels": [0.2]}]}"#, field: "averaging[1]",
            "averaging[1] is a second posthoc strategy (the first is averaging[0]); list every width in one sigma_rels")
        let spec = try! RunSpec.decode(Data(#"{"averaging": [{"kind": "ema", "decays": [0.99]}, {"kind": "posthoc"}]}"#.utf8))
        XCTAssertEqual(spec.postHocSpec, PostHocSpec(sigmaRels: [0.05, 0.1], snapshots: 100))
        XCTAssertEqual(spec.weightSetNames, ["raw", "ema@0.99", "phema@0.05", "phema@0.1"])
        XCTAssertEqual(try! RunSpec.decode(spec.json()), spec)
    }

    func testDistillationRules() {
        assertRefused(
            #"{"distillation": {}}"#,
            field: "distillation", "distillation needs a teacher: give teacher_run (a run id) or teacher ({path, model})")
        assertRefused(
            #"{"distillation": {"teacher_run": 0}}"#, field: "distillation.teacher_run",
            "distillation.teacher_run must be at least 1, got 0")
        assertRefused(
            #"{"distillation": {"teacher_run": 1, "teacher_weights": "best"}}"#,
            field: "distillation.teacher_weights",
            #"distillation.teacher_weights must be a weight set name: raw, swa or ema@<decay> with the decay in (0, 1), got "best""#
        )
        assertRefused(
            #"{"distillation": {"teacher_run": 1, "teacher_weights": "ema@1.5"}}"#,
            field: "distillation.teacher_weights",
            #"distillation.teacher_weights must be a weight set name: raw, swa or ema@<decay> with the decay in (0, 1), got "ema@1.5""#
        )
        assertRefused(
            #"{"distillation": {"teacher_run": 1, "temperature": 0}}"#, field: "distillation.temperature",
            "distillation.temperature must be greater than 0, got 0")
        assertRefused(
            #"{"distillation": {"teacher_run": 1, "alpha": 1.5}}"#, field: "distillation.alpha",
            "distillation.alpha must be in [0, 1], got 1.5")
        assertRefused(
            #"{"distillation": {"teacher": {"model": {}}}}"#, field: "distillation.teacher.path",
            "distillation.teacher.path is required (the teacher's weights file)")
        assertRefused(
            #"{"distillation": {"teacher": {"path": "t", "model": {"width": 0}}}}"#,
            field: "distillation.teacher.model.width", "distillation.teacher.model.width must be in [1, 256], got 0")
    }

    func testResolutionRules() {
        assertRefused(
            #"{"resolution": {"train_size": 7}}"#, field: "resolution.train_size",
            "resolution.train_size must be at least 8, got 7")
        assertRefused(
            #"{"resolution": {"test_size": 4}}"#, field: "resolution.test_size", "resolution.test_size must be at least 8, got 4")
        assertRefused(
            #"{"resolution": {"test_grid": {"resize": [], "crop": [28]}}}"#,
            field: "resolution.test_grid.resize", "resolution.test_grid.resize must list at least one size")
        assertRefused(
            #"{"resolution": {"test_grid": {"resize": [28]}}}"#,
            field: "resolution.test_grid.crop", "resolution.test_grid.crop is required (a list of image sides ≥ 8)")
        assertRefused(
            #"{"resolution": {"test_grid": {"resize": [28], "crop": [4]}}}"#,
            field: "resolution.test_grid.crop[0]", "resolution.test_grid.crop[0] must be at least 8, got 4")
        assertRefused(
            #"{"resolution": {"test_grid": {"resize": [28, 32, 28], "crop": [24]}}}"#,
            field: "resolution.test_grid.resize[2]", "resolution.test_grid.resize[2] repeats the size 28")
        assertRefused(
            #"{"resolution": {"test_grid": {"resize": [24], "crop": [28]}}}"#,
            field: "resolution.test_grid", "resolution.test_grid has no pair with crop ≤ resize, so nothing would be evaluated")
        assertRefused(
            #"{"resolution": {"finetune": {"epochs": 0}}}"#, field: "resolution.finetune.epochs",
            "resolution.finetune.epochs must be at least 1, got 0")
        assertRefused(
            #"{"resolution": {"finetune": {"lr": -1}}}"#, field: "resolution.finetune.lr",
            "resolution.finetune.lr must be greater than 0, got -1")
    }

    func testValidatedRefusesBadSpecsBuiltInCode() {
        var spec = RunSpec()
        spec.averaging = [.ema(EMASpec(decays: [0.99])), .ema(EMASpec(decays: [0.99]))]
        XCTAssertThrowsError(try spec.validated()) { error in
            XCTAssertEqual((error as! SpecError).field, "averaging[1].decays[0]")
        }
    }
}
