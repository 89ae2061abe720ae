import Experiments
import Foundation

/// Who may reach the server and what they may do: `polyak serve`'s `--token-file`, `--private`,
/// `--allowed-host` and `--allow-origin`.
///
/// The defaults suit a person's own machine: the server listens on loopback, every request must
/// name it by a loopback `Host` (a DNS-rebinding page names its own), and writes from another
/// site's pages are refused by their `Origin`. A token adds a password on writes (and with
/// `privateReads` on reads): what a server reachable from a network needs.
public struct AccessPolicy: Sendable {
    /// Writes (and reads when `privateReads`) need `Authorization: Bearer <token>` or the sign-in
    /// cookie. `nil`: no token, so only the host and origin checks stand.
    public var token: String?
    public var privateReads: Bool
    /// `Host` values admitted besides the loopback names (`name` for any port, or `name:port`).
    public var allowedHosts: [String]
    /// Origins whose pages may call the API (CORS answers and writes), e.g. `http://localhost:3000`.
    public var allowedOrigins: [String]

    public init(token: String? = nil, privateReads: Bool = false, allowedHosts: [String] = [], allowedOrigins: [String] = []) {
        self.token = token
        self.privateReads = privateReads
        self.allowedHosts = allowedHosts.map { $0.lowercased() }
        self.allowedOrigins = allowedOrigins.map { Self.normalizedOrigin($0) }
    }

    /// The cookie the sign-in form sets: derived from the token (never the token itself), so a new
    /// token signs every browser out.
    var sessionValue: String? { token.map { SHA256.hex(of: Array("polyak-session\u{0}\($0)".utf8)) } }

    /// Whether `given` is the token, in time that does not depend on where they differ.
    func isToken(_ given: String) -> Bool {
        guard let token else { return false }
        return Self.constantTimeEqual(SHA256.hex(of: Array(given.utf8)), SHA256.hex(of: Array(token.utf8)))
    }

    func isSession(_ given: String) -> Bool {
        guard let expected = sessionValue else { return false }
        return Self.constantTimeEqual(given, expected)
    }

    /// Equal strings, compared over every byte of the longer one (digests here: equal lengths).
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }

    /// `http://Example.com:3000/` → `http://example.com:3000`.
    static func normalizedOrigin(_ text: String) -> String {
        var s = text.lowercased()
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }

    /// Loopback addresses `polyak serve` may listen on without a token.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || h.hasPrefix("127.")
    }

    /// Reads a token file: one line, surrounding white space ignored. A missing file is created
    /// with a fresh random token (mode 0600), as Jupyter does, and `created` says so.
    public static func token(fromFile path: String) throws -> (token: String, created: Bool) {
        let fm = FileManager.default
        if !fm.fileExists(atPath: path) {
            var bytes = [UInt8](repeating: 0, count: 32)
            var generator = SystemRandomNumberGenerator()
            for i in bytes.indices { bytes[i] = UInt8.random(in: .min ... .max, using: &generator) }
            let token = bytes.map { String(format: "%02x", $0) }.joined()
            guard fm.createFile(atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw AccessError("--token-file \(path): cannot create the file")
            }
            return (token, true)
        }
        guard let data = fm.contents(atPath: path) else { throw AccessError("--token-file \(path): cannot read the file") }
        guard let text = String(data: data, encoding: .utf8) else { throw AccessError("--token-file \(path): not UTF-8 text") }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw AccessError("--token-file \(path) is empty; put a token in it (e.g. `openssl rand -hex 32`)")
        }
        guard token.count >= 16 else { throw AccessError("--token-file \(path): the token is shorter than 16 characters") }
        guard !token.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw AccessError("--token-file \(path): the token must be one word without spaces")
        }
        return (token, false)
    }
}

public struct AccessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
