import Charts
import Experiments
import Foundation
import Mustache
import Store

/// `/experiments/{id}`: the answer to "which averaging helps": the comparison table, learning
/// curves per variant, resize × crop heat maps, the runs, and the CSV exports.
struct ExperimentPage {
    struct MetricChoice { var label: String; var href: String; var selected: Bool }

    struct CompareRow {
        var variant: String
        var weights: String
        var n: Int
        var mean: String
        var meanValue: String
        var std: String?
        var ci: String
        var delta: String
        var deltaValue: String
        var deltaCI: String
        var deltaClass: String
        var wlt: String
        var best: Bool
        /// Δ per extra minute of wall time and the minutes behind it (``CostColumns``).
        var gain: String = "—"
        var gainValue: String = ""
        var cost: String = ""
    }

    struct Chart { var svg: String; var caption: String }

    /// The seed advisor's sentence for one compare row.
    struct Advice { var variant: String; var weights: String; var text: String }

    struct RunRow {
        var id: Int64
        var variant: String
        var seed: Int64
        var status: String
        var percent: String
        var fraction: Double
        var top1: String
        var top1Value: String
    }

    var id: Int64
    var name: String
    var variants: String
    var seeds: String
    var baseline: String
    var created: String
    var createdISO: String
    var total: Int
    var finished: Int
    var statuses: [StatusCount]
    var eta: String?
    var active: Bool
    var metrics: [MetricChoice]
    var metricLabel: String
    var metricQuery: String
    var rows: [CompareRow]
    var advice: [Advice]
    /// The Δ of every row with its interval (an `IntervalChart`), or nil before there is one.
    var forest: String?
    var charts: [Chart]
    var heat: HeatMap.Figure?
    /// The post-hoc EMA-length sweep, when some run has one.
    var sweep: PostHocFigure?
    var runs: [RunRow]

    /// An experiment's seeds as stored (`[0,1,2]`), as text.
    static func seeds(_ json: String) -> [String] {
        guard case .array(let items)? = try? JSONValue.parse(json) else { return [json] }
        return items.compactMap { $0.doubleValue.map { String(Format.whole($0)) } }
    }

    /// The metrics a user may compare on.
    static let metricKeys = ["test/top1", "test/top5", "test/loss"]

    /// "6 completed", "2 failed": one badge per status present, in the life-cycle's order.
    struct StatusCount { var status: String; var count: Int }

    static func statusCounts(_ counts: [RunStatus: Int]) -> [StatusCount] {
        RunStatus.allCases.compactMap { s in counts[s].map { StatusCount(status: s.rawValue, count: $0) } }
    }

