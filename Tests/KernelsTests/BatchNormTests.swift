import Kernels
import PolyakTestSupport
import XCTest

final class BatchNormTests: XCTestCase {
    let shape = ActivationShape(n: 3, h: 4, w: 5, c: 6)

    /// L = Σ R ⊙ bn(x) [+ residual], no ReLU: every gradient against central differences.
    func testBackwardMatchesFiniteDifferences() {
        var fill = Filler(3)
        let bn = BatchNormKernels(channels: shape.c, workers: Workers(2))
        let x = Activation(shape), res = Activation(shape), out = Activation(shape), r = Activation(shape)
        fill.fill(x)
        fill.fill(res)
        fill.fill(r)
        let gamma = FloatBuffer(count: shape.c), beta = FloatBuffer(count: shape.c)
        for c in 0..<shape.c {
            gamma[c] = 1 + 0.5 * fill.next()
            beta[c] = fill.next()
        }
        var rm = [Float](repeating: 0, count: shape.c), rv = [Float](repeating: 1, count: shape.c)
        func loss() -> Double {
            bn.forwardTraining(
                x, gamma: gamma.pointer, beta: beta.pointer, runningMean: &rm, runningVar: &rv,
                momentum: 0.1, residual: res, relu: false, out: out)
            var s: Double = 0
            for b in 0..<shape.n {
                for y in 0..<shape.h {
                    for xx in 0..<shape.w {
                        for c in 0..<shape.c {
                            s += Double(out[b, y, xx, c]) * Double(r[b, y, xx, c])
                        }
                    }
                }
            }
            return s
        }
        _ = loss()
        let dx = Activation(shape), dres = Activation(shape)
        var dg = [Float](repeating: 0, count: shape.c), db = dg
        bn.backward(r, out: out, x: x, gamma: gamma.pointer, relu: false, dx: dx, dGamma: &dg, dBeta: &db, dResidual: dres)
        for (b, y, xx, c) in [(0, 0, 0, 0), (1, 2, 3, 4), (2, 3, 4, 5), (0, 1, 4, 2)] {
            let p = x.pointer + shape.offset(b, y, xx) + c
            XCTAssertEqual(Double(dx[b, y, xx, c]), finiteDifference(loss, at: p), accuracy: 2e-3, "dx")
            XCTAssertEqual(dres[b, y, xx, c], r[b, y, xx, c], "dResidual")
        }
        for c in 0..<shape.c {
            let dgFD = finiteDifference(loss, at: gamma.pointer + c)
            let dbFD = finiteDifference(loss, at: beta.pointer + c)
            XCTAssertEqual(Double(dg[c]), dgFD, accuracy: 2e-3, "dγ")
            XCTAssertEqual(Double(db[c]), dbFD, accuracy: 2e-3, "dβ")
        }
    }

    /// With the ReLU fused, the backward pass is the plain one applied to dOut masked by out > 0.
    func testFusedReLUMasksTheGradient() {
        var fill = Filler(4)
        let bn = BatchNormKernels(channels: shape.c, workers: Workers(1))
        let x = Activation(shape), out = Activation(shape), plain = Activation(shape), d = Activation(shape)
        fill.fill(x)
        fill.fill(d)
        let gamma = [Float](repeating: 1.3, count: shape.c), beta = [Float](repeating: 0.1, count: shape.c)
        var rm = [Float](repeating: 0, count: shape.c), rv = [Float](repeating: 1, count: shape.c)
        bn.forwardTraining(
            x, gamma: gamma, beta: beta, runningMean: &rm, runningVar: &rv, momentum: 0.1,
            residual: nil, relu: false, out: plain)
        bn.forwardTraining(
            x, gamma: gamma, beta: beta, runningMean: &rm, runningVar: &rv, momentum: 0.1,
            residual: nil, relu: true, out: out)
        let masked = Activation(shape)
        var zeros = 0
        for b in 0..<shape.n {
            for y in 0..<shape.h {
                for xx in 0..<shape.w {
                    for c in 0..<shape.c {
                        XCTAssertEqual(out[b, y, xx, c], max(0, plain[b, y, xx, c]))
                        masked[b, y, xx, c] = plain[b, y, xx, c] > 0 ? d[b, y, xx, c] : 0
                        if plain[b, y, xx, c] <= 0 { zeros += 1 }
                    }
                }
            }
        }
        XCTAssertGreaterThan(zeros, 10)
        let dx1 = Activation(shape), dx2 = Activation(shape)
        var dg1 = [Float](repeating: 0, count: shape.c), db1 = dg1, dg2 = dg1, db2 = dg1
        bn.backward(d, out: out, x: x, gamma: gamma, relu: true, dx: dx1, dGamma: &dg1, dBeta: &db1, dResidual: nil)
        bn.backward(masked, out: plain, x: x, gamma: gamma, relu: false, dx: dx2, dGamma: &dg2, dBeta: &db2, dResidual: nil)
        XCTAssertLessThan(maxRelativeError(dx1, dx2), 1e-5)
        for c in 0..<shape.c { XCTAssertEqual(dg1[c], dg2[c], accuracy: 1e-5) }
        // the mask derived from x and the forward's coefficients is the same mask, bit for bit
        let dx3 = Activation(shape)
        var dg3 = [Float](repeating: 0, count: shape.c), db3 = dg3
        bn.backward(d, out: nil, x: x, gamma: gamma, relu: true, dx: dx3, dGamma: &dg3, dBeta: &db3, dResidual: nil)
        XCTAssertEqual(dx3.values, dx1.values)
        XCTAssertEqual(dg3, dg1)
        XCTAssertEqual(db3, db1)
        // as the executor's bn2 calls it (the shortcut's gradient asked for, dx written over dOut;
        // w·c = 30, so the scalar tail runs too): the same dx bit for bit, the masked gradient in dResidual
        let dOut = Activation(shape), dResidual = Activation(shape)
        dOut.pointer.update(from: d.pointer, count: shape.storageCount)
        var dg4 = [Float](repeating: 0, count: shape.c), db4 = dg4
        bn.backward(dOut, out: out, x: x, gamma: gamma, relu: true, dx: dOut, dGamma: &dg4, dBeta: &db4, dResidual: dResidual)
        XCTAssertEqual(dOut.values, dx1.values)
        XCTAssertEqual(dResidual.values, masked.values)
        XCTAssertEqual(dg4, dg1)
        XCTAssertEqual(db4, db1)
    }

