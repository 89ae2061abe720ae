import Foundation
import Kernels
import PolyakTestSupport
import XCTest

@testable import PolyakNetwork

final class ResNetTests: XCTestCase {
    func testLayoutHasTorchvisionNamesAndShapes() {
        let l = ResNetMini(width: 16).layout
        XCTAssertEqual(l.entries.first?.name, "conv1.weight")
        XCTAssertEqual(l.entry(named: "conv1.weight")?.shape, [16, 1, 3, 3])
        XCTAssertEqual(l.entry(named: "layer2.0.downsample.0.weight")?.shape, [32, 16, 1, 1])
        XCTAssertEqual(l.entry(named: "layer3.0.conv2.weight")?.shape, [64, 64, 3, 3])
        XCTAssertEqual(l.entry(named: "fc.weight")?.shape, [10, 64])
        XCTAssertNil(l.entry(named: "layer1.0.downsample.0.weight"))
        XCTAssertEqual(l.counterNames.count, 9)  // bn1 + 3 blocks × 2 + 2 downsample BNs
        // parameter count as PyTorch counts it: convs, BN affine, fc
        let convs = 16 * 9 + 2 * 16 * 16 * 9 + 32 * 16 * 9 + 32 * 32 * 9 + 32 * 16 + 64 * 32 * 9 + 64 * 64 * 9 + 64 * 32
        let bns = 2 * (16 + 2 * 16 + 2 * 32 + 32 + 2 * 64 + 64)
        XCTAssertEqual(l.parameterCount, convs + bns + 10 * 64 + 10)
        XCTAssertTrue(l.entry(named: "conv1.weight")!.decays)
        XCTAssertFalse(l.entry(named: "bn1.weight")!.decays)
        XCTAssertFalse(l.entry(named: "fc.bias")!.decays)
    }

