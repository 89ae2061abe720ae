import ArgumentParser

@main
struct Polyak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "polyak",
        abstract: "Does weight averaging help my model, and which kind? Train, evaluate and compare.",
        version: PolyakVersion.current,
        subcommands: [Train.self, Eval.self, PostHoc.self, Bench.self, Serve.self, Migrate.self]
            // Client commands: a running server, from a shell.
            + [
                LaunchCommand.self, ListCommand.self, RunsCommand.self, CompareCommand.self, GridCommand.self,
                CancelCommand.self, LogsCommand.self,
            ])
}

enum PolyakVersion {
    static let current = "0.1.0"
}
