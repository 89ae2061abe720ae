import Experiments
import Foundation
import Hummingbird
import Store

/// A run as the API shows it. The list and cancel answers carry the summary fields; one run's own
/// answer (`GET`, `POST`, `PATCH`, rerun) adds `spec`, `summary`, `warnings`, and `GET` adds `latest`.
struct RunView: ResponseEncodable {
    var record: RunRecord
    var full: Bool
    /// weights → key → the newest point of that series.
    var latest: SortedMap<SortedMap<LatestPoint>>?

    struct LatestPoint: Encodable {
        var step: Int64
        var epoch: Int64?
        var value: Double
    }

    init(_ record: RunRecord, full: Bool, latest: [RunService.LatestValue]? = nil) {
        self.record = record
        self.full = full
        if let latest {
            var byWeights: [String: [String: LatestPoint]] = [:]
            for l in latest {
                byWeights[l.weights, default: [:]][l.key] = LatestPoint(step: l.step, epoch: l.epoch, value: l.value)
            }
            self.latest = SortedMap(byWeights.mapValues { SortedMap($0) })
        }
    }

    enum Keys: String, CodingKey {
        case id, name, experiment, experimentID = "experiment_id", variant, variants, shares, seed, status, external, notes, tags
        case strategies
        case codeVersion = "code_version", createdAt = "created_at", startedAt = "started_at", endedAt = "ended_at", error
        case progress, spec, summary, warnings, timing, latest
        case slurmJobID = "slurm_job_id", slurmState = "slurm_state"
    }

    func encode(to encoder: any Encoder) throws {
        let r = record
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(r.id, forKey: .id)
        try c.encodeIfPresent(r.name, forKey: .name)
        try c.encodeIfPresent(r.experiment, forKey: .experiment)
        try c.encodeIfPresent(r.experimentID, forKey: .experimentID)
        try c.encodeIfPresent(r.variant, forKey: .variant)
        // Additions, on a run that several variants share only (others read exactly as before):
        // the variants it answers for, and which of its weight sets each reads.
        if !r.shares.isEmpty {
            try c.encode(r.variants, forKey: .variants)
            try c.encode(r.shares.map(ShareView.init), forKey: .shares)
        }
        try c.encode(r.seed, forKey: .seed)
        try c.encode(r.status.rawValue, forKey: .status)
        try c.encode(r.external, forKey: .external)
        try c.encode(r.notes, forKey: .notes)
        try c.encode(r.tags, forKey: .tags)
        try c.encode(r.strategies, forKey: .strategies)
        try c.encode(r.codeVersion, forKey: .codeVersion)
        try c.encode(r.createdAt, forKey: .createdAt)
        try c.encodeIfPresent(r.startedAt, forKey: .startedAt)
        try c.encodeIfPresent(r.endedAt, forKey: .endedAt)
        try c.encodeIfPresent(r.error, forKey: .error)
        try c.encode(JSONDocument(text: r.progressJSON), forKey: .progress)
        if full {
            try c.encode(JSONDocument(text: r.specJSON), forKey: .spec)
            try c.encode(JSONDocument(text: r.summaryJSON), forKey: .summary)
            try c.encode(JSONDocument(text: r.warningsJSON), forKey: .warnings)
            // Where the time went (an addition): the summary's `timing`, null until the run completes.
            try c.encode(Self.timing(r.summaryJSON), forKey: .timing)
        }
        if let latest { try c.encode(latest, forKey: .latest) }
        // Additions for `--executor slurm`: null on runs it did not submit.
        try c.encodeIfPresent(r.slurmJobID, forKey: .slurmJobID)
        try c.encodeIfPresent(r.slurmState, forKey: .slurmState)
    }

    /// The `timing` object of a stored summary, or `null` (none yet, or a trainer that wrote `{}`).
    static func timing(_ summaryJSON: String?) -> JSONDocument {
        guard let text = summaryJSON, let t = (try? JSONValue.parse(text))?["timing"], case .object(let o) = t, !o.isEmpty
        else { return JSONDocument(text: nil) }
        return JSONDocument(t)
    }

