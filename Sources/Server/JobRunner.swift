import Experiments
import Foundation
import Logging
import ServiceLifecycle
import Store

#if canImport(Glibc)
    import Glibc
#endif

/// Runs queued runs as `polyak train` child processes, at most `maxConcurrent` at once, and
/// stores what they print.
///
/// Each child has one thread that spawns it, reads its stdout JSON lines into the store (one
/// `logBatch` per chunk read), then reaps it; a second thread keeps the tail of its stderr. The
/// spawning thread outlives the child, which matters: the trainer asks for `PR_SET_PDEATHSIG`,
/// which fires when the *thread* that forked it exits.
///
/// As a `Service`, `run()` first marks runs left `running` by a dead server `interrupted`, then
/// resumes them (`polyak train --resume DIR`) before queued runs; on graceful shutdown it stops
/// the children with SIGTERM and leaves their runs `interrupted`, to be resumed on the next start.
public final class JobRunner: Service, @unchecked Sendable {
    public struct Options: Sendable {
        /// The `polyak` executable to start (`/proc/self/exe` resolved, for the server).
        public var executable: String
        /// Folder holding `runs/<id>/`.
        public var dataDirectory: String
        public var maxConcurrent: Int
        /// Seconds between SIGTERM and SIGKILL when cancelling or stopping.
        public var cancelGrace: Double
        /// CPU priority of the trainers (`nice` value), so pages stay quick while training.
        public var niceness: Int
        /// Seconds without an event line after which a trainer counts as hung: stopped, its run `failed`.
        public var stallTimeout: Double

        public init(
            executable: String, dataDirectory: String, maxConcurrent: Int = 1, cancelGrace: Double = 10, niceness: Int = 10,
            stallTimeout: Double = 600
        ) {
            self.executable = executable
            self.dataDirectory = dataDirectory
            self.maxConcurrent = maxConcurrent
            self.cancelGrace = cancelGrace
            self.niceness = niceness
            self.stallTimeout = stallTimeout
        }
    }

    let store: TrackingStore
    let hub: EventHub
    let options: Options
    let logger: Logger
    private let lock = NSLock()
    private var children: [Int64: Child] = [:]
    private var started = false
    private var stopping = false
    private let (idle, idleContinuation) = AsyncStream<Void>.makeStream()

    init(store: TrackingStore, hub: EventHub, options: Options, logger: Logger) {
        self.store = store
        self.hub = hub
        self.options = options
        self.logger = logger
    }

    /// The folder of run `id`.
    func runDirectory(_ id: Int64) -> String { options.dataDirectory + "/runs/\(id)" }

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

    /// Runs left `running` by a server that died become `interrupted`; they resume first.
    func recover() throws {
        for id in try store.runIDs(status: [.running]) {
            try store.setStatus(
                id, .interrupted, error: "the server stopped while this run trained; resuming from its last checkpoint")
            logger.info("run \(id) was running when the server stopped: resuming it")
        }
    }

