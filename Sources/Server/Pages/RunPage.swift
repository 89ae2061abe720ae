import Charts
import Experiments
import Foundation
import Store

/// `/runs/{id}`: one run: status and live progress, its curves, grids, warnings, downloads, spec.
struct RunPage {
    struct Warning { var code: String; var weights: String?; var message: String }
    struct Final {
        var weights: String
        var top1: String
        var top1Value: String
        var top5: String
        var loss: String
        var epoch: String
        var best: Bool
    }
    struct Artifact { var name: String; var url: String; var size: String; var sha: String?; var shortSha: String? }

    var id: Int64
    var name: String
    var status: String
    var experiment: String?
    var experimentID: Int64?
    var variant: String?
    /// A shared run: which of its weight sets each variant reads ("ema-warmup: ema@0.999 = ema@0.999~ema-warmup").
    var serves: String?
    var seed: Int64
    var strategies: String
    var created: String
    var createdISO: String
    var duration: String?
    var durationLabel: String
    var external: Bool
    var tags: String?
    var notes: String?
    /// The editable fields as the form shows them.
    var editName: String
    var editTags: String
    var editNotes: String
    var canDelete: Bool
    var active: Bool
    var progress: HomePage.Progress?
    var progressText: String
    var error: String?
    var warnings: [Warning]
    var canCancel: Bool
    var canRunAgain: Bool
    var finals: [Final]
    /// The post-hoc EMA-length sweep of this run, one row per width.
    var sweep: [PostHocFigure.RunRow] = []
    var charts: [ExperimentPage.Chart]
    var heat: HeatMap.Figure?
    var artifacts: [Artifact]
    var spec: String
    /// "job 1234 · PENDING (Resources)" for a run handed to Slurm.
    var slurm: String? = nil
    /// Where a completed run's time went; nil without a measured split.
    var timing: RunTiming?

    /// "none: raw; ema: ema@0.99, ema@0.999; ema-warmup: ema@0.999 = ema@0.999~ema-warmup", nil unless shared.
    static func serves(_ shares: [WeightShare]) -> String? {
        guard !shares.isEmpty else { return nil }
        var variants: [String] = []
        var sets: [String: [String]] = [:]
        for s in shares {
            if sets[s.variant] == nil { variants.append(s.variant) }
            sets[s.variant, default: []].append(s.weights == s.runWeights ? s.weights : "\(s.weights) = \(s.runWeights)")
        }
        return variants.map { "\($0): " + sets[$0]!.joined(separator: ", ") }.joined(separator: "; ")
    }

    /// "epoch 3 · step 1500 of 4680 · 32.1 % · 5400 images/s · ETA 1 min 15 s" from a progress line.
    static func progress(_ json: String?, status: RunStatus) -> (HomePage.Progress?, String, String?) {
        guard let p = json.flatMap({ try? JSONValue.parse($0) }), let step = p["step"]?.doubleValue,
            let total = p["total_steps"]?.doubleValue, total > 0
        else { return (nil, "", nil) }
        let fraction = max(0, min(1, step / total))
        let percent = String(format: "%.1f %%", 100 * fraction)
        var parts: [String] = []
        if let epoch = p["epoch"]?.doubleValue { parts.append("epoch \(Format.whole(epoch))") }
        parts.append("step \(Format.whole(step)) of \(Format.whole(total))")
        parts.append(percent)
        if let speed = p["images_per_sec"]?.doubleValue, speed.isFinite {
            parts.append("\(Format.whole(speed.rounded())) images/s")
        }
        let eta = status == .running ? Format.duration(p["eta_s"]?.doubleValue) : nil
        if let eta { parts.append("ETA " + eta) }
        let bar = HomePage.Progress(value: Format.whole(step), max: Format.whole(total), percent: percent)
        return (bar, parts.joined(separator: " · "), eta)
    }

    static func build(_ r: RunRecord, store: TrackingStore) throws -> RunPage {
        let (progress, progressText, _) = progress(r.progressJSON, status: r.status)
        var warnings: [Warning] = []
        if case .array(let items)? = try? JSONValue.parse(r.warningsJSON) {
            warnings = items.map {
                Warning(
                    code: $0["code"]?.stringValue ?? "warning", weights: $0["weights"]?.stringValue,
                    message: $0["message"]?.stringValue ?? "")
            }
        }
        let endOrNow = r.endedAt ?? (r.status == .running ? Date().timeIntervalSince1970 : nil)
        let specText = (try? JSONValue.parse(r.specJSON))?.text(pretty: true) ?? r.specJSON

        // Final metrics per weight set: the newest test point of each series.
        let latest = try store.latest(run: r.id)
        var byWeights: [String: [String: (value: Double, epoch: Int64?)]] = [:]
        for l in latest where l.key.hasPrefix("test/") { byWeights[l.weights, default: [:]][l.key] = (l.value, l.epoch) }
        let bestTop1 = byWeights.values.compactMap { $0["test/top1"]?.value }.filter(\.isFinite).max()
        let finals = byWeights.keys.sorted(by: Comparison.weightOrder).map { w -> Final in
            let m = byWeights[w]!
            let top1 = m["test/top1"]?.value
            return Final(
                weights: w, top1: Format.metric(top1, key: "test/top1"), top1Value: top1.map { String($0) } ?? "",
                top5: Format.metric(m["test/top5"]?.value, key: "test/top5"),
                loss: Format.metric(m["test/loss"]?.value, key: "test/loss"),
                epoch: (m["test/top1"]?.epoch ?? m.values.first?.epoch).map { String($0) } ?? "—",
                best: byWeights.count > 1 && top1 != nil && top1 == bestTop1)
        }

        let artifacts = try store.artifacts(run: r.id).filter { $0.kind == .export }.map { a in
            Artifact(
                name: a.name,
                url: "/api/runs/\(r.id)/artifacts/"
                    + (a.name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? a.name),
                size: Format.bytes(a.bytes), sha: a.sha256, shortSha: a.sha256.map { String($0.prefix(12)) + "…" })
        }

        var page = RunPage(
            id: r.id, name: r.name ?? "run \(r.id)", status: r.status.rawValue, experiment: r.experiment,
            experimentID: r.experimentID,
            variant: r.shares.isEmpty ? r.variant : r.variants.joined(separator: ", ") + " (one shared run)",
            serves: serves(r.shares), seed: r.seed,
            strategies: r.strategies.isEmpty ? "none" : r.strategies.joined(separator: ", "),
            created: Format.time(r.createdAt), createdISO: Format.iso(r.createdAt),
            duration: r.startedAt.flatMap { s in endOrNow.flatMap { Format.duration($0 - s) } },
            durationLabel: r.endedAt == nil ? "running for" : "took", external: r.external,
            tags: r.tags.isEmpty ? nil : r.tags.joined(separator: ", "), notes: r.notes.isEmpty ? nil : r.notes,
            editName: r.name ?? "", editTags: r.tags.joined(separator: ", "), editNotes: r.notes, canDelete: r.status.isFinished,
            active: !r.status.isFinished, progress: progress, progressText: progressText, error: r.error, warnings: warnings,
            canCancel: !r.status.isFinished && (!r.external || r.status == .running), canRunAgain: !r.external,
            finals: finals, sweep: PostHocFigure.runRows(try store.postHoc(run: r.id)), charts: try charts(r.id, store: store),
            heat: heatMaps(try store.grid(run: r.id)),
            artifacts: artifacts,
            spec: specText, timing: RunTiming(summaryJSON: r.summaryJSON))
        page.slurm = r.slurmJobID.map { "job \($0)" + (r.slurmState.map { " · " + $0 } ?? "") }
        return page
    }

