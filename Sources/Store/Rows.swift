import CSQLite

/// A record read from one result row by column name (`SELECT *` is fine: extra columns are ignored).
protocol RowDecodable {
    /// Named in decoding errors; a join names its tables.
    static var table: String { get }
    init(row: Row) throws
}

/// The current row of a stepping statement, read by column name.
///
/// Each getter checks the stored type, so a row that does not hold what the record expects is a
/// ``StoreError/column(table:column:problem:)`` naming the table and column, never a silent zero,
/// empty string or null.
struct Row {
    let statement: Statement
    let table: String

    /// The column's 0-based index; resolve it once before a loop over many rows.
    func index(_ column: String) throws -> Int32 {
        guard let i = statement.columnIndex[column] else {
            throw StoreError.column(table: table, column: column, problem: "is not in the result")
        }
        return i
    }

    private func type(_ column: String) throws -> (index: Int32, type: Int32) {
        let i = try index(column)
        return (i, sqlite3_column_type(statement.handle, i))
    }

    private func mismatch(_ column: String, _ type: Int32, expected: String) -> StoreError {
        let held =
            switch type {
            case SQLITE_NULL: "NULL"
            case SQLITE_INTEGER: "an integer"
            case SQLITE_FLOAT: "a real"
            case SQLITE_TEXT: "text"
            default: "a blob"
            }
        return StoreError.column(table: table, column: column, problem: "holds \(held), not \(expected)")
    }

    func int(_ column: String) throws -> Int64 {
        let (i, t) = try type(column)
        guard t == SQLITE_INTEGER else { throw mismatch(column, t, expected: "an integer") }
        return statement.int(i)
    }

    func optionalInt(_ column: String) throws -> Int64? {
        let (i, t) = try type(column)
        if t == SQLITE_NULL { return nil }
        guard t == SQLITE_INTEGER else { throw mismatch(column, t, expected: "an integer or NULL") }
        return statement.int(i)
    }

    func bool(_ column: String) throws -> Bool { try int(column) != 0 }

    /// A REAL column; an integer is widened (SQLite stores a whole REAL as it likes in expressions).
    func double(_ column: String) throws -> Double {
        let (i, t) = try type(column)
        guard t == SQLITE_FLOAT || t == SQLITE_INTEGER else { throw mismatch(column, t, expected: "a number") }
        return statement.double(i)
    }

    func optionalDouble(_ column: String) throws -> Double? {
        let (i, t) = try type(column)
        if t == SQLITE_NULL { return nil }
        guard t == SQLITE_FLOAT || t == SQLITE_INTEGER else { throw mismatch(column, t, expected: "a number or NULL") }
        return statement.double(i)
    }

    func text(_ column: String) throws -> String {
        let (i, t) = try type(column)
        guard t == SQLITE_TEXT else { throw mismatch(column, t, expected: "text") }
        return statement.text(i)
    }

    func optionalText(_ column: String) throws -> String? {
        let (i, t) = try type(column)
        if t == SQLITE_NULL { return nil }
        guard t == SQLITE_TEXT else { throw mismatch(column, t, expected: "text or NULL") }
        return statement.text(i)
    }

    /// A text column holding one of an enum's raw values.
    func value<T: RawRepresentable>(_ column: String, as type: T.Type) throws -> T where T.RawValue == String {
        let raw = try text(column)
        guard let value = T(rawValue: raw) else {
            throw StoreError.column(table: table, column: column, problem: "holds '\(raw)', not a known \(T.self)")
        }
        return value
    }
}

/// The one step loop: every query of the store goes through these.
extension Connection {
    /// Runs one statement with its arguments (no rows wanted).
    func execute(_ sql: String, _ args: [SQLValue]) throws {
        try prepare(sql).bind(args).run()
    }

    /// Calls `body` with each row, in order.
    func forEach(_ sql: String, _ args: [SQLValue] = [], table: String, _ body: (Row) throws -> Void) throws {
        let s = try prepare(sql).bind(args)
        defer { s.reset() }
        let row = Row(statement: s, table: table)
        while try s.step() { try body(row) }
    }

    func fetchAll<T>(_ sql: String, _ args: [SQLValue] = [], table: String, _ decode: (Row) throws -> T) throws -> [T] {
        var out: [T] = []
        try forEach(sql, args, table: table) { out.append(try decode($0)) }
        return out
    }

    func fetchAll<T: RowDecodable>(_ type: T.Type, _ sql: String, _ args: [SQLValue] = []) throws -> [T] {
        try fetchAll(sql, args, table: T.table, T.init(row:))
    }

    /// The first row, or nil when there is none.
    func fetchOne<T: RowDecodable>(_ type: T.Type, _ sql: String, _ args: [SQLValue] = []) throws -> T? {
        let s = try prepare(sql).bind(args)
        defer { s.reset() }
        return try s.step() ? T(row: Row(statement: s, table: T.table)) : nil
    }

    /// The integer in the first column of the first row (`COUNT(*)` and the like).
    func scalar(_ sql: String, _ args: [SQLValue] = []) throws -> Int64 {
        let s = try prepare(sql).bind(args)
        defer { s.reset() }
        guard try s.step(), sqlite3_column_type(s.handle, 0) == SQLITE_INTEGER else {
            throw StoreError.sqlite(code: SQLITE_MISMATCH, message: "expected one integer", sql: sql)
        }
        return s.int(0)
    }
}
