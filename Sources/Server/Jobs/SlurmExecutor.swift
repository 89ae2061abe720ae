import Experiments
import Foundation
import Logging
import Store

/// Trains each run as a Slurm job (`polyak serve --executor slurm`): its folder under the shared
/// directory gets a job script (`SlurmJobScript`) that `sbatch` submits; the trainer on a node
/// posts its events back over HTTP (`polyak train --report`). One poller asks `squeue` about every
/// held job at once every `pollInterval` seconds and turns Slurm's states into the run's:
/// pending → `queued` (Slurm's reason in `slurm_state`), running → `running`, and at the end
/// `completed` (only with a completed summary received), `cancelled` (a cancel from Polyak),
/// `interrupted` (preempted or its node failed: submitted again, resuming from its last
/// checkpoint) or `failed` with Slurm's state and reason and the tail of the job's output.
///
/// Jobs do not depend on the server: a stopping server leaves them running and their runs as they
/// are, and the next one re-attaches by the job ids stored on the runs, submitting nothing again.
final class SlurmExecutor: RunExecutor, @unchecked Sendable {
    typealias Options = SlurmOptions

    /// One run held by this executor.
    private final class Job {
        let runID: Int64
        let reporter: RunReporter
        var jobID: Int64?
        var cancelRequested = false
        /// Last reported: waiting in Slurm's queue (true) or running (false); nil before the first poll.
        var waiting: Bool?
        var shownState: String?

        init(runID: Int64, reporter: RunReporter) {
            self.runID = runID
            self.reporter = reporter
        }
    }

    let store: TrackingStore
    let hub: EventHub
    let options: Options
    let logger: Logger
    private let lock = NSLock()
    private var jobs: [Int64: Job] = [:]
    private var stopping = false
    private var pollerStarted = false

    init(store: TrackingStore, hub: EventHub, options: Options, logger: Logger) {
        self.store = store
        self.hub = hub
        self.options = options
        self.logger = logger
    }

    func start(_ launch: RunLaunch, reporter: RunReporter) {
        let job = Job(runID: launch.runID, reporter: reporter)
        lock.withLock { jobs[launch.runID] = job }
        startPoller()
        let thread = Thread { [self] in submit(launch, job) }
        thread.name = "polyak-sbatch-\(launch.runID)"
        thread.start()
    }

    /// The run's `slurm_state` while sbatch has not answered.
    static let submitting = "SUBMITTING"

    /// Readies the folder, writes the job script and submits it.
    private func submit(_ launch: RunLaunch, _ job: Job) {
        let jobID: Int64
        do {
            _ = try RunFolderSetup.trainArguments(launch, store: store, dataDirectory: options.sharedDirectory)
            let spec = try store.run(launch.runID).map { try JSONValue.parse($0.specJSON) }
            let script = SlurmJobScript(
                runID: launch.runID, directory: launch.directory, trainerBinary: options.trainerBinary,
                reportURL: options.publicURL + "/api/runs/\(launch.runID)", tokenFile: options.tokenFile,
                threads: RunSpec.threads(in: spec))
            let path = try script.write()
            if lock.withLock({ job.cancelRequested }) {
                return end(job, .cancelled, "stopped before it started")
            }
            // Marked first: a server that stops before sbatch answers must not, on restart, follow the
            // run's previous (ended) job as if it were this one.
            try store.setSlurmState(launch.runID, Self.submitting)
            jobID = try options.commands.submit(
                script.sbatchArguments(partition: options.partition, extra: options.extraOptions), script: path)
            try store.setSlurmJob(launch.runID, jobID: jobID)
            try? Data("\(jobID)\n".utf8).write(to: URL(fileURLWithPath: launch.directory + "/slurm_job_id"))
        } catch {
            return end(job, .failed, "could not submit the Slurm job: \(error)")
        }
        logger.info("run \(launch.runID): submitted as Slurm job \(jobID)")
        let cancel: Bool = lock.withLock {
            job.jobID = jobID
            return job.cancelRequested
        }
        if cancel { scancel(job) }
        if lock.withLock({ job.waiting == nil }) { report(job, waiting: true, shown: "PENDING (submitted)") }
    }

