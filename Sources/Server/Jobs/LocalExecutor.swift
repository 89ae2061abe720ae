import Experiments
import Foundation
import Logging
import Store

/// Trains each run as a `polyak train` child of this server: one thread per run readies its
/// folder, spawns the trainer (`TrainerProcess`), stores what it prints (`TrainerOutput`), reaps
/// it and reports the run's end. Children die with the server (`PR_SET_PDEATHSIG`), so nothing is
/// re-attached after a restart: their runs resume from their last checkpoint instead.
final class LocalExecutor: RunExecutor, @unchecked Sendable {
    let store: TrackingStore
    let hub: EventHub
    let options: JobRunner.Options
    let logger: Logger
    private let lock = NSLock()
    private var trainers: [Int64: TrainerProcess] = [:]
    private var stopping = false

    init(store: TrackingStore, hub: EventHub, options: JobRunner.Options, logger: Logger) {
        self.store = store
        self.hub = hub
        self.options = options
        self.logger = logger
    }

    var configuration: TrainerProcess.Configuration {
        .init(
            executable: options.executable, niceness: options.niceness, grace: options.cancelGrace,
            stallTimeout: options.stallTimeout)
    }

    func start(_ launch: RunLaunch, reporter: RunReporter) {
        let process = TrainerProcess(name: "run \(launch.runID)", configuration: configuration, logger: logger)
        lock.withLock {
            trainers[launch.runID] = process
            if stopping { process.stop(.shutdown) }
        }
        // This thread spawns the child and outlives it (see `TrainerProcess`).
        let thread = Thread { [self] in
            let (status, reason) = train(launch, process)
            reporter.ended(status, reason: reason)
            lock.withLock { _ = trainers.removeValue(forKey: launch.runID) }
        }
        thread.name = "polyak-run-\(launch.runID)"
        thread.stackSize = 1 << 20
        thread.start()
    }

    func stop(_ runID: Int64, reason: StopReason) {
        lock.withLock { trainers[runID] }?.stop(reason)
    }

    func reattach(_ runIDs: [Int64], reporter: (Int64) -> RunReporter) -> Set<Int64> { [] }

    func shutdown() async {
        let all: [TrainerProcess] = lock.withLock {
            stopping = true
            return Array(trainers.values)
        }
        for process in all { process.stop(.shutdown) }
        while !lock.withLock({ trainers.isEmpty }) {
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    /// Runs the trainer of `launch` to its end; returns the run's final status and reason.
    private func train(_ launch: RunLaunch, _ process: TrainerProcess) -> (RunStatus, String?) {
        var output = TrainerOutput(runID: launch.runID, store: store, hub: hub, directory: launch.directory, logger: logger)
        let ending: TrainerProcess.Ending
        do {
            let arguments = try RunFolderSetup.trainArguments(launch, store: store, dataDirectory: options.dataDirectory)
            ending = try process.run(arguments) { output.consume($0) }
        } catch {
            return (.failed, "\(error)")
        }
        output.finish()
        return Self.outcome(ending, output: output, stallTimeout: options.stallTimeout)
    }

    /// The run's end from how its trainer ended and what it printed: `completed` only for a clean
    /// exit after a completed summary; a stop says why; otherwise `failed` with the trainer's own
    /// reason, else its exit, then undecodable lines and the stderr tail.
    static func outcome(_ ending: TrainerProcess.Ending, output: TrainerOutput, stallTimeout: Double) -> (RunStatus, String?) {
        let (code, signal, stop, stderrTail): (Int32?, Int32, StopReason?, String)
        switch ending {
        case .notStarted(let reason):
            return (reason == .shutdown ? .interrupted : .cancelled, "stopped before it started")
        case .exited(let c, let s, let r, let tail):
            (code, signal, stop, stderrTail) = (c, s, r, tail)
        }
        if code == 0, output.summaryStatus == "completed" { return (.completed, nil) }
        if stop == .shutdown {
            return (.interrupted, "the server stopped; this run resumes from its last checkpoint on the next start")
        }
        if stop == .cancel { return (.cancelled, "cancelled") }
        var why = output.summaryReason ?? ""
        if stop == .stalled {
            why = "no output for \(TrainerProcess.seconds(stallTimeout)) (--stall-timeout): the trainer hung and was stopped"
        }
        if why.isEmpty {
            why =
                code.map { $0 == 0 ? "the trainer exited without a summary" : "exit status \($0)" }
                ?? "killed by signal \(signal)"
        }
        if let garbage = output.garbage {
            why += "\n\(garbage.count) stdout line(s) were not JSON events, the first: \(garbage.first)"
        }
        if !stderrTail.isEmpty { why += "\n" + stderrTail }
        return (.failed, why)
    }
}
