import Dispatch
import Foundation
import Kernels
import PolyakNetwork

/// The machine's practical peak as `../shared/bench/xsmm_conv.c` defines it: the best forward GFLOP/s
/// that any one of the model's convolutions reaches alone (direct NHWC, libxsmm's batch-reduce GEMMs:
/// the same kernels and row loop the engine runs, on the same workers), best of 7 after a warm-up.
/// Measured in the benchmark's own process so the step's share of it compares like with like.
/// Direct convolutions only: the peak is what the FMA units give; the step's GFLOP/s count the
/// direct convolution's FLOPs too, so a Winograd pass, which needs fewer, shows as a higher share.
struct ConvolutionPeak {
    let gflops: Double
    /// The convolution that reached it (`layer3.0.conv2`), or where the figure came from.
    let source: String

    static func measure(_ model: ResNetMini, batch: Int, workers: Workers) -> ConvolutionPeak {
        var best = ConvolutionPeak(gflops: 0, source: "none")
        for (name, g) in model.convolutions(batch: batch, height: 28, width: 28) {
            let conv = Conv2d(g, workers: workers, winograd: WinogradPlan())
            let x = Activation(g.input), y = Activation(g.output), w = FloatBuffer(count: g.weightCount)
            // xsmm_conv.c's values: smooth, so no denormals and no zeros for a kernel to skip
            for b in 0..<g.input.n {
                for row in 0..<g.input.h {
                    for q in 0..<(g.input.w * g.cin) {
                        x.pointer[g.input.offset(b, row, 0) + q] = Float(sin(0.1 * Double(b * 7 + row * 3 + q)))
                    }
                }
            }
            for i in 0..<w.count { w[i] = Float(cos(0.37 * Double(i))) }
            conv.forward(x, w.pointer, y)
            var fastest = UInt64.max
            for _ in 0..<7 {
                let start = DispatchTime.now().uptimeNanoseconds
                conv.forward(x, w.pointer, y)
                fastest = min(fastest, DispatchTime.now().uptimeNanoseconds - start)
            }
            let gflops = g.forwardFLOPs / Double(fastest)
            if gflops > best.gflops { best = ConvolutionPeak(gflops: gflops, source: name) }
        }
        return best
    }
}
