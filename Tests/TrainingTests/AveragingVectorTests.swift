import Experiments
import Foundation
import Kernels
import XCTest

@testable import PolyakNetwork
@testable import Training

/// The test vectors T1–T10 of `spec/averaging.md`: fp32 results within 1e-6 relative or 1e-7
/// absolute, whichever is larger.
final class AveragingVectorTests: XCTestCase {
    func close(_ a: Double, _ b: Double, _ what: String = "", file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a, b, accuracy: max(1e-6 * abs(b), 1e-7), what, file: file, line: line)
    }

    /// T1: timm V3 get_decay, d = .9999, γ = 1, p = 2/3 [3/4].
    func testT1TimmWarmup() {
        let cases: [(Int, Double, Double)] = [
            (0, 0, 0), (1, 0, 0), (2, 0.3700394750525634, 0.4053964424986395), (3, 0.5192501432308638, 0),
            (10, 0.7845565309968117, 0.8221720589961077), (100, 0.9535841116638722, 0.9683772233983162),
            (1000, 0.99, 0.9943765867480965), (10_000, 0.9978455653099682, 0.999),
            (100_000, 0.9995358411166387, 0.9998221720589962), (1_000_000, 0.9999, 0.9999),
        ]
        for (n, p23, p34) in cases {
            close(
                AveragingMath.emaDecay(update: n, target: 0.9999, warmup: .timm(gamma: 1, power: 2.0 / 3, minDecay: 0)), p23,
                "n\(n) p=2/3")
            if n != 3 {
                close(
                    AveragingMath.emaDecay(update: n, target: 0.9999, warmup: .timm(gamma: 1, power: 0.75, minDecay: 0)), p34,
                    "n\(n) p=3/4")
            }
        }
    }

    /// T2: YOLOv5, d = .9999, τ = 2000.
    func testT2YoloRamp() {
        for (n, v) in [
            (1, 0.000499825033328626), (10, 0.0049870220552369485), (100, 0.048765698441736054),
            (1000, 0.39342999335333784), (2000, 0.6320573467726748), (10_000, 0.9931627267956145),
        ] {
            close(AveragingMath.emaDecay(update: n, target: 0.9999, warmup: .yolo(tau: 2000)), v, "n\(n)")
        }
    }

    /// T3: threshold, counter 0..5 (updates 1..6).
    func testT3Threshold() {
        let expected = [0.1, 0.18181818181818182, 0.25, 0.3076923076923077, 0.35714285714285715, 0.4]
        for (i, v) in expected.enumerated() {
            close(AveragingMath.emaDecay(update: i + 1, target: 0.9999, warmup: .threshold), v)
        }
        XCTAssertEqual(AveragingMath.emaDecay(update: 1_000_000, target: 0.999, warmup: .threshold), 0.999)
    }

    static let w0: [Float] = [1, -2, 0.5]
    static let updates: [[Float]] = [[1.5, -1, 0.25], [2, 0, 0], [1, 1, -0.5], [0.5, 2, -1], [0, 3, -2]]

    /// T4 and T5 through the EMA strategy itself (shadow buffers, lerp, warmup, update counter).
    func runEMA(_ warmup: EMAWarmup) -> (shadow: [Float], decays: [Double]) {
        let model = ModelState(layout: threeFloatLayout())
        for (i, v) in Self.w0.enumerated() { model.parameters[i] = v }
        let plan = TrainingPlan(
            epochs: 1, stepsPerEpoch: 10, schedule: LearningRateSchedule(optim: OptimSpec(), stepsPerEpoch: 10))
        let ema = EMAStrategy(EMASpec(decays: [0.9], warmup: warmup), index: 0, plan: plan, model: model)
        var decays: [Double] = []
        if case .none = warmup {
            ema.afterStep(model, step: 1)  // the first update copies w0 (decay 0)
            decays.append(ema.lastDecays[0])
        }
        for (k, w) in Self.updates.enumerated() {
            for i in 0..<3 { model.parameters[i] = w[i] }
            ema.afterStep(model, step: k + 2)
            decays.append(ema.lastDecays[0])
        }
        return (ema.shadows[0].parameters.array, decays)
    }

    func threeFloatLayout() -> ParameterLayout {
        var l = ParameterLayout()
        l.add("w", [3], .parameter)
        return l
    }

    func testT4EMAUpdate() {
        let (e5, decays) = runEMA(.none)
        XCTAssertEqual(decays, [0, 0.9, 0.9, 0.9, 0.9, 0.9])
        let expected = [0.9607049226760864, -0.6855899095535278, -0.01885250210762024]
        for i in 0..<3 { close(Double(e5[i]), expected[i], "e5[\(i)]") }
    }

    func testT5TimmWarmupEMA() {
        // timm warmup counts the copying first update too: updates 1..5 use w1..w5 over a shadow of w0.
        let model = ModelState(layout: threeFloatLayout())
        for (i, v) in Self.w0.enumerated() { model.parameters[i] = v }
        let plan = TrainingPlan(
            epochs: 1, stepsPerEpoch: 10, schedule: LearningRateSchedule(optim: OptimSpec(), stepsPerEpoch: 10))
        let ema = EMAStrategy(
            EMASpec(decays: [0.9], warmup: .timm(gamma: 1, power: 2.0 / 3, minDecay: 0)), index: 0, plan: plan, model: model)
        var decays: [Double] = []
        for (k, w) in Self.updates.enumerated() {
            for i in 0..<3 { model.parameters[i] = w[i] }
            ema.afterStep(model, step: k + 1)
            decays.append(ema.lastDecays[0])
        }
        let expectedDecays = [0, 0.3700394750525634, 0.5192501432308638, 0.6031497370079502, 0.6580048106646605]
        for (a, b) in zip(decays, expectedDecays) { close(a, b) }
        // the warmup caps at the target 0.9 only much later; here every decay is the warmup's
        let expected = [0.6953893149431533, 1.6627852822682971, -1.0214544496693252]
        let e5 = ema.shadows[0].parameters.array
        for i in 0..<3 { close(Double(e5[i]), expected[i], "e5[\(i)]") }
    }

    /// T7: SWA running mean over w0..w5.
    func testT7SWAMean() {
        let model = ModelState(layout: threeFloatLayout())
        let plan = TrainingPlan(
            epochs: 10, stepsPerEpoch: 1, schedule: LearningRateSchedule(optim: OptimSpec(), stepsPerEpoch: 1))
        let swa = SWAStrategy(SWASpec(start: .epoch(1)), plan: plan, model: model)
        for (k, w) in ([Self.w0] + Self.updates).enumerated() {
            for i in 0..<3 { model.parameters[i] = w[i] }
            swa.afterEpoch(model, epoch: k + 1)
            if k == 1 { XCTAssertEqual(swa.average.parameters.array, [1.25, -1.5, 0.375]) }
        }
        let a = swa.average.parameters.array
        for (x, e) in zip(a, [1.0, 0.5, -0.45833333333333337]) { close(Double(x), e) }
        XCTAssertEqual(swa.count, 6)
    }

    /// T8: SWALR, lr0 = .1 → swa_lr = .05.
    func testT8SWALR() {
        let cos10 = [
            0.1, 0.09877641290737885, 0.0952254248593737, 0.08969463130731184, 0.0827254248593737, 0.07500000000000001,
            0.06727457514062632, 0.06030536869268818, 0.05477457514062632, 0.05122358709262116, 0.05,
        ]
        for (k, v) in cos10.enumerated() {
            close(
                AveragingMath.swaLearningRate(epochsSinceStart: k, from: 0.1, swaLR: 0.05, annealEpochs: 10, anneal: .cos), v,
                "cos k\(k)")
        }
        for (k, v) in [0.1, 0.0875, 0.0625, 0.05].enumerated() {
            close(AveragingMath.swaLearningRate(epochsSinceStart: k, from: 0.1, swaLR: 0.05, annealEpochs: 3, anneal: .cos), v)
        }
        for (k, v) in [0.1, 0.08333333333333334, 0.06666666666666668, 0.05, 0.05].enumerated() {
            close(AveragingMath.swaLearningRate(epochsSinceStart: k, from: 0.1, swaLR: 0.05, annealEpochs: 3, anneal: .linear), v)
        }
    }

    /// T9: one channel over batches [1, 2, 3, 4] and [10, 12]: update_bn (equal weight per batch,
    /// unbiased batch variance) through the BN kernel's running statistics with momentum 1/(k+1);
    /// precise BN (pooled mean and biased population variance) through the pooled accumulator.
    func testT9BatchNormRecomputation() {
        let bn = BatchNormKernels(channels: 1, workers: Workers(1))
        var rm: [Float] = [0], rv: [Float] = [1]
        var pooled = PooledStatistics(channels: 1)
        for (k, batch) in [[1, 2, 3, 4], [10, 12]].enumerated() {
            let x = Activation(ActivationShape(n: 1, h: 1, w: batch.count, c: 1)), out = Activation(x.shape)
            for (i, v) in batch.enumerated() { x[0, 0, i, 0] = Float(v) }
            bn.forwardTraining(
                x, gamma: [1], beta: [0], runningMean: &rm, runningVar: &rv, momentum: 1 / Float(k + 1),
                residual: nil, relu: false, out: out)
            pooled.add(mean: bn.mean.pointer, variance: bn.variance.pointer, count: batch.count)
        }
        close(Double(rm[0]), 6.75, "update_bn mean")
        close(Double(rv[0]), 1.8333333333333335, "update_bn var")
        let (m, v) = pooled.result(channel: 0)
        close(m, 5.333333333333333, "precise mean")
        close(v, 17.222222222222225, "precise var")
    }

    /// T10: distillation loss and its gradient (against central differences).
    func testT10Distillation() {
        let s: [Float] = [2, 1, 0.1, 0.5, 2.5, -1], t: [Float] = [3, 1.5, -0.5, 0, 3, 0.5]
        let y: [Int32] = [0, 1]
        func loss(_ s: [Float], alpha: Double, T: Double) -> (total: Double, kd: Double, ce: Double) {
            AveragingMath.distillation(
                student: s, teacher: t, labels: y, n: 2, classes: 3, temperature: T, alpha: alpha, dStudent: nil)
        }
        let r = loss(s, alpha: 0.5, T: 4)
        close(r.kd, 0.21936783450491026, "KD term")
        close(r.ce, 0.2851041117000609, "CE")
        close(r.total, 0.2522359731024856, "α .5")
        close(loss(s, alpha: 0.9, T: 4).total, 0.22594146222442532, "α .9")
        close(loss(s, alpha: 0.5, T: 1).kd, 0.06075152458790395, "T 1")
        var d = [Float](repeating: 0, count: 6)
        AveragingMath.distillation(student: s, teacher: t, labels: y, n: 2, classes: 3, temperature: 4, alpha: 0.5, dStudent: &d)
        for i in 0..<6 {
            var up = s, down = s
            up[i] += 1e-3
            down[i] -= 1e-3
            let fd = (loss(up, alpha: 0.5, T: 4).total - loss(down, alpha: 0.5, T: 4).total) / 2e-3
            XCTAssertEqual(Double(d[i]), fd, accuracy: 1e-4, "∂/∂s[\(i)]")
        }
    }
}
