import ArgumentParser

@main
struct Polyak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "polyak",
        abstract: "Does weight averaging help my model, and which kind? Train, evaluate and compare.",
        version: PolyakVersion.current,
        subcommands: [Train.self, Eval.self, PostHoc.self, Bench.self, Serve.self, Migrate.self])
}

enum PolyakVersion {
    static let current = "0.1.0"
}
