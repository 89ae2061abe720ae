import ArgumentParser
import Foundation
import Server

/// `polyak serve`'s options for handing runs to a Slurm cluster instead of training them as children.
struct SlurmServeOptions: ParsableArguments {
    @Option(help: "Who trains the runs: local (children of this server) or slurm (sbatch jobs).")
    var executor: String = "local"

    @Option(help: "With --executor slurm: a folder every node sees at the same path; run folders go there (runs/<id>/).")
    var sharedDir: String?

    @Option(help: "With --executor slurm: the partition to submit to (else the cluster's default).")
    var slurmPartition: String?

    @Option(
        help: ArgumentHelp(
            "With --executor slurm: one more sbatch option, e.g. --slurm-option=--time=02:00:00 (repeatable).",
            valueName: "option"))
    var slurmOption: [String] = []

    @Option(help: "With --executor slurm: this server's URL as the nodes reach it (default http://HOST:PORT).")
    var publicURL: String?

    @Option(help: "With --executor slurm: the polyak binary on the nodes (default: this one's path).")
    var trainerBinary: String?

    @Option(help: "With --executor slurm: seconds between two squeue polls.")
    var slurmPoll: Double = 2

    @Option(
        help: ArgumentHelp(
            "With --executor slurm: how often a run whose job was preempted or lost its node is submitted again "
                + "(resuming from its last checkpoint) before it fails."))
    var slurmMaxResubmissions: Int = 3

    func validate() throws {
        guard executor == "local" || executor == "slurm" else {
            throw ValidationError("--executor must be local or slurm, got \(executor)")
        }
        if executor == "local" {
            let given =
                [
                    ("--shared-dir", sharedDir), ("--slurm-partition", slurmPartition), ("--public-url", publicURL),
                    ("--trainer-binary", trainerBinary),
                ].filter { $0.1 != nil }.map { $0.0 } + (slurmOption.isEmpty ? [] : ["--slurm-option"])
            if let first = given.first { throw ValidationError("\(first) goes with --executor slurm") }
            return
        }
        guard sharedDir != nil else {
            throw ValidationError("--executor slurm needs --shared-dir DIR: a folder the nodes see at the same path")
        }
        if let publicURL {
            guard let url = URL(string: publicURL), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ValidationError("--public-url \(publicURL): give the URL the nodes reach, e.g. http://head-node:8080")
            }
        }
        if !(slurmPoll > 0) { throw ValidationError("--slurm-poll must be > 0 seconds") }
        if slurmMaxResubmissions < 0 { throw ValidationError("--slurm-max-resubmissions must be ≥ 0") }
    }

    /// The executor's settings, or nil for the local one.
    func settings(host: String, port: Int, tokenFile: String?, ownExecutable: String) -> SlurmOptions? {
        guard executor == "slurm", let sharedDir else { return nil }
        let absolute = { (path: String) in
            path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        }
        let reachable = ["0.0.0.0", "::"].contains(host) ? ProcessInfo.processInfo.hostName : host
        let hostPart = reachable.contains(":") ? "[\(reachable)]" : reachable
        return SlurmOptions(
            sharedDirectory: absolute(sharedDir), partition: slurmPartition, extraOptions: slurmOption,
            publicURL: publicURL ?? "http://\(hostPart):\(port)", trainerBinary: trainerBinary ?? ownExecutable,
            tokenFile: tokenFile.map(absolute), pollInterval: slurmPoll, maxResubmissions: slurmMaxResubmissions)
    }
}
