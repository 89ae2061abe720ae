import Experiments
import Foundation
import Logging
import ServiceLifecycle
import Store

/// The job scheduler: starts queued runs on a `RunExecutor` (by default `LocalExecutor`, `polyak
/// train` children), at most `maxConcurrent` at once and, with a core budget (`cpus`), only while
/// the threads of the runs training plus the next one's fit in it, and owns the runs' status while
/// they train. The queue is strict FIFO: a run that does not fit waits, and nothing overtakes it.
///
/// As a `Service`, `run()` first recovers runs left `running` by a dead server (the executor
/// re-attaches those it still can; the rest become `interrupted`), resumes interrupted runs before
/// queued ones, and on graceful shutdown lets the executor stop its trainers (their runs stay
/// `interrupted`, to be resumed on the next start).
///
/// Locking: decisions are made under `lock`, store writes outside it. What keeps cancels and
/// deletes from racing a start: a run gets a slot (under the lock) before the store moves it to
/// `running`, and that move is conditional (`from: [.queued, .interrupted]`), so a run cancelled or
/// deleted after the queue was read is never started; a cancel marks its run as being cancelled
/// (under the lock) so no slot is given to it while it writes; while a delete decides
/// (`whileQueueHeld`), no slot is given at all.
public final class JobRunner: Service, @unchecked Sendable {
    public struct Options: Sendable {
        /// The `polyak` executable to start (`/proc/self/exe` resolved, for the server).
        public var executable: String
        /// Folder holding `runs/<id>/`.
        public var dataDirectory: String
        public var maxConcurrent: Int
        /// Cores the trainers may use together (the sum of their specs' `threads`); nil: no budget
        /// (Slurm places its jobs itself). A run asking for more than the budget starts alone.
        public var cpus: Int?
        /// Seconds between SIGTERM and SIGKILL when cancelling or stopping.
        public var cancelGrace: Double
        /// CPU priority of the trainers (`nice` value), so pages stay quick while training.
        public var niceness: Int
        /// Seconds without an event line after which a trainer counts as hung: stopped, its run `failed`.
        public var stallTimeout: Double

        public init(
            executable: String, dataDirectory: String, maxConcurrent: Int = 1, cpus: Int? = nil, cancelGrace: Double = 10,
            niceness: Int = 10, stallTimeout: Double = 600
        ) {
            self.executable = executable
            self.dataDirectory = dataDirectory
            self.maxConcurrent = maxConcurrent
            self.cpus = cpus
            self.cancelGrace = cancelGrace
            self.niceness = niceness
            self.stallTimeout = stallTimeout
        }
    }

    /// A run the scheduler has let go: handed to the executor (`started`) or about to be.
    private final class Slot {
        /// The threads its spec asks for (0 for a re-attached run: its spec is not read again).
        let threads: Int
        var started = false
        /// A stop asked for before the executor had the run; passed on once it has.
        var pendingStop: StopReason?

        init(threads: Int) { self.threads = threads }
    }

    let store: TrackingStore
    let hub: EventHub
    let options: Options
    let logger: Logger
    let executor: any RunExecutor
    private let lock = NSLock()
    private var slots: [Int64: Slot] = [:]
    /// Runs whose cancel is writing `cancelled`: not to be given a slot meanwhile.
    private var cancelling: Set<Int64> = []
    /// `whileQueueHeld` bodies running now; no slot is given while any runs.
    private var holds = 0
    private var started = false
    private var stopping = false
    private let (idle, idleContinuation) = AsyncStream<Void>.makeStream()

    init(store: TrackingStore, hub: EventHub, options: Options, logger: Logger, executor: (any RunExecutor)? = nil) {
        self.store = store
        self.hub = hub
        self.options = options
        self.logger = logger
        self.executor = executor ?? LocalExecutor(store: store, hub: hub, options: options, logger: logger)
    }

    /// The folder of run `id`.
    func runDirectory(_ id: Int64) -> String { RunFolderSetup.directory(of: id, in: options.dataDirectory) }

