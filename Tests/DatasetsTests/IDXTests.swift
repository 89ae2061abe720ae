import Foundation
import XCTest

@testable import Datasets

final class IDXTests: XCTestCase {
    let dims = [3, 2, 4]
    lazy var payload: [UInt8] = (0..<24).map { UInt8($0 * 10) }

    func testPlainRoundTrip() throws {
        let dir = try FixtureDir()
        let p = try dir.write("a-idx3-ubyte", idxBytes(dims: dims, payload: payload))
        let a = try IDXArray.read(path: p)
        XCTAssertEqual(a.dims, dims)
        XCTAssertEqual(a.bytes, payload)
    }

    func testGzipRoundTripDetectedByMagicNotName() throws {
        let dir = try FixtureDir()
        let gz = gzipped(idxBytes(dims: dims, payload: payload))
        XCTAssertEqual(Array(gz.prefix(2)), [0x1F, 0x8B])
        // A gzip file without .gz in its name, and a plain file named .gz: both read.
        let p1 = try dir.write("no-suffix", gz)
        let p2 = try dir.write("plain.gz", idxBytes(dims: dims, payload: payload))
        for p in [p1, p2] {
            let a = try IDXArray.read(path: p)
            XCTAssertEqual(a.dims, dims)
            XCTAssertEqual(a.bytes, payload)
        }
    }

    func testLargeGzipAndRank1AndRank4() throws {
        let dir = try FixtureDir()
        // Bigger than the 64 KiB input and output chunks.
        var big = [UInt8](repeating: 0, count: 300_000)
        var rng = Xoshiro256(seed: 7)
        for i in big.indices where i % 3 == 0 { big[i] = UInt8(truncatingIfNeeded: rng.next()) }
        let p = try dir.write("big.gz", gzipped(idxBytes(dims: [300_000], payload: big)))
        let a = try IDXArray.read(path: p)
        XCTAssertEqual(a.dims, [300_000])
        XCTAssertEqual(a.bytes, big)
        let p4 = try dir.write("r4", idxBytes(dims: [1, 2, 1, 3], payload: [1, 2, 3, 4, 5, 6]))
        XCTAssertEqual(try IDXArray.read(path: p4).dims, [1, 2, 1, 3])
    }

    func testConcatenatedGzipMembers() throws {
        let dir = try FixtureDir()
        let whole = idxBytes(dims: dims, payload: payload)
        let p = try dir.write("multi.gz", gzipped(Array(whole[0..<10])) + gzipped(Array(whole[10...])))
        XCTAssertEqual(try IDXArray.read(path: p).bytes, payload)
        // Zero padding after the last member is ignored (as Python's gzip module does) ...
        let z = try dir.write("padded.gz", gzipped(whole) + [UInt8](repeating: 0, count: 100))
        XCTAssertEqual(try IDXArray.read(path: z).bytes, payload)
        // ... but other bytes after the stream are not.
        let g = try dir.write("junk.gz", gzipped(whole) + Array("hello".utf8))
        assertDatasetError(try IDXArray.read(path: g), contains: [g + ":", "not valid gzip", "after the end"])
    }

    func testBadMagic() throws {
        let dir = try FixtureDir()
        var bytes = idxBytes(dims: dims, payload: payload)
        bytes[0] = 0x50
        let p = try dir.write("bad", bytes)
        assertDatasetError(try IDXArray.read(path: p), contains: [p + ":", "bad magic", "50 00 08 03"])
    }

    func testUnsupportedTypeCode() throws {
        let dir = try FixtureDir()
        let p = try dir.write("float", idxBytes(dims: [2], payload: [0, 0, 0, 0, 0, 0, 0, 0], type: 0x0D))
        assertDatasetError(try IDXArray.read(path: p), contains: [p + ":", "0x0d", "float32", "only 0x08"])
        let q = try dir.write("weird.gz", gzipped(idxBytes(dims: [2], payload: [0, 0], type: 0x42)))
        assertDatasetError(try IDXArray.read(path: q), contains: [q + ":", "0x42"])
    }