    /// Gives its children SIGTERM and waits for them; their runs stay resumable.
    func stopAll() async {
        let all: [Child] = lock.withLock {
            stopping = true
            return Array(children.values)
        }
        for c in all { c.stop(reason: .shutdown, grace: options.cancelGrace) }
        while !lock.withLock({ children.isEmpty }) {
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    // MARK: Queue

    /// Starts queued (and interrupted) runs while there is room.
    public func schedule() {
        lock.lock()
        defer { lock.unlock() }
        guard started, !stopping else { return }
        while children.count < options.maxConcurrent {
            let interrupted: [Int64], queued: [Int64]
            do {
                // Interrupted runs first: they were started before anything still queued.
                interrupted = try store.runIDs(status: [.interrupted])
                queued = try store.runIDs(status: [.queued])
            } catch {
                logger.error("cannot read the queue: \(error)")
                return
            }
            guard let next = (interrupted + queued).first(where: { children[$0] == nil }) else { return }
            let child = Child(runID: next, resume: interrupted.contains(next), runner: self)
            children[next] = child
            do {
                try store.setStatus(next, .running, error: nil)
            } catch {
                logger.error("cannot start run \(next): \(error)")
                children[next] = nil
                return
            }
            publishStatus(next)
            let thread = Thread { child.main() }
            thread.name = "polyak-run-\(next)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// How many runs train now.
    public var activeCount: Int { lock.withLock { children.count } }

    /// Cancels a queued, interrupted or running run. Returns false when it had already finished.
    /// Decided under the queue's lock: the scheduler cannot start the run between the two checks.
    @discardableResult
    public func cancel(_ id: Int64) throws -> Bool {
        let done: Bool = try lock.withLock {
            if let child = children[id] {
                child.stop(reason: .cancel, grace: options.cancelGrace)
                return true
            }
            return try store.setStatus(id, .cancelled, error: "cancelled before it ran", from: [.queued, .interrupted])
        }
        if done { publishStatus(id) }
        return done
    }

    /// Whether a child process works on run `id` now.
    public func isActive(_ id: Int64) -> Bool { lock.withLock { children[id] != nil } }

    /// Runs `body` (a delete) while the scheduler cannot start a run; `active` says whether a child
    /// works on a run. A delete that checks and deletes inside this cannot race a start.
    func whileQueueHeld<T>(_ body: (_ active: (Int64) -> Bool) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body { children[$0] != nil }
    }

    fileprivate func finished(_ id: Int64) {
        lock.withLock { _ = children.removeValue(forKey: id) }
        publishStatus(id)
        schedule()
    }

    func publishStatus(_ id: Int64) {
        guard let run = try? store.run(id) else { return }
        let data: JSONValue = ["status": .string(run.status.rawValue), "error": run.error.map { .string($0) } ?? .null]
        hub.publish(run: id, "status", data.text())
    }
}

/// One training child and the thread that watches it.
private final class Child: @unchecked Sendable {
    enum StopReason { case cancel, shutdown, stalled }

    static let spawnLock = NSLock()
    let runID: Int64
    /// The run was interrupted: continue its folder's trainer state rather than start afresh.
    let resume: Bool
    unowned let runner: JobRunner
    private let lock = NSLock()
    private var pid: pid_t = 0
    private var stopReason: StopReason?
    private var exited = false
    private var stderrTail = TailBuffer(limit: 16_384)

    init(runID: Int64, resume: Bool, runner: JobRunner) {
        self.runID = runID
        self.resume = resume
        self.runner = runner
    }

    var store: TrackingStore { runner.store }

    /// SIGTERM now, SIGKILL after `grace` seconds if it still runs.
    func stop(reason: StopReason, grace: Double) {
        let target: pid_t = lock.withLock {
            if stopReason == nil || reason == .shutdown { stopReason = reason }
            return exited ? 0 : pid
        }
        guard target > 0 else { return }
        kill(target, SIGTERM)
        DispatchQueue.global().asyncAfter(deadline: .now() + grace) { [self] in
            let still: pid_t = lock.withLock { exited ? 0 : pid }
            if still > 0 {
                runner.logger.warning("run \(runID): no exit \(grace) s after SIGTERM; sending SIGKILL")
                kill(still, SIGKILL)
            }
        }
    }

    func main() {
        defer { runner.finished(runID) }
        let status: (RunStatus, String?)
        do {
            status = try work()
        } catch {
            status = (.failed, "\(error)")
        }
        do {
            try store.setStatus(runID, status.0, error: status.1)
        } catch {
            runner.logger.error("run \(runID): cannot store its end (\(status.0)): \(error)")
        }
        let line = "run \(runID) \(status.0.rawValue)" + (status.1.map { ": \($0)" } ?? "")
        runner.logger.info("\(line)")
    }

    private func work() throws -> (RunStatus, String?) {
        guard let run = try store.run(runID) else { return (.failed, "the run vanished from the database") }
        let dir = runner.runDirectory(runID)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var arguments: [String]
        guard waitForFolderLock(dir + "/train.lock", seconds: 30) else {
            return (.failed, "another trainer still holds \(dir)/train.lock after 30 s")
        }
        if resume && FileManager.default.fileExists(atPath: dir + "/spec.json") {
            // A trainer worked here (its spec.json is written): continue from its newest checkpoint.
            arguments = ["train", "--resume", dir]
        } else {
            // A fresh start owns the folder: files of an older database's run with this id must not mix in.
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name != "train.lock" {
                try? FileManager.default.removeItem(atPath: dir + "/" + name)
            }
            let spec = try resolvedSpec(run)
            try store.setSpec(runID, specJSON: spec.text(pretty: false))
            let input = dir + "/spec.input.json"
            try spec.data(pretty: true).write(to: URL(fileURLWithPath: input), options: .atomic)
            arguments = ["train", "--spec", input, "--out", dir]
        }
        if let reason = lock.withLock({ stopReason }) {
            return (reason == .shutdown ? .interrupted : .cancelled, "stopped before it started")
        }

        // One spawn at a time: a pipe made here must be close-on-exec before another thread spawns.
        Child.spawnLock.lock()
        let pipes = Result { try (makePipe(), makePipe()) }
        guard case .success(let ((outRead, outWrite), (errRead, errWrite))) = pipes else {
            Child.spawnLock.unlock()
            return (.failed, "cannot make pipes for the trainer")
        }
        var program = runner.options.executable
        if runner.options.niceness != 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/nice") {
            arguments = ["-n", "\(runner.options.niceness)", program] + arguments
            program = "/usr/bin/nice"
        }
        let spawnResult = Result { try spawn(program, arguments, stdout: outWrite, stderr: errWrite) }
        Child.spawnLock.unlock()
        close(outWrite)
        close(errWrite)
        let spawned = try spawnResult.get()
        lock.withLock { pid = spawned }
        // A stop that came while spawning still reaches the child.
        if let reason = lock.withLock({ stopReason }) { stop(reason: reason, grace: runner.options.cancelGrace) }

        let errThread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 8192)
            while true {
                let n = read(errRead, &buffer, buffer.count)
                if n <= 0 { break }
                lock.withLock { stderrTail.append(buffer[0..<n]) }
            }
            close(errRead)
        }
        errThread.start()

        var reader = LineReader(runID: runID, store: store, hub: runner.hub, directory: dir, logger: runner.logger)
        readEvents(outRead, into: &reader)
        close(outRead)

        var wstatus: Int32 = 0
        while waitpid(spawned, &wstatus, 0) < 0 && errno == EINTR {}
        lock.withLock { exited = true }
        // stderr reaches EOF once the child is gone; give its reader a moment to keep the tail.
        var waited = 0
        while !errThread.isFinished && waited < 100 { usleep(10_000); waited += 1 }

        let exitCode: Int32? = (wstatus & 0x7f) == 0 ? (wstatus >> 8) & 0xff : nil
        let signal = wstatus & 0x7f
        let reason = lock.withLock { stopReason }
        if exitCode == 0, reader.summaryStatus == "completed" { return (.completed, nil) }
        if reason == .shutdown {
            return (.interrupted, "the server stopped; this run resumes from its last checkpoint on the next start")
        }
        if reason == .cancel { return (.cancelled, "cancelled") }
        let tail = lock.withLock { stderrTail.lastLines(12) }
        var why = reader.summaryReason ?? ""
        if reason == .stalled {
            why = "no output for \(Self.seconds(runner.options.stallTimeout)) (--stall-timeout): the trainer hung and was stopped"
        }
        if why.isEmpty {
            why =
                exitCode.map { $0 == 0 ? "the trainer exited without a summary" : "exit status \($0)" }
                ?? "killed by signal \(signal)"
        }
        if let garbage = reader.garbage {
            why += "\n\(garbage.count) stdout line(s) were not JSON events, the first: \(garbage.first)"
        }
        if !tail.isEmpty { why += "\n" + tail }
        return (.failed, why)
    }

    /// Reads the trainer's stdout into `reader` until EOF. A trainer that prints no event line for
    /// `stallTimeout` seconds is hung (a deadlock, a stuck disk): it is stopped like a cancel.
    private func readEvents(_ fd: Int32, into reader: inout LineReader) {
        let timeout = runner.options.stallTimeout
        var lastEvent = Date()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(max(10, min(1000, timeout * 1000))))
            if ready < 0 && errno == EINTR { continue }
            // Checked whatever came: a trainer printing only garbage is as hung as a silent one.
            if Date().timeIntervalSince(lastEvent) >= timeout, lock.withLock({ stopReason == nil }) {
                runner.logger.warning("run \(runID): no output for \(Self.seconds(timeout)); stopping its trainer")
                stop(reason: .stalled, grace: runner.options.cancelGrace)
            }
            if ready == 0 { continue }
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if reader.consume(buffer[0..<n]) > 0 { lastEvent = Date() }
        }
        reader.finish()
    }

    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }

    /// The run's spec with `distillation.teacher_run` resolved into `teacher {path, model}`.
    private func resolvedSpec(_ run: RunRecord) throws -> JSONValue {
        var spec = try JSONValue.parse(run.specJSON)
        guard case .object(var fields) = spec, case .object(var distillation)? = fields["distillation"],
            let teacherRun = distillation["teacher_run"]?.doubleValue
        else { return spec }
        let weights = distillation["teacher_weights"]?.stringValue ?? "raw"
        guard teacherRun == teacherRun.rounded(), teacherRun >= 1, teacherRun < 9.0e18 else {
            throw ResolveError("distillation.teacher_run \(teacherRun) is not a run id")
        }
        let id = Int64(teacherRun)
        guard let teacher = try store.run(id), teacher.status == .completed else {
            throw ResolveError("distillation.teacher_run \(id) is not a completed run")
        }
        guard let file = try store.artifacts(run: id).first(where: { $0.kind == .export && $0.name == weights }) else {
            throw ResolveError("distillation.teacher_run \(id) has no exported weight set \(weights)")
        }
        let model = (try? JSONValue.parse(teacher.specJSON))?["model"] ?? .null
        distillation["teacher"] = ["path": .string(runner.runDirectory(id) + "/" + file.path), "model": model]
        fields["distillation"] = .object(distillation)
        spec = .object(fields)
        _ = try RunSpec.decode(spec)
        return spec
    }

    struct ResolveError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Waits until no other process holds the folder's flock (a trainer of a killed server gets
    /// SIGTERM from the kernel but may take a step to stop).
    private func waitForFolderLock(_ path: String, seconds: Double) -> Bool {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return true }  // the trainer reports the real problem
        defer { close(fd) }
        let deadline = Date().addingTimeInterval(seconds)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if Date() > deadline { return false }
            usleep(100_000)
        }
        flock(fd, LOCK_UN)
        return true
    }

    private func makePipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ResolveError("pipe: \(String(cString: strerror(errno)))") }
        // Close-on-exec: other children must not inherit this child's pipe ends (EOF would never come).
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    private func spawn(_ program: String, _ arguments: [String], stdout: Int32, stderr: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // The trainer checks, after asking for PR_SET_PDEATHSIG, that this process is still its
        // parent: a server killed during the spawn leaves no orphan trainer behind.
        var environment = ProcessInfo.processInfo.environment.filter { $0.key != "POLYAK_PARENT_PID" }
            .map { "\($0.key)=\($0.value)" }
        environment.append("POLYAK_PARENT_PID=\(getpid())")
        let envp = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, program, &actions, nil, argv, envp)
        guard rc == 0 else { throw ResolveError("cannot start \(program): \(String(cString: strerror(rc)))") }
        return pid
    }
}

