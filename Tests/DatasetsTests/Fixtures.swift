import CZlib
import Foundation
import XCTest

@testable import Datasets

/// Small IDX files written to a fresh temporary folder, plain or gzip'd.
final class FixtureDir {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("polyak-datasets-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }
}

/// The bytes of an IDX file: magic 00 00 type rank, big-endian dims, payload.
func idxBytes(dims: [Int], payload: [UInt8], type: UInt8 = 0x08) -> [UInt8] {
    var out: [UInt8] = [0, 0, type, UInt8(dims.count)]
    for d in dims {
        out += [
            UInt8(truncatingIfNeeded: d >> 24), UInt8(truncatingIfNeeded: d >> 16),
            UInt8(truncatingIfNeeded: d >> 8), UInt8(truncatingIfNeeded: d),
        ]
    }
    return out + payload
}

/// gzip-compresses `bytes` with zlib (deflate with a gzip wrapper: windowBits 15 + 16).
func gzipped(_ bytes: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    precondition(
        deflateInit2_(
            &stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
            zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { deflateEnd(&stream) }
    var input = bytes
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 64)
    let produced: Int = input.withUnsafeMutableBufferPointer { inp in
        output.withUnsafeMutableBufferPointer { out in
            stream.next_in = inp.baseAddress
            stream.avail_in = UInt32(inp.count)
            stream.next_out = out.baseAddress
            stream.avail_out = UInt32(out.count)
            let rc = deflate(&stream, Z_FINISH)
            precondition(rc == Z_STREAM_END, "deflate returned \(rc)")
            return out.count - Int(stream.avail_out)
        }
    }
    return Array(output[0..<produced])
}

/// Asserts that `body` throws a `DatasetError` whose description contains every one of `parts`.
func assertDatasetError<T>(
    _ body: @autoclosure () throws -> T, contains parts: [String],
    file: StaticString = #filePath, line: UInt = #line
) {
    do {
        _ = try body()
        XCTFail("expected a DatasetError containing \(parts)", file: file, line: line)
    } catch let error as DatasetError {
        for p in parts {
            XCTAssertTrue(error.description.contains(p), "\"\(error.description)\" lacks \"\(p)\"", file: file, line: line)
        }
    } catch {
        XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
    }
}
