import Crypto
import Foundation

/// SHA-256 as lowercase hex: checkpoints and exported weights carry their digest so a user can check
/// a download; the session cookie and the asset versions are digests too. The hashing is
/// swift-crypto's (BoringSSL's assembly on Linux, CryptoKit on Apple's systems); this type keeps
/// the three forms the trainer and the server call, so neither imports Crypto itself.
public enum SHA256 {
    public static func hex(of data: [UInt8]) -> String {
        hex(Crypto.SHA256.hash(data: data))
    }

    /// The digest of `data` as lowercase hex.
    public static func hex(_ data: Data) -> String {
        hex(Crypto.SHA256.hash(data: data))
    }

    /// The file's digest as lowercase hex, read in 1 MiB chunks, or nil when it cannot be read.
    public static func hex(ofFile path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        var hasher = Crypto.SHA256()
        while true {
            guard let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty else { break }
            hasher.update(data: chunk)
        }
        return hex(hasher.finalize())
    }

    private static func hex(_ digest: Crypto.SHA256.Digest) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in digest {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
