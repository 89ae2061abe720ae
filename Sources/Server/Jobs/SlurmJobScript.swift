import Experiments
import Foundation

/// The batch script of one run's Slurm job, kept in the run folder (`slurm-job.sh`) so a person can
/// read or resubmit it. It trains with `--report` to the run's URL and, when a trainer worked in
/// the folder before (its `spec.json` is there: a requeue by Slurm or by Polyak), continues from
/// the newest checkpoint instead of starting again.
struct SlurmJobScript {
    var runID: Int64
    var directory: String
    var trainerBinary: String
    var reportURL: String
    var tokenFile: String?
    /// The spec's `threads`: the CPUs the job asks for.
    var threads: Int

    var path: String { directory + "/slurm-job.sh" }

    var text: String {
        let d = Self.quote(directory)
        var report = "--report \(Self.quote(reportURL))"
        if let tokenFile { report += " --token-file \(Self.quote(tokenFile))" }
        let binary = Self.quote(trainerBinary)
        return """
            #!/bin/bash
            # Polyak run \(runID): written by `polyak serve --executor slurm`, submitted with sbatch.
            # A requeued job continues from the newest checkpoint in its run folder.
            unset POLYAK_PARENT_PID
            cd \(d) || exit 1
            # The trainer of an interrupted job may still be stopping (its node was set down, it was
            # preempted): wait up to 2 minutes for it to let go of the folder's lock.
            flock -w 120 \(Self.quote(directory + "/train.lock")) true 2>/dev/null || true
            if [ -f \(Self.quote(directory + "/spec.json")) ]; then
                exec \(binary) train --resume \(d) \(report)
            else
                exec \(binary) train --spec \(Self.quote(directory + "/spec.input.json")) --out \(d) \(report)
            fi

            """
    }

    /// Writes the script (mode 0755); returns its path.
    func write() throws -> String {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    /// `sbatch`'s options: name, output files in the run folder (stdout: the event lines; stderr: logs),
    /// `--no-requeue` (a preempted or failed node ends the job, and the executor submits the run again from
    /// its last checkpoint: Slurm's own requeue as well would put two jobs on one run folder), the spec's
    /// threads as CPUs, then the partition and the user's own options (the last one wins), and last the
    /// job's name and working folder, which no user option may change: a restarted server finds a job
    /// it did not get to record by them.
    func sbatchArguments(partition: String?, extra: [String]) -> [String] {
        var out = [
            "--output=\(directory)/slurm-%j.out", "--error=\(directory)/slurm-%j.err", "--open-mode=append", "--no-requeue",
            "--cpus-per-task=\(threads)",
        ]
        if let partition { out.append("--partition=\(partition)") }
        return out + extra + ["--job-name=\(Self.jobName(runID: runID))", "--chdir=\(directory)"]
    }

    /// Every job of run `id` has this name (and the run folder as its working directory): how a
    /// restarted server finds a job whose id it did not get to store.
    static func jobName(runID: Int64) -> String { "polyak-run-\(runID)" }

    /// A single-quoted shell word.
    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