/// The last bytes of a stream, for failure reasons.
private struct TailBuffer {
    let limit: Int
    var bytes: [UInt8] = []

    mutating func append(_ chunk: ArraySlice<UInt8>) {
        bytes.append(contentsOf: chunk)
        if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
    }

    func lastLines(_ n: Int) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: true).suffix(n).joined(separator: "\n")
    }
}

/// Turns the trainer's stdout into store writes: metric points of one chunk in one `logBatch`.
private struct LineReader {
    let runID: Int64
    let store: TrackingStore
    let hub: EventHub
    let directory: String
    let logger: Logger
    var partial: [UInt8] = []
    var points: [MetricPoint] = []
    var grid: [GridCell] = []
    var summaryStatus: String?
    var summaryReason: String?
    /// Lines that were not JSON events: how many, and the first (cut short), for the failure reason.
    var garbage: (count: Int, first: String)?
    /// Event lines in the chunk being consumed.
    private var events = 0
    /// A trainer's longest line (a summary) is a few KB; past this a "line" is garbage.
    static let maxLine = 1 << 20

    init(runID: Int64, store: TrackingStore, hub: EventHub, directory: String, logger: Logger) {
        self.runID = runID
        self.store = store
        self.hub = hub
        self.directory = directory
        self.logger = logger
    }

