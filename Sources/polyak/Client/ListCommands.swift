import ArgumentParser
import Experiments
import Foundation
import Server

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "Experiments and recent runs on the server, as its home page lists them.")

    @OptionGroup var connection: ServerConnection

    @Option(help: "How many recent runs to show.")
    var limit = 20

    func validate() throws {
        if !(1...1000).contains(limit) { throw ValidationError("--limit must be in 1...1000") }
    }

    func run() async throws {
        try await runClient {
            let client = try connection.client()
            let out = TerminalStream.standardOutput
            let experiments = try await client.json("/api/experiments")["experiments"]?.items ?? []
            if experiments.isEmpty {
                out.line("No experiments yet: polyak launch FILE.json starts one.")
            } else {
                var table = TextTable([
                    TextTable.Column("id"), TextTable.Column("name", .left), TextTable.Column("variants", .left),
                    TextTable.Column("baseline", .left), TextTable.Column("seeds", .left), TextTable.Column("created", .left),
                ])
                for e in experiments {
                    let variants = variantNames(e["variants"]).joined(separator: ", ")
                    let seeds = (e["seeds"]?.items ?? []).compactMap { $0.int.map(String.init) }.joined(separator: ", ")
                    table.add([
                        "\(e["id"]?.int ?? 0)", e["name"]?.stringValue ?? "", variants, e["baseline"]?.stringValue ?? "", seeds,
                        e["created_at"]?.doubleValue.map(Format.time) ?? "—",
                    ])
                }
                out.write(out.paint("Experiments", .bold) + "\n" + table.render(on: out))
            }
            let runs = try await client.json("/api/runs?limit=\(limit)")["runs"]?.items ?? []
            out.line("")
            if runs.isEmpty {
                out.line("No runs yet.")
            } else {
                out.write(out.paint("Recent runs", .bold) + "\n" + RunTable.render(runs, showExperiment: true, on: out))
            }
        }
    }
}

/// An experiment's variants as stored: preset names, or objects with a `name`, or a name → spec map.
func variantNames(_ value: JSONValue?) -> [String] {
    switch value {
    case .array(let items)?: return items.compactMap { $0.stringValue ?? $0["name"]?.stringValue }
    case .object(let fields)?: return fields.keys.sorted()
    default: return []
    }
}

struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "An experiment's runs and where each is.")

    @OptionGroup var connection: ServerConnection

    @Argument(help: "The experiment's id.")
    var experiment: Int

    func run() async throws {
        try await runClient {
            let client = try connection.client()
            let out = TerminalStream.standardOutput
            let e = try await client.json("/api/experiments/\(experiment)")
            let counts = e["status_counts"]?.fields ?? [:]
            let statuses = counts.keys.sorted().map { "\(counts[$0]?.int ?? 0) \($0)" }.joined(separator: ", ")
            out.line(out.paint("experiment \(experiment) “\(e["name"]?.stringValue ?? "")”", .bold) + ": \(statuses)")
            // The experiment's variant order, then seeds, as on its page.
            let order = variantNames(e["variants"])
            func rank(_ r: JSONValue) -> Int { order.firstIndex(of: r["variant"]?.stringValue ?? "") ?? order.count }
            let runs = (e["runs"]?.items ?? []).sorted {
                (rank($0), $0["seed"]?.int ?? 0, $0["id"]?.int ?? 0) < (rank($1), $1["seed"]?.int ?? 0, $1["id"]?.int ?? 0)
            }
            out.write(RunTable.render(runs, showExperiment: false, on: out))
            out.line(out.paint("page: \(client.url("/experiments/\(experiment)"))", .dim))
        }
    }
}

/// Runs as rows: id, variant, seed, status, progress (with the ETA while running), and why one failed.
enum RunTable {
    static func render(_ runs: [JSONValue], showExperiment: Bool, on out: TerminalStream) -> String {
        var columns = [TextTable.Column("id")]
        if showExperiment { columns.append(TextTable.Column("experiment", .left)) }
        columns += [
            TextTable.Column("variant", .left), TextTable.Column("seed"), TextTable.Column("status", .left),
            TextTable.Column("progress"), TextTable.Column("note", .left),
        ]
        var table = TextTable(columns)
        for r in runs {
            let status = r["status"]?.stringValue ?? "?"
            var progress = "—"
            if status == "completed" {
                progress = "100 %"
            } else if let p = r["progress"], let step = p["step"]?.doubleValue, let total = p["total_steps"]?.doubleValue,
                total > 0
            {
                progress = String(format: "%.0f %%", 100 * step / total)
                if status == "running", let eta = Format.duration(p["eta_s"]?.doubleValue) { progress += " · ETA \(eta)" }
            }
            var row = ["\(r["id"]?.int ?? 0)"]
            if showExperiment { row.append(r["experiment"]?.stringValue ?? r["experiment_id"]?.int.map { "#\($0)" } ?? "—") }
            row += [
                r.runVariants ?? "—", "\(r["seed"]?.int ?? 0)", paint(status, on: out), progress,
                r["error"]?.stringValue ?? "",
            ]
            table.add(row)
        }
        return table.render(on: out)
    }

    static func paint(_ status: String, on out: TerminalStream) -> String {
        switch status {
        case "completed": return out.paint(status, .green)
        case "failed", "cancelled", "interrupted": return out.paint(status, .red)
        case "running": return out.paint(status, .cyan)
        default: return status
        }
    }
}
