import Foundation

/// Rendered pages by URL, each valid while the store's revision is the one it was rendered at.
///
/// A training run writes at most a few times a second, while a page of a 1 000-run experiment
/// takes ~100 ms and a run page a few: under many readers (a team's browsers polling, `wrk`) the
/// same HTML is served again instead of rebuilt. Bounded by bytes; the oldest entries go first.
final class PageCache: @unchecked Sendable {
    private struct Entry {
        var revision: UInt64
        var html: String
        var bytes: Int
        var serial: UInt64
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var bytes = 0
    private var serial: UInt64 = 0
    let limit: Int

    init(limitBytes: Int = 16 << 20) { limit = limitBytes }

    /// The page at `key` for `revision`, rendered by `render` when there is none.
    func page(_ key: String, revision: UInt64, render: () throws -> String) rethrows -> String {
        if let hit = lock.withLock({ entries[key] }), hit.revision == revision { return hit.html }
        let html = try render()
        let size = html.utf8.count
        guard size <= limit / 4 else { return html }
        lock.withLock {
            serial &+= 1
            if let old = entries[key] { bytes -= old.bytes }
            entries[key] = Entry(revision: revision, html: html, bytes: size, serial: serial)
            bytes += size
            // Evict the oldest entries (and every stale one) until under the limit.
            if bytes > limit {
                for (k, e) in entries.sorted(by: { $0.value.serial < $1.value.serial })
                where bytes > limit || e.revision != revision {
                    entries[k] = nil
                    bytes -= e.bytes
                }
            }
        }
        return html
    }
}
