import Experiments
import Foundation
import Training

/// `polyak train --report URL`: besides printing its lines, the trainer posts them to the run's URL
/// on a Polyak server (`…/api/runs/<id>`): metric points to `POST …/metrics` in batches (≤ 1 000
/// points, or what came in a second), every other event to `POST …/events`, in the order printed.
///
/// Every line goes to the run folder's spool (``ReportSpool``) before it is sent, and the spool's
/// acknowledged offset moves only after a 2xx: while the server is down or restarting the sender
/// retries with backoff (up to 5 s apart), and what is still unsent when the trainer exits stays in
/// the folder, sent by the next `--resume` (or read by a Slurm-executing server when the job ends).
/// The server stores a resent line once, so nothing is lost and nothing is duplicated.
///
/// HTTP is the binary's one client (``PolyakHTTP``, the client commands' too), called from a blocking
/// sender thread: the trainer has no Swift concurrency of its own.
final class TrainReport: @unchecked Sendable {
    struct Line {
        var text: String
        /// The spool offset just past this line.
        var end: Int
        var isMetric: Bool
    }

    static let maxPoints = 1000
    static let maxEvents = 500
    /// Below the server's 1 MB body cap with room to spare.
    static let maxBytes = 800_000
    static let interval = 1.0
    static let maxBackoff = 5.0

    /// The run's URL on the server, with its token.
    let http: PolyakHTTP
    let spool: ReportSpool
    private let condition = NSCondition()
    private var pending: [Line] = []
    private var written: Int
    private let handle: FileHandle
    private var oldest: Date?
    private var finishing = false
    /// The server refused a batch for good (401, 404, 409…): lines are still spooled, not sent.
    private var refused: String?
    private var sending = false

    init(url: String, token: String?, runDirectory: String) throws {
        http = PolyakHTTP(base: url, token: token)
        spool = ReportSpool(runDirectory: runDirectory)
        try FileManager.default.createDirectory(atPath: spool.directory, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: spool.spoolPath) {
            FileManager.default.createFile(atPath: spool.spoolPath, contents: nil)
        }
        Self.cutTornTail(spool.spoolPath)
        guard let h = FileHandle(forWritingAtPath: spool.spoolPath) else {
            throw ReportError("cannot write \(spool.spoolPath)")
        }
        handle = h
        written = Int(try handle.seekToEnd())
        // What an earlier trainer in this folder could not send goes first.
        pending = spool.pending().map { Line(text: $0.line, end: $0.end, isMetric: Self.isMetric($0.line)) }
        if !pending.isEmpty { oldest = .distantPast }
        let thread = Thread { [self] in sendLoop() }
        thread.name = "polyak-report"
        thread.start()
    }

    /// Spools one event line and wakes the sender. Called under the `EventSink`'s lock, so lines
    /// keep the order they were printed in.
    func record(_ line: String) {
        let bytes = Data((line + "\n").utf8)
        condition.lock()
        defer { condition.unlock() }
        handle.write(bytes)
        written += bytes.count
        pending.append(Line(text: line, end: written, isMetric: Self.isMetric(line)))
        if oldest == nil { oldest = Date() }
        condition.signal()
    }

    /// Sends what is left, waiting up to `timeout` seconds; returns how many lines stay unsent (in the spool).
    func finish(timeout: Double) -> Int {
        try? handle.synchronize()
        condition.lock()
        defer { condition.unlock() }
        finishing = true
        condition.broadcast()
        var deadline = Date().addingTimeInterval(timeout)
        var shortened = false
        while (!pending.isEmpty || sending) && refused == nil && Date() < deadline {
            // Stopped (scancel, Ctrl-C): 3 s more at most for the server, the spool keeps the rest.
            if StopRequest.isSet && !shortened {
                deadline = min(deadline, Date().addingTimeInterval(3))
                shortened = true
            }
            _ = condition.wait(until: min(deadline, Date().addingTimeInterval(0.2)))
        }
        return pending.count
    }

    // MARK: Sending

