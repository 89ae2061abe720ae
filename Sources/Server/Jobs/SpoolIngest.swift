import Experiments
import Foundation
import Logging
import Store

/// What a remote trainer could not send before its job ended (`polyak train --report` keeps it in
/// the run folder's spool) is read from the shared folder and stored as its lines would have been;
/// the spool is then marked acknowledged. Lines already stored change nothing.
enum SpoolIngest {
    static func run(_ runID: Int64, directory: String, store: TrackingStore, hub: EventHub, logger: Logger) {
        let spool = ReportSpool(runDirectory: directory)
        let pending = spool.pending()
        guard let last = pending.last else { return }
        var output = TrainerOutput(runID: runID, store: store, hub: hub, directory: directory, logger: logger)
        output.consume(ArraySlice(Array((pending.map(\.line).joined(separator: "\n") + "\n").utf8)))
        output.finish()
        do {
            try spool.acknowledge(upTo: last.end)
        } catch {
            logger.error("run \(runID): cannot mark its report spool as read: \(error)")
        }
        logger.info("run \(runID): stored \(pending.count) unsent line(s) from its report spool")
    }
}
