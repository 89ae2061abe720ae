import Kernels
import XCTest

/// A small deterministic filler for test tensors (no dependency on the project's RNG).
struct Filler {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Float(state >> 40) / Float(1 << 24) * 2 - 1
    }
    mutating func fill(_ a: Activation) {
        let s = a.shape
        for b in 0..<s.n { for y in 0..<s.h { for x in 0..<s.w { for c in 0..<s.c { a[b, y, x, c] = next() } } } }
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// Largest |a − b| / (1 + |b|) over two activations' interiors.
func maxRelativeError(_ a: Activation, _ b: Activation) -> Float {
    let s = a.shape
    var worst: Float = 0
    for n in 0..<s.n {
        for y in 0..<s.h {
            for x in 0..<s.w {
                for c in 0..<s.c {
                    worst = max(worst, abs(a[n, y, x, c] - b[n, y, x, c]) / (1 + abs(b[n, y, x, c])))
                }
            }
        }
    }
    return worst
}

/// Checks that every border element of a padded activation is still zero.
func assertBorderZero(_ a: Activation, file: StaticString = #filePath, line: UInt = #line) {
    let s = a.shape
    for b in 0..<s.n {
        for row in 0..<s.paddedH {
            for col in 0..<s.paddedW where row == 0 || col == 0 || row == s.paddedH - 1 || col == s.paddedW - 1 {
                for c in 0..<s.c where a.pointer[s.paddedOffset(b, row, col) + c] != 0 {
                    XCTFail("border (\(b), \(row), \(col), \(c)) written", file: file, line: line)
                    return
                }
            }
        }
    }
}
