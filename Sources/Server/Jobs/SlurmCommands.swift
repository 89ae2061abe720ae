import Foundation

/// Slurm's client commands as the Slurm executor calls them: `sbatch` to submit, one `squeue` for
/// the state of every held job, `scancel` to cancel. Each runs to its end (at most `timeout`
/// seconds: a controller that does not answer must not hang the poller) with this server's
/// environment, so `SLURM_CONF` and the like apply. Public for `polyak bench`'s poll figure.
public struct SlurmCommands: Sendable {
    var sbatch = "sbatch"
    var squeue = "squeue"
    var scancel = "scancel"
    var timeout = 30.0

    public init() {}

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// One job as `squeue` lists it.
    public struct JobState: Equatable, Sendable {
        /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `TIMEOUT`, `CANCELLED`, `PREEMPTED`, `NODE_FAIL`…
        public var state: String
        /// Why it waits or ended (`Resources`, `Priority`, `NonZeroExitCode`, `None`).
        public var reason: String
    }

    /// `sbatch --parsable ARGS SCRIPT`: the new job's id.
    public func submit(_ arguments: [String], script: String) throws -> Int64 {
        let out = try run(sbatch, ["--parsable"] + arguments + [script])
        // `--parsable` prints `ID` or `ID;cluster`.
        let text = out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let id = Int64(text.split(separator: ";").first ?? "") else {
            throw Failure(description: "sbatch printed no job id: \(text.prefix(200))")
        }
        return id
    }

    /// The state of each of `ids` that Slurm still knows (finished jobs stay listed for its `MinJobAge`).
    public func states(_ ids: [Int64]) throws -> [Int64: JobState] {
        guard !ids.isEmpty else { return [:] }
        let out: String
        do {
            out = try run(squeue, ["-h", "-t", "all", "-o", "%i|%T|%r", "-j", ids.map(String.init).joined(separator: ",")])
        } catch let f as Failure where f.description.contains("Invalid job id") {
            return [:]  // none of them is known any more
        }
        return Self.parse(out)
    }

    /// One job as `squeue` lists it by name.
    struct NamedJob: Equatable, Sendable {
        var id: Int64
        var name: String
        var state: String
        var workDirectory: String
    }

    /// Every job Slurm still lists (any state, any user) named one of `names`.
    func jobs(named names: [String]) throws -> [NamedJob] {
        guard !names.isEmpty else { return [] }
        let out = try run(squeue, ["-h", "-t", "all", "-o", "%i|%j|%T|%Z", "-n", names.joined(separator: ",")])
        return out.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            guard f.count == 4, let id = Int64(f[0].trimmingCharacters(in: .whitespaces)) else { return nil }
            return NamedJob(id: id, name: f[1], state: f[2], workDirectory: f[3])
        }
    }

    static func parse(_ listing: String) -> [Int64: JobState] {
        var out: [Int64: JobState] = [:]
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3, let id = Int64(fields[0].trimmingCharacters(in: .whitespaces)) else { continue }
            out[id] = JobState(state: fields[1], reason: fields[2])
        }
        return out
    }

    public func cancel(_ id: Int64) throws { _ = try run(scancel, [String(id)]) }

    /// Runs `program` to its end; its stdout, or a ``Failure`` naming its exit and stderr.
    public func run(_ program: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program.contains("/") ? program : "/usr/bin/env")
        p.arguments = program.contains("/") ? arguments : [program] + arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do {
            try p.run()
        } catch {
            throw Failure(description: "cannot run \(program): \(error)")
        }
        let box = OutputBox()
        let drained = DispatchGroup()
        for (pipe, isErr) in [(out, false), (err, true)] {
            drained.enter()
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                box.set(data, isErr: isErr)
                drained.leave()
            }
        }
        if drained.wait(timeout: .now() + timeout) == .timedOut {
            p.terminate()
            throw Failure(description: "\(program) did not answer within \(Int(timeout)) s")
        }
        p.waitUntilExit()
        let (stdout, stderr) = box.texts
        guard p.terminationStatus == 0 else {
            let shown = ([program] + arguments).joined(separator: " ")
            throw Failure(
                description: "\(shown.prefix(300)) exited \(p.terminationStatus): "
                    + stderr.trimmingCharacters(in: .whitespacesAndNewlines).prefix(500))
        }
        return stdout
    }

    private final class OutputBox: @unchecked Sendable {
        private let lock = NSLock()
        private var out = Data(), err = Data()
        func set(_ data: Data, isErr: Bool) { lock.withLock { if isErr { err = data } else { out = data } } }
        var texts: (String, String) {
            lock.withLock { (String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self)) }
        }
    }
}