    /// The whole network's gradient (BN in training mode) against central differences.
    func testGradientsMatchFiniteDifferences() {
        let model = ResNetMini(width: 2, depth: 1)
        let exec = ResNetExecutor(model: model, batch: 4, height: 9, width: 8, trainable: true, workers: Workers(2))
        let state = ModelState(layout: model.layout)
        var rng = SplitMix64(seed: 3)
        model.initialize(state, using: &rng)
        for b in 0..<4 {
            exec.labels[b] = Int32(b * 3 % 10)
            for y in 0..<9 { for x in 0..<8 { exec.input[b, y, x, 0] = Float.random(in: -1..<1, using: &rng) } }
        }
        func loss() -> Double {
            exec.forward(state, training: true)
            return exec.score(count: 4).lossSum / 4
        }
        exec.trainingStep(state)
        let analytic = state.gradients.array
        var checked = 0
        for name in [
            "conv1.weight", "bn1.weight", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.bias", "layer3.0.bn2.weight", "layer3.0.conv1.weight", "fc.weight", "fc.bias",
        ] {
            let e = model.layout.entry(named: name)!
            for i in Set([0, e.count / 2, e.count - 1]) {
                let fd = finiteDifference(loss, at: state.pointer(e) + i, h: 1e-3)
                let a = Double(analytic[e.offset + i])
                XCTAssertEqual(a, fd, accuracy: 3e-3 + 3e-2 * abs(fd), "\(name)[\(i)]")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 20)
    }

    /// Inference with running statistics equals a training-mode forward whose batch statistics
    /// are those running statistics — checked indirectly: the inference executor and a training
    /// executor in eval mode agree bit for bit, whatever the batch size.
    func testInferenceExecutorAgreesWithTrainingExecutor() {
        let (state, train, infer) = Self.twoExecutorsOnOneInput(
            ResNetMini(width: 4, depth: 2), batch: 3, size: 12, seed: 9)
        train.forward(state, training: false)
        infer.forward(state, training: false)
        for i in 0..<30 { XCTAssertEqual(train.logits[i], infer.logits[i], accuracy: 1e-5) }
    }

    /// An inference executor whose batch is larger than a lane (two 28×28 images at width 16)
    /// carries the images through per-worker lanes; its logits equal the batch-wide pass bit for
    /// bit, including a worker's last, partly filled lane.
    func testInferenceLanesEqualTheBatchWidePass() {
        let model = ResNetMini(width: 16)
        XCTAssertEqual(ResNetExecutor.laneImages(model: model, height: 28, width: 28), 2)
        let (state, batchWide, laned) = Self.twoExecutorsOnOneInput(
            model, batch: 5, size: 28, seed: 4)
        XCTAssertTrue(laned.usesLanes)
        XCTAssertFalse(batchWide.usesLanes)
        // The second pass changes the weights: the lanes must not keep the first pass's transforms.
        let changed = state.copy()
        for i in 0..<changed.parameters.count { changed.parameters[i] *= 1.01 }
        for (round, weights) in [state, changed].enumerated() {
            batchWide.forward(weights, training: false)
            laned.forward(weights, training: false)
            for i in 0..<50 { XCTAssertEqual(batchWide.logits[i], laned.logits[i], "logit \(i), pass \(round)") }
        }
        XCTAssertNotEqual(batchWide.logits[0], 0)
    }

    /// A model state with random running statistics, and a training executor on one worker (the
    /// tests run it in eval mode) beside an inference executor on two, both holding the same
    /// random input batch.
    static func twoExecutorsOnOneInput(_ model: ResNetMini, batch: Int, size: Int, seed: UInt64) -> (
        state: ModelState, training: ResNetExecutor, inference: ResNetExecutor
    ) {
        let state = ModelState(layout: model.layout)
        var rng = SplitMix64(seed: seed)
        model.initialize(state, using: &rng)
        for i in 0..<state.buffers.count { state.buffers[i] = Float.random(in: 0.5..<1.5, using: &rng) }
        let training = ResNetExecutor(
            model: model, batch: batch, height: size, width: size, trainable: true, workers: Workers(1))
        let inference = ResNetExecutor(
            model: model, batch: batch, height: size, width: size, trainable: false, workers: Workers(2))
        for b in 0..<batch {
            for y in 0..<size {
                for x in 0..<size {
                    let v = Float.random(in: -1..<1, using: &rng)
                    training.input[b, y, x, 0] = v
                    inference.input[b, y, x, 0] = v
                }
            }
        }
        return (state, training, inference)
    }

    func testStateDictRoundTripThroughSafetensors() throws {
        let model = ResNetMini(width: 3, depth: 1)
        let state = ModelState(layout: model.layout)
        var rng = SplitMix64(seed: 1)
        model.initialize(state, using: &rng)
        state.batchesTracked = 42
        let e = model.layout.entry(named: "layer2.0.conv1.weight")!
        // OIHW element (o=5, i=2, kh=1, kw=2) sits at HWIO offset ((1·3+2)·3+2)·6+5
        let oihw = state.pytorchValues(e)
        XCTAssertEqual(oihw[((5 * 3 + 2) * 3 + 1) * 3 + 2], state.pointer(e)[((1 * 3 + 2) * 3 + 2) * 6 + 5])

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try state.stateDict(metadata: ["step": "7"]).write(to: path)
        let file = try SafetensorsFile.read(from: path)
        XCTAssertEqual(file.metadata["step"], "7")
        XCTAssertEqual(file["bn1.num_batches_tracked"]?.int64s, [42])
        XCTAssertEqual(try ResNetMini.infer(fromShapes: file.shapes), model)
        let back = ModelState(layout: model.layout)
        try back.load(stateDict: file)
        XCTAssertEqual(back.parameters.array, state.parameters.array)
        XCTAssertEqual(back.buffers.array, state.buffers.array)
        XCTAssertEqual(back.batchesTracked, 42)
    }

    func testBadFilesGetClearErrors() throws {
        XCTAssertThrowsError(try SafetensorsFile.decode(Data([1, 2, 3]))) {
            XCTAssertTrue("\($0)".contains("too short"))
        }
        var bad = Data()
        var len = UInt64(1000).littleEndian
        withUnsafeBytes(of: &len) { bad.append(contentsOf: $0) }
        bad.append(Data("{}".utf8))
        XCTAssertThrowsError(try SafetensorsFile.decode(bad)) { XCTAssertTrue("\($0)".contains("exceeds")) }
        // a width-4 file is not a width-3 model
        let wide = ModelState(layout: ResNetMini(width: 4).layout).stateDict()
        XCTAssertThrowsError(try ModelState(layout: ResNetMini(width: 3).layout).load(stateDict: wide)) {
            XCTAssertEqual("\($0)", "tensor conv1.weight has shape [4, 1, 3, 3], expected [3, 1, 3, 3]")
        }
        var shapes = wide.shapes
        shapes["extra.weight"] = [1]
        XCTAssertThrowsError(try ResNetMini.infer(fromShapes: shapes)) {
            XCTAssertEqual("\($0)", "unexpected tensor extra.weight")
        }
    }
}