    /// The order keys are charted in: evaluation first, then training, then averaging, then the rest.
    static func keyRank(_ key: String) -> (Int, String) {
        let known = ["test/top1", "test/top5", "test/loss", "train/loss", "train/top1", "train/lr", "ema/decay"]
        return (known.firstIndex(of: key) ?? known.count, key)
    }

    static let captions: [String: String] = [
        "test/top1": "Top-1 accuracy on the test set after each epoch, for every weight set (raw dashed).",
        "test/top5": "Top-5 accuracy on the test set.",
        "test/loss": "Cross-entropy on the test set.",
        "train/loss": "Training loss (raw weights, as the optimizer saw it).",
        "train/top1": "Training accuracy on the augmented batches.",
        "train/lr": "Learning rate actually used (schedule, warmup, SWA).",
        "ema/decay": "The decay EMA actually applied: warmup ramps it up towards its target.",
    ]

    /// One chart per metric key, one series per weight set, every logged point drawn.
    static func charts(_ id: Int64, store: TrackingStore) throws -> [ExperimentPage.Chart] {
        let series = try store.series(run: id)
        let keys = Array(Set(series.map(\.key))).sorted { keyRank($0) < keyRank($1) }
        let colour = Format.weightColours(series.map(\.weights)).colours
        var charts: [ExperimentPage.Chart] = []
        for key in keys {
            var loaded: [(String, [(Int64, Int64?, Double)])] = []
            var byEpoch = true
            for s in series.filter({ $0.key == key }).sorted(by: { Comparison.weightOrder($0.weights, $1.weights) }) {
                var points: [(Int64, Int64?, Double)] = []
                var lastEpoch: Int64?
                try store.forEachPoint(series: s.id) { step, epoch, value, _ in
                    // Epochs label the axis only when each point has its own epoch.
                    if epoch == nil || (lastEpoch != nil && epoch! <= lastEpoch!) { byEpoch = false }
                    lastEpoch = epoch
                    points.append((step, epoch, value))
                }
                loaded.append((s.weights, points))
            }
            let chartSeries = loaded.map { weights, points in
                ChartSeries(
                    label: weights, colorIndex: colour[weights] ?? 0, dashed: weights == "raw" && loaded.count > 1,
                    points: points.map { ChartPoint(x: Double(byEpoch ? $0.1! : $0.0), y: $0.2) }, markers: points.count <= 12)
            }
            var chart = LineChart(title: key, xLabel: byEpoch ? "epoch" : "step", yLabel: key, series: chartSeries, width: 560)
            chart.showValues(of: key)
            charts.append(.init(svg: chart.svg(), caption: captions[key] ?? "\(key) as logged."))
        }
        return charts
    }

    /// The run's grids, before and after fine-tuning (the tooltip gives top-5 and loss).
    static func heatMaps(_ cells: [GridCell]) -> HeatMap.Figure? {
        HeatMap.figure(
            cells.map { c in
                var detail = "top-1 " + Format.metric(c.top1, key: "top1")
                if let t5 = c.top5 { detail += ", top-5 " + Format.metric(t5, key: "top5") }
                if let l = c.loss { detail += ", loss " + Format.metric(l, key: "loss") }
                return HeatMap.Entry(
                    label: nil, weights: c.weights, stage: c.stage, trainSize: c.trainSize,
                    cell: HeatMap.Cell(resize: c.resize, crop: c.crop, top1: c.top1, detail: detail))
            })
    }
}

extension RunPage: TemplateModel {
    func computed(_ name: String) -> Any? {
        switch name {
        case "hasWarnings": return !warnings.isEmpty
        case "hasFinals": return !finals.isEmpty
        case "hasCharts": return !charts.isEmpty
        case "hasArtifacts": return !artifacts.isEmpty
        case "hasSweep": return !sweep.isEmpty
        default: return nil
        }
    }
}
