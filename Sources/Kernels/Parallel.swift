import Dispatch

/// Splits work over a fixed number of workers with a static partition, so a reduction done per
/// worker and then combined in worker order gives bit-identical results run after run.
public struct Workers: Sendable {
    /// How many workers share the work (the run's `threads`).
    public let count: Int

    public init(_ count: Int) { self.count = max(1, count) }

    /// Runs `body(worker)` once per worker and waits for all of them.
    @inline(__always)
    public func run(_ body: (Int) -> Void) {
        if count == 1 {
            body(0)
        } else {
            DispatchQueue.concurrentPerform(iterations: count, execute: body)
        }
    }

    /// The half-open slice of `0..<total` that `worker` owns.
    @inline(__always)
    public func range(_ worker: Int, of total: Int) -> Range<Int> {
        (total * worker / count)..<(total * (worker + 1) / count)
    }

    /// Runs `body(range)` over a static split of `0..<total`.
    @inline(__always)
    public func forEachSlice(_ total: Int, _ body: (Range<Int>) -> Void) {
        if count == 1 || total < 2 {
            body(0..<total)
        } else {
            run { w in
                let r = range(w, of: total)
                if !r.isEmpty { body(r) }
            }
        }
    }
}

/// A 64-byte aligned, zero-initialised `Float` buffer that lives until it is released: the storage of
/// activations, gradients and model state. Aligned so AVX-512 kernels never straddle cache lines.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        raw.initializeMemory(as: Float.self, repeating: 0, count: max(1, count))
        pointer = raw.assumingMemoryBound(to: Float.self)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public var array: [Float] { Array(buffer) }
}