    func testBadRankAndZeroDim() throws {
        let dir = try FixtureDir()
        let p0 = try dir.write("r0", [0, 0, 8, 0])
        assertDatasetError(try IDXArray.read(path: p0), contains: [p0, "rank 0"])
        let p5 = try dir.write("r5", idxBytes(dims: [1, 1, 1, 1, 1], payload: [7]))
        assertDatasetError(try IDXArray.read(path: p5), contains: [p5, "rank 5"])
        let pz = try dir.write("z", idxBytes(dims: [2, 0], payload: []))
        assertDatasetError(try IDXArray.read(path: pz), contains: [pz, "dimension 1 is 0"])
    }

    func testAbsurdSizeIsRefusedBeforeAllocating() throws {
        let dir = try FixtureDir()
        let p = try dir.write("huge", idxBytes(dims: [0x7FFF_FFFF, 0x7FFF_FFFF, 0x7FFF_FFFF], payload: [1, 2, 3]))
        assertDatasetError(try IDXArray.read(path: p), contains: [p, "limit"])
    }

    func testTruncated() throws {
        let dir = try FixtureDir()
        let bytes = idxBytes(dims: dims, payload: Array(payload[0..<20]))
        let p = try dir.write("short", bytes)
        assertDatasetError(
            try IDXArray.read(path: p),
            contains: [p + ": truncated: expected 24 bytes of data, found 20"])
        let q = try dir.write("short.gz", gzipped(bytes))
        assertDatasetError(
            try IDXArray.read(path: q),
            contains: [q + ": truncated: expected 24 bytes of data, found 20"])
        let h = try dir.write("header", [0, 0, 8, 3, 0, 0])
        assertDatasetError(try IDXArray.read(path: h), contains: [h, "truncated"])
        let e = try dir.write("empty", [])
        assertDatasetError(try IDXArray.read(path: e), contains: [e, "truncated"])
    }

    func testGzipCutOff() throws {
        let dir = try FixtureDir()
        let gz = gzipped(idxBytes(dims: dims, payload: payload))
        // Without its 8-byte trailer (CRC and size) the data is all there but the stream is incomplete.
        let p = try dir.write("cut.gz", Array(gz.dropLast(8)))
        assertDatasetError(try IDXArray.read(path: p), contains: [p + ":", "not valid gzip"])
        let q = try dir.write("cut2.gz", Array(gz.prefix(14)))
        assertDatasetError(try IDXArray.read(path: q), contains: [q + ":"])
    }

    func testTrailingGarbage() throws {
        let dir = try FixtureDir()
        let bytes = idxBytes(dims: dims, payload: payload) + [9, 9, 9]
        let p = try dir.write("long", bytes)
        assertDatasetError(try IDXArray.read(path: p), contains: [p + ": trailing data: 3 bytes"])
        let q = try dir.write("long.gz", gzipped(bytes))
        assertDatasetError(try IDXArray.read(path: q), contains: [q + ": trailing data: 3 bytes"])
    }

    func testCorruptGzip() throws {
        let dir = try FixtureDir()
        var gz = gzipped(idxBytes(dims: dims, payload: payload))
        // Corrupt the deflate data (after the 10-byte header).
        for i in 10..<min(gz.count - 8, 20) { gz[i] ^= 0xFF }
        let p = try dir.write("corrupt.gz", gz)
        assertDatasetError(try IDXArray.read(path: p), contains: [p + ":", "not valid gzip"])
        // A bad CRC in the trailer.
        var gz2 = gzipped(idxBytes(dims: dims, payload: payload))
        gz2[gz2.count - 8] ^= 0x01
        let q = try dir.write("crc.gz", gz2)
        assertDatasetError(try IDXArray.read(path: q), contains: [q + ":", "not valid gzip"])
        // The gzip magic followed by nonsense.
        let r = try dir.write("magic-only.gz", [0x1F, 0x8B, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        assertDatasetError(try IDXArray.read(path: r), contains: [r + ":", "not valid gzip"])
    }

    func testMissingFile() throws {
        let dir = try FixtureDir()
        let p = dir.path("nothing-here")
        assertDatasetError(try IDXArray.read(path: p), contains: [p + ": not found"])
    }
}
