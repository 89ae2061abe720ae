import CSQLite
import Experiments
import Foundation

/// The tracking database: every SQL statement of Polyak lives in this module.
///
/// This file opens and migrates the file and hands out connections; the queries are one extension
/// per table (`TrackingStore+Experiments.swift`, `+Runs`, `+Metrics`, `+Grids`, `+Artifacts`),
/// each decoding its records once, by column name (``RowDecodable``).
///
/// One writer connection behind a lock, and a small pool of reader connections (``ReaderPool``):
/// WAL lets each reader see the last committed state while the writer commits, so pages and API
/// reads wait neither for ingestion's fsyncs nor for each other. The server is the only writer.
public final class TrackingStore: @unchecked Sendable {
    public let path: String
    private let writer: Connection
    private let readers: ReaderPool
    private let writeLock = NSLock()
    /// (run, key, weights) → metric_series.id, so a batch does not look its series up per point.
    /// Guarded by the write lock (only writes touch it).
    var seriesIDs: [SeriesKey: Int64] = [:]

    struct SeriesKey: Hashable {
        var run: Int64
        var key: String
        var weights: String
    }

    /// How many reader connections a store opens unless told otherwise: more than the cores of the
    /// machines it runs on, so a long series read does not hold up the pages beside it.
    public static let defaultReaders = 4

    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// - Throws: ``StoreError/schemaTooNew(database:binary:path:)`` for a file from a newer polyak.
    public init(path: String, readers: Int = TrackingStore.defaultReaders) throws {
        self.path = path
        writer = try Connection(path: path)
        try Migrator.migrate(writer)
        self.readers = try ReaderPool(path: path, size: readers)
    }

    /// Applies the embedded migrations to `path`; returns the files applied (empty when current).
    public static func migrate(path: String) throws -> [String] {
        let c = try Connection(path: path)
        return try Migrator.migrate(c)
    }

    /// The newest schema version this binary knows.
    public static var schemaVersion: Int { EmbeddedMigrations.all.map(\.version).max() ?? 0 }

    /// The schema version recorded in the file.
    public func schemaVersionInFile() throws -> Int {
        try write { try Migrator.currentVersion($0) }
    }

    /// Runs `body` on the writer connection, one writer at a time.
    func write<T>(_ body: (Connection) throws -> T) throws -> T {
        writeLock.lock()
        defer {
            writeLock.unlock()
            // After the commit: whoever sees the new revision also sees the data.
            revisionLock.withLock { revisionCounter &+= 1 }
        }
        return try body(writer)
    }

    /// Runs `body` on a reader connection of the pool (see ``ReaderPool/read(_:)``).
    func read<T>(_ body: (Connection) throws -> T) throws -> T {
        try readers.read(body)
    }

    /// Reader connections not in use right now (for tests of the pool).
    var idleReaders: Int { readers.idleCount }

    private let revisionLock = NSLock()
    private var revisionCounter: UInt64 = 0

    /// Changes after every write through this store (the server is the database's one writer), so
    /// a page rendered at one revision can be served again until the next.
    public var revision: UInt64 { revisionLock.withLock { revisionCounter } }
}

extension Optional where Wrapped == Double {
    var sql: SQLValue { map { .double($0) } ?? .null }
}

extension Optional where Wrapped == Int64 {
    var sql: SQLValue { map { .int($0) } ?? .null }
}
