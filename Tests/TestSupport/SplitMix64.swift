/// SplitMix64 (Steele et al.): a tiny seeded generator, so a property test draws the same inputs on
/// every run and machine and a failure reproduces.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<n (n ≥ 1; the modulo bias is irrelevant to a test).
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// `count` bytes, the low byte of each draw.
    public mutating func bytes(count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}