    /// Stores the chunk's complete lines; returns how many were events.
    @discardableResult
    mutating func consume(_ chunk: ArraySlice<UInt8>) -> Int {
        events = 0
        var start = chunk.startIndex
        for i in chunk.indices where chunk[i] == 0x0A {
            partial.append(contentsOf: chunk[start..<i])
            line(partial)
            partial.removeAll(keepingCapacity: true)
            start = i + 1
        }
        partial.append(contentsOf: chunk[start...])
        if partial.count > Self.maxLine {
            noteGarbage(partial)
            partial.removeAll()
        }
        flush()
        return events
    }

    private mutating func noteGarbage(_ bytes: [UInt8]) {
        let text = String(decoding: bytes.prefix(200), as: UTF8.self)
        let count = (garbage?.count ?? 0) + 1
        // The first few are logged: a trainer printing garbage in a loop must not flood the log.
        if count <= 3 { logger.warning("run \(runID): a stdout line that is not a JSON event: \(text)") }
        garbage = (count: count, first: garbage?.first ?? text)
    }

    mutating func finish() {
        if !partial.isEmpty { line(partial) }
        partial.removeAll()
        flush()
        // Surfaced on the run's page and in its JSON, whatever the run's end.
        if let garbage {
            let warning = TrainerEvent.warning(
                .init(
                    code: "undecodable_output", weights: nil,
                    message: "\(garbage.count) line(s) of the trainer's output were not events and were not stored; "
                        + "the first: \(garbage.first)"))
            do { try store.addWarning(runID, json: warning.line) } catch {
                logger.error("run \(runID): cannot store a warning: \(error)")
            }
        }
    }

