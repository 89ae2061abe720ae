import Foundation

/// A few reader connections, each checked out by one read at a time.
///
/// WAL lets every connection read the last committed state while the writer commits, so concurrent
/// page and API reads each take their own connection instead of queueing behind one lock; only
/// when all are busy does a read wait (on a condition, briefly: reads are single queries). The
/// lock guards the list of idle connections, never a SQLite call.
final class ReaderPool: @unchecked Sendable {
    private var idle: [Connection]
    private let condition = NSCondition()
    let size: Int

    init(path: String, size: Int) throws {
        precondition(size > 0, "a reader pool needs a connection")
        self.size = size
        idle = try (0..<size).map { _ in try Connection(path: path, queryOnly: true) }
    }

    /// Runs `body` on a connection no other thread uses meanwhile, then returns it to the pool.
    /// `body` must not read through the pool again (a nested checkout could wait on itself).
    func read<T>(_ body: (Connection) throws -> T) throws -> T {
        condition.lock()
        while idle.isEmpty { condition.wait() }
        let connection = idle.removeLast()
        condition.unlock()
        defer {
            condition.lock()
            idle.append(connection)
            condition.signal()
            condition.unlock()
        }
        return try body(connection)
    }

    /// Connections not checked out right now (for tests).
    var idleCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return idle.count
    }
}
