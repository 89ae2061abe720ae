import Foundation
import XCTest

@testable import Experiments

/// A copy of `spec/examples/quick.json`, so the tests do not depend on files outside the package.
let quickJSON = """
    {
      "name": "quick", "seed": 0,
      "data": {"dataset": "fashion-mnist", "train_limit": 6400, "test_limit": 2000, "augment": {"pad_crop": 2, "hflip": true}},
      "model": {"arch": "resnet-mini", "width": 8},
      "optim": {"epochs": 2, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "nesterov": true,
                "weight_decay": 5e-4, "schedule": "cosine", "warmup_epochs": 1},
      "averaging": [{"kind": "ema", "decays": [0.99], "warmup": {"kind": "timm", "gamma": 1, "power": 0.75}},
                    {"kind": "swa", "start": 0.5, "swa_lr": 0.01, "anneal_epochs": 1, "anneal": "cos"}]
    }
    """

/// Every field set, most to something other than its default.
let everyFieldJSON = """
    {
      "experiment": "fmnist-averaging", "name": "all-fields", "seed": 123456789, "threads": 1, "log_every": 50,
      "data": {"dataset": "fashion-mnist", "root": "/tmp/fmnist", "train_limit": 1000, "test_limit": 500,
               "augment": {"pad_crop": 4, "hflip": false,
                           "random_resized_crop": {"scale": [0.25, 0.9], "ratio": [0.5, 2]}}},
      "model": {"arch": "resnet-mini", "width": 32, "depth": 3},
      "optim": {"epochs": 12, "batch_size": 64, "lr": 0.05, "momentum": 0, "nesterov": false,
                "weight_decay": 0, "schedule": "step", "warmup_epochs": 0.5, "milestones": [4, 8, 11],
                "gamma": 0.2, "label_smoothing": 0.1},
      "averaging": [{"kind": "none"},
                    {"kind": "ema", "decays": [0.999, 0.9999], "every": 2,
                     "warmup": {"kind": "timm", "gamma": 2, "power": 0.6666, "min_decay": 0.5}},
                    {"kind": "ema", "decays": [0.99], "warmup": {"kind": "yolo", "tau": 500}},
                    {"kind": "ema", "decays": [0.9], "warmup": {"kind": "threshold"}},
                    {"kind": "swa", "start_epoch": 9, "swa_lr": 0.02, "anneal_epochs": 0, "anneal": "linear", "every": 100}],
      "distillation": {"teacher_run": 7, "teacher_weights": "ema@0.9980", "temperature": 2, "alpha": 0.9,
                       "teacher": {"path": "/runs/7/ema@0.998.safetensors", "model": {"arch": "resnet-mini", "width": 64, "depth": 2}}},
      "resolution": {"train_size": 20, "test_size": 32, "test_grid": {"resize": [24, 28, 32, 36], "crop": [24, 28, 32]},
                     "finetune": {"epochs": 2, "lr": 0.001}},
      "precise_bn": {"batches": 50},
      "checkpoints": {"keep": 3}
    }
    """

final class RunSpecTests: XCTestCase {
    func decode(_ text: String) throws -> RunSpec { try RunSpec.decode(Data(text.utf8)) }

