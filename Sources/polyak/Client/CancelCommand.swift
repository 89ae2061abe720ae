import ArgumentParser
import Experiments
import Foundation

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a queued or running run, or every run of an experiment.",
        discussion: """
            Examples:
              polyak cancel 7                 # run 7
              polyak cancel --experiment 2    # every unfinished run of experiment 2
            """)

    @OptionGroup var connection: ServerConnection

    @Argument(help: "The run's id (the experiment's with --experiment).")
    var id: Int

    @Flag(help: "The id is an experiment's: cancel all its runs.")
    var experiment = false

    func run() async throws {
        try await runClient {
            let client = try connection.client()
            let out = TerminalStream.standardOutput
            if experiment {
                let answer = try await client.json("POST", "/api/experiments/\(id)/cancel")
                let n = answer["cancelled"]?.int ?? 0
                out.line("experiment \(id): \(n) run\(n == 1 ? "" : "s") cancelled")
            } else {
                let answer = try await client.json("POST", "/api/runs/\(id)/cancel")
                out.line("run \(id): \(answer["status"]?.stringValue ?? "cancelled")")
            }
        }
    }
}
