import Experiments
import Foundation
import Hummingbird
import Store

/// An experiment as the API shows it; one experiment's own answer adds its runs and their status counts.
struct ExperimentView: ResponseEncodable {
    var record: ExperimentRecord
    var runs: [RunRecord]?

    enum Keys: String, CodingKey {
        case id, name, baseline, base, variants, seeds, createdAt = "created_at", runs, statusCounts = "status_counts"
    }

    func encode(to encoder: any Encoder) throws {
        let e = record
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(e.id, forKey: .id)
        try c.encode(e.name, forKey: .name)
        try c.encode(e.baseline, forKey: .baseline)
        try c.encode(JSONDocument(text: e.baseJSON), forKey: .base)
        try c.encode(JSONDocument(text: e.variantsJSON), forKey: .variants)
        try c.encode(JSONDocument(text: e.seedsJSON), forKey: .seeds)
        try c.encode(e.createdAt, forKey: .createdAt)
        if let runs {
            try c.encode(runs.map { RunView($0, full: false) }, forKey: .runs)
            var counts: [String: Int] = [:]
            for r in runs { counts[r.status.rawValue, default: 0] += 1 }
            try c.encode(SortedMap(counts), forKey: .statusCounts)
        }
    }

    static func csv(_ list: [ExperimentRecord]) -> CSVWriter {
        var w = CSVWriter(header: ["id", "name", "baseline", "variants", "seeds", "created_at"])
        for e in list {
            let variants = ExperimentService.variantOrder(e).joined(separator: ";")
            let seeds = e.seedsJSON.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).replacingOccurrences(
                of: ",", with: ";")
            w.row([.int(e.id), .text(e.name), .text(e.baseline), .text(variants), .text(seeds), .number(e.createdAt)])
        }
        return w
    }
}

struct ExperimentListView: ResponseEncodable {
    var experiments: [ExperimentView]
    var nextCursor: String?

    enum CodingKeys: String, CodingKey { case experiments, nextCursor = "next_cursor" }
}

/// `POST /api/experiments/{id}/cancel`: how many runs were stopped.
struct ExperimentCancelView: ResponseEncodable {
    var experiment: Int64
    var cancelled: Int
}

/// `GET /api/experiments/{id}/compare`, fields in the spec's order (the CSV's columns are a row's fields).
struct CompareView: ResponseEncodable {
    var experiment: Int64
    var metric: String
    var baseline: Baseline
    var rows: [Row]

    struct Baseline: Encodable {
        var variant: String
        var weights = "raw"
    }

    struct Row: Encodable {
        var variant, weights, metric: String
        var n: Int
        var mean: Double
        var std, ci95Low, ci95High, deltaMean, deltaCI95Low, deltaCI95High: Double?
        var wins, losses, ties: Int
        /// The seed advisor (additions to the spec's row): the smallest Δ the seeds at hand detect
        /// (α 0.05, 80 % power) and the seeds that would resolve 0.2 points.
        var minDetectableDelta: Double?
        var seedsNeeded: Int?
        /// The cost columns (``CostColumns``, additions too): minutes per run, extra minutes against
        /// the baseline's raw weights, and Δ per extra minute.
        var costMinutes, extraMinutes, gainPerExtraMinute: Double?

        enum CodingKeys: String, CodingKey {
            case variant, weights, metric, n, mean, std, ci95Low = "ci95_low", ci95High = "ci95_high"
            case deltaMean = "delta_mean", deltaCI95Low = "delta_ci95_low", deltaCI95High = "delta_ci95_high"
            case wins, losses, ties
            case minDetectableDelta = "min_detectable_delta", seedsNeeded = "seeds_needed"
            case costMinutes = "cost_minutes", extraMinutes = "extra_minutes", gainPerExtraMinute = "gain_per_extra_minute"
        }

