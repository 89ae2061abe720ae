import Experiments

/// What becomes of a run whose Slurm job ended, decided from Slurm's final state and what the
/// trainer reported: kept apart from the executor so every case is checked without a cluster.
///
/// An interrupted job (preempted, its node failed or did not boot) is not the run's fault: the run
/// goes `interrupted` and is submitted again, resuming from its last checkpoint, at most
/// `maxResubmissions` times; one interruption more fails it, naming the count, rather than
/// resubmitting forever onto a node that keeps failing.
struct SlurmJobEnd: Equatable {
    /// Slurm's states that end a job through no fault of its own.
    static let interruptions: Set<String> = ["PREEMPTED", "NODE_FAIL", "BOOT_FAIL"]

    var status: RunStatus
    var reason: String?
    /// This end is one more interruption (the run's count goes up).
    var countsAsInterruption = false

    /// What the executor knows when a job has ended.
    struct Facts {
        var jobID: Int64
        /// `COMPLETED`, `FAILED`, `NODE_FAIL`…, or `UNKNOWN` when Slurm no longer lists the job.
        var state: String
        /// Slurm's reason (`None` or empty when it gives none).
        var reason: String
        /// The `status` of the summary the trainer reported, if one arrived.
        var summaryStatus: String?
        /// The summary's `reason`, if it gave one.
        var trainerReason: String?
        var cancelRequested: Bool
        /// How often the run's jobs were interrupted before this one.
        var interruptions: Int
        var maxResubmissions: Int
        /// The last lines of the job's stderr (with a leading newline), or "".
        var stderrTail: String
    }

    static func decide(_ f: Facts) -> SlurmJobEnd {
        let slurmSaid = f.reason == "None" || f.reason.isEmpty ? "" : " (\(f.reason))"
        let why = "Slurm job \(f.jobID) ended \(f.state)" + slurmSaid
        if f.summaryStatus == "completed" && (f.state == "COMPLETED" || f.state == "UNKNOWN") {
            return SlurmJobEnd(status: .completed, reason: nil)
        }
        if f.cancelRequested { return SlurmJobEnd(status: .cancelled, reason: "cancelled") }
        if interruptions.contains(f.state) {
            let count = f.interruptions + 1
            guard count <= f.maxResubmissions else {
                return SlurmJobEnd(
                    status: .failed,
                    reason: why + "; interrupted \(count) times, more than the \(f.maxResubmissions) resubmission(s) "
                        + "allowed (--slurm-max-resubmissions): not submitted again" + f.stderrTail,
                    countsAsInterruption: true)
            }
            return SlurmJobEnd(
                status: .interrupted,
                reason: why + "; submitted again (\(count) of at most \(f.maxResubmissions)), resuming from its last checkpoint",
                countsAsInterruption: true)
        }
        if f.state == "CANCELLED" {
            return SlurmJobEnd(
                status: .failed, reason: why + ": cancelled outside Polyak (scancel or an administrator)" + f.stderrTail)
        }
        let said = f.trainerReason.map { "; the trainer said: \($0)" } ?? ""
        return SlurmJobEnd(
            status: .failed, reason: why + (f.summaryStatus == nil ? "; no summary arrived" : "") + said + f.stderrTail)
    }
}