    /// Builds the page; `metric` is one of `metricKeys` (call inside ``Blocking``: it reads the store).
    static func build(_ e: ExperimentRecord, metric: String, service: ExperimentService) throws -> ExperimentPage {
        let store = service.store
        let runs = try service.runs(e.id)
        let variantNames = ExperimentService.variantOrder(e)
        var counts: [RunStatus: Int] = [:]
        for r in runs { counts[r.status, default: 0] += 1 }
        let finished = runs.filter { $0.status.isFinished }.count

        // Progress and the time left: the running runs' own ETAs, plus the queued ones at the
        // mean duration of the finished ones, shared over the training slots.
        var remaining = 0.0
        var fractions: [Int64: Double] = [:]
        for r in runs where r.status == .running {
            if let p = r.progressJSON.flatMap({ try? JSONValue.parse($0) }) {
                if let step = p["step"]?.doubleValue, let total = p["total_steps"]?.doubleValue, total > 0 {
                    fractions[r.id] = step / total
                }
                remaining += p["eta_s"]?.doubleValue ?? 0
            }
        }
        let durations = runs.compactMap { r -> Double? in
            guard r.status == .completed, let s = r.startedAt, let t = r.endedAt else { return nil }
            return t - s
        }
        let queued = runs.filter { $0.status == .queued || $0.status == .interrupted }.count
        var eta: String?
        if !durations.isEmpty && (queued > 0 || remaining > 0) {
            let waiting = runs.first { $0.status == .queued || $0.status == .interrupted }
            let threads = RunSpec.threads(in: waiting.flatMap { try? JSONValue.parse($0.specJSON) })
            let slots = Double(service.context.options.trainingSlots(threads: threads))
            eta = Format.duration((remaining + Double(queued) * durations.reduce(0, +) / Double(durations.count)) / slots)
        }

        let rows = try service.compareRows(e, metric: metric)
        let lower = Format.lowerIsBetter(metric)
        let bestMean = rows.map(\.summary.mean).filter(\.isFinite).reduce(nil as Double?) { best, x in
            guard let best else { return x }
            return lower ? min(best, x) : max(best, x)
        }
        let compare = rows.map { r -> CompareRow in
            var deltaClass = ""
            if let ci = r.delta?.ci95, ci.low.isFinite, ci.high.isFinite, ci.low > 0 || ci.high < 0 {
                deltaClass = ((ci.low > 0) != lower) ? "delta-up" : "delta-down"
            }
            let isBaseline = r.variant == e.baseline && r.weights == "raw"
            var row = CompareRow(
                variant: r.variant, weights: r.weights, n: r.summary.n, mean: Format.metric(r.summary.mean, key: metric),
                meanValue: r.summary.mean.isFinite ? String(r.summary.mean) : "", std: Format.spread(r.summary.std, key: metric),
                ci: Format.interval(r.summary.ci95, key: metric),
                delta: isBaseline ? "baseline" : Format.delta(r.delta?.mean, key: metric),
                deltaValue: r.delta.map { $0.mean.isFinite ? String($0.mean) : "" } ?? "",
                deltaCI: isBaseline ? "" : Format.interval(r.delta?.ci95, key: metric, signed: true), deltaClass: deltaClass,
                wlt: isBaseline ? "" : "\(r.wins) / \(r.losses) / \(r.ties)", best: bestMean != nil && r.summary.mean == bestMean)
            (row.gain, row.gainValue, row.cost) = costCells(r.cost, metric: metric)
            return row
        }

        let final = Dictionary(
            try store.finalValues(experiment: e.id, key: "test/top1").filter { $0.weights == "raw" }.map { ($0.runID, $0.value) },
            uniquingKeysWith: { a, _ in a })
        let runRows = runs.sorted { ($0.variant ?? "", $0.seed, $0.id) < ($1.variant ?? "", $1.seed, $1.id) }.map { r -> RunRow in
            let fraction = r.status == .completed ? 1 : fractions[r.id] ?? 0
            let top1 = final[r.id]
            return RunRow(
                id: r.id, variant: r.shares.isEmpty ? r.variant ?? "—" : r.variants.joined(separator: ", ") + " (shared)",
                seed: r.seed, status: r.status.rawValue,
                percent: String(format: "%.0f %%", 100 * fraction), fraction: fraction,
                top1: top1.map { Format.metric($0, key: "test/top1") } ?? "—", top1Value: top1.map { String($0) } ?? "")
        }

        let (charts, colour) = try curves(e, metric: metric, variants: variantNames, store: store)
        let page = ExperimentPage(
            id: e.id, name: e.name, variants: variantNames.joined(separator: ", "),
            seeds: seeds(e.seedsJSON).joined(separator: ", "),
            baseline: e.baseline, created: Format.time(e.createdAt), createdISO: Format.iso(e.createdAt), total: runs.count,
            finished: finished, statuses: statusCounts(counts), eta: eta, active: runs.contains { !$0.status.isFinished },
            metrics: metricKeys.map {
                MetricChoice(label: $0, href: "/experiments/\(e.id)?metric=\($0)", selected: $0 == metric)
            },
            metricLabel: metric, metricQuery: metric, rows: compare,
            advice: rows.compactMap { r in
                r.advice(metric: metric).map { Advice(variant: r.variant, weights: r.weights, text: $0) }
            },
            forest: forestPlot(rows, baseline: e.baseline, metric: metric, best: bestMean, colour: colour),
            charts: charts, heat: heatMaps(try service.gridRows(e)),
            sweep: PostHocFigure.build(try PostHocService(context: service.context).experimentSweep(e)), runs: runRows)
        return page
    }

