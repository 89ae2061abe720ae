import ArgumentParser
import Experiments
import Foundation
import Server

/// What one poll of `serve --executor slurm` costs with 1 000 runs held: 1 000 held jobs submitted
/// (`sbatch --hold`, through the executor's `SlurmCommands`), then the executor's one `squeue` for all
/// of them timed, then the jobs cancelled. Needs a reachable cluster (`SLURM_CONF`, e.g. from
/// `scripts/slurm-local.sh start DIR`); without one the line says it was skipped and why.
extension Bench.Service {
    static let pollJobs = 1000

    func slurmPoll(folder: String) throws {
        let commands = SlurmCommands()
        do {
            _ = try commands.run("squeue", ["-h", "-o", "%i", "--me"])
        } catch {
            return Self.emit([
                "benchmark": "slurm_poll", "skipped": .string("no Slurm cluster answers squeue: \(error)"),
                "note": "start one with scripts/slurm-local.sh start DIR and export the SLURM_CONF it prints",
            ])
        }
        let script = folder + "/held-job.sh"
        try Data("#!/bin/sh\ntrue\n".utf8).write(to: URL(fileURLWithPath: script))
        let arguments = ["--hold", "--job-name=polyak-bench-poll", "--output=/dev/null", "--error=/dev/null"]
        // Eight submitters at once: one sbatch takes tens of milliseconds.
        let ids = ConcurrentList()
        let submitStart = DispatchTime.now()
        Self.concurrently(8) { k in
            for _ in stride(from: k, to: Self.pollJobs, by: 8) {
                do { ids.append(try commands.submit(arguments, script: script)) } catch { ids.fail("\(error)") }
            }
        }
        let submitSeconds = Double(DispatchTime.now().uptimeNanoseconds - submitStart.uptimeNanoseconds) / 1e9
        let held = ids.values
        defer {
            for chunk in stride(from: 0, to: held.count, by: 200) {
                _ = try? commands.run("scancel", held[chunk..<min(chunk + 200, held.count)].map(String.init))
            }
        }
        if let failure = ids.failure { throw ValidationError("sbatch failed: \(failure)") }
        var times: [Double] = []
        var listed = 0
        for rep in 0...max(reps, 5) {
            let start = DispatchTime.now()
            let states = try commands.states(held)
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
            listed = states.count
            if rep > 0 { times.append(ms) }
        }
        let ms = Self.median(times)
        Self.emit([
            "benchmark": "slurm_poll", "jobs": .number(Double(held.count)), "listed": .number(Double(listed)),
            "poll_ms": .number(Self.round(ms)), "reps_ms": .array(times.map { .number(Self.round($0)) }),
            "submit_s_8_at_once": .number(Self.round(submitSeconds)),
            "note": "one squeue -t all -j <every held job>, as the executor polls every --slurm-poll seconds (2)",
            "pass": .bool(listed == held.count),
        ])
    }
}

/// Job ids gathered from several submitting threads.
final class ConcurrentList: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [Int64] = []
    private(set) var failure: String?

    func append(_ id: Int64) { lock.withLock { ids.append(id) } }
    func fail(_ message: String) { lock.withLock { if failure == nil { failure = message } } }
    var values: [Int64] { lock.withLock { ids } }
}