    private func sendLoop() {
        var backoff = 0.25
        while true {
            condition.lock()
            while !isDue() { _ = condition.wait(until: Date().addingTimeInterval(0.1)) }
            let batch = Self.nextBatch(pending)
            sending = true
            condition.unlock()

            var sent = 0
            var failure: String?
            for group in Self.groups(batch) {
                switch post(group) {
                case .acknowledged:
                    sent += group.count
                    try? spool.acknowledge(upTo: group.last!.end)
                case .retry(let why):
                    failure = why
                case .refused(let why):
                    failure = why
                    condition.lock()
                    refused = why
                    condition.unlock()
                    FileHandle.standardError.write(
                        Data(
                            ("polyak: the server refused the report (\(why)); training goes on and its events stay in "
                                + "\(spool.spoolPath)\n").utf8))
                }
                if failure != nil { break }
            }

            condition.lock()
            pending.removeFirst(sent)
            if pending.isEmpty { oldest = nil }
            sending = false
            condition.broadcast()
            let stop = refused != nil
            condition.unlock()
            if stop { return }
            if let failure {
                if backoff == 0.25 { FileHandle.standardError.write(Data("polyak: report: \(failure); retrying\n".utf8)) }
                Thread.sleep(forTimeInterval: backoff)
                backoff = min(backoff * 2, Self.maxBackoff)
            } else {
                backoff = 0.25
            }
        }
    }

    /// Called under the condition's lock: a batch is full, a second old, or the trainer is finishing.
    private func isDue() -> Bool {
        guard !pending.isEmpty else { return false }
        if finishing { return true }
        if let oldest, Date().timeIntervalSince(oldest) >= Self.interval { return true }
        return pending.lazy.filter(\.isMetric).prefix(Self.maxPoints).count >= Self.maxPoints
    }

    /// The lines of the next batch, from the front: at most `maxPoints` points, `maxEvents` other events, `maxBytes`.
    static func nextBatch(_ pending: [Line]) -> [Line] {
        var (points, events, bytes) = (0, 0, 0)
        var out: [Line] = []
        for line in pending {
            if line.isMetric ? points == maxPoints : events == maxEvents { break }
            if bytes + line.text.utf8.count > maxBytes && !out.isEmpty { break }
            if line.isMetric { points += 1 } else { events += 1 }
            bytes += line.text.utf8.count + 1
            out.append(line)
        }
        return out
    }

    /// Runs of consecutive metric or non-metric lines: one request each, in order.
    static func groups(_ lines: [Line]) -> [[Line]] {
        var out: [[Line]] = []
        for line in lines {
            if let last = out.last?.last, last.isMetric == line.isMetric {
                out[out.count - 1].append(line)
            } else {
                out.append([line])
            }
        }
        return out
    }

    static func isMetric(_ line: String) -> Bool { line.contains("\"type\":\"metric\"") }

    enum Outcome {
        case acknowledged
        /// The server is unreachable or busy (5xx, 408, 429): try again.
        case retry(String)
        /// A 4xx that sending again will not change.
        case refused(String)
    }

    private func post(_ group: [Line]) -> Outcome {
        let path: String
        let body: String
        if group[0].isMetric {
            path = "/metrics"
            // A metric line is a point of the ingestion API plus its `type`.
            let points = group.map { line -> String in
                guard case .object(var fields) = (try? JSONValue.parse(line.text)) ?? .null else { return line.text }
                fields["type"] = nil
                return JSONValue.object(fields).text()
            }
            body = "{\"metrics\":[" + points.joined(separator: ",") + "]}"
        } else {
            path = "/events"
            body = "{\"events\":[" + group.map(\.text).joined(separator: ",") + "]}"
        }
        let answer: PolyakHTTP.Answer
        do {
            answer = try http.sendWaiting("POST", path, body: Data(body.utf8), timeout: .seconds(30))
        } catch let e as PolyakHTTP.Unreachable {
            return .retry("cannot reach the server: \(e)")
        } catch {
            return .refused("\(error)")
        }
        switch answer.status {
        case 200..<300: return .acknowledged
        case 408, 429, 500...: return .retry("POST \(http.url(path)) answered \(answer.status)")
        default: return .refused("POST \(http.url(path)) answered \(answer.status): \(answer.excerpt)")
        }
    }

    /// A trainer killed mid-write leaves half a line: cut it, the line was never sent.
    private static func cutTornTail(_ path: String) {
        guard let data = FileManager.default.contents(atPath: path), let last = data.last, last != 0x0A else { return }
        let keep = data.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        if let h = FileHandle(forWritingAtPath: path) {
            try? h.truncate(atOffset: UInt64(keep))
            try? h.close()
        }
    }

    struct ReportError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// `--token-file`, else `POLYAK_TOKEN`.
    static func token(file: String?) throws -> String? {
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ReportError("--token-file \(file) cannot be read")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if token.isEmpty { throw ReportError("--token-file \(file) is empty") }
            return token
        }
        return ProcessInfo.processInfo.environment["POLYAK_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }
}
