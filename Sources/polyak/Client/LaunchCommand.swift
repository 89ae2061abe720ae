import ArgumentParser
import Experiments
import Foundation

struct LaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Send an experiment or a run spec to the server; print its id and page.",
        discussion: """
            A file with "variants" is an experiment (POST /api/experiments); any other is a run spec
            (POST /api/runs). With --watch, follows the runs through their event streams until each has
            ended; the exit status is then 1 when one did not complete.
            Examples:
              polyak launch ../shared/spec/examples/default-comparison.json --watch
              polyak launch my-run.json --server http://gpu-box.lab:8080 --token-file ~/.polyak-token
            """)

    @OptionGroup var connection: ServerConnection

    @Argument(help: "An experiment or run spec (JSON file, or - for standard input).")
    var file: String

    @Flag(help: "Follow the runs until they end.")
    var watch = false

    func run() async throws {
        try await runClient {
            let client = try connection.client()
            let data: Data
            if file == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let d = FileManager.default.contents(atPath: file) else { throw ClientError("cannot read \(file)") }
                data = d
            }
            let body: JSONValue
            do {
                body = try JSONValue.parse(data)
            } catch {
                throw ClientError("\(file) is not JSON: \(error)")
            }
            guard case .object(let fields) = body else { throw ClientError("\(file) must hold a JSON object") }
            let out = TerminalStream.standardOutput
            var targets: [RunWatcher.Target] = []
            if fields["variants"] != nil {
                let e = try await client.json("POST", "/api/experiments", body: body)
                let id = e["id"]?.int ?? 0
                let runs = e["runs"]?.items ?? []
                let name = e["name"]?.stringValue ?? ""
                out.line("experiment \(id) “\(name)”: \(runs.count) run\(runs.count == 1 ? "" : "s") queued")
                out.line(out.paint(client.url("/experiments/\(id)"), .cyan))
                targets = runs.map { r in
                    RunWatcher.Target(
                        id: r["id"]?.int ?? 0,
                        label: "(\(r.runVariants ?? "?"), seed \(r["seed"]?.int ?? 0))")
                }
                if watch {
                    let ended = try await RunWatcher(client: client).follow(targets)
                    out.line(summary(ended))
                    out.line("compare them: polyak compare \(id)" + serverFlag)
                    if ended["completed", default: 0] != targets.count { throw ExitCode(1) }
                }
            } else {
                let r = try await client.json("POST", "/api/runs", body: body)
                let id = r["id"]?.int ?? 0
                out.line("run \(id): \(r["status"]?.stringValue ?? "queued")")
                out.line(out.paint(client.url("/runs/\(id)"), .cyan))
                if watch {
                    let status = try await RunWatcher(client: client).follow(RunWatcher.Target(id: id, label: ""), prefix: "")
                    if status != "completed" { throw ExitCode(1) }
                }
            }
        }
    }

    private var serverFlag: String {
        connection.server == ServerConnection.defaultServer ? "" : " --server \(connection.server)"
    }

    private func summary(_ ended: [String: Int]) -> String {
        let total = ended.values.reduce(0, +)
        let parts = ["completed", "failed", "cancelled"].compactMap { s in ended[s].map { "\($0) \(s)" } }
        return "all \(total) runs ended: " + parts.joined(separator: ", ")
    }
}
