import Charts
import Foundation
import Store

/// The EMA-length sweep on the pages: on the experiment page, test top-1 against σ_rel (log axis)
/// per variant with its 95 % CI band, the EMA weight sets marked, and the best width per variant
/// in words; on the run page, the run's own widths as a table.
struct PostHocFigure {
    var svg: String
    var best: [String]
    /// EMA sets whose width falls outside the plotted σ_rel range, said in words.
    var unplaced: String?
    var experimentID: Int64

    /// Nil when no completed run of the experiment has a sweep.
    static func build(_ sweep: PostHocService.ExperimentSweep) -> PostHocFigure? {
        guard !sweep.isEmpty else { return nil }
        let key = "test/top1"
        let several = Set(sweep.series.map(\.batchNorm)).count > 1
        func name(_ s: PostHocSweepStats.Series) -> String { several ? "\(s.variant) · \(s.batchNorm) BN" : s.variant }
        let series = sweep.series.enumerated().map { i, s in
            ChartSeries(
                label: name(s), colorIndex: i, dashed: s.batchNorm == "precise" && several,
                points: s.points.map { ChartPoint(x: $0.sigmaRel, y: $0.summary.mean) },
                band: s.points.compactMap { p in p.summary.ci95.map { ChartBand(x: p.sigmaRel, low: $0.low, high: $0.high) } },
                markers: true)
        }
        var chart = LineChart(
            title: "Post-hoc EMA · \(key) vs EMA length", xLabel: "σ_rel (relative EMA width, log scale)", yLabel: key,
            series: series, width: 640, xIsInteger: false)
        chart.showValues(of: key)
        chart.xLogarithmic = true
        chart.xMarks = sweep.marks.map { ChartMark(x: $0.sigmaRel, label: $0.weights) }
        let widths = sweep.series.flatMap { $0.points.map(\.sigmaRel) }
        let (lo, hi) = (widths.min() ?? 0, widths.max() ?? 0)
        let outside = sweep.marks.filter { $0.sigmaRel < lo || $0.sigmaRel > hi }
        let unplaced =
            outside.isEmpty
            ? nil
            : outside.map { "\($0.weights) (σ_rel \(short($0.sigmaRel)))" }.joined(separator: ", ")
                + " lie outside the swept widths and are not marked."
        let best = sweep.series.compactMap { s -> String? in
            guard let b = s.best else { return nil }
            var text =
                "\(name(s)): best σ_rel \(short(b.sigmaRel)) (a classical EMA decay of "
                + "\(short(b.decay, significant: 5))), top-1 \(Format.metric(b.summary.mean, key: key))"
            if b.summary.ci95 != nil { text += ", 95 % CI \(Format.interval(b.summary.ci95, key: key))" }
            text += " over \(b.summary.n) seed\(b.summary.n == 1 ? "" : "s")"
            if let d = b.delta {
                text += "; Δ vs \(sweep.experiment.baseline) raw \(Format.delta(d.mean, key: key))"
                if d.ci95 != nil { text += " \(Format.interval(d.ci95, key: key, signed: true))" }
            }
            return text + "."
        }
        return PostHocFigure(svg: chart.svg(), best: best, unplaced: unplaced, experimentID: sweep.experiment.id)
    }

    /// `x` to `significant` digits without trailing zeros: σ_rel 0.05, decay 0.99863.
    static func short(_ x: Double, significant: Int = 3) -> String {
        x.isFinite ? String(format: "%.\(significant)g", x) : Format.nonFinite(x)
    }

    /// One width of a run's sweep, as the run page lists it.
    struct RunRow {
        var sigmaRel: String
        var decay: String
        var bn: String
        var top1: String
        var top1Value: String
        var top5: String
        var loss: String
        var best: Bool
    }

    /// The run page's table: every width, the best top-1 per BN mode marked.
    static func runRows(_ points: [PostHocPoint]) -> [RunRow] {
        var best: [String: Double] = [:]
        for p in points { if let t = p.top1 { best[p.batchNorm] = max(best[p.batchNorm] ?? -.infinity, t) } }
        return points.map { p in
            RunRow(
                sigmaRel: short(p.sigmaRel), decay: short(p.decay, significant: 5), bn: p.batchNorm,
                top1: Format.metric(p.top1, key: "top1"), top1Value: p.top1.map { String($0) } ?? "",
                top5: Format.metric(p.top5, key: "top5"), loss: Format.metric(p.loss, key: "loss"),
                best: p.top1 != nil && p.top1 == best[p.batchNorm])
        }
    }
}
