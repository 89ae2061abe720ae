import CXSMM
import Foundation

/// Which GEMM code runs: libxsmm's JIT kernels, or the plain Swift loops that are their oracle.
public enum KernelBackend: String, Sendable {
    case xsmm
    case loops

    /// `POLYAK_KERNELS=loops` forces the Swift loops (tests of the fallback, or a libxsmm problem).
    public static let current: KernelBackend = {
        if ProcessInfo.processInfo.environment["POLYAK_KERNELS"] == "loops" { return .loops }
        cxsmm_init()
        return .xsmm
    }()

    /// What libxsmm generates code for on this CPU (`hsw` AVX2, `skx`/`clx`/`cpx` AVX-512), or `loops`.
    public static var description: String {
        current == .loops ? "loops" : String(cString: cxsmm_target_arch())
    }
}

/// A list of matrix pointers handed to one batch-reduce call.
public typealias MatrixList = UnsafeMutablePointer<UnsafePointer<Float>?>

/// `C[m×n] = β·C + Σᵢ Aᵢ[m×k] · op(Bᵢ)`, column-major, `op(B) = Bᵀ` when `transB` (then B is `[n×k]`).
///
/// This is libxsmm's batch-reduce GEMM (Georganas et al., IPDPS 2020): one call sums the products of
/// many (A, B) pairs into one C, which is exactly one output row of a direct convolution summed over
/// its filter taps. When libxsmm has no kernel for the sizes, plain loops compute the same thing.
///
/// The pointer lists are single-use: libxsmm 1.17's transposed-B kernels advance the B pointers in
/// place, so callers fill both lists afresh before every call.
public struct BatchReduceGEMM: @unchecked Sendable {
    public let m, n, k, lda, ldb, ldc: Int
    public let beta: Float
    public let transB: Bool
    private let handle: UnsafeRawPointer?

    public init(m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int, beta: Float, transB: Bool = false) {
        self.m = m
        self.n = n
        self.k = k
        self.lda = lda
        self.ldb = ldb
        self.ldc = ldc
        self.beta = beta
        self.transB = transB
        if KernelBackend.current == .xsmm {
            handle = cxsmm_dispatch_brgemm(
                Int32(m), Int32(n), Int32(k), Int32(lda), Int32(ldb), Int32(ldc), beta, transB ? 1 : 0)
        } else {
            handle = nil
        }
    }

    /// True when a JIT kernel runs this GEMM (false: the Swift loops).
    public var isJIT: Bool { handle != nil }

    @inline(__always)
    public func callAsFunction(_ a: MatrixList, _ b: MatrixList, _ c: UnsafeMutablePointer<Float>, count: Int) {
        if let handle {
            cxsmm_brgemm(handle, a, b, c, UInt64(count))
        } else {
            loops(a, b, c, count: count)
        }
    }

    /// The reference semantics, also the fallback.
    public func loops(_ a: MatrixList, _ b: MatrixList, _ c: UnsafeMutablePointer<Float>, count: Int) {
        for j in 0..<n {
            let cj = c + j * ldc
            if beta == 0 {
                cj.update(repeating: 0, count: m)
            } else if beta != 1 {
                for i in 0..<m { cj[i] *= beta }
            }
        }
        for t in 0..<count {
            let at = a[t]!
            let bt = b[t]!
            for j in 0..<n {
                let cj = c + j * ldc
                for p in 0..<k {
                    let bv = transB ? bt[j + p * ldb] : bt[p + j * ldb]
                    if bv == 0 { continue }
                    let ap = at + p * lda
                    for i in 0..<m { cj[i] += ap[i] * bv }
                }
            }
        }
    }
}