    /// Running statistics follow PyTorch: momentum 0.1, unbiased variance; inference uses them.
    func testRunningStatisticsAndInference() {
        let s = ActivationShape(n: 2, h: 1, w: 2, c: 1)
        let bn = BatchNormKernels(channels: 1, workers: Workers(1))
        let x = Activation(s), out = Activation(s)
        for (i, v) in [1, 2, 3, 6].enumerated() { x[i / 2, 0, i % 2, 0] = Float(v) }
        var rm: [Float] = [0], rv: [Float] = [1]
        bn.forwardTraining(
            x, gamma: [1], beta: [0], runningMean: &rm, runningVar: &rv, momentum: 0.1,
            residual: nil, relu: false, out: out)
        // mean 3, biased var 3.5, unbiased 14/3
        XCTAssertEqual(rm[0], 0.3, accuracy: 1e-6)
        XCTAssertEqual(rv[0], 0.9 + 0.1 * 14 / 3, accuracy: 1e-6)
        XCTAssertEqual(out[0, 0, 0, 0], (1 - 3) / (3.5 + 1e-5).squareRoot(), accuracy: 1e-5)
        bn.forwardInference(x, gamma: [2], beta: [1], runningMean: [3], runningVar: [4], residual: nil, relu: false, out: out)
        XCTAssertEqual(out[1, 0, 1, 0], 2 * (6 - 3) / (4 + 1e-5).squareRoot() + 1, accuracy: 1e-5)
    }
}

final class DenseTests: XCTestCase {
    func testLinearAndPoolBackward() {
        var fill = Filler(5)
        let s = ActivationShape(n: 2, h: 3, w: 3, c: 4)
        let x = Activation(s)
        fill.fill(x)
        let w = FloatBuffer(count: 12), bias = FloatBuffer(count: 3)
        for i in 0..<12 { w[i] = fill.next() }
        for i in 0..<3 { bias[i] = fill.next() }
        let r = fill.array(2 * 3)
        var labels: [Int32] = [1, 2]
        var pooled = [Float](repeating: 0, count: 8), logits = [Float](repeating: 0, count: 6)
        func loss() -> Double {
            GlobalAveragePool.forward(x, &pooled)
            Linear.forward(pooled, w.pointer, bias.pointer, &logits, n: 2, inputs: 4, outputs: 3)
            var l: Double = 0
            for i in 0..<6 { l += Double(logits[i] * r[i]) }
            return l + SoftmaxCrossEntropy.forward(logits: logits, labels: &labels, n: 2, classes: 3).lossSum
        }
        _ = loss()
        var dLogits = [Float](repeating: 0, count: 6)
        SoftmaxCrossEntropy.forward(logits: logits, labels: &labels, n: 2, classes: 3, dLogits: &dLogits)
        for i in 0..<6 { dLogits[i] = dLogits[i] * 2 + r[i] }  // loss sum, not mean: × n
        var dPooled = [Float](repeating: 0, count: 8), dw = [Float](repeating: 0, count: 12), db = [Float](repeating: 0, count: 3)
        Linear.backward(dLogits, pooled, w.pointer, dx: &dPooled, dw: &dw, db: &db, n: 2, inputs: 4, outputs: 3)
        let dx = Activation(s)
        GlobalAveragePool.backward(dPooled, dx)
        for i in [0, 5, 11] {
            let fd = finiteDifference(loss, at: w.pointer + i, h: 1e-3)
            XCTAssertEqual(Double(dw[i]), fd, accuracy: 1e-3)
        }
        for i in 0..<3 {
            let fd = finiteDifference(loss, at: bias.pointer + i, h: 1e-3)
            XCTAssertEqual(Double(db[i]), fd, accuracy: 1e-3)
        }
        for (b, y, xx, c) in [(0, 0, 0, 0), (1, 2, 1, 3)] {
            let fd = finiteDifference(loss, at: x.pointer + s.offset(b, y, xx) + c, h: 1e-3)
            XCTAssertEqual(Double(dx[b, y, xx, c]), fd, accuracy: 1e-3)
        }
    }