    func stop(_ runID: Int64, reason: StopReason) {
        // A server stopping leaves its jobs running: the next one re-attaches.
        guard reason != .shutdown, let job = lock.withLock({ jobs[runID] }) else { return }
        let submitted: Bool = lock.withLock {
            job.cancelRequested = true
            return job.jobID != nil
        }
        if submitted { scancel(job) }
    }

    private func scancel(_ job: Job) {
        guard let id = lock.withLock({ job.jobID }) else { return }
        do {
            try options.commands.cancel(id)
        } catch {
            logger.error("run \(job.runID): scancel \(id) failed: \(error)")
        }
    }

    func reattach(_ runIDs: [Int64], reporter: (Int64) -> RunReporter) -> Set<Int64> {
        let runs = runIDs.compactMap { try? store.run($0) }
        let unrecorded = submittedButNotRecorded(runs)
        var held: Set<Int64> = []
        for run in runs {
            var jobID = run.slurmJobID
            if let found = unrecorded[run.id] {
                // The server stopped between sbatch and storing the id: follow that job, submit none again.
                do {
                    try store.setSlurmJob(run.id, jobID: found)
                } catch {
                    logger.error("run \(run.id): cannot store its Slurm job \(found): \(error)")
                }
                try? Data("\(found)\n".utf8).write(
                    to: URL(fileURLWithPath: RunFolderSetup.directory(of: run.id, in: options.sharedDirectory) + "/slurm_job_id"))
                logger.notice("run \(run.id): found Slurm job \(found), submitted before the server stopped but not recorded")
                jobID = found
            }
            if unrecorded[run.id] == nil && run.slurmState == Self.submitting {
                // sbatch had not answered and Slurm has no job by the run's name: any stored id is an
                // ended job's. Not held: the run is resumed and submitted again.
                logger.notice("run \(run.id): its submission had not finished when the server stopped; submitting it again")
                continue
            }
            guard let jobID else { continue }
            let job = Job(runID: run.id, reporter: reporter(run.id))
            job.jobID = jobID
            job.waiting = run.status == .queued
            job.shownState = unrecorded[run.id] == nil ? run.slurmState : nil
            lock.withLock { jobs[run.id] = job }
            held.insert(run.id)
            logger.info("run \(run.id): re-attached to Slurm job \(jobID)")
        }
        if !held.isEmpty { startPoller() }
        return held
    }

    /// Jobs Slurm lists for these runs (by the job name and run folder every submission uses) that are
    /// newer than the job stored on the run: submitted by a server that died before it stored the id.
    private func submittedButNotRecorded(_ runs: [RunRecord]) -> [Int64: Int64] {
        guard !runs.isEmpty else { return [:] }
        let listed: [SlurmCommands.NamedJob]
        do {
            listed = try options.commands.jobs(named: runs.map { SlurmJobScript.jobName(runID: $0.id) })
        } catch {
            logger.warning("squeue failed: a job submitted just before the server stopped may not be found: \(error)")
            return [:]
        }
        var found: [Int64: Int64] = [:]
        for run in runs {
            let name = SlurmJobScript.jobName(runID: run.id)
            let directory = RunFolderSetup.directory(of: run.id, in: options.sharedDirectory)
            let newest = listed.filter { $0.name == name && $0.workDirectory == directory }.map(\.id).max()
            if let newest, newest > (run.slurmJobID ?? 0) { found[run.id] = newest }
        }
        return found
    }

    func shutdown() async {
        lock.withLock { stopping = true }
    }

    // MARK: Polling

    private func startPoller() {
        let start: Bool = lock.withLock {
            defer { pollerStarted = true }
            return !pollerStarted
        }
        guard start else { return }
        let thread = Thread { [self] in
            while !lock.withLock({ stopping }) {
                poll()
                Thread.sleep(forTimeInterval: options.pollInterval)
            }
        }
        thread.name = "polyak-slurm-poller"
        thread.start()
    }

