import CSQLite
import Foundation

/// Why the store refused or failed: SQLite's own message with the statement it came from, a
/// schema newer than this binary, or a stored row that does not hold what its record expects.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    case sqlite(code: Int32, message: String, sql: String)
    case schemaTooNew(database: Int, binary: Int, path: String)
    case column(table: String, column: String, problem: String)

    public var description: String {
        switch self {
        case .sqlite(let code, let message, let sql):
            return "SQLite error \(code): \(message)" + (sql.isEmpty ? "" : " (in: \(sql.prefix(120)))")
        case .schemaTooNew(let database, let binary, let path):
            return "\(path) has schema version \(database), newer than this polyak knows (\(binary)): "
                + "it was written by a newer polyak; use that one, or another --db"
        case .column(let table, let column, let problem):
            return "column \(column) of \(table) \(problem)"
        }
    }
}

/// SQLite's SQLITE_TRANSIENT: bound text and blobs are copied before the call returns.
let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection with a cache of prepared statements keyed by their SQL text.
///
/// Not thread-safe by itself: ``TrackingStore`` locks its writer and checks readers out of a
/// ``ReaderPool``, so one thread at a time uses a connection.
final class Connection {
    let handle: OpaquePointer
    let path: String
    private var cache: [String: Statement] = [:]

    /// - Parameter queryOnly: a reader: opened read-write (WAL readers need the shared-memory file)
    ///   but refusing any write, so a read path cannot change the file by mistake.
    init(path: String, readOnly: Bool = false, queryOnly: Bool = false) throws {
        var db: OpaquePointer?
        let flags =
            (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE))
            | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw StoreError.sqlite(code: rc, message: "cannot open \(path): \(message)", sql: "")
        }
        handle = db
        self.path = path
        // A busy timeout rather than SQLITE_BUSY: `polyak migrate` or a reader may hold a lock briefly.
        sqlite3_busy_timeout(db, 5000)
        sqlite3_extended_result_codes(db, 1)
        if !readOnly {
            // WAL + FULL: a 2xx answer means the points are on disk (fsync at each commit).
            try execute("PRAGMA journal_mode = WAL")
            try execute("PRAGMA synchronous = FULL")
        }
        try execute("PRAGMA foreign_keys = ON")
        if queryOnly { try execute("PRAGMA query_only = ON") }
    }

    deinit {
        cache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements that return no rows we need.
    func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &error)
        if rc != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(error)
            throw StoreError.sqlite(code: rc, message: message, sql: sql)
        }
    }

    /// A cached prepared statement, reset and cleared of bindings.
    func prepare(_ sql: String) throws -> Statement {
        if let s = cache[sql] {
            s.reset()
            return s
        }
        let s = try Statement(connection: self, sql: sql)
        cache[sql] = s
        return s
    }

    /// Runs `body` in a transaction (BEGIN IMMEDIATE: writers queue on the busy timeout instead of
    /// failing half-way); rolls back when it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    var changes: Int { Int(sqlite3_changes(handle)) }

    func error(_ rc: Int32, _ sql: String) -> StoreError {
        .sqlite(code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }
}

/// A prepared statement. Indices are 1-based for binding (as SQLite's) and 0-based for columns.
final class Statement {
    let handle: OpaquePointer
    let sql: String
    unowned let connection: Connection

    init(connection: Connection, sql: String) throws {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(connection.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw connection.error(rc, sql) }
        handle = stmt
        self.sql = sql
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    /// Result column name → index, for ``Row``: read once per prepared statement (statements are cached).
    private(set) lazy var columnIndex: [String: Int32] = {
        var out: [String: Int32] = [:]
        for i in 0..<sqlite3_column_count(handle) {
            // The first of two equal names wins, as `SELECT a.x, b.x` would read it by position.
            if let name = sqlite3_column_name(handle, i), out[String(cString: name)] == nil { out[String(cString: name)] = i }
        }
        return out
    }()

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    @discardableResult
    func bind(_ values: [SQLValue]) -> Statement {
        for (i, v) in values.enumerated() { bind(v, at: Int32(i + 1)) }
        return self
    }

    func bind(_ value: SQLValue, at i: Int32) {
        switch value {
        case .null: sqlite3_bind_null(handle, i)
        case .int(let x): sqlite3_bind_int64(handle, i, x)
        case .double(let x): sqlite3_bind_double(handle, i, x)
        case .text(let s): bind(text: s, at: i)
        }
    }

    /// Text with its byte length, not NUL-terminated: a NUL inside the text is stored, not a cut.
    func bind(text: String, at i: Int32) {
        var s = text
        s.withUTF8 { bytes in
            // An empty buffer may have no address, and a NULL pointer would bind SQL NULL.
            if let base = bytes.baseAddress {
                let start = UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
                _ = sqlite3_bind_text64(handle, i, start, sqlite3_uint64(bytes.count), transient, UInt8(SQLITE_UTF8))
            } else {
                _ = sqlite3_bind_text64(handle, i, "", 0, transient, UInt8(SQLITE_UTF8))
            }
        }
    }

    func bind(_ x: Int64, at i: Int32) { sqlite3_bind_int64(handle, i, x) }
    func bind(_ x: Double, at i: Int32) { sqlite3_bind_double(handle, i, x) }
    func bindNull(at i: Int32) { sqlite3_bind_null(handle, i) }

    /// Advances; `true` while there is a row.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let e = connection.error(rc, sql)
        sqlite3_reset(handle)
        throw e
    }

    /// Runs a statement that returns no rows.
    func run() throws {
        while try step() {}
        sqlite3_reset(handle)
    }

    func isNull(_ c: Int32) -> Bool { sqlite3_column_type(handle, c) == SQLITE_NULL }
    func int(_ c: Int32) -> Int64 { sqlite3_column_int64(handle, c) }
    func double(_ c: Int32) -> Double { sqlite3_column_double(handle, c) }
    /// The column's text by its byte length (text stored with a NUL comes back whole).
    func text(_ c: Int32) -> String {
        guard let p = sqlite3_column_text(handle, c) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, c))  // after column_text, as SQLite asks
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    func optionalText(_ c: Int32) -> String? { isNull(c) ? nil : text(c) }
    func optionalInt(_ c: Int32) -> Int64? { isNull(c) ? nil : int(c) }
    func optionalDouble(_ c: Int32) -> Double? { isNull(c) ? nil : double(c) }

    /// The column's UTF-8 bytes without making a String (for writers that copy them out).
    func withTextBytes<T>(_ c: Int32, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        let p = sqlite3_column_text(handle, c)
        let n = Int(sqlite3_column_bytes(handle, c))
        return body(UnsafeRawBufferPointer(start: p, count: p == nil ? 0 : n))
    }
}

enum SQLValue {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
}

extension Optional where Wrapped == String {
    var sql: SQLValue { map { .text($0) } ?? .null }
}
