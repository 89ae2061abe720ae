import Kernels
import XCTest

final class Conv2dTests: XCTestCase {
    /// resnet-mini's conv shapes (small batch), odd sizes, and the 1-channel stem.
    static let cases: [(cin: Int, cout: Int, k: Int, s: Int, h: Int, w: Int)] = [
        (1, 8, 3, 1, 9, 9), (1, 8, 3, 2, 9, 8), (8, 8, 3, 1, 7, 10), (8, 16, 3, 2, 10, 10), (8, 16, 3, 2, 7, 9),
        (8, 16, 1, 2, 10, 10), (8, 16, 1, 2, 7, 7), (16, 16, 1, 1, 5, 6), (4, 32, 3, 2, 8, 8),
        // Winograd (stride 1, channels in eights): sizes of each remainder mod 4 (whole tiles, a
        // patch one row or column past the image, and the ones that read zeros past it)
        (8, 16, 3, 1, 8, 6), (16, 8, 3, 1, 4, 10), (16, 16, 3, 1, 28, 28), (8, 32, 3, 1, 7, 9),
        (32, 32, 3, 1, 7, 7), (32, 40, 3, 1, 5, 6), (40, 32, 3, 1, 6, 3), (8, 16, 3, 1, 14, 14),
        (8, 8, 3, 1, 13, 10), (8, 8, 3, 1, 1, 2), (8, 16, 3, 1, 2, 1),
    ]

    func checkAgainstLoops(
        workers: Int, plan: WinogradPlan? = nil
    ) {
        var fill = Filler(1)
        for c in Self.cases {
            let g = ConvGeometry(
                cin: c.cin, cout: c.cout, kernel: c.k, stride: c.s,
                input: ActivationShape(n: 3, h: c.h, w: c.w, c: c.cin))
            let conv = Conv2d(g, workers: Workers(workers), winograd: plan)
            // F(4×4, 3×3)'s transforms scale by up to 8 (and 1/24) before they add, so its rounding
            // is about ten times the direct convolution's (Lavin & Gray's fp32 errors).
            let tolerance: Float = conv.winograd.any ? 1e-4 : 1e-5
            let x = Activation(g.input), y = Activation(g.output), yRef = Activation(g.output)
            fill.fill(x)
            var w = fill.array(g.weightCount)
            w.withUnsafeMutableBufferPointer { w in
                let wp = UnsafePointer(w.baseAddress!)
                conv.forward(x, wp, y)
                ReferenceConv.forward(g, x, wp, yRef)
                XCTAssertLessThan(maxRelativeError(y, yRef), tolerance, "forward \(c)")
                assertBorderZero(y)

                let dy = Activation(g.output)
                fill.fill(dy)
                let dx = Activation(g.input), dxRef = Activation(g.input)
                conv.backwardData(dy, wp, dx, accumulate: false)
                ReferenceConv.backwardData(g, dy, wp, dxRef)
                XCTAssertLessThan(maxRelativeError(dx, dxRef), tolerance, "input gradient \(c)")
                assertBorderZero(dx)

                // accumulate adds onto what is there
                conv.backwardData(dy, wp, dx, accumulate: true)
                for b in 0..<g.input.n {
                    for yy in 0..<g.input.h {
                        for xx in 0..<g.input.w {
                            for ch in 0..<g.cin {
                                let expected = 2 * dxRef[b, yy, xx, ch]
                                XCTAssertEqual(dx[b, yy, xx, ch], expected, accuracy: 10 * tolerance * (1 + abs(expected)))
                            }
                        }
                    }
                }

                var dw = [Float](repeating: 0, count: g.weightCount), dwRef = dw
                conv.backwardWeights(dy, x, &dw)
                ReferenceConv.backwardWeights(g, dy, x, &dwRef)
                for i in 0..<dw.count {
                    XCTAssertEqual(dw[i], dwRef[i], accuracy: 10 * tolerance * (1 + abs(dwRef[i])), "weight gradient \(c) [\(i)]")
                }
            }
        }
    }

    func testMatchesLoopsOneWorker() { checkAgainstLoops(workers: 1) }
    func testMatchesLoopsTwoWorkers() { checkAgainstLoops(workers: 2) }

    /// Every shape with the direct convolution on every pass (where Winograd would run by default).
    func testDirectMatchesLoops() {
        for workers in [1, 2] { checkAgainstLoops(workers: workers, plan: WinogradPlan()) }
    }

    func testWinogradRunsWhereTheShapeAllows() {
        let shape = ActivationShape(n: 1, h: 28, w: 28, c: 16)
        let plan = Conv2d(ConvGeometry(cin: 16, cout: 16, kernel: 3, stride: 1, input: shape), workers: Workers(1)).winograd
        XCTAssertEqual(plan, WinogradPlan(everyPass: true))
        for g in [
            ConvGeometry(cin: 16, cout: 32, kernel: 3, stride: 2, input: shape),
            ConvGeometry(cin: 16, cout: 32, kernel: 1, stride: 1, input: shape),
            ConvGeometry(cin: 1, cout: 16, kernel: 3, stride: 1, input: ActivationShape(n: 1, h: 28, w: 28, c: 1)),
        ] {
            XCTAssertEqual(Conv2d(g, workers: Workers(1)).winograd, WinogradPlan(), "\(g)")
        }
    }

    func testJITKernelsAreUsed() throws {
        try XCTSkipIf(KernelBackend.current == .loops, "POLYAK_KERNELS=loops")
        let g = ConvGeometry(cin: 16, cout: 16, kernel: 3, stride: 1, input: ActivationShape(n: 1, h: 28, w: 28, c: 16))
        XCTAssertTrue(Conv2d(g, workers: Workers(1)).isJIT, "libxsmm gave no kernel for resnet-mini's layer1 conv")
    }

    /// The loop fallback of the batch-reduce GEMM and libxsmm agree with a direct sum on a transposed-B product.
    func testBatchReduceLoopsMatchJIT() {
        var fill = Filler(7)
        let (m, n, k, count) = (5, 3, 4, 3)
        let a = FloatBuffer(count: count * m * k), b = FloatBuffer(count: count * n * k)
        for i in 0..<a.count { a[i] = fill.next() }
        for i in 0..<b.count { b[i] = fill.next() }
        let c1 = FloatBuffer(count: m * n), c2 = FloatBuffer(count: m * n)
        let gemm = BatchReduceGEMM(m: m, n: n, k: k, lda: m, ldb: n, ldc: m, beta: 0, transB: true)
        var ap = (0..<count).map { UnsafePointer<Float>?(a.pointer + $0 * m * k) }
        var bp = (0..<count).map { UnsafePointer<Float>?(b.pointer + $0 * n * k) }
        // libxsmm 1.17 advances the B pointers of a transposed-B call in place: lists are single-use.
        var ap2 = ap, bp2 = bp
        gemm(&ap, &bp, c1.pointer, count: count)
        gemm.loops(&ap2, &bp2, c2.pointer, count: count)
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for t in 0..<count { for p in 0..<k { s += a[t * m * k + i + p * m] * b[t * n * k + j + p * n] } }
                XCTAssertEqual(c1[i + j * m], s, accuracy: 1e-5, "gemm")
                XCTAssertEqual(c2[i + j * m], s, accuracy: 1e-5, "loops")
            }
        }
    }
}
