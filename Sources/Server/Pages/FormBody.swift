import Foundation

/// An `application/x-www-form-urlencoded` body: the launch form posts one. Keys may repeat
/// (one `presets` per ticked box), so values are kept in order per key.
struct FormBody {
    private(set) var values: [String: [String]] = [:]

    init(_ text: String) {
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.decode(parts[0])
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            values[key, default: []].append(value)
        }
    }

    /// `+` is a space; `%XX` a byte of UTF-8. Malformed escapes are kept as written.
    static func decode(_ s: Substring) -> String {
        let spaced = s.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    /// The first value of `key`, trimmed; nil when absent or blank.
    func first(_ key: String) -> String? {
        guard let v = values[key]?.first?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
        return v
    }

    func all(_ key: String) -> [String] { values[key] ?? [] }
}