    func testEmptyObjectGivesDefaults() throws {
        let spec = try decode("{}")
        XCTAssertEqual(spec, RunSpec())
        XCTAssertNil(spec.experiment)
        XCTAssertNil(spec.name)
        XCTAssertEqual(spec.seed, 0)
        XCTAssertEqual(spec.threads, 2)
        XCTAssertNil(spec.logEvery)
        XCTAssertEqual(spec.data.dataset, .fashionMNIST)
        XCTAssertEqual(spec.data.root, "/usr/share/datasets/fashion-mnist")
        XCTAssertNil(spec.data.trainLimit)
        XCTAssertNil(spec.data.testLimit)
        XCTAssertEqual(spec.data.augment, AugmentSpec(padCrop: 2, hflip: true, randomResizedCrop: nil))
        XCTAssertEqual(spec.model, ModelSpec(arch: .resnetMini, width: 16, depth: 1))
        let o = spec.optim
        XCTAssertEqual(o.epochs, 10)
        XCTAssertEqual(o.batchSize, 128)
        XCTAssertEqual(o.lr, 0.1)
        XCTAssertEqual(o.momentum, 0.9)
        XCTAssertTrue(o.nesterov)
        XCTAssertEqual(o.weightDecay, 5e-4)
        XCTAssertEqual(o.schedule, .cosine)
        XCTAssertEqual(o.warmupEpochs, 1)
        XCTAssertEqual(o.milestones, [])
        XCTAssertEqual(o.gamma, 0.1)
        XCTAssertEqual(o.labelSmoothing, 0)
        XCTAssertEqual(spec.averaging, [])
        XCTAssertNil(spec.distillation)
        XCTAssertEqual(spec.resolution, ResolutionSpec(trainSize: 28, testSize: 28, testGrid: nil, finetune: nil))
        XCTAssertNil(spec.preciseBN)
        XCTAssertEqual(spec.checkpoints.keep, 1)
        XCTAssertEqual(spec.weightSetNames, ["raw"])
    }