    /// The gain-per-extra-minute cell: its text, sort value and the minutes it comes from.
    static func costCells(_ c: CostColumns.Cost, metric: String) -> (String, String, String) {
        guard let minutes = c.minutes else { return ("—", "", "cost unknown (runs older than the cost columns)") }
        var cost = String(format: "%.2f min per run", minutes)
        if let extra = c.extraMinutes {
            cost += String(format: ", %@%.2f min vs the baseline", extra < 0 ? "−" : "+", abs(extra))
        }
        guard let g = c.gainPerExtraMinute else { return ("—", "", cost) }
        return (Format.delta(g, key: metric) + "/min", g.isFinite ? String(g) : "", cost)
    }

    /// One panel per variant: each weight set's mean over seeds with a min–max band, raw dashed.
    /// Colours follow the weight set, so `ema@0.998` has one colour in every panel.
    /// Every row's Δ against the baseline with its 95 % interval, one line each: the answer as a
    /// picture. Nil until some row has a Δ (the baseline needs completed runs too).
    static func forestPlot(
        _ rows: [Comparison.Row], baseline: String, metric: String, best: Double?, colour: [String: Int]
    ) -> String? {
        let plotted = rows.filter { !($0.variant == baseline && $0.weights == "raw") && $0.delta != nil }
        guard !plotted.isEmpty else { return nil }
        let chartRows = plotted.map { r in
            IntervalChart.Row(
                label: "\(r.variant) · \(r.weights)", estimate: r.delta!.mean, low: r.delta!.ci95?.low, high: r.delta!.ci95?.high,
                colorIndex: colour[r.weights] ?? 0, emphasized: best != nil && r.summary.mean == best)
        }
        let better = Format.lowerIsBetter(metric) ? "left" : "right"
        let chart = IntervalChart(
            title: "Δ \(metric) vs \(baseline) raw, 95 % CI", xLabel: "difference (paired by seed; better to the \(better))",
            rows: chartRows, format: Format.isFraction(metric) ? .percentPoints : .automatic)
        return chart.svg()
    }

