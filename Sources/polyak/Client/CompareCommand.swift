import ArgumentParser
import Foundation

struct CompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "An experiment's comparison table, as its page shows it (or its CSV).",
        discussion: """
            Examples:
              polyak compare 1
              polyak compare 1 --metric test/loss
              polyak compare 1 --csv > compare.csv
            """)

    @OptionGroup var connection: ServerConnection

    @Argument(help: "The experiment's id.")
    var experiment: Int

    @Option(help: "test/top1, test/top5 or test/loss.")
    var metric = "test/top1"

    @Flag(help: "The server's CSV (the API's compare columns) instead of the table.")
    var csv = false

    func run() async throws {
        try await runClient {
            let client = try connection.client()
            let query = "?metric=" + (metric.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? metric)
            if csv {
                let data = try await client.send("GET", "/api/experiments/\(experiment)/compare.csv\(query)", accept: "text/csv")
                FileHandle.standardOutput.write(data)
                return
            }
            let answer = try await client.json("/api/experiments/\(experiment)/compare\(query)")
            let out = TerminalStream.standardOutput
            out.write(CompareTable.render(answer, on: out))
            out.line(out.paint("page: \(client.url("/experiments/\(experiment)"))", .dim))
        }
    }
}
