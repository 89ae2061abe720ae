import Foundation

extension GridCell: RowDecodable {
    static let table = "grid_cells"

    init(row: Row) throws {
        self.init(
            weights: try row.text("weights"), stage: try row.text("stage"), trainSize: try row.int("train_size"),
            resize: try row.int("resize"), crop: try row.int("crop"), top1: try row.optionalDouble("top1"),
            top5: try row.optionalDouble("top5"), loss: try row.optionalDouble("loss"))
    }
}

extension ExperimentGridCell {
    /// Named in decoding errors.
    static let table = "grid_cells ⋈ runs"
}

/// The `grid_cells` table: resize × crop evaluations of a run's weights.
extension TrackingStore {
    /// Stores grid cells (a re-evaluated cell replaces the old one).
    public func saveGrid(run: Int64, _ cells: [GridCell]) throws {
        if cells.isEmpty { return }
        try write { db in
            try db.transaction {
                for c in cells {
                    try db.execute(
                        """
                        INSERT INTO grid_cells (run_id, weights, stage, train_size, resize, crop, top1, top5, loss)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (run_id, weights, stage, train_size, resize, crop)
                        DO UPDATE SET top1 = excluded.top1, top5 = excluded.top5, loss = excluded.loss
                        """,
                        [
                            .int(run), .text(c.weights), .text(c.stage), .int(c.trainSize), .int(c.resize), .int(c.crop),
                            c.top1.sql, c.top5.sql, c.loss.sql,
                        ])
                }
            }
        }
    }

    public func grid(run: Int64) throws -> [GridCell] {
        try read {
            try $0.fetchAll(
                GridCell.self,
                """
                SELECT * FROM grid_cells WHERE run_id = ? ORDER BY weights, stage, train_size, resize, crop
                """, [.int(run)])
        }
    }

    /// The grid cells of an experiment's completed runs, with each run's variant and seed.
    /// A shared run's cells come once per variant that reads the set, under the variant's name.
    public func experimentGrid(_ experiment: Int64) throws -> [ExperimentGridCell] {
        let shared = Self.sharedSetsJoin(weights: "g.weights")
        return try read { db in
            var out: [ExperimentGridCell] = []
            var columns: [Int32]?
            try db.forEach(
                """
                SELECT COALESCE(s.variant, r.variant) AS variant, r.seed, COALESCE(s.weights, g.weights) AS weights,
                       g.stage, g.train_size, g.resize, g.crop, g.top1, g.top5, g.loss
                FROM grid_cells g JOIN runs r ON r.id = g.run_id \(shared.join)
                WHERE r.experiment_id = ? AND r.status = 'completed' AND \(shared.condition)
                ORDER BY r.id, g.weights, s.position, g.stage, g.train_size, g.resize, g.crop
                """, [.int(experiment)], table: ExperimentGridCell.table
            ) { row in
                // A measured page path (20 000 cells for 1 000 runs): names resolved once, then
                // positional reads; the columns are NOT NULL but for the variant and the metrics.
                // A run outside any variant reads as variant "" (as the comparison groups it).
                let c =
                    try columns
                    ?? ["variant", "seed", "weights", "stage", "train_size", "resize", "crop", "top1", "top5", "loss"].map(
                        row.index)
                columns = c
                let s = row.statement
                out.append(
                    ExperimentGridCell(
                        variant: s.optionalText(c[0]) ?? "", seed: s.int(c[1]),
                        cell: GridCell(
                            weights: s.text(c[2]), stage: s.text(c[3]), trainSize: s.int(c[4]), resize: s.int(c[5]),
                            crop: s.int(c[6]), top1: s.optionalDouble(c[7]), top5: s.optionalDouble(c[8]),
                            loss: s.optionalDouble(c[9]))))
            }
            return out
        }
    }
}
