import XCTest

@testable import Datasets

final class XoshiroTests: XCTestCase {
    // Known answers computed independently with a few lines of Python (splitmix64 + xoshiro256**
    // transcribed from the reference C code); splitmix64(0) = 0xe220a8397b1dcdaf is the published
    // first value, and state {1, 2, 3, 4} gives 11520, 0, 1509978240, … as in the reference test.
    func testSeedZeroKnownAnswers() {
        var g = Xoshiro256(seed: 0)
        XCTAssertEqual(g.state, [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F, 0xF88B_B8A8_724C_81EC])
        let expected: [UInt64] = [
            0x99EC_5F36_CB75_F2B4, 0xBF6E_1F78_4956_452A, 0x1A5F_849D_4933_E6E0,
            0x6AA5_94F1_262D_2D2C, 0xBBA5_AD4A_1F84_2E59,
        ]
        XCTAssertEqual((0..<5).map { _ in g.next() }, expected)
    }

    func testSeed42KnownAnswers() {
        var g = Xoshiro256(seed: 42)
        let expected: [UInt64] = [
            0x1578_0B2E_0C2E_C716, 0x6104_D986_6D11_3A7E, 0xAE17_5332_39E4_99A1,
            0xECB8_AD47_03B3_60A1, 0xFDE6_DC7F_E2EC_5E64,
        ]
        XCTAssertEqual((0..<5).map { _ in g.next() }, expected)
    }

    func testReferenceStateOneTwoThreeFour() throws {
        var g = try Xoshiro256(state: [1, 2, 3, 4])
        XCTAssertEqual((0..<4).map { _ in g.next() }, [11520, 0, 1_509_978_240, 1_215_971_899_390_074_240])
    }

    func testStateSaveRestoreContinuesTheStream() throws {
        var a = Xoshiro256(seed: 123)
        for _ in 0..<17 { _ = a.next() }
        _ = a.nextGaussian()
        let saved = a.state
        let tail = (0..<10).map { _ in a.nextGaussian() }
        var b = try Xoshiro256(state: saved)
        XCTAssertEqual((0..<10).map { _ in b.nextGaussian() }, tail)
        var c = Xoshiro256(seed: 1)
        c.state = saved
        var d = try Xoshiro256(state: saved)
        XCTAssertEqual(c.next(), d.next())
    }

    func testInvalidStatesAreRefused() {
        XCTAssertThrowsError(try Xoshiro256(state: [0, 0, 0, 0]))
        XCTAssertThrowsError(try Xoshiro256(state: [1, 2, 3]))
        XCTAssertThrowsError(try Xoshiro256(state: [1, 2, 3, 4, 5]))
    }

    func testFloatAndDoubleUseTheTopBits() throws {
        var g = Xoshiro256(seed: 0)
        var h = Xoshiro256(seed: 0)
        let bits = h.next()
        XCTAssertEqual(g.nextFloat(), Float(bits >> 40) / 16_777_216)
        let bits2 = h.next()
        XCTAssertEqual(g.nextDouble(), Double(bits2 >> 11) / 9_007_199_254_740_992)
        // Extremes: all-ones bits stay below 1.
        XCTAssertLessThan(Float(UInt64.max >> 40) * 0x1p-24, 1)
        XCTAssertLessThan(Double(UInt64.max >> 11) * 0x1p-53, 1)
        for _ in 0..<10_000 {
            let f = g.nextFloat(), d = g.nextDouble()
            XCTAssertTrue(f >= 0 && f < 1)
            XCTAssertTrue(d >= 0 && d < 1)
        }
    }

    func testNextIntIsInRangeAndRoughlyUniform() {
        var g = Xoshiro256(seed: 5)
        var counts = [Int](repeating: 0, count: 7)
        let n = 70_000
        for _ in 0..<n { counts[g.nextInt(below: 7)] += 1 }
        for c in counts { XCTAssertEqual(Double(c), Double(n) / 7, accuracy: 500) }  // ~5 sigma
        XCTAssertEqual(g.nextInt(below: 1), 0)
        for _ in 0..<1000 {
            let v = g.nextInt(in: 3...5)
            XCTAssertTrue((3...5).contains(v))
        }
        // A bound near 2^63 exercises the rejection branch; results must stay in range.
        for _ in 0..<1000 { XCTAssertLessThan(g.nextInt(below: Int.max), Int.max) }
    }

    func testNextIntMatchesLemireFormula() {
        var g = Xoshiro256(seed: 9)
        var h = Xoshiro256(seed: 9)
        for _ in 0..<100 {
            let r = g.nextInt(below: 10)
            XCTAssertEqual(r, Int(h.next().multipliedFullWidth(by: 10).high))  // rejection ~never for n = 10
        }
    }

    func testGaussianMoments() {
        var g = Xoshiro256(seed: 11)
        let n = 100_000
        var sum = 0.0, sq = 0.0
        for _ in 0..<n {
            let v = g.nextGaussian()
            XCTAssertTrue(v.isFinite)
            sum += v; sq += v * v
        }
        let mean = sum / Double(n)
        XCTAssertEqual(mean, 0, accuracy: 0.02)
        XCTAssertEqual(sq / Double(n) - mean * mean, 1, accuracy: 0.03)
    }

    func testGaussianUsesTwoDrawsAndNoCache() {
        var g = Xoshiro256(seed: 3)
        var h = Xoshiro256(seed: 3)
        _ = g.nextGaussian()
        _ = h.next(); _ = h.next()
        XCTAssertEqual(g.state, h.state)
    }

    func testPermutation() {
        var g = Xoshiro256(seed: 1)
        let p = g.permutation(count: 1000)
        XCTAssertEqual(p.sorted(), (0..<1000).map { Int32($0) })
        XCTAssertNotEqual(p, (0..<1000).map { Int32($0) })
        XCTAssertEqual(g.permutation(count: 0), [])
        XCTAssertEqual(g.permutation(count: 1), [0])
        // Same seed, same permutation; Fisher–Yates from the end with nextInt(below: i + 1).
        var a = Xoshiro256(seed: 77), b = Xoshiro256(seed: 77)
        var manual = Array(0..<10)
        for i in stride(from: 9, to: 0, by: -1) { manual.swapAt(i, b.nextInt(below: i + 1)) }
        XCTAssertEqual(a.permutation(count: 10).map(Int.init), manual)
    }

    func testPermutationIsUniformOnThreeElements() {
        var g = Xoshiro256(seed: 2)
        var counts: [[Int32]: Int] = [:]
        for _ in 0..<60_000 { counts[g.permutation(count: 3), default: 0] += 1 }
        XCTAssertEqual(counts.count, 6)
        for (_, c) in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 500) }
    }
}
