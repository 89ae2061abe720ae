import Foundation

/// A part of a completed run's wall time: what all its weight sets share (`weights` = ""), or
/// one weight set's own part.
public struct RunCost: Sendable, Equatable {
    public var runID: Int64
    /// A weight set, or "" for the run's shared part.
    public var weights: String
    public var seconds: Double

    public init(runID: Int64, weights: String, seconds: Double) {
        self.runID = runID
        self.weights = weights
        self.seconds = seconds
    }

    /// The `weights` of the shared row.
    public static let shared = ""
}

extension RunCost: RowDecodable {
    static let table = "run_costs"

    init(row: Row) throws {
        self.init(runID: try row.int("run_id"), weights: try row.text("weights"), seconds: try row.double("seconds"))
    }
}

/// The `run_costs` table: each completed run's time, shared and per weight set.
extension TrackingStore {
    /// Replaces a run's costs (a summary read again gives the same rows).
    public func saveCosts(run: Int64, shared: Double, perWeights: [String: Double]) throws {
        try write { db in
            try db.transaction {
                try db.execute("DELETE FROM run_costs WHERE run_id = ?", [.int(run)])
                let rows = [(RunCost.shared, shared)] + perWeights.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                for (weights, seconds) in rows where seconds.isFinite {
                    try db.execute(
                        "INSERT INTO run_costs (run_id, weights, seconds) VALUES (?, ?, ?)",
                        [.int(run), .text(weights), .double(seconds)])
                }
            }
        }
    }

    /// One run's costs, the shared row first.
    public func costs(run: Int64) throws -> [RunCost] {
        try read { try $0.fetchAll(RunCost.self, "SELECT * FROM run_costs WHERE run_id = ? ORDER BY weights", [.int(run)]) }
    }

    /// The costs of an experiment's completed runs (those the comparison reads).
    public func experimentCosts(_ experiment: Int64) throws -> [RunCost] {
        try read {
            try $0.fetchAll(
                RunCost.self,
                """
                SELECT c.run_id, c.weights, c.seconds FROM run_costs c JOIN runs r ON r.id = c.run_id
                WHERE r.experiment_id = ? AND r.status = 'completed' ORDER BY c.run_id, c.weights
                """, [.int(experiment)])
        }
    }
}