    // MARK: Service

    public func run() async throws {
        try recover()
        lock.withLock { started = true }
        schedule()
        await withGracefulShutdownHandler {
            for await _ in idle {}
        } onGracefulShutdown: {
            self.idleContinuation.finish()
        }
        await stopAll()
    }

    /// Runs left `running` by a server that died: re-attached by the executor if their trainers
    /// still run, else `interrupted`, to be resumed first.
    func recover() throws {
        // A Slurm job waiting in Slurm's queue leaves its run `queued`: it is re-attached too.
        let left = Array(Set(try store.runIDs(status: [.running]) + store.activeSlurmJobs().map(\.runID))).sorted()
        // Slots first: a re-attached run may report its end at once.
        lock.withLock {
            for id in left {
                let slot = Slot(threads: 0)
                slot.started = true
                slots[id] = slot
            }
        }
        let reattached = executor.reattach(left, reporter: reporter)
        for id in left where !reattached.contains(id) {
            lock.withLock { _ = slots.removeValue(forKey: id) }
            try store.setStatus(
                id, .interrupted, error: "the server stopped while this run trained; resuming from its last checkpoint")
            logger.info("run \(id) was running when the server stopped: resuming it")
        }
    }

    /// Stops giving slots and lets the executor stop its trainers; returns once they have ended.
    func stopAll() async {
        lock.withLock { stopping = true }
        // A run being handed over reaches the executor before it shuts down.
        while lock.withLock({ slots.values.contains { !$0.started } }) {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        await executor.shutdown()
    }

    // MARK: Queue

    /// Starts queued (and interrupted) runs while there is room.
    public func schedule() {
        while lock.withLock({ mayStart() }) {
            let interrupted: [TrackingStore.WaitingRun], queued: [TrackingStore.WaitingRun]
            do {
                // Interrupted runs first: they were started before anything still queued.
                interrupted = try store.waitingRuns(status: [.interrupted])
                queued = try store.waitingRuns(status: [.queued])
            } catch {
                logger.error("cannot read the queue: \(error)")
                return
            }
            let picked: (id: Int64, slot: Slot)? = lock.withLock {
                guard mayStart(),
                    let next = (interrupted + queued).first(where: { slots[$0.id] == nil && !cancelling.contains($0.id) }),
                    fitsTheCores(next.threads)
                else { return nil }
                let slot = Slot(threads: next.threads)
                slots[next.id] = slot
                return (next.id, slot)
            }
            guard let (id, slot) = picked else { return }
            let moved: Bool
            do {
                // Only from waiting: a cancel or a delete since the queue was read wins.
                moved = try store.setStatus(id, .running, error: nil, from: [.queued, .interrupted])
            } catch {
                logger.error("cannot start run \(id): \(error)")
                release(id, slot)
                return
            }
            guard moved else {
                release(id, slot)
                continue
            }
            publishStatus(id)
            executor.start(
                RunLaunch(runID: id, resume: interrupted.contains { $0.id == id }, directory: runDirectory(id)),
                reporter: reporter(id))
            let stop: StopReason? = lock.withLock {
                guard slots[id] === slot else { return nil }  // it has ended already
                slot.started = true
                return slot.pendingStop
            }
            if let stop { executor.stop(id, reason: stop) }
        }
    }

    /// Whether a slot may be given now; called under `lock`. A hold puts the schedule off (the
    /// last hold to end schedules).
    private func mayStart() -> Bool {
        started && !stopping && holds == 0 && slots.count < options.maxConcurrent
    }

    /// Whether a run on `threads` fits beside the runs training now; called under `lock`. Alone, any
    /// run fits (else one asking for more than the budget would never start).
    private func fitsTheCores(_ threads: Int) -> Bool {
        guard let cpus = options.cpus, !slots.isEmpty else { return true }
        return slots.values.reduce(0) { $0 + $1.threads } + threads <= cpus
    }

    private func release(_ id: Int64, _ slot: Slot) {
        lock.withLock {
            if slots[id] === slot { slots[id] = nil }
        }
    }

    /// How many runs train now.
    public var activeCount: Int { lock.withLock { slots.count } }

    /// Cancels a queued, interrupted or running run. Returns false when it had already finished.
    @discardableResult
    public func cancel(_ id: Int64) throws -> Bool {
        enum Decision { case stopTrainer, stopBeforeStart, dequeue }
        let decision: Decision = lock.withLock {
            if let slot = slots[id] {
                guard slot.started else {
                    if slot.pendingStop == nil { slot.pendingStop = .cancel }
                    return .stopBeforeStart
                }
                return .stopTrainer
            }
            cancelling.insert(id)
            return .dequeue
        }
        switch decision {
        case .stopTrainer:
            executor.stop(id, reason: .cancel)
            return true
        case .stopBeforeStart:
            return true
        case .dequeue:
            defer { lock.withLock { _ = cancelling.remove(id) } }
            let done = try store.setStatus(id, .cancelled, error: "cancelled before it ran", from: [.queued, .interrupted])
            if done {
                publishStatus(id)
                // The queue's head may have been waiting for room: the runs behind it may fit now.
                schedule()
            }
            return done
        }
    }

    /// Whether a trainer works on run `id` now (or is being given it).
    public func isActive(_ id: Int64) -> Bool { lock.withLock { slots[id] != nil } }

    /// Runs `body` (a delete) while the scheduler gives no run a slot; `active` says whether a
    /// trainer works on a run. A delete that checks and deletes inside this cannot race a start.
    /// The lock is not held while `body` runs (it writes the store): a schedule meanwhile is put
    /// off and runs when `body` returns.
    func whileQueueHeld<T>(_ body: (_ active: (Int64) -> Bool) throws -> T) rethrows -> T {
        lock.withLock { holds += 1 }
        defer {
            let last: Bool = lock.withLock {
                holds -= 1
                return holds == 0
            }
            // A schedule put off meanwhile runs now; and a deleted queue head may have been
            // waiting for room that the runs behind it fit in.
            if last { schedule() }
        }
        return try body { id in lock.withLock { slots[id] != nil } }
    }

    /// What the executor calls back with for run `id`.
    private func reporter(_ id: Int64) -> RunReporter {
        RunReporter(
            runID: id, onEnd: { [weak self] id, status, reason in self?.ended(id, status, reason) },
            onWait: { [weak self] id, waiting in self?.waiting(id, waiting) })
    }

    /// A held run's job waits in its cluster's queue (`queued`) or runs there (`running`).
    private func waiting(_ id: Int64, _ waiting: Bool) {
        guard lock.withLock({ slots[id] != nil }) else { return }
        let moved: Bool
        do {
            moved = try store.setStatus(id, waiting ? .queued : .running, error: nil, from: waiting ? [.running] : [.queued])
        } catch {
            logger.error("run \(id): cannot store its state: \(error)")
            return
        }
        if moved { publishStatus(id) }
    }

    /// A trainer ended: its status is stored before the slot is freed, so a delete cannot come in between.
    private func ended(_ id: Int64, _ status: RunStatus, _ reason: String?) {
        do {
            try store.setStatus(id, status, error: reason)
        } catch {
            logger.error("run \(id): cannot store its end (\(status)): \(error)")
        }
        let line = "run \(id) \(status.rawValue)" + (reason.map { ": \($0)" } ?? "")
        logger.info("\(line)")
        lock.withLock { _ = slots.removeValue(forKey: id) }
        publishStatus(id)
        schedule()
    }

    func publishStatus(_ id: Int64) {
        guard let run = try? store.run(id) else { return }
        let data: JSONValue = ["status": .string(run.status.rawValue), "error": run.error.map { .string($0) } ?? .null]
        hub.publish(run: id, "status", data.text())
    }
}
