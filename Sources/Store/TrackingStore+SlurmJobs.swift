import Experiments
import Foundation

/// The `runs` table's Slurm columns (migrations 0007, 0009): which job trains a run, what Slurm last
/// said about it, and how often its job was interrupted. Only `--executor slurm` writes them.
extension TrackingStore {
    /// Records the job submitted for run `id`; `nil` forgets it (the run is to be submitted afresh).
    public func setSlurmJob(_ id: Int64, jobID: Int64?) throws {
        try write {
            try $0.execute(
                "UPDATE runs SET slurm_job_id = ?, slurm_state = NULL WHERE id = ?", [jobID.map { .int($0) } ?? .null, .int(id)])
        }
    }

    /// Slurm's state and reason as last polled, e.g. `PENDING (Resources)`.
    public func setSlurmState(_ id: Int64, _ state: String?) throws {
        try write { try $0.execute("UPDATE runs SET slurm_state = ? WHERE id = ?", [state.sql, .int(id)]) }
    }

    /// Runs a Slurm job was submitted for that have not ended (`queued` while the job waits in
    /// Slurm's queue, `running` after): run id → job id, oldest run first.
    public func activeSlurmJobs() throws -> [(runID: Int64, jobID: Int64)] {
        try read { db in
            try db.fetchAll(
                """
                SELECT id, slurm_job_id FROM runs
                WHERE slurm_job_id IS NOT NULL AND status IN ('queued', 'running') AND external = 0 ORDER BY id
                """, [], table: "runs"
            ) { (runID: try $0.int("id"), jobID: try $0.int("slurm_job_id")) }
        }
    }

    /// Counts one more interruption of run `id`'s job (preempted, node failure); returns the count so far.
    public func countSlurmInterruption(_ id: Int64) throws -> Int {
        try write { db in
            try db.execute("UPDATE runs SET slurm_interruptions = slurm_interruptions + 1 WHERE id = ?", [.int(id)])
            let count = try db.fetchAll("SELECT slurm_interruptions FROM runs WHERE id = ?", [.int(id)], table: "runs") {
                try $0.int("slurm_interruptions")
            }
            return Int(count.first ?? 0)
        }
    }

    /// How often run `id`'s Slurm job was interrupted so far.
    public func slurmInterruptions(_ id: Int64) throws -> Int {
        try read { db in
            let count = try db.fetchAll("SELECT slurm_interruptions FROM runs WHERE id = ?", [.int(id)], table: "runs") {
                try $0.int("slurm_interruptions")
            }
            return Int(count.first ?? 0)
        }
    }
}
