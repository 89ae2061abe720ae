import Experiments
import Foundation

/// Where `polyak train` reports: one ``TrainerEvent`` per line (`spec/service.md`, "What `polyak
/// train` writes").
public final class EventSink: @unchecked Sendable {
    private let write: (String) -> Void
    private let lock = NSLock()

    /// Lines to standard output, flushed one by one so a reading parent sees them at once.
    public static func standardOutput() -> EventSink {
        EventSink { line in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
    }

    /// Collects lines in memory (tests).
    public static func collecting(into box: LineBox) -> EventSink { EventSink { box.append($0) } }

    public init(_ write: @escaping (String) -> Void) { self.write = write }

    /// Writes one event as one line; lines from several threads never interleave.
    public func emit(_ event: TrainerEvent) {
        let line = event.line
        lock.lock()
        write(line)
        lock.unlock()
    }

    static var now: Double { Date().timeIntervalSince1970 }

    public func metric(_ key: String, step: Int, epoch: Int, value: Double, weights: String = "raw") {
        emit(.metric(.init(key: key, weights: weights, step: Int64(step), epoch: Int64(epoch), value: value, time: Self.now)))
    }

    public func warning(code: String, weights: String?, message: String) {
        emit(.warning(.init(code: code, weights: weights, message: message)))
    }
}

/// A thread-safe list of lines.
public final class LineBox: @unchecked Sendable {
    private var storage: [String] = []
    private let lock = NSLock()
    public init() {}
    public func append(_ line: String) {
        lock.lock()
        storage.append(line)
        lock.unlock()
    }
    public var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
