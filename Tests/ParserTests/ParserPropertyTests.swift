import CZlib
import Datasets
import Experiments
import Foundation
import PolyakNetwork
import PolyakTestSupport
import XCTest

@testable import Server

/// The four readers that take bytes from outside (IDX, safetensors, run specs, metric batches) fed
/// a few thousand mutated and random inputs from a fixed seed: none may crash or hang, and every
/// refusal is the reader's own error type with a message. `make fuzz` runs the same readers under
/// libFuzzer for minutes; this bounded version keeps the property in the suite.
final class ParserPropertyTests: XCTestCase {
    static let inputsPerReader = 1500

    func testIDXReaderRefusesMutationsWithItsOwnError() throws {
        let images = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3] + (0..<18).map { UInt8($0) }
        let labels: [UInt8] = [0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 9]
        let seeds = [images, labels, gzip(images), gzip(labels) + gzip([])]
        XCTAssertEqual(try IDXArray.decode(images).dims, [2, 3, 3])
        XCTAssertEqual(try IDXArray.decode(gzip(images)).bytes, Array(images[16...]))
        // A 12-byte file declaring 2 GiB: refused as truncated without allocating (and zeroing) 2 GiB first.
        let declaresHuge: [UInt8] = [0, 0, 8, 2, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1]
        XCTAssertThrowsError(try IDXArray.decode(declaresHuge)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        try check(seeds, DatasetError.self, \.message) { _ = try IDXArray.decode($0) }
    }

    func testSafetensorsReaderRefusesMutationsWithItsOwnError() throws {
        let file = SafetensorsFile(
            tensors: [
                .init(name: "fc.weight", floats: [1, 2, 3, 4], shape: [2, 2]),
                .init(name: "bn.num_batches_tracked", int64s: [7], shape: []),
            ],
            metadata: ["format": "pt"])
        let encoded = Array(file.encoded())
        XCTAssertEqual(try SafetensorsFile.decode(Data(encoded))["fc.weight"]?.floats, [1, 2, 3, 4])
        // A shape whose byte count overflows Int: refused, not trapped.
        let header = Array(#"{"t":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}"#.utf8)
        let overflow = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
        XCTAssertThrowsError(try SafetensorsFile.decode(Data(overflow))) {
            XCTAssertTrue("\($0)".contains("bytes for shape"), "\($0)")
        }
        try check([encoded, Array(SafetensorsFile().encoded()), overflow], SafetensorsError.self, \.problem) {
            _ = try SafetensorsFile.decode(Data($0))
        }
    }

    func testRunSpecReaderRefusesMutationsWithItsOwnError() throws {
        let specs = [
            "{}",
            #"{"name": "kd", "seed": 3, "optim": {"lr": 0.05, "epochs": 2}, "data": {"train_limit": 512}, "distillation": {"teacher": {"path": "t.safetensors", "model": {"width": 16}}}}"#,
            #"{"averaging": [{"kind": "ema", "decays": [0.996, 0.999]}, {"kind": "ema", "decays": [0.998], "warmup": {"kind": "timm", "power": 0.75}}, {"kind": "swa", "start": 0.75, "swa_lr": 0.02, "anneal_epochs": 1}], "resolution": {"test_grid": {"resize": [28, 32, 36], "crop": [24, 28, 32]}}}"#,
        ]
        for s in specs { XCTAssertNoThrow(try RunSpec.decode(Data(s.utf8)), s) }
        try check(specs.map { Array($0.utf8) }, SpecError.self, \.message) { _ = try RunSpec.decode(Data($0)) }
    }

    func testMetricBatchReaderRefusesMutationsWithItsOwnError() throws {
        let batch =
            #"{"metrics": [{"key": "test/top1", "step": 1404, "value": 0.9012, "epoch": 3, "time": 1764000000.1, "weights": "raw"}, {"key": "train/loss", "step": 1, "value": "NaN"}, {"key": "ema/decay", "step": 2, "value": -1.5e-3, "weights": "ema@0.999"}]}"#
        XCTAssertEqual(try MetricBatchReader.parse(Array(batch.utf8), now: 0).count, 3)
        try check([Array(batch.utf8), Array(#"{"metrics": []}"#.utf8)], APIError.self, \.message) {
            _ = try MetricBatchReader.parse($0, now: 0)
        }
    }

    // MARK: Mutation

    /// Feeds `inputsPerReader` inputs (mutated seeds, and some random bytes) to `read`; a refusal
    /// must be an `E` with a non-empty message. Returns nothing: a crash fails the whole run.
    func check<E: Error>(_ seeds: [[UInt8]], _ errorType: E.Type, _ message: KeyPath<E, String>, read: ([UInt8]) throws -> Void)
        throws
    {
        var rng = SplitMix64(seed: 0x5EED_0014)
        var refused = 0, accepted = 0
        let start = Date()
        for i in 0..<Self.inputsPerReader {
            let input = i % 10 == 9 ? rng.bytes(count: Int(rng.next() % 64)) : mutate(seeds[i % seeds.count], &rng)
            do {
                try read(input)
                accepted += 1
            } catch let e as E {
                refused += 1
                XCTAssertFalse(
                    e[keyPath: message].trimmingCharacters(in: .whitespaces).isEmpty, "a refusal without a message: \(input)")
            } catch {
                XCTFail("\(type(of: error)) is not the reader's own error (\(E.self)): \(error) for \(input)")
            }
        }
        XCTAssertEqual(refused + accepted, Self.inputsPerReader)
        XCTAssertGreaterThan(refused, 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10, "the readers are slow on small inputs")
    }

    /// One to four byte-level edits: flip, overwrite with a boundary value, insert text a reader
    /// treats specially, delete, duplicate a slice, or truncate.
    func mutate(_ seed: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        let tokens = [
            "1e400", "-1e400", "NaN", "99999999999999999999", "-0", "\"", "\\u0000", "\\ud800", "[", "{", "}", "]", ",", ":",
            "null", "true", "1.7976931348623157e309", "4294967296", "-1",
        ].map { Array($0.utf8) }
        var b = seed
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            let at = b.isEmpty ? 0 : Int(rng.next() % UInt64(b.count))
            switch rng.next() % 7 {
            case 0 where !b.isEmpty: b[at] ^= UInt8(1 << (rng.next() % 8))
            case 1 where !b.isEmpty: b[at] = [0, 0xff, 0x7f, 0x80, 0x30, 0x22][Int(rng.next() % 6)]
            case 2: b.insert(contentsOf: tokens[Int(rng.next() % UInt64(tokens.count))], at: at)
            case 3 where !b.isEmpty: b.removeSubrange(at..<min(b.count, at + 1 + Int(rng.next() % 8)))
            case 4 where !b.isEmpty:
                b.insert(contentsOf: b[at..<min(b.count, at + 1 + Int(rng.next() % 16))], at: Int(rng.next() % UInt64(b.count)))
            case 5: b = Array(b.prefix(at))
            default: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
            }
        }
        return b
    }

    func gzip(_ bytes: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        XCTAssertEqual(
            deflateInit2_(
                &stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size)), Z_OK)
        var input = bytes
        var out = [UInt8](repeating: 0, count: bytes.count + 128)
        let written = input.withUnsafeMutableBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o -> Int in
                stream.next_in = i.baseAddress
                stream.avail_in = UInt32(i.count)
                stream.next_out = o.baseAddress
                stream.avail_out = UInt32(o.count)
                XCTAssertEqual(deflate(&stream, Z_FINISH), Z_STREAM_END)
                return o.count - Int(stream.avail_out)
            }
        }
        deflateEnd(&stream)
        return Array(out[..<written])
    }
}
