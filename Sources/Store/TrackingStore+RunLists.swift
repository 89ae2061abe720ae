/// A run's ordered lists, one row per item: `run_tags` (what `?tag=` filters) and `run_strategies`
/// (the averaging kinds, plus `kd` and `fixres`, that `?strategy=` filters). Rows rather than JSON
/// text: SQLite's JSON functions cut a string at `\u0000`, and a filter must match the text whole.
enum RunList: CaseIterable {
    case tags, strategies

    var table: String { self == .tags ? "run_tags" : "run_strategies" }
    var column: String { self == .tags ? "tag" : "kind" }
    var keyPath: WritableKeyPath<RunRecord, [String]> { self == .tags ? \.tags : \.strategies }
}

extension TrackingStore {
    /// Replaces a run's list; duplicates and order are kept as given.
    func saveList(_ db: Connection, _ list: RunList, run: Int64, _ items: [String]) throws {
        try db.execute("DELETE FROM \(list.table) WHERE run_id = ?", [.int(run)])
        for (position, item) in items.enumerated() {
            try db.execute(
                "INSERT INTO \(list.table) (run_id, position, \(list.column)) VALUES (?, ?, ?)",
                [.int(run), .int(Int64(position)), .text(item)])
        }
    }

    /// Fills in the tags, strategies and shares of `runs`: one query per list for the whole page of runs.
    func attachLists(_ db: Connection, to runs: inout [RunRecord]) throws {
        guard !runs.isEmpty else { return }
        var index: [Int64: Int] = [:]
        for (i, r) in runs.enumerated() { index[r.id] = i }
        // The ids as a JSON array of integers, spread by json_each: one statement for any page size.
        let ids = "[" + runs.map { String($0.id) }.joined(separator: ",") + "]"
        for list in RunList.allCases {
            try db.forEach(
                """
                SELECT run_id, \(list.column) AS item FROM \(list.table)
                WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, position
                """, [.text(ids)], table: list.table
            ) { row in
                let run = try row.int("run_id")
                guard let i = index[run] else {
                    throw StoreError.column(table: list.table, column: "run_id", problem: "holds \(run), a run not asked for")
                }
                runs[i][keyPath: list.keyPath].append(try row.text("item"))
            }
        }
        try attachShares(db, to: &runs, ids: ids, index: index)
    }
}