        init(_ r: Comparison.Row, metric: String) {
            (variant, weights, self.metric, n, mean) = (r.variant, r.weights, metric, r.summary.n, r.summary.mean)
            (std, ci95Low, ci95High) = (r.summary.std, r.summary.ci95?.low, r.summary.ci95?.high)
            (deltaMean, deltaCI95Low, deltaCI95High) = (r.delta?.mean, r.delta?.ci95?.low, r.delta?.ci95?.high)
            (wins, losses, ties) = (r.wins, r.losses, r.ties)
            (minDetectableDelta, seedsNeeded) = (r.minimumDetectableDelta, r.seedsNeeded(metric: metric))
            (costMinutes, extraMinutes, gainPerExtraMinute) = (r.cost.minutes, r.cost.extraMinutes, r.cost.gainPerExtraMinute)
        }
    }

    /// The CSV's columns: a row's fields, in order.
    static let columns = Row.CodingKeys.allColumns

    init(_ e: ExperimentRecord, metric: String, rows: [Comparison.Row]) {
        (experiment, self.metric, baseline) = (e.id, metric, Baseline(variant: e.baseline))
        self.rows = rows.map { Row($0, metric: metric) }
    }

    static func csv(_ rows: [Comparison.Row], metric: String) -> CSVWriter {
        var w = CSVWriter(header: columns)
        for r in rows {
            w.row([
                .text(r.variant), .text(r.weights), .text(metric), .int(Int64(r.summary.n)), .number(r.summary.mean),
                .optional(r.summary.std), .optional(r.summary.ci95?.low), .optional(r.summary.ci95?.high),
                .optional(r.delta?.mean), .optional(r.delta?.ci95?.low), .optional(r.delta?.ci95?.high),
                .int(Int64(r.wins)), .int(Int64(r.losses)), .int(Int64(r.ties)), .optional(r.minimumDetectableDelta),
                .optional(r.seedsNeeded(metric: metric).map(Int64.init)), .optional(r.cost.minutes),
                .optional(r.cost.extraMinutes), .optional(r.cost.gainPerExtraMinute),
            ])
        }
        return w
    }
}

extension CompareView.Row.CodingKeys: CaseIterable {
    static var allColumns: [String] { allCases.map(\.stringValue) }
}

/// `GET /api/experiments/{id}/grid`: the seeds' cells averaged per variant × weight set × stage × size.
struct ExperimentGridView: ResponseEncodable {
    var experiment: Int64
    var cells: [Cell]

    struct Cell: Encodable {
        var variant, weights, stage: String
        var trainSize, resize, crop: Int64
        var n: Int
        var top1Mean, top1Std, top5Mean, lossMean: Double?

        enum CodingKeys: String, CodingKey {
            case variant, weights, stage, trainSize = "train_size", resize, crop, n, top1Mean = "top1_mean"
            case top1Std = "top1_std", top5Mean = "top5_mean", lossMean = "loss_mean"
        }

        init(_ r: Comparison.GridRow) {
            let k = r.key
            (variant, weights, stage, trainSize, resize, crop, n) = (
                k.variant, k.weights, k.stage, k.trainSize, k.resize, k.crop, r.n
            )
            (top1Mean, top1Std, top5Mean, lossMean) = (r.top1?.mean, r.top1?.std, r.top5, r.loss)
        }
    }

    init(experiment: Int64, rows: [Comparison.GridRow]) {
        self.experiment = experiment
        cells = rows.map(Cell.init)
    }

    static func csv(_ rows: [Comparison.GridRow]) -> CSVWriter {
        var w = CSVWriter(header: [
            "variant", "weights", "stage", "train_size", "resize", "crop", "n", "top1_mean", "top1_std", "top5_mean", "loss_mean",
        ])
        for r in rows {
            w.row([
                .text(r.key.variant), .text(r.key.weights), .text(r.key.stage), .int(r.key.trainSize), .int(r.key.resize),
                .int(r.key.crop), .int(Int64(r.n)), .optional(r.top1?.mean), .optional(r.top1?.std), .optional(r.top5),
                .optional(r.loss),
            ])
        }
        return w
    }
}
