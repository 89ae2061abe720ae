import Experiments
import Server

/// `GET /api/experiments/{id}/compare` as the experiment page shows it: variant × weight set with
/// n, mean ± std, the 95 % CI, Δ against the baseline's raw weights with its interval, W / L / T,
/// the best mean marked, and the seed advisor's sentence per row.
enum CompareTable {
    static func render(_ answer: JSONValue, on out: TerminalStream) -> String {
        let metric = answer["metric"]?.stringValue ?? "test/top1"
        let baseline = answer["baseline"]?["variant"]?.stringValue ?? "?"
        let rows = answer["rows"]?.items ?? []
        guard !rows.isEmpty else { return "No completed run has reported \(metric) yet.\n" }
        let lower = Format.lowerIsBetter(metric)
        let means = rows.compactMap { $0["mean"]?.doubleValue }.filter(\.isFinite)
        let best = lower ? means.min() : means.max()
        var table = TextTable([
            TextTable.Column("variant", .left), TextTable.Column("weights", .left), TextTable.Column("n"),
            TextTable.Column("mean ± std"), TextTable.Column("95 % CI"), TextTable.Column("Δ vs \(baseline) raw"),
            TextTable.Column("Δ 95 % CI"), TextTable.Column("W / L / T"),
        ])
        var advice: [String] = []
        for row in rows {
            func number(_ key: String) -> Double? { row[key]?.doubleValue }
            func interval(_ low: String, _ high: String) -> (low: Double, high: Double)? {
                guard let l = number(low), let h = number(high) else { return nil }
                return (l, h)
            }
            let variant = row["variant"]?.stringValue ?? "?"
            let weights = row["weights"]?.stringValue ?? "?"
            let isBaseline = variant == baseline && weights == "raw"
            let (wins, losses, ties) = (row["wins"]?.int ?? 0, row["losses"]?.int ?? 0, row["ties"]?.int ?? 0)
            var mean = Format.metric(number("mean"), key: metric)
            if let std = Format.spread(number("std"), key: metric) { mean += " ± \(std)" }
            table.add(
                [
                    variant, weights, "\(row["n"]?.int ?? 0)", mean,
                    Format.interval(interval("ci95_low", "ci95_high"), key: metric),
                    isBaseline ? "baseline" : Format.delta(number("delta_mean"), key: metric),
                    isBaseline ? "" : Format.interval(interval("delta_ci95_low", "delta_ci95_high"), key: metric, signed: true),
                    isBaseline ? "" : "\(wins) / \(losses) / \(ties)",
                ], marked: best != nil && number("mean") == best)
            if !isBaseline, SeedAdvisor.countsPoints(metric), let mde = number("min_detectable_delta"),
                let needed = row["seeds_needed"]?.int
            {
                let sentence = SeedAdvisor.sentence(n: wins + losses + ties, minimumDetectable: mde, seedsNeeded: needed)
                advice.append("  \(variant) · \(weights): \(sentence)")
            }
        }
        var text = out.paint("\(metric), final value of each completed run", .bold) + "\n" + table.render(on: out)
        text +=
            out.paint(
                "Δ is paired by seed against \(baseline)'s raw weights, with Student-t intervals.", .dim) + "\n"
        if !advice.isEmpty {
            text += "\n" + out.paint("How many seeds?", .bold) + "\n" + advice.joined(separator: "\n") + "\n"
            text += out.paint("From the spread of each row's paired Δ: a paired t-test at α 0.05 with 80 % power.", .dim) + "\n"
        }
        return text
    }
}
