/// xoshiro256** 1.0 (Blackman & Vigna, 2018), seeded through SplitMix64.
///
/// The whole generator state is the four words of `state`: saving them in a checkpoint and
/// restoring them with `init(state:)` continues the exact same stream. No derived method caches
/// anything (for example `nextGaussian()` throws its second Box–Muller value away), so this
/// holds at any point of the stream.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    /// Seeds the four state words with four successive outputs of SplitMix64 started at `seed`,
    /// as the authors recommend. Every seed (0 included) gives a valid, non-zero state.
    public init(seed: UInt64) {
        var sm = seed
        s0 = Xoshiro256.splitMix64(&sm)
        s1 = Xoshiro256.splitMix64(&sm)
        s2 = Xoshiro256.splitMix64(&sm)
        s3 = Xoshiro256.splitMix64(&sm)
    }

    /// Restores a state saved from `state`. Throws unless `state` holds exactly 4 words, not all zero
    /// (the all-zero state is the generator's one fixed point).
    public init(state: [UInt64]) throws {
        try Xoshiro256.validate(state)
        s0 = state[0]; s1 = state[1]; s2 = state[2]; s3 = state[3]
    }

    /// The four state words, in the order of the reference C code (`s[0]` … `s[3]`).
    /// Setting an invalid state (not 4 words, or all zero) is a programming error and traps;
    /// use `init(state:)` for untrusted input such as a checkpoint file.
    public var state: [UInt64] {
        get { [s0, s1, s2, s3] }
        set {
            do { try Xoshiro256.validate(newValue) } catch { preconditionFailure("\(error)") }
            s0 = newValue[0]; s1 = newValue[1]; s2 = newValue[2]; s3 = newValue[3]
        }
    }

    static func validate(_ state: [UInt64]) throws {
        guard state.count == 4 else {
            throw DatasetError(path: nil, "xoshiro256** state must have 4 words, got \(state.count)")
        }
        guard state.contains(where: { $0 != 0 }) else {
            throw DatasetError(path: nil, "xoshiro256** state must not be all zero")
        }
    }

    /// One step of SplitMix64 (Vigna): advances `x` and returns the mixed value.
    @inlinable
    public static func splitMix64(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 &- k)) }

    /// The next 64 random bits (xoshiro256**: `rotl(s[1] * 5, 7) * 9`).
    @inlinable
    public mutating func next() -> UInt64 {
        let result = Xoshiro256.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Xoshiro256.rotl(s3, 45)
        return result
    }

    /// Uniform in [0, 1) with 24 bits of resolution: the top 24 bits of `next()` times 2⁻²⁴.
    @inlinable
    public mutating func nextFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// Uniform in [0, 1) with 53 bits of resolution: the top 53 bits of `next()` times 2⁻⁵³.
    @inlinable
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// Uniform in [a, b) (a + (b − a) · `nextDouble()`); returns `a` when a == b.
    @inlinable
    public mutating func nextDouble(in a: Double, _ b: Double) -> Double {
        a + (b - a) * nextDouble()
    }

    /// Unbiased uniform integer in 0..<n (Lemire's multiply-shift with rejection). `n` must be > 0.
    /// Uses one `next()` except on a rare rejection (probability < n / 2⁶⁴).
    @inlinable
    public mutating func nextInt(below n: Int) -> Int {
        precondition(n > 0, "nextInt(below:) needs n > 0, got \(n)")
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold {
                m = next().multipliedFullWidth(by: bound)
            }
        }
        return Int(m.high)
    }

    /// Unbiased uniform integer in `range` (both ends included, like Python's `random.randint`).
    @inlinable
    public mutating func nextInt(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + nextInt(below: range.upperBound - range.lowerBound + 1)
    }

    /// A standard normal value by Box–Muller: u1 = 1 − `nextDouble()` ∈ (0, 1], u2 = `nextDouble()`,
    /// result √(−2 ln u1) · cos(2π u2). Uses exactly two `next()` calls; the sine half is dropped so
    /// that the state alone determines the rest of the stream.
    @inlinable
    public mutating func nextGaussian() -> Double {
        let u1 = 1.0 - nextDouble()
        let u2 = nextDouble()
        return (-2.0 * _log(u1)).squareRoot() * _cos(2.0 * Double.pi * u2)
    }

    /// Shuffles `buffer` in place by Fisher–Yates, from the last index down:
    /// for i in (1..<count).reversed(), swap i with `nextInt(below: i + 1)`.
    @inlinable
    public mutating func shuffle<T>(_ buffer: UnsafeMutableBufferPointer<T>) {
        var i = buffer.count - 1
        while i > 0 {
            let j = nextInt(below: i + 1)
            if j != i { buffer.swapAt(i, j) }
            i -= 1
        }
    }

    /// Shuffles `array` in place (same draws as the buffer version).
    @inlinable
    public mutating func shuffle<T>(_ array: inout [T]) {
        array.withUnsafeMutableBufferPointer { shuffle($0) }
    }

    /// A uniformly random permutation of 0..<count: the identity shuffled by `shuffle`.
    public mutating func permutation(count: Int) -> [Int32] {
        precondition(count >= 0 && count <= Int(Int32.max), "permutation count out of range: \(count)")
        var p = (0..<count).map { Int32($0) }
        shuffle(&p)
        return p
    }
}

// Foundation-free libm access (the module avoids importing Foundation in hot code).
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

@usableFromInline func _log(_ x: Double) -> Double { log(x) }
@usableFromInline func _cos(_ x: Double) -> Double { cos(x) }