    /// One `squeue` for every submitted job; each change is reported, each end handled.
    func poll() {
        let held: [Job] = lock.withLock { jobs.values.filter { $0.jobID != nil } }
        guard !held.isEmpty else { return }
        let states: [Int64: SlurmCommands.JobState]
        do {
            states = try options.commands.states(held.compactMap(\.jobID))
        } catch {
            logger.warning("squeue failed (the runs keep their state until it answers): \(error)")
            return
        }
        for job in held {
            guard let jobID = job.jobID else { continue }
            guard let s = states[jobID] else {
                // Slurm forgot it (ended longer ago than its MinJobAge): what the run folder says decides.
                finish(job, state: "UNKNOWN", reason: "Slurm no longer lists job \(jobID)")
                continue
            }
            switch s.state {
            case "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING", "SPECIAL_EXIT":
                report(job, waiting: true, shown: "\(s.state) (\(s.reason))")
            case "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "SUSPENDED", "STOPPED":
                report(job, waiting: false, shown: s.state)
            default:
                finish(job, state: s.state, reason: s.reason)
            }
        }
    }

    /// Reports a wait or a start once, and stores what Slurm says when it changed.
    private func report(_ job: Job, waiting: Bool, shown: String) {
        let (changedWait, changedShown): (Bool, Bool) = lock.withLock {
            let changed = (job.waiting != waiting, job.shownState != shown)
            job.waiting = waiting
            job.shownState = shown
            return changed
        }
        if changedShown { try? store.setSlurmState(job.runID, shown) }
        if changedWait { job.reporter.waiting(waiting) }
    }

    /// A job that ended: what its trainer left unsent is stored first, then the run's end is decided
    /// (`SlurmJobEnd`); an interruption is counted on the run and kept among its warnings, so the
    /// run's history says why it took two jobs even once it completed.
    private func finish(_ job: Job, state: String, reason: String) {
        let jobID = job.jobID ?? 0
        let directory = RunFolderSetup.directory(of: job.runID, in: options.sharedDirectory)
        SpoolIngest.run(job.runID, directory: directory, store: store, hub: hub, logger: logger)
        try? store.setSlurmState(job.runID, reason == "None" || reason.isEmpty ? state : "\(state) (\(reason))")
        let summary = (try? store.run(job.runID))?.summaryJSON.flatMap { try? JSONValue.parse($0) }
        let decision = SlurmJobEnd.decide(
            .init(
                jobID: jobID, state: state, reason: reason, summaryStatus: summary?["status"]?.stringValue,
                trainerReason: summary?["reason"]?.stringValue, cancelRequested: lock.withLock { job.cancelRequested },
                interruptions: (try? store.slurmInterruptions(job.runID)) ?? 0, maxResubmissions: options.maxResubmissions,
                stderrTail: Self.outputTail(directory: directory, jobID: jobID)))
        if decision.countsAsInterruption {
            do {
                _ = try store.countSlurmInterruption(job.runID)
                let warning = TrainerEvent.warning(
                    .init(code: "slurm_interrupted", weights: nil, message: decision.reason ?? state))
                try store.addWarning(job.runID, json: warning.line)
                hub.publish(run: job.runID, "warning", warning.line)
            } catch {
                logger.error("run \(job.runID): cannot count its interruption: \(error)")
            }
        }
        end(job, decision.status, decision.reason)
    }

    private func end(_ job: Job, _ status: RunStatus, _ reason: String?) {
        let mine = lock.withLock {
            guard jobs[job.runID] === job else { return false }
            jobs[job.runID] = nil
            return true
        }
        if mine { job.reporter.ended(status, reason: reason) }
    }

    /// The last lines of the job's stderr (`slurm-<job>.err` in the run folder), for a failure's reason.
    static func outputTail(directory: String, jobID: Int64) -> String {
        guard let data = FileManager.default.contents(atPath: directory + "/slurm-\(jobID).err"), !data.isEmpty else {
            return ""
        }
        let lines = String(decoding: data.suffix(2000), as: UTF8.self).split(separator: "\n").suffix(5)
        return "\n" + lines.joined(separator: "\n")
    }
}
