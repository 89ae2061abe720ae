import ArgumentParser
import Experiments
import Foundation

struct GridCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grid",
        abstract: "An experiment's resize × crop tables: top-1 averaged over seeds, per variant and weight set.",
        discussion: """
            Examples:
              polyak grid 1
              polyak grid 1 --variant ema --weights ema@0.998
            """)

    @OptionGroup var connection: ServerConnection

    @Argument(help: "The experiment's id.")
    var experiment: Int

    @Option(help: "Only this variant.")
    var variant: String?

    @Option(help: "Only this weight set (raw, ema@0.998, swa, …).")
    var weights: String?

    func run() async throws {
        try await runClient {
            let client = try connection.client()
            let out = TerminalStream.standardOutput
            let all = try await client.json("/api/experiments/\(experiment)/grid")["cells"]?.items ?? []
            let cells = all.filter { c in
                (variant == nil || c["variant"]?.stringValue == variant)
                    && (weights == nil || c["weights"]?.stringValue == weights)
            }
            guard !cells.isEmpty else {
                if all.isEmpty {
                    throw ClientError(
                        "experiment \(experiment) has no grid yet: its spec needs resolution.test_grid, and a run must have completed"
                    )
                }
                let have = Set(all.map { "\($0["variant"]?.stringValue ?? "?") · \($0["weights"]?.stringValue ?? "?")" }).sorted()
                throw ClientError("no grid cell matches; experiment \(experiment) has \(have.joined(separator: ", "))")
            }
            // One table per variant × weight set × stage, in the server's order.
            var order: [String] = []
            var groups: [String: [GridTable.Cell]] = [:]
            var seeds: [String: Int] = [:]
            for c in cells {
                let stage = c["stage"]?.stringValue == "finetuned" ? ", after FixRes fine-tuning" : ""
                let key = "\(c["variant"]?.stringValue ?? "?") · \(c["weights"]?.stringValue ?? "?")\(stage)"
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append(
                    GridTable.Cell(resize: c["resize"]?.int ?? 0, crop: c["crop"]?.int ?? 0, top1: c["top1_mean"]?.doubleValue))
                seeds[key] = max(seeds[key] ?? 0, c["n"]?.int ?? 0)
            }
            for (i, key) in order.enumerated() {
                if i > 0 { out.line("") }
                let n = seeds[key] ?? 0
                out.line(out.paint(key, .bold) + " (mean of \(n) seed\(n == 1 ? "" : "s"))")
                out.write(GridTable.render(groups[key]!, on: out) ?? "")
            }
        }
    }
}
