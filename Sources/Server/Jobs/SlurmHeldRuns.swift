import Store

/// A server started without `--executor slurm` on a database whose runs are held by Slurm jobs
/// (queued or running on the cluster) refuses to start: it would otherwise take those runs for
/// ones a dead server left behind and train them itself, beside the jobs still training them.
/// The message names the runs and their jobs and how to go on; nothing is changed.
public struct SlurmHeldRuns: Error, CustomStringConvertible {
    public let runs: [(runID: Int64, jobID: Int64)]

    public var description: String {
        let shown = runs.prefix(10)
        let more = runs.count > shown.count ? " and \(runs.count - shown.count) more" : ""
        let list = shown.map { "run \($0.runID) (job \($0.jobID))" }.joined(separator: ", ") + more
        return "\(runs.count) run(s) are held by Slurm jobs still queued or running on the cluster: \(list). "
            + "A server without --executor slurm would train them a second time beside those jobs. "
            + "Start it with --executor slurm --shared-dir DIR (the folder they were submitted from) to follow them; "
            + "it re-attaches to the jobs, and cancelling the runs there cancels the jobs."
    }

    /// Throws when `store` has runs held by Slurm jobs.
    static func refuseLocalExecutor(_ store: TrackingStore) throws {
        let held = try store.activeSlurmJobs()
        if !held.isEmpty { throw SlurmHeldRuns(runs: held) }
    }
}