    static func curves(_ e: ExperimentRecord, metric: String, variants: [String], store: TrackingStore) throws -> (
        [Chart], [String: Int]
    ) {
        struct Key: Hashable { var variant: String; var weights: String }
        // Rows arrive run by run, series by series, so a curve is looked up only when the series changes.
        func aggregate(byEpoch: Bool) throws -> ([Key: SeedCurve], Bool) {
            var curves: [Key: SeedCurve] = [:]
            var current: (key: Key, curve: SeedCurve)?
            var complete = true
            try store.forEachExperimentSeries(experiment: e.id, key: metric) { _, variant, weights in
                let key = Key(variant: variant, weights: weights)
                if current?.key != key {
                    if let c = current { curves[c.key] = c.curve }
                    current = (key, curves.removeValue(forKey: key) ?? SeedCurve())
                }
                current!.curve.startSeries()
            } point: { step, epoch, value in
                guard let x = byEpoch ? epoch : step else {
                    complete = false
                    return
                }
                current!.curve.add(x: x, value)
            }
            if let c = current { curves[c.key] = c.curve }
            return (curves, complete)
        }
        // Epochs on the x axis when every point has one (variants may differ in batch size, so
        // steps would not line up); steps otherwise, e.g. for an external script that logs none.
        var (curves, allHaveEpochs) = try aggregate(byEpoch: true)
        if !allHaveEpochs { curves = try aggregate(byEpoch: false).0 }
        guard !curves.isEmpty else { return ([], [:]) }
        let (weightNames, colour) = Format.weightColours(curves.keys.map(\.weights))
        var allValues: [Double] = []
        for curve in curves.values { for a in curve.values where a.count > 0 { allValues += [a.low, a.high] } }
        let yRange = (allValues.min() ?? 0)...(allValues.max() ?? 1)
        var charts: [Chart] = []
        let ordered = variants + Array(Set(curves.keys.map(\.variant))).filter { !variants.contains($0) }.sorted()
        for variant in ordered {
            let sets = weightNames.filter { curves[Key(variant: variant, weights: $0)] != nil }
            guard !sets.isEmpty else { continue }
            var seeds = 0
            let series = sets.map { w -> ChartSeries in
                let curve = curves[Key(variant: variant, weights: w)]!
                let xs = curve.xs
                seeds = max(seeds, curve.values.map(\.count).max() ?? 0)
                let line = zip(xs, curve.values).map { x, a -> ChartPoint in
                    ChartPoint(x: Double(x), y: a.nonFinite || a.count == 0 ? .nan : a.sum / Double(a.count))
                }
                let band = zip(xs, curve.values).compactMap { x, a -> ChartBand? in
                    a.count > 1 && !a.nonFinite
                        ? ChartBand(x: Double(x), low: a.low, high: a.high)
                        : (a.nonFinite ? ChartBand(x: Double(x), low: .nan, high: .nan) : nil)
                }
                return ChartSeries(
                    label: w, colorIndex: colour[w] ?? 0, dashed: w == "raw", points: line, band: band, markers: xs.count <= 12)
            }
            var chart = LineChart(
                title: "\(variant) · \(metric)", xLabel: allHaveEpochs ? "epoch" : "step", yLabel: metric, series: series,
                width: 560)
            chart.showValues(of: metric)
            chart.yRange = yRange
            charts.append(
                Chart(
                    svg: chart.svg(),
                    caption:
                        "\(variant): \(sets.count) weight set\(sets.count == 1 ? "" : "s"), up to \(seeds) seed\(seeds == 1 ? "" : "s") per point"
                ))
        }
        return (charts, colour)
    }

    /// Each variant × weight set's grid, averaged over seeds (the tooltip gives n, std and top-5).
    static func heatMaps(_ rows: [Comparison.GridRow]) -> HeatMap.Figure? {
        HeatMap.figure(
            rows.map { r in
                var detail = "n = \(r.n)"
                if let s = r.top1?.std { detail += String(format: ", std %.2f pp", 100 * s) }
                if let t5 = r.top5 { detail += ", top-5 " + Format.metric(t5, key: "top5") }
                return HeatMap.Entry(
                    label: r.key.variant, weights: r.key.weights, stage: r.key.stage, trainSize: r.key.trainSize,
                    cell: HeatMap.Cell(resize: r.key.resize, crop: r.key.crop, top1: r.top1?.mean, detail: detail))
            })
    }
}

extension ExperimentPage: TemplateModel {
    func computed(_ name: String) -> Any? {
        switch name {
        case "hasRows": return !rows.isEmpty
        case "hasCharts": return !charts.isEmpty
        case "hasAdvice": return !advice.isEmpty
        case "fewRuns": return runs.count <= 30
        default: return nil
        }
    }
}

// Rows the template reads many fields of: a switch instead of Mirror (which walks every field for
// each name). A run row of a 1 000-run experiment is read 10 times; a compare row, 15 times.
extension ExperimentPage.CompareRow: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "variant": return variant
        case "weights": return weights
        case "n": return n
        case "mean": return mean
        case "meanValue": return meanValue
        case "std": return std.map { $0 as Any }
        case "ci": return ci
        case "delta": return delta
        case "deltaValue": return deltaValue
        case "deltaCI": return deltaCI
        case "deltaClass": return deltaClass
        case "wlt": return wlt
        case "best": return best
        case "gain": return gain
        case "gainValue": return gainValue
        case "cost": return cost
        default: return nil
        }
    }
}

extension ExperimentPage.RunRow: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "id": return id
        case "variant": return variant
        case "seed": return seed
        case "status": return status
        case "percent": return percent
        case "fraction": return fraction
        case "top1": return top1
        case "top1Value": return top1Value
        default: return nil
        }
    }
}