    private mutating func flush() {
        do {
            if !points.isEmpty { try store.logBatch(run: runID, points, policy: .replace) }
            if !grid.isEmpty { try store.saveGrid(run: runID, grid) }
        } catch {
            logger.error("run \(runID): cannot store \(points.count) points: \(error)")
        }
        points.removeAll(keepingCapacity: true)
        grid.removeAll()
    }

    /// One line, decoded as the trainer's vocabulary (`TrainerEvent`); a line that does not decode
    /// is counted and named (`garbage`), never dropped in silence.
    private mutating func line(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        let event: TrainerEvent
        do {
            event = try TrainerEvent.decode(line: bytes)
        } catch {
            noteGarbage(bytes)
            return
        }
        events += 1
        do {
            switch event {
            case .metric(let m):
                points.append(m)
            case .progress:
                // Points before the progress line are stored first: the UI never sees progress ahead of data.
                flush()
                let text = event.line
                try store.setProgress(runID, json: text)
                hub.publish(run: runID, "progress", text)
            case .grid(let g):
                grid.append(
                    GridCell(
                        weights: g.weights, stage: g.stage.rawValue, trainSize: Int64(g.trainSize ?? 0), resize: Int64(g.resize),
                        crop: Int64(g.crop), top1: g.top1, top5: g.top5, loss: g.loss))
            case .checkpoint(let c):
                try store.saveArtifact(
                    run: runID,
                    Artifact(
                        name: "checkpoint:" + (c.file as NSString).lastPathComponent, kind: .checkpoint, path: c.file,
                        bytes: Int64(c.bytes), sha256: c.sha256))
                // Older checkpoints are rotated away by the trainer (`checkpoints.keep`).
                for a in try store.artifacts(run: runID) where a.kind == .checkpoint {
                    if !FileManager.default.fileExists(atPath: directory + "/" + a.path) {
                        try store.removeArtifact(run: runID, name: a.name)
                    }
                }
            case .warning:
                let text = event.line
                try store.addWarning(runID, json: text)
                hub.publish(run: runID, "warning", text)
            case .summary(let summary):
                flush()
                summaryStatus = summary.status.rawValue
                summaryReason = summary.reason
                let text = event.line
                try store.setSummary(runID, json: text)
                for (weights, file) in summary.exports.sorted(by: { $0.key < $1.key }) {
                    let path = directory + "/" + file
                    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
                    try store.saveArtifact(
                        run: runID,
                        Artifact(name: weights, kind: .export, path: file, bytes: size, sha256: SHA256.hex(ofFile: path)))
                }
                hub.publish(run: runID, "summary", text)
            case .status, .posthoc:
                break  // the server's own event, and polyak posthoc's: a trainer has no business sending them
            }
        } catch {
            logger.error("run \(runID): cannot store a trainer line: \(error)")
        }
    }
}