    func testCrossEntropyWithLabelSmoothing() {
        // log-softmax of [2, 1, 0.1]; ε = 0.1, K = 3, label 0
        let z: [Float] = [2, 1, 0.1]
        let lse = log(exp(2.0) + exp(1.0) + exp(0.1))
        let logp = z.map { Double($0) - lse }
        let q = [0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]
        let expected = -zip(q, logp).map { $0 * $1 }.reduce(0, +)
        var label: [Int32] = [0]
        let r = SoftmaxCrossEntropy.forward(logits: z, labels: &label, n: 1, classes: 3, labelSmoothing: 0.1)
        XCTAssertEqual(r.lossSum, expected, accuracy: 1e-6)
        XCTAssertEqual(r.correct, 1)
        XCTAssertTrue(SoftmaxCrossEntropy.inTopK(z, label: 1, classes: 3, k: 2))
        XCTAssertFalse(SoftmaxCrossEntropy.inTopK(z, label: 2, classes: 3, k: 2))
    }
}

final class FusedStatisticsTests: XCTestCase {
    /// Statistics gathered by the convolution as it writes rows equal a separate pass over memory.
    /// Direct convolution (stride 2), and Winograd (stride 1) with whole tiles and with tiles partly
    /// past the image.
    func testConvolutionGathersTheSameStatistics() {
        check(ConvGeometry(cin: 8, cout: 16, kernel: 3, stride: 2, input: ActivationShape(n: 5, h: 9, w: 9, c: 8)))
        check(ConvGeometry(cin: 16, cout: 16, kernel: 3, stride: 1, input: ActivationShape(n: 3, h: 8, w: 8, c: 16)))
        check(ConvGeometry(cin: 32, cout: 32, kernel: 3, stride: 1, input: ActivationShape(n: 5, h: 7, w: 5, c: 32)))
        check(ConvGeometry(cin: 8, cout: 16, kernel: 3, stride: 1, input: ActivationShape(n: 3, h: 10, w: 6, c: 8)))
    }

    func check(_ g: ConvGeometry) {
        var fill = Filler(11)
        let conv = Conv2d(g, workers: Workers(2))
        let x = Activation(g.input), y = Activation(g.output), out1 = Activation(g.output), out2 = Activation(g.output)
        fill.fill(x)
        let w = fill.array(g.weightCount)
        let gamma = [Float](repeating: 1.5, count: g.cout), beta = [Float](repeating: -0.2, count: g.cout)
        var rm1 = [Float](repeating: 0, count: g.cout), rv1 = [Float](repeating: 1, count: g.cout), rm2 = rm1, rv2 = rv1
        let separate = BatchNormKernels(channels: g.cout, workers: Workers(2)),
            fused = BatchNormKernels(channels: g.cout, workers: Workers(2))
        conv.forward(x, w, y)
        separate.forwardTraining(
            y, gamma: gamma, beta: beta, runningMean: &rm1, runningVar: &rv1, momentum: 0.1,
            residual: nil, relu: true, out: out1)
        conv.forward(x, w, y, statistics: fused)
        fused.forwardTraining(
            y, gamma: gamma, beta: beta, runningMean: &rm2, runningVar: &rv2, momentum: 0.1,
            residual: nil, relu: true, out: out2)
        XCTAssertLessThan(maxRelativeError(out1, out2), 1e-5)
        for c in 0..<g.cout {
            XCTAssertEqual(rm1[c], rm2[c], accuracy: 1e-6)
            XCTAssertEqual(rv1[c], rv2[c], accuracy: 1e-5)
        }
    }
}
