import ArgumentParser
import Store

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or upgrade the tracking database (the server does this on start too).")

    @Option(help: "SQLite database file.")
    var db: String = "./polyak.sqlite"

    func run() throws {
        do {
            let applied = try TrackingStore.migrate(path: db)
            if applied.isEmpty {
                print("\(db): schema is current (version \(TrackingStore.schemaVersion))")
            } else {
                print("\(db): applied \(applied.joined(separator: ", ")); schema version \(TrackingStore.schemaVersion)")
            }
        } catch {
            fail("\(error)")
        }
    }
}