    static let csvHeader = [
        "id", "name", "experiment", "experiment_id", "variant", "seed", "status", "external", "strategies", "tags",
        "created_at", "started_at", "ended_at", "error",
    ]

    static func csv(_ runs: [RunRecord]) -> CSVWriter {
        var w = CSVWriter(header: csvHeader)
        for r in runs {
            w.row([
                .int(r.id), .optional(r.name), .optional(r.experiment), .optional(r.experimentID), .optional(r.variant),
                .int(r.seed), .text(r.status.rawValue), .text(r.external ? "true" : "false"),
                .text(r.strategies.joined(separator: ";")), .text(r.tags.joined(separator: ";")), .number(r.createdAt),
                .optional(r.startedAt), .optional(r.endedAt), .optional(r.error),
            ])
        }
        return w
    }
}

/// One weight set of a shared run as one variant reads it.
struct ShareView: Encodable {
    var variant, weights, runWeights: String

    enum CodingKeys: String, CodingKey { case variant, weights, runWeights = "run_weights" }

    init(_ s: WeightShare) { (variant, weights, runWeights) = (s.variant, s.weights, s.runWeights) }
}

/// `GET /api/runs`: a page of runs and the cursor of the next page.
struct RunListView: ResponseEncodable {
    var runs: [RunView]
    var nextCursor: String?

    enum CodingKeys: String, CodingKey { case runs, nextCursor = "next_cursor" }
}

/// `POST /api/runs/{id}/metrics`: what the batch changed.
struct BatchResultView: ResponseEncodable {
    var inserted: Int
    var unchanged: Int
}

/// The answer to `POST /api/runs/{id}/events`: how many events of the batch were stored (or were already).
struct EventBatchView: ResponseEncodable {
    var stored: Int
}

/// One cell of a run's resize × crop grid, in the spec's field order.
struct GridCellView: Encodable {
    var weights, stage: String
    var trainSize, resize, crop: Int64
    var top1, top5, loss: Double?

    enum CodingKeys: String, CodingKey { case weights, stage, trainSize = "train_size", resize, crop, top1, top5, loss }

    init(_ c: GridCell) {
        (weights, stage, trainSize, resize, crop) = (c.weights, c.stage, c.trainSize, c.resize, c.crop)
        (top1, top5, loss) = (c.top1, c.top5, c.loss)
    }

    static func csv(_ cells: [GridCell]) -> CSVWriter {
        var w = CSVWriter(header: ["weights", "stage", "train_size", "resize", "crop", "top1", "top5", "loss"])
        for c in cells {
            w.row([
                .text(c.weights), .text(c.stage), .int(c.trainSize), .int(c.resize), .int(c.crop), .optional(c.top1),
                .optional(c.top5), .optional(c.loss),
            ])
        }
        return w
    }
}

struct GridView: ResponseEncodable {
    var cells: [GridCellView]
}

/// An exported weight file (or checkpoint) of a run and where to download it.
struct ArtifactView: Encodable {
    var name, kind, path: String
    var bytes: Int64?
    var sha256: String?
    var url: String

    init(_ a: Artifact, run: Int64) {
        (name, kind, path, bytes, sha256) = (a.name, a.kind.rawValue, a.path, a.bytes, a.sha256)
        url = "/api/runs/\(run)/artifacts/\(a.name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? a.name)"
    }

    static func csv(_ list: [Artifact]) -> CSVWriter {
        var w = CSVWriter(header: ["name", "kind", "path", "bytes", "sha256"])
        for a in list { w.row([.text(a.name), .text(a.kind.rawValue), .text(a.path), .optional(a.bytes), .optional(a.sha256)]) }
        return w
    }
}

struct ArtifactListView: ResponseEncodable {
    var artifacts: [ArtifactView]
}
