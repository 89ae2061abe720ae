import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// One trainer child process: spawn, stop (SIGTERM, then SIGKILL after a grace), its stdout fed to
/// a consumer with a watchdog for silence, the tail of its stderr, its exit status.
///
/// `run` must be called on a thread that outlives the child and does nothing else meanwhile: the
/// trainer asks for `PR_SET_PDEATHSIG` (`CProcess`), which fires when the *thread* that forked it
/// exits, and checks `POLYAK_PARENT_PID` (set here) so that a server killed during the spawn
/// leaves no orphan.
final class TrainerProcess: @unchecked Sendable {
    struct Configuration: Sendable {
        var executable: String
        /// CPU priority (`nice` value); 0 starts the executable directly.
        var niceness: Int
        /// Seconds between SIGTERM and SIGKILL.
        var grace: Double
        /// Seconds without an event on stdout after which the trainer counts as hung and is stopped.
        var stallTimeout: Double
    }

    /// How the process ended.
    enum Ending: Equatable {
        /// A stop came before the spawn: nothing ran.
        case notStarted(StopReason)
        /// Reaped: `code` when it exited, else the `signal` that killed it; `stop` is the first
        /// stop asked for (a shutdown overrides a cancel); `stderrTail` its last stderr lines.
        case exited(code: Int32?, signal: Int32, stop: StopReason?, stderrTail: String)
    }

    /// One spawn at a time in the whole server: a pipe made for one child must be close-on-exec
    /// before another thread spawns, else that child inherits it and EOF never comes.
    private static let spawnLock = NSLock()
    let name: String
    let configuration: Configuration
    let logger: Logger
    private let lock = NSLock()
    private var pid: pid_t = 0
    private var stopReason: StopReason?
    private var exited = false
    private var stderrTail = TailBuffer(limit: 16_384)

    init(name: String, configuration: Configuration, logger: Logger) {
        self.name = name
        self.configuration = configuration
        self.logger = logger
    }

    /// The stop asked for so far.
    var requestedStop: StopReason? { lock.withLock { stopReason } }

    /// SIGTERM now, SIGKILL after the grace if it still runs. Before the spawn, keeps it from happening.
    func stop(_ reason: StopReason) {
        let target: pid_t = lock.withLock {
            if stopReason == nil || reason == .shutdown { stopReason = reason }
            return exited ? 0 : pid
        }
        guard target > 0 else { return }
        kill(target, SIGTERM)
        let grace = configuration.grace
        DispatchQueue.global().asyncAfter(deadline: .now() + grace) { [self] in
            let still: pid_t = lock.withLock { exited ? 0 : pid }
            if still > 0 {
                logger.warning("\(name): no exit \(grace) s after SIGTERM; sending SIGKILL")
                kill(still, SIGKILL)
            }
        }
    }

    /// Spawns the executable with `arguments`, feeds its stdout to `output` (which returns how many
    /// events a chunk held: only events count as signs of life) until EOF, then reaps it.
    func run(_ arguments: [String], output: (ArraySlice<UInt8>) -> Int) throws -> Ending {
        if let reason = requestedStop { return .notStarted(reason) }
        var program = configuration.executable
        var arguments = arguments
        if configuration.niceness != 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/nice") {
            arguments = ["-n", "\(configuration.niceness)", program] + arguments
            program = "/usr/bin/nice"
        }
        Self.spawnLock.lock()
        let pipes = Result { try (Self.makePipe(), Self.makePipe()) }
        guard case .success(let ((outRead, outWrite), (errRead, errWrite))) = pipes else {
            Self.spawnLock.unlock()
            throw SpawnError("cannot make pipes for the trainer")
        }
        let spawnResult = Result { try Self.spawn(program, arguments, stdout: outWrite, stderr: errWrite) }
        Self.spawnLock.unlock()
        close(outWrite)
        close(errWrite)
        let spawned: pid_t
        do { spawned = try spawnResult.get() } catch {
            close(outRead)
            close(errRead)
            throw error
        }
        lock.withLock { pid = spawned }
        // A stop that came while spawning still reaches the child.
        if let reason = requestedStop { stop(reason) }

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

        readOutput(outRead, into: output)
        close(outRead)

        var wstatus: Int32 = 0
        while waitpid(spawned, &wstatus, 0) < 0 && errno == EINTR {}
        lock.withLock { exited = true }
        // stderr reaches EOF once the child is gone; give its reader a moment to keep the tail.
        var waited = 0
        while !errThread.isFinished && waited < 100 {
            usleep(10_000)
            waited += 1
        }
        let code: Int32? = (wstatus & 0x7f) == 0 ? (wstatus >> 8) & 0xff : nil
        return lock.withLock {
            .exited(code: code, signal: wstatus & 0x7f, stop: stopReason, stderrTail: stderrTail.lastLines(12))
        }
    }

    /// Reads stdout until EOF. A trainer that prints no event for `stallTimeout` seconds is hung (a
    /// deadlock, a stuck disk): it is stopped like a cancel, with `.stalled`.
    private func readOutput(_ fd: Int32, into output: (ArraySlice<UInt8>) -> Int) {
        let timeout = configuration.stallTimeout
        var lastEvent = Date()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(max(10, min(1000, timeout * 1000))))
            if ready < 0 && errno == EINTR { continue }
            // Checked whatever came: a trainer printing only garbage is as hung as a silent one.
            if Date().timeIntervalSince(lastEvent) >= timeout, requestedStop == nil {
                logger.warning("\(name): no output for \(Self.seconds(timeout)); stopping its trainer")
                stop(.stalled)
            }
            if ready == 0 { continue }
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if output(buffer[0..<n]) > 0 { lastEvent = Date() }
        }
    }

    /// `1.5 s`, `600 s`: how durations read in reasons.
    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    private static func makePipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError("pipe: \(String(cString: strerror(errno)))") }
        // Close-on-exec: other children must not inherit this child's pipe ends (EOF would never come).
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    private static func spawn(_ program: String, _ arguments: [String], stdout: Int32, stderr: Int32) throws -> pid_t {
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
        guard rc == 0 else { throw SpawnError("cannot start \(program): \(String(cString: strerror(rc)))") }
        return pid
    }
}

/// The last bytes of a stream, for failure reasons.
struct TailBuffer {
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
