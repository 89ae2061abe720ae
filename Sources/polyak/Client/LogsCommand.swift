import ArgumentParser
import Experiments
import Foundation
import Server

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "A run's metrics as a table, one row per logged step; --follow adds rows until the run ends.",
        discussion: """
            Columns: the raw weights' train and test metrics, then test top-1 of every other weight set.
            Examples:
              polyak logs 7
              polyak logs 7 --follow
            """)

    @OptionGroup var connection: ServerConnection

    @Argument(help: "The run's id.")
    var run: Int

    @Flag(help: "Keep printing new rows until the run ends.")
    var follow = false

    static let rawKeys = ["train/loss", "train/top1", "train/lr", "test/loss", "test/top1", "test/top5"]

    struct Series: Hashable {
        var key: String
        var weights: String
        var title: String { weights == "raw" ? key : "\(key) \(weights)" }
    }

    func run() async throws {
        try await runClient {
            let client = try connection.client()
            let out = TerminalStream.standardOutput
            var info = try await client.json("/api/runs/\(run)")
            var printedThrough = -1
            var table: TextTable?
            var widths: [Int] = []
            var series: [Series] = []
            while true {
                let finished = ["completed", "failed", "cancelled"].contains(info["status"]?.stringValue ?? "")
                let points =
                    try await client.json("/api/runs/\(run)/metrics?from_step=\(printedThrough + 1)")["points"]?.items ?? []
                var byStep: [Int: (epoch: Int?, values: [Series: Double])] = [:]
                for p in points {
                    guard let step = p["step"]?.int, let key = p["key"]?.stringValue, let value = p["value"]?.doubleValue else {
                        continue
                    }
                    let s = Series(key: key, weights: p["weights"]?.stringValue ?? "raw")
                    byStep[step, default: (p["epoch"]?.int, [:])].values[s] = value
                }
                if table == nil, !byStep.isEmpty {
                    series = Self.columns(Set(byStep.values.flatMap { $0.values.keys }))
                    let t = TextTable(
                        [TextTable.Column("step"), TextTable.Column("epoch")]
                            + series.map { TextTable.Column($0.title, minimumWidth: 9) })
                    widths = t.widths
                    out.line(t.header(widths: widths, on: out))
                    table = t
                }
                // The newest step may still be arriving (train and test points come in separate
                // batches); while the run goes on, it waits for the next round.
                let steps = byStep.keys.sorted()
                let ready = finished || !follow ? steps : Array(steps.dropLast())
                for step in ready {
                    let row = byStep[step]!
                    let cells =
                        ["\(step)", row.epoch.map(String.init) ?? "—"]
                        + series.map { s in row.values[s].map { Format.metric($0, key: s.key) } ?? "" }
                    out.line(table!.format(cells, widths: widths))
                    printedThrough = step
                }
                if finished || !follow {
                    if table == nil { out.line("run \(run) has no metrics yet") }
                    var closing = "run \(run): \(RunTable.paint(info["status"]?.stringValue ?? "?", on: out))"
                    if let error = info["error"]?.stringValue { closing += " (\(error))" }
                    out.line(closing)
                    return
                }
                try await Task.sleep(nanoseconds: 2_000_000_000)
                info = try await client.json("/api/runs/\(run)")
            }
        }
    }

    /// The raw weights' usual metrics first, then any other raw series, then every other weight
    /// set's test top-1 in the spec's order; `ema/decay` stays out (it is on the run page).
    static func columns(_ present: Set<Series>) -> [Series] {
        let raw = present.filter { $0.weights == "raw" && $0.key != "ema/decay" }
        var columns = rawKeys.map { Series(key: $0, weights: "raw") }.filter(raw.contains)
        columns += raw.filter { !rawKeys.contains($0.key) }.sorted { $0.key < $1.key }
        let others = present.filter { $0.weights != "raw" && $0.key == "test/top1" }
        columns += others.sorted { Comparison.weightOrder($0.weights, $1.weights) }
        return columns
    }
}
