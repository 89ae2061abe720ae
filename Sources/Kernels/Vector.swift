/// Eight floats at a time. The elementwise kernels are written with explicit vectors rather than
/// left to the auto-vectoriser, which gives up (falls back to scalar code) when an output aliases
/// an input, as in-place inference BatchNorm does. With `-target-cpu haswell` these are AVX registers.
typealias Vec = SIMD8<Float>

@inline(__always)
func load(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }

@inline(__always)
func load(_ p: UnsafeMutablePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }

@inline(__always)
func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }

/// Runs `vector` on each full block of 8 and `scalar` on the rest of `0..<n`.
@inline(__always)
func vectorLoop(_ n: Int, _ vector: (Int) -> Void, _ scalar: (Int) -> Void) {
    var i = 0
    while i + 8 <= n {
        vector(i)
        i += 8
    }
    while i < n {
        scalar(i)
        i += 1
    }
}
