import Experiments
import Foundation
import Logging
import Store

/// `POST /api/runs/{id}/events`: a trainer that trains elsewhere (`polyak train --report`, on a
/// Slurm node or a user's machine) sends the events it printed besides its metric points:
/// `{"events": [{"type": "progress", …}, {"type": "summary", …}]}`, each one line of the trainer's
/// vocabulary (`TrainerEvent`). They are stored as a local trainer's lines are (`TrainerOutput`):
/// progress, warnings (each once), checkpoints, grid cells, the EMA-length sweep, the summary. Sending a batch again
/// changes nothing. An external run's summary also ends the run with the summary's status.
extension RunService {
    static let maxEvents = 1000

    /// Whether run `id` takes reports over HTTP: an external run, or one this server handed to Slurm
    /// (its trainer reports); a run trained by a local child has one writer, its child.
    static func checkReported(_ run: RunRecord, what: String) throws {
        if !run.external && run.slurmJobID == nil {
            // Two writers of one series would turn a resumed trainer's replays into conflicts.
            throw APIError.conflict(
                "run \(run.id) is trained by this server; only external runs (POST /api/runs?launch=false) and Slurm jobs "
                    + "take \(what) over REST")
        }
    }

    /// Stores the events of one batch; returns how many there were.
    func logEvents(_ id: Int64, _ body: JSONValue) async throws -> Int {
        guard case .array(let items)? = body["events"], case .object(let top) = body, top.count == 1 else {
            throw APIError.badRequest("the body must be {\"events\": [...]}, a list of trainer events", field: "events")
        }
        if items.count > Self.maxEvents {
            throw APIError.badRequest("at most \(Self.maxEvents) events a batch, got \(items.count)", field: "events")
        }
        var lines: [String] = []
        var summary: TrainerEvent.Summary?
        for (i, item) in items.enumerated() {
            let field = "events[\(i)]"
            let event: TrainerEvent
            do {
                event = try TrainerEvent.decode(line: item.text())
            } catch {
                throw APIError.badRequest("\(field) is not a trainer event: \(error)", field: field)
            }
            switch event {
            case .metric:
                throw APIError.badRequest("\(field): metric points go to POST /api/runs/\(id)/metrics", field: field)
            case .status:
                throw APIError.badRequest("\(field): a status event is not a trainer's", field: field)
            case .summary(let s):
                for (weights, file) in s.exports where !TrainerOutput.isRunFolderPath(file) {
                    throw APIError.badRequest(
                        "\(field).exports.\(weights) must be a path inside the run folder (relative, no ..), got \(file)",
                        field: "\(field).exports.\(weights)")
                }
                summary = s
            case .checkpoint(let c) where !TrainerOutput.isRunFolderPath(c.file):
                throw APIError.badRequest(
                    "\(field).file must be a path inside the run folder (relative, no ..), got \(c.file)", field: "\(field).file")
            case .progress, .warning, .checkpoint, .grid, .posthoc:
                // A post-hoc line is the EMA-length sweep's, sent just before the summary.
                break
            }
            lines.append(event.line)
        }
        let run = try await self.run(id)
        try Self.checkReported(run, what: "events")
        let directory = context.runner.runDirectory(id)
        let finished: Bool = try await Blocking.run { [context, lines, summary] in
            var output = TrainerOutput(
                runID: id, store: context.store, hub: context.hub, directory: directory, logger: context.runner.logger)
            output.consume(ArraySlice(Array((lines.joined(separator: "\n") + "\n").utf8)))
            output.finish()
            guard run.external, let summary else { return false }
            let status: RunStatus =
                switch summary.status {
                case .completed: .completed
                case .failed: .failed
                case .cancelled: .cancelled
                }
            return try context.store.setStatus(
                id, status, error: summary.reason ?? (status == .failed ? "the trainer reported failure" : nil), from: [.running])
        }
        if finished { context.runner.publishStatus(id) }
        return lines.count
    }
}
