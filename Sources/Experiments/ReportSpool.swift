import Foundation

/// What `polyak train --report URL` keeps in its run folder so that no event is lost while the
/// server is away: every event line, in order, in `report/spool.jsonl`, and in `report/acked` the
/// byte offset up to which the server has acknowledged them. Lines past that offset are sent again
/// (by a resumed trainer, or read by a Slurm-executing server once the job ended); the server's
/// ingestion is idempotent, so a line sent twice is stored once.
public struct ReportSpool: Sendable {
    public let directory: String

    public init(runDirectory: String) { directory = runDirectory + "/report" }

    public var spoolPath: String { directory + "/spool.jsonl" }
    public var ackedPath: String { directory + "/acked" }

    /// The acknowledged byte offset (0 when nothing was acknowledged yet).
    public func acknowledged() -> Int {
        guard let text = try? String(contentsOfFile: ackedPath, encoding: .utf8) else { return 0 }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// Records that the server holds everything before `offset` (written atomically: temp + rename).
    public func acknowledge(upTo offset: Int) throws {
        try Data("\(offset)\n".utf8).write(to: URL(fileURLWithPath: ackedPath), options: .atomic)
    }

    /// The complete lines after the acknowledged offset, each with the offset just past it. A last
    /// line without its newline (a trainer killed mid-write) is left out: it was never sent.
    public func pending() -> [(line: String, end: Int)] {
        let start = acknowledged()
        guard let handle = FileHandle(forReadingAtPath: spoolPath) else { return [] }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: UInt64(start))) != nil, let data = try? handle.readToEnd() else { return [] }
        var out: [(line: String, end: Int)] = []
        var lineStart = data.startIndex
        for i in data.indices where data[i] == 0x0A {
            let line = String(decoding: data[lineStart..<i], as: UTF8.self)
            if !line.isEmpty { out.append((line, start + (i + 1 - data.startIndex))) }
            lineStart = i + 1
        }
        return out
    }

    /// The spool's size in bytes (where the next line starts).
    public func size() -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: spoolPath)[.size]) as? NSNumber)?.intValue ?? 0
    }
}
