import Foundation
import Hummingbird
import Store

/// `GET /api/runs/{id}/posthoc`: a run's EMA-length sweep, one point per width and BN mode.
struct RunPostHocView: ResponseEncodable {
    var run: Int64
    var points: [Point]

    struct Point: Encodable {
        var sigmaRel, decay: Double
        var weights: String
        var step: Int64
        var bn: String
        var top1, top5, loss: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case sigmaRel = "sigma_rel", decay, weights, step, bn, top1, top5, loss
        }

        init(_ p: PostHocPoint) {
            (sigmaRel, decay, weights, step, bn) = (p.sigmaRel, p.decay, p.weights, p.step, p.batchNorm)
            (top1, top5, loss) = (p.top1, p.top5, p.loss)
        }
    }

    init(run: Int64, points: [PostHocPoint]) {
        self.run = run
        self.points = points.map(Point.init)
    }

    /// The CSV's columns: a point's fields, in order.
    static let columns = Point.CodingKeys.allCases.map(\.stringValue)

    static func csv(_ points: [PostHocPoint]) -> CSVWriter {
        var w = CSVWriter(header: columns)
        for p in points {
            w.row([
                .number(p.sigmaRel), .number(p.decay), .text(p.weights), .int(p.step), .text(p.batchNorm), .optional(p.top1),
                .optional(p.top5), .optional(p.loss),
            ])
        }
        return w
    }
}

/// `GET /api/experiments/{id}/posthoc`: test top-1 against σ_rel per variant over seeds, each
/// width with its 95 % CI and its Δ vs the baseline's raw weights paired by seed; the best width
/// per variant; the experiment's EMA weight sets placed on the σ_rel axis.
struct ExperimentPostHocView: ResponseEncodable {
    var experiment: Int64
    var metric = "test/top1"
    var baseline: CompareView.Baseline
    var rows: [Row]
    var best: [Row]
    var emaDecays: [Mark]

    enum CodingKeys: String, CodingKey {
        case experiment, metric, baseline, rows, best, emaDecays = "ema_decays"
    }

    struct Row: Encodable {
        var variant, bn: String
        var sigmaRel, decay: Double
        var n: Int
        var mean: Double
        var std, ci95Low, ci95High, deltaMean, deltaCI95Low, deltaCI95High: Double?
        var best: Bool

        enum CodingKeys: String, CodingKey, CaseIterable {
            case variant, bn, sigmaRel = "sigma_rel", decay, n, mean, std, ci95Low = "ci95_low", ci95High = "ci95_high"
            case deltaMean = "delta_mean", deltaCI95Low = "delta_ci95_low", deltaCI95High = "delta_ci95_high", best
        }

        init(_ s: PostHocSweepStats.Series, _ p: PostHocSweepStats.Point) {
            (variant, bn, sigmaRel, decay, n, mean) = (s.variant, s.batchNorm, p.sigmaRel, p.decay, p.summary.n, p.summary.mean)
            (std, ci95Low, ci95High) = (p.summary.std, p.summary.ci95?.low, p.summary.ci95?.high)
            (deltaMean, deltaCI95Low, deltaCI95High) = (p.delta?.mean, p.delta?.ci95?.low, p.delta?.ci95?.high)
            best = s.best?.sigmaRel == p.sigmaRel
        }
    }

    struct Mark: Encodable {
        var weights: String
        var sigmaRel: Double

        enum CodingKeys: String, CodingKey { case weights, sigmaRel = "sigma_rel" }
    }

    init(_ sweep: PostHocService.ExperimentSweep) {
        experiment = sweep.experiment.id
        baseline = CompareView.Baseline(variant: sweep.experiment.baseline)
        rows = sweep.series.flatMap { s in s.points.map { Row(s, $0) } }
        best = sweep.series.compactMap { s in s.best.map { Row(s, $0) } }
        emaDecays = sweep.marks.map { Mark(weights: $0.weights, sigmaRel: $0.sigmaRel) }
    }

    /// The CSV's columns: a row's fields, in order.
    static let columns = Row.CodingKeys.allCases.map(\.stringValue)

    static func csv(_ sweep: PostHocService.ExperimentSweep) -> CSVWriter {
        var w = CSVWriter(header: columns)
        for r in ExperimentPostHocView(sweep).rows {
            w.row([
                .text(r.variant), .text(r.bn), .number(r.sigmaRel), .number(r.decay), .int(Int64(r.n)), .number(r.mean),
                .optional(r.std), .optional(r.ci95Low), .optional(r.ci95High), .optional(r.deltaMean),
                .optional(r.deltaCI95Low), .optional(r.deltaCI95High), .int(r.best ? 1 : 0),
            ])
        }
        return w
    }
}
