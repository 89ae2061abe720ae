import Experiments
import Foundation
import XCTest

final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(
            SHA256.hex(Data(repeating: 0x61, count: 1_000)),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        XCTAssertEqual(
            SHA256.hex(of: Array(repeating: UInt8(ascii: "a"), count: 1_000_000)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// A file is hashed in chunks: the streamed digest equals the one-shot digest across chunk edges.
    func testFilesStreamInChunks() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID()).bin").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let data = Data((0..<((1 << 20) + 77)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try data.write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(SHA256.hex(ofFile: path), SHA256.hex(data))
        XCTAssertNil(SHA256.hex(ofFile: path + ".missing"))
    }
}
