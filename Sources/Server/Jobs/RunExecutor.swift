import Experiments

/// The seam between the scheduler (`JobRunner`: which run goes when, and the run's status) and
/// what trains a run: `LocalExecutor` runs `polyak train` as a child process of the server.
///
/// The scheduler calls `start` for a run it has just moved to `running` and holds a slot for it
/// until the executor reports the run's end through its `RunReporter`; the scheduler, not the
/// executor, writes the run's final status. Every call comes without the scheduler's lock held,
/// and an executor may report from any thread (even before `start` returns).
///
/// A second implementation (a cluster's queue, e.g. Slurm, where a run is a submitted job) fits as:
/// - `start` submits the job (`sbatch`) on a worker thread and keeps the external job id itself, on
///   the run and in its folder: the scheduler never sees it.
/// - One poller asks the cluster about all held jobs in one call and reports each end; the trainer
///   sends its events over HTTP (the ingestion API), so the executor needs no `TrainerOutput`.
/// - `stop(.cancel)` is `scancel`; `stop(.shutdown)` does nothing, and `shutdown()` returns at once,
///   leaving the jobs running and their runs `running` in the store.
/// - `reattach` finds those jobs again by their stored ids on the next start.
/// - A job waiting in the cluster's own queue may be reported through a `RunReporter.waiting(reason:)`
///   added beside `ended` (the scheduler keeps its slot; the run's status and reason show it).
public protocol RunExecutor: AnyObject, Sendable {
    /// Starts training `launch.runID` and returns at once (the slow parts, such as waiting for the
    /// run folder's lock or spawning, happen elsewhere). A trainer that cannot start is an end
    /// (`failed`, with the reason), reported like any other; `reporter.ended` is called exactly once.
    func start(_ launch: RunLaunch, reporter: RunReporter)

    /// Asks the trainer of `runID` to stop; its end comes through its reporter as usual (`cancelled`
    /// for `.cancel`, `interrupted` for `.shutdown`). A stop that comes before the trainer runs
    /// keeps it from running; a run this executor does not hold is ignored.
    func stop(_ runID: Int64, reason: StopReason)

    /// At start-up, before any `start`: `runIDs` are the runs a previous server left `running`.
    /// Returns those whose trainer still runs and is watched again (their ends come through
    /// `reporter(id)`); the scheduler marks the others `interrupted`, to be resumed.
    func reattach(_ runIDs: [Int64], reporter: (Int64) -> RunReporter) -> Set<Int64>

    /// The server stops gracefully. Returns once every trainer that ends with the server has
    /// reported its end (as `interrupted`, to be resumed on the next start).
    func shutdown() async
}

/// One run for an executor to train.
public struct RunLaunch: Sendable, Equatable {
    public var runID: Int64
    /// The run was interrupted (its server stopped): continue from its folder's newest checkpoint
    /// when a trainer got that far, rather than start afresh.
    public var resume: Bool
    /// `<data-dir>/runs/<id>`: the trainer's `--out`.
    public var directory: String

    public init(runID: Int64, resume: Bool, directory: String) {
        self.runID = runID
        self.resume = resume
        self.directory = directory
    }
}

/// Why a trainer is stopped.
public enum StopReason: Sendable, Equatable {
    /// A user's cancel: the run ends `cancelled`.
    case cancel
    /// The server stops: the run ends `interrupted` and resumes on the next start.
    case shutdown
    /// The trainer printed no event for `--stall-timeout` (the local executor's own watchdog): `failed`.
    case stalled
}

/// How an executor tells the scheduler what became of one run.
public struct RunReporter: Sendable {
    public let runID: Int64
    let onEnd: @Sendable (_ runID: Int64, _ status: RunStatus, _ reason: String?) -> Void
    let onWait: (@Sendable (_ runID: Int64, _ waiting: Bool) -> Void)?

    public init(
        runID: Int64, onEnd: @escaping @Sendable (_ runID: Int64, _ status: RunStatus, _ reason: String?) -> Void,
        onWait: (@Sendable (_ runID: Int64, _ waiting: Bool) -> Void)? = nil
    ) {
        self.runID = runID
        self.onEnd = onEnd
        self.onWait = onWait
    }

    /// The run's job waits in the cluster's own queue (`true`: the run shows `queued`) or has
    /// started there (`false`: `running`). The scheduler keeps its slot either way.
    public func waiting(_ waiting: Bool) { onWait?(runID, waiting) }

    /// The trainer is gone: the run ends `status` (`completed`, `failed`, `cancelled` or
    /// `interrupted`), `reason` becoming its error. The scheduler stores it and frees the slot.
    public func ended(_ status: RunStatus, reason: String?) { onEnd(runID, status, reason) }
}
