/// The `run_weight_shares` table: which weight set of a shared run each variant reads
/// (``WeightShare``). The experiment-wide reads (final values, grids, curves) apply it in SQL
/// through ``TrackingStore/sharedSetsJoin``, so a shared run answers per variant under the
/// variant's own names, and a run without rows answers as its `variant`, as before.
extension TrackingStore {
    /// `LEFT JOIN` for a query over `runs r` and a weights column `column`, and the condition that
    /// keeps, of a run with shares, only its shared sets (one row per variant that reads each).
    /// Select `COALESCE(s.variant, r.variant)` and `COALESCE(s.weights, column)`.
    static func sharedSetsJoin(weights column: String) -> (join: String, condition: String) {
        (
            "LEFT JOIN run_weight_shares s ON s.run_id = r.id AND s.run_weights = \(column)",
            "(s.run_id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM run_weight_shares x WHERE x.run_id = r.id))"
        )
    }

    func saveShares(_ db: Connection, run: Int64, _ shares: [WeightShare]) throws {
        for (position, share) in shares.enumerated() {
            try db.execute(
                "INSERT INTO run_weight_shares (run_id, position, variant, weights, run_weights) VALUES (?, ?, ?, ?, ?)",
                [.int(run), .int(Int64(position)), .text(share.variant), .text(share.weights), .text(share.runWeights)])
        }
    }

    /// Fills in the shares of `runs` (one query for the page); `index` maps run id → position.
    func attachShares(_ db: Connection, to runs: inout [RunRecord], ids: String, index: [Int64: Int]) throws {
        try db.forEach(
            """
            SELECT run_id, variant, weights, run_weights FROM run_weight_shares
            WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, position
            """, [.text(ids)], table: "run_weight_shares"
        ) { row in
            let run = try row.int("run_id")
            guard let i = index[run] else {
                throw StoreError.column(
                    table: "run_weight_shares", column: "run_id", problem: "holds \(run), a run not asked for")
            }
            runs[i].shares.append(
                WeightShare(
                    variant: try row.text("variant"), weights: try row.text("weights"), runWeights: try row.text("run_weights")))
        }
    }
}
