import Foundation

/// One width of a run's EMA-length sweep (a `posthoc` line): the test-set evaluation of the
/// weights synthesised for relative width `sigmaRel`, with BN statistics `batchNorm`
/// (`synthesized` or `precise`). A NaN metric is nil.
public struct PostHocPoint: Sendable, Equatable {
    public var runID: Int64
    public var sigmaRel: Double
    public var batchNorm: String
    public var decay: Double
    public var weights: String
    public var step: Int64
    public var top1: Double?
    public var top5: Double?
    public var loss: Double?

    public init(
        runID: Int64, sigmaRel: Double, batchNorm: String, decay: Double, weights: String, step: Int64, top1: Double?,
        top5: Double?, loss: Double?
    ) {
        (self.runID, self.sigmaRel, self.batchNorm, self.decay, self.weights, self.step) = (
            runID, sigmaRel, batchNorm, decay, weights, step
        )
        (self.top1, self.top5, self.loss) = (top1, top5, loss)
    }
}

extension PostHocPoint: RowDecodable {
    static let table = "posthoc_sweep"

    init(row: Row) throws {
        self.init(
            runID: try row.int("run_id"), sigmaRel: try row.double("sigma_rel"), batchNorm: try row.text("bn"),
            decay: try row.double("decay"), weights: try row.text("weights"), step: try row.int("step"),
            top1: try row.optionalDouble("top1"), top5: try row.optionalDouble("top5"), loss: try row.optionalDouble("loss"))
    }
}

/// The `posthoc_sweep` table: runs' EMA-length sweeps.
extension TrackingStore {
    /// Stores sweep points (a width evaluated again with the same BN mode replaces its row).
    public func savePostHoc(_ points: [PostHocPoint]) throws {
        if points.isEmpty { return }
        try write { db in
            try db.transaction {
                for p in points {
                    try db.execute(
                        """
                        INSERT INTO posthoc_sweep (run_id, sigma_rel, bn, decay, weights, step, top1, top5, loss)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (run_id, sigma_rel, bn) DO UPDATE SET decay = excluded.decay,
                            weights = excluded.weights, step = excluded.step, top1 = excluded.top1,
                            top5 = excluded.top5, loss = excluded.loss
                        """,
                        [
                            .int(p.runID), .double(p.sigmaRel), .text(p.batchNorm), .double(p.decay), .text(p.weights),
                            .int(p.step), p.top1.sql, p.top5.sql, p.loss.sql,
                        ])
                }
            }
        }
    }

    /// A run's sweep, by BN mode then width.
    public func postHoc(run: Int64) throws -> [PostHocPoint] {
        try read {
            try $0.fetchAll(
                PostHocPoint.self, "SELECT * FROM posthoc_sweep WHERE run_id = ? ORDER BY bn DESC, sigma_rel", [.int(run)])
        }
    }

    /// The sweeps of an experiment's completed runs, run by run.
    public func experimentPostHoc(_ experiment: Int64) throws -> [PostHocPoint] {
        try read {
            try $0.fetchAll(
                PostHocPoint.self,
                """
                SELECT p.* FROM posthoc_sweep p JOIN runs r ON r.id = p.run_id
                WHERE r.experiment_id = ? AND r.status = 'completed'
                ORDER BY p.run_id, p.bn DESC, p.sigma_rel
                """, [.int(experiment)])
        }
    }
}
