import Experiments
import Foundation
import Logging
import Store

/// Turns a trainer's stdout into store writes and live events: the metric points of one chunk go
/// in one `logBatch`; progress, warnings and the summary are also published on the `EventHub`.
/// A line that is not a `TrainerEvent` is counted and named (a failure's reason, and an
/// `undecodable_output` warning on the run at `finish`), never dropped in silence.
///
/// Lines may be split across chunks anywhere: the stored rows do not depend on where.
struct TrainerOutput {
    let runID: Int64
    let store: TrackingStore
    let hub: EventHub
    let directory: String
    let logger: Logger
    var partial: [UInt8] = []
    var points: [MetricPoint] = []
    var grid: [GridCell] = []
    /// The EMA-length sweep's widths (`posthoc` lines, the last stage of a post-hoc EMA run).
    var sweep: [PostHocPoint] = []
    var summaryStatus: String?
    var summaryReason: String?
    /// Lines that were not JSON events: how many, and the first (cut short), for the failure reason.
    var garbage: (count: Int, first: String)?
    /// Event lines in the chunk being consumed.
    private var events = 0
    /// The line being read grew past `maxLine` and was counted as garbage: its rest is dropped.
    private var skippingLongLine = false
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
            if !skippingLongLine {
                partial.append(contentsOf: chunk[start..<i])
                line(partial)
            }
            partial.removeAll(keepingCapacity: true)
            skippingLongLine = false
            start = i + 1
        }
        if !skippingLongLine { partial.append(contentsOf: chunk[start...]) }
        if partial.count > Self.maxLine {
            // Counted once here; its rest, up to the next newline, is dropped with it.
            noteGarbage(partial)
            partial.removeAll()
            skippingLongLine = true
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
        if !partial.isEmpty && !skippingLongLine { line(partial) }
        partial.removeAll()
        skippingLongLine = false
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
            if !sweep.isEmpty { try store.savePostHoc(sweep) }
        } catch {
            logger.error("run \(runID): cannot store \(points.count) points: \(error)")
        }
        points.removeAll(keepingCapacity: true)
        grid.removeAll()
        sweep.removeAll()
    }

    /// A `posthoc` line as the store keeps it (a NaN metric as nil).
    static func point(_ p: TrainerEvent.PostHocEvaluation, run: Int64) -> PostHocPoint {
        func finite(_ x: Double) -> Double? { x.isNaN ? nil : x }
        return PostHocPoint(
            runID: run, sigmaRel: p.sigmaRel, batchNorm: p.batchNorm.rawValue, decay: p.decay, weights: p.weights,
            step: Int64(p.step), top1: finite(p.top1), top5: finite(p.top5), loss: finite(p.loss))
    }

    /// One line, decoded as the trainer's vocabulary (`TrainerEvent`); a line that does not decode
    /// is counted and named (`garbage`), never dropped in silence.
    private mutating func line(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        guard bytes.count <= Self.maxLine else { return noteGarbage(bytes) }
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
                if let timing = summary.timing, let shared = timing.sharedSeconds, let split = timing.split {
                    try store.saveCosts(run: runID, shared: shared, perWeights: split.perWeights.mapValues(\.totalSeconds))
                }
                for (weights, file) in summary.exports.sorted(by: { $0.key < $1.key }) where Self.isRunFolderPath(file) {
                    let path = directory + "/" + file
                    // Only a regular file is measured and hashed: a summary reported over HTTP names
                    // its own paths, and a FIFO or a device would hold this thread.
                    let attributes = try? FileManager.default.attributesOfItem(atPath: path)
                    let regular = attributes?[.type] as? FileAttributeType == .typeRegular
                    let size = regular ? (attributes?[.size] as? NSNumber)?.int64Value : nil
                    try store.saveArtifact(
                        run: runID,
                        Artifact(
                            name: weights, kind: .export, path: file, bytes: size,
                            sha256: regular ? SHA256.hex(ofFile: path) : nil))
                }
                hub.publish(run: runID, "summary", text)
            case .posthoc(let p):
                sweep.append(Self.point(p, run: runID))
            case .status:
                break  // the server's own event: a trainer has no business sending it
            }
        } catch {
            logger.error("run \(runID): cannot store a trainer line: \(error)")
        }
    }

    /// Whether `file`, as an event names it, stays inside the run folder: relative, without a `..`
    /// component or a NUL (a trainer writes `checkpoints/epoch-003.safetensors`, `ema@0.998.safetensors`).
    static func isRunFolderPath(_ file: String) -> Bool {
        !file.isEmpty && !file.hasPrefix("/") && !file.contains("\0") && !file.split(separator: "/").contains("..")
    }

}
