import Experiments
import Foundation
import Logging
import Store

/// More widths of a completed run's EMA-length sweep: `polyak posthoc` as a child of the server,
/// its `posthoc` lines stored like a trainer's (`TrainerOutput`), while the HTTP request waits.
/// One at a time in the whole server: a sweep does not take a training slot (it is short: one
/// test-set evaluation per width, plus the precise-BN batches when asked for), so several at once
/// would starve the training runs and hold the request threads.
final class PostHocJob: @unchecked Sendable {
    private let lock = NSLock()
    private var busy: Int64?

    /// Runs the child for `run` over its folder `directory`; throws a 409 while another sweep is
    /// going, and an error naming the child's complaint when it fails.
    func run(
        _ run: Int64, directory: String, sigmaRels: [Double], preciseBatches: Int?, store: TrackingStore, hub: EventHub,
        options: JobRunner.Options, logger: Logger
    ) throws {
        let other: Int64? = lock.withLock {
            if let busy { return busy }
            busy = run
            return nil
        }
        if let other {
            throw APIError.conflict(
                "run \(other) is being swept (one sweep at a time); ask again for run \(run) when that sweep has answered")
        }
        defer { lock.withLock { busy = nil } }
        var arguments = [
            "posthoc", "--run", directory, "--sigma-rel", sigmaRels.map { JSONValue.number($0).text() }.joined(separator: ","),
        ]
        if let preciseBatches { arguments += ["--precise-bn", String(preciseBatches)] }
        let process = TrainerProcess(
            name: "posthoc of run \(run)",
            configuration: .init(
                executable: options.executable, niceness: options.niceness, grace: options.cancelGrace,
                stallTimeout: options.stallTimeout), logger: logger)
        var output = TrainerOutput(runID: run, store: store, hub: hub, directory: directory, logger: logger)
        let ending = try process.run(arguments) { output.consume($0) }
        output.finish()
        switch ending {
        case .exited(let code, _, _, _) where code == 0:
            return
        case .exited(let code, _, _, let stderr) where code == 2:
            // Bad input: the snapshots are gone, or unreadable.
            throw APIError.conflict("run \(run) cannot be swept: \(Self.lastLine(stderr))")
        case .exited(_, _, _, let stderr):
            throw APIError(.internalServerError, "polyak posthoc of run \(run) failed: \(Self.lastLine(stderr))")
        case .notStarted:
            throw APIError(.serviceUnavailable, "the server is stopping; polyak posthoc of run \(run) did not start")
        }
    }

    /// The child's last stderr line without the `polyak: ` prefix: its reason.
    static func lastLine(_ stderr: String) -> String {
        let line = stderr.split(separator: "\n").last.map(String.init) ?? "no message"
        return line.hasPrefix("polyak: ") ? String(line.dropFirst("polyak: ".count)) : line
    }
}