    func testNullMeansDefault() throws {
        let spec = try decode(
            #"{"threads": null, "optim": null, "averaging": null, "data": {"augment": null, "train_limit": null}}"#)
        XCTAssertEqual(spec, RunSpec())
    }

    func testQuickExample() throws {
        let spec = try decode(quickJSON)
        XCTAssertEqual(spec.name, "quick")
        XCTAssertEqual(spec.seed, 0)
        XCTAssertEqual(spec.data.trainLimit, 6400)
        XCTAssertEqual(spec.data.testLimit, 2000)
        XCTAssertEqual(spec.data.augment, AugmentSpec(padCrop: 2, hflip: true))
        XCTAssertEqual(spec.model, ModelSpec(arch: .resnetMini, width: 8, depth: 1))
        XCTAssertEqual(spec.optim, OptimSpec(epochs: 2, batchSize: 128, lr: 0.1, momentum: 0.9, weightDecay: 5e-4))
        XCTAssertEqual(
            spec.averaging,
            [
                .ema(EMASpec(decays: [0.99], every: 1, warmup: .timm(gamma: 1, power: 0.75, minDecay: 0))),
                .swa(SWASpec(start: .fraction(0.5), swaLR: 0.01, annealEpochs: 1, anneal: .cos)),
            ])
        XCTAssertEqual(spec.weightSetNames, ["raw", "ema@0.99", "swa"])
        XCTAssertEqual(spec.swaSpec?.firstEpochIndex(epochs: spec.optim.epochs), 1)
        XCTAssertEqual(try RunSpec.decode(spec.json()), spec)
        XCTAssertEqual(try RunSpec.decode(spec.jsonData(pretty: true)), spec)
        XCTAssertEqual(try RunSpec.decode(spec.jsonData(pretty: false)), spec)
    }

    /// The shared example file itself, when the tests run inside the project's workspace.
    func testSharedQuickExampleFileWhenPresent() throws {
        let url = URL(fileURLWithPath: "/work/shared/spec/examples/quick.json")
        guard let data = try? Data(contentsOf: url) else { throw XCTSkip("no shared examples folder here") }
        let spec = try RunSpec.decode(data)
        XCTAssertEqual(spec, try decode(quickJSON))
        XCTAssertEqual(try RunSpec.decode(spec.jsonData()), spec)
    }

    func testEveryFieldSetAndRoundTrip() throws {
        let spec = try decode(everyFieldJSON)
        let expected = RunSpec(
            experiment: "fmnist-averaging", name: "all-fields", seed: 123_456_789, threads: 1, logEvery: 50,
            data: DataSpec(
                root: "/tmp/fmnist", trainLimit: 1000, testLimit: 500,
                augment: AugmentSpec(
                    padCrop: 4, hflip: false, randomResizedCrop: RandomResizedCropSpec(scale: 0.25...0.9, ratio: 0.5...2))),
            model: ModelSpec(arch: .resnetMini, width: 32, depth: 3),
            optim: OptimSpec(
                epochs: 12, batchSize: 64, lr: 0.05, momentum: 0, nesterov: false, weightDecay: 0, schedule: .step,
                warmupEpochs: 0.5, milestones: [4, 8, 11], gamma: 0.2, labelSmoothing: 0.1),
            averaging: [
                .none,
                .ema(EMASpec(decays: [0.999, 0.9999], every: 2, warmup: .timm(gamma: 2, power: 0.6666, minDecay: 0.5))),
                .ema(EMASpec(decays: [0.99], warmup: .yolo(tau: 500))),
                .ema(EMASpec(decays: [0.9], warmup: .threshold)),
                .swa(SWASpec(start: .epoch(9), swaLR: 0.02, annealEpochs: 0, anneal: .linear, every: 100)),
            ],
            distillation: DistillationSpec(
                teacherRun: 7, teacherWeights: "ema@0.998", temperature: 2, alpha: 0.9,
                teacher: TeacherSpec(
                    path: "/runs/7/ema@0.998.safetensors", model: ModelSpec(arch: .resnetMini, width: 64, depth: 2))),
            resolution: ResolutionSpec(
                trainSize: 20, testSize: 32, testGrid: TestGrid(resize: [24, 28, 32, 36], crop: [24, 28, 32]),
                finetune: FinetuneSpec(epochs: 2, lr: 0.001)),
            preciseBN: PreciseBNSpec(batches: 50),
            checkpoints: CheckpointSpec(keep: 3))
        XCTAssertEqual(spec, expected)
        XCTAssertEqual(spec.weightSetNames, ["raw", "ema@0.999", "ema@0.9999", "ema@0.99", "ema@0.9", "swa"])
        XCTAssertEqual(spec.swaSpec?.firstEpochIndex(epochs: 12), 8)
        XCTAssertEqual(spec.emaSpecs.count, 3)
        // Writing and reading back gives the same spec, and writing again the same text.
        let written = spec.jsonData(pretty: true)
        let reread = try RunSpec.decode(written)
        XCTAssertEqual(reread, spec)
        XCTAssertEqual(reread.jsonData(pretty: true), written)
        XCTAssertEqual(try expected.validated(), expected)
    }

    func testJSONWritesEveryFieldWithDefaults() throws {
        let json = try decode("{}").json()
        guard case .object(let top) = json else { return XCTFail("not an object") }
        XCTAssertEqual(
            Set(top.keys),
            [
                "experiment", "name", "seed", "threads", "log_every", "data", "model", "optim", "averaging",
                "distillation", "resolution", "precise_bn", "checkpoints",
            ])
        XCTAssertEqual(json["optim"]?["warmup_epochs"], 1)
        XCTAssertEqual(json["optim"]?["weight_decay"], 0.0005)
        XCTAssertEqual(json["data"]?["augment"], ["pad_crop": 2, "hflip": true, "random_resized_crop": .null])
        XCTAssertEqual(json["averaging"], [])
        XCTAssertEqual(json["log_every"], .null)
        // A single averaging object is written as a list of one and reads back the same.
        let single = try decode(#"{"averaging": {"kind": "swa"}}"#)
        XCTAssertEqual(
            single.json()["averaging"],
            [["kind": "swa", "start": 0.75, "swa_lr": 0.01, "anneal_epochs": 2, "anneal": "cos", "every": .null]])
        XCTAssertEqual(try RunSpec.decode(single.json()), single)
    }

    func testIntegerFieldsAcceptWholeDoubles() throws {
        let spec = try decode(#"{"optim": {"epochs": 2.0}, "seed": 9007199254740992}"#)
        XCTAssertEqual(spec.optim.epochs, 2)
        XCTAssertEqual(spec.seed, 1 << 53)
    }

    func testAugmentKeysLeftOutTakeDefaults() throws {
        XCTAssertEqual(
            try decode(#"{"data": {"augment": {"hflip": false}}}"#).data.augment, AugmentSpec(padCrop: 2, hflip: false))
        let rrc = try decode(#"{"data": {"augment": {"random_resized_crop": {"scale": [0.35, 1]}}}}"#).data.augment
        XCTAssertEqual(rrc.padCrop, 0, "random-resized crop replaces the padded crop unless pad_crop is given")
        XCTAssertTrue(rrc.hflip)
        XCTAssertEqual(rrc.randomResizedCrop, RandomResizedCropSpec(scale: 0.35...1, ratio: 0.75...1.3333))
        let both = try decode(#"{"data": {"augment": {"pad_crop": 3, "random_resized_crop": {}}}}"#).data.augment
        XCTAssertEqual(both.padCrop, 3)
    }

    func testSWAStartForms() throws {
        let fraction = try decode(#"{"averaging": {"kind": "swa"}}"#).swaSpec!
        XCTAssertEqual(fraction.start, .fraction(0.75))
        XCTAssertEqual(fraction.swaLR, 0.01)
        XCTAssertEqual(fraction.firstEpochIndex(epochs: 10), 7)
        let epoch = try decode(#"{"optim": {"epochs": 4}, "averaging": {"kind": "swa", "start_epoch": 4, "start": null}}"#)
            .swaSpec!
        XCTAssertEqual(epoch.start, .epoch(4))
        XCTAssertEqual(epoch.firstEpochIndex(epochs: 4), 3)
    }

    func testWeightSetNamesUseShortestDecay() {
        XCTAssertEqual(EMASpec.weightSetName(decay: 0.999), "ema@0.999")
        XCTAssertEqual(EMASpec.weightSetName(decay: 0.9999), "ema@0.9999")
        XCTAssertEqual(EMASpec.weightSetName(decay: 0.998), "ema@0.998")
    }

    func testTestGridCells() {
        let grid = TestGrid(resize: [24, 32], crop: [24, 28])
        XCTAssertEqual(grid.cells.map { [$0.resize, $0.crop] }, [[24, 24], [32, 24], [32, 28]])
    }

    func testTeacherWeightsForms() throws {
        for (written, stored) in [("raw", "raw"), ("swa", "swa"), ("ema@0.998", "ema@0.998"), ("ema@0.99900", "ema@0.999")] {
            let spec = try decode(#"{"distillation": {"teacher_run": 1, "teacher_weights": "\#(written)"}}"#)
            XCTAssertEqual(spec.distillation?.teacherWeights, stored)
        }
        let cli = try decode(#"{"distillation": {"teacher": {"path": "t.safetensors"}}}"#).distillation!
        XCTAssertEqual(
            cli,
            DistillationSpec(
                teacherRun: nil, teacherWeights: "raw", temperature: 4, alpha: 0.5, teacher: TeacherSpec(path: "t.safetensors")))
    }

    /// The examples of experiments: their base specs (and the KD variant merged over its base)
    /// are valid run specs.
    func testExperimentExamplesMergeIntoValidSpecs() throws {
        let comparisonBase: JSONValue = try JSONValue.parse(
            #"""
            {"data": {"dataset": "fashion-mnist", "augment": {"pad_crop": 2, "hflip": true}},
             "model": {"arch": "resnet-mini", "width": 16},
             "optim": {"epochs": 10, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "nesterov": true,
                       "weight_decay": 5e-4, "schedule": "cosine", "warmup_epochs": 1},
             "resolution": {"train_size": 28, "test_size": 28, "test_grid": {"resize": [28, 32, 36], "crop": [24, 28, 32]}}}
            """#)
        let base = try RunSpec.decode(comparisonBase)
        XCTAssertEqual(base.resolution.testGrid?.cells.count, 8)

        let kdBase: JSONValue = ["model": ["arch": "resnet-mini", "width": 8], "optim": ["epochs": 10]]
        let kdVariant: JSONValue = try JSONValue.parse(
            #"{"distillation": {"teacher_run": 12, "teacher_weights": "ema@0.998", "temperature": 4, "alpha": 0.5}}"#)
        let kd = try RunSpec.decode(kdBase.merged(with: kdVariant))
        XCTAssertEqual(kd.model.width, 8)
        XCTAssertEqual(kd.distillation, DistillationSpec(teacherRun: 12, teacherWeights: "ema@0.998"))
    }
}
