import CSQLite
import Foundation

/// One numbered schema file from the top-level `migrations/` folder.
public struct Migration: Sendable, Equatable {
    /// `1` for `0001_initial.sql`.
    public let version: Int
    /// The file name, `0001_initial.sql`.
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Applies `migrations/NNNN_*.sql` in order, each in its own transaction, and records them in
/// `schema_migrations`. The SQL is embedded in the binary (``EmbeddedMigrations``) so an installed
/// `polyak` works from any directory.
enum Migrator {
    static func currentVersion(_ db: Connection) throws -> Int {
        try db.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)
            """)
        return Int(try db.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
    }

    /// Brings the database up to the newest embedded migration; returns the names applied.
    ///
    /// - Throws: ``StoreError/schemaTooNew(database:binary:path:)`` when the file was migrated
    ///   by a newer binary: running old code on a newer schema could lose data.
    @discardableResult
    static func migrate(_ db: Connection, migrations: [Migration] = EmbeddedMigrations.all) throws -> [String] {
        let known = migrations.map(\.version).max() ?? 0
        let current = try currentVersion(db)
        if current > known {
            throw StoreError.schemaTooNew(database: current, binary: known, path: db.path)
        }
        var applied: [String] = []
        let pending = migrations.sorted(by: { $0.version < $1.version }).filter { $0.version > current }
        guard !pending.isEmpty else { return applied }
        // A migration may rebuild a table (SQLite's way to change a column): with foreign keys on,
        // dropping the old table would cascade-delete every row that refers to it. The pragma is a
        // no-op inside a transaction, so it is set around them; each migration checks the keys itself.
        try db.execute("PRAGMA foreign_keys = OFF")
        defer { try? db.execute("PRAGMA foreign_keys = ON") }
        for m in pending {
            try db.transaction {
                try db.execute(m.sql)
                try checkForeignKeys(db, after: m.name)
                try db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
                    .bind([.int(Int64(m.version)), .text(m.name), .double(Date().timeIntervalSince1970)]).run()
            }
            applied.append(m.name)
        }
        return applied
    }

    /// Throws (so the migration rolls back) when a row refers to one that is not there.
    static func checkForeignKeys(_ db: Connection, after name: String) throws {
        try db.forEach("PRAGMA foreign_key_check", table: "foreign_key_check") { row in
            throw StoreError.sqlite(
                code: SQLITE_CONSTRAINT,
                message: "\(name) left a row of \(try row.text("table")) referring to a missing \(try row.text("parent")) row",
                sql: "PRAGMA foreign_key_check")
        }
    }
}
