import ArgumentParser
import Experiments
import Foundation
import Hummingbird
import Logging
import Server
import Store

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the tracking service: REST API, job runner, SQLite store.",
        discussion: """
            Listens on 127.0.0.1 unless --host says otherwise. Trainings run as `polyak train` children at
            nice 10, side by side while the threads their specs ask for fit in --cpus (all cores by
            default) and at most --max-concurrent at once. SIGTERM stops them gracefully; their runs
            resume on the next start.
            Example: polyak serve --port 8080 --db ./polyak.sqlite --data-dir ./polyak-data
            """)

    @Option(help: "Address to listen on (another than 127.0.0.1 exposes the API to the network).")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port: Int = 8080

    @Option(help: "SQLite database file (created and migrated if needed).")
    var db: String = "./polyak.sqlite"

    @Option(help: "Folder for run folders (runs/<id>/: spec, checkpoints, exported weights).")
    var dataDir: String = "./polyak-data"

    @Option(
        help: ArgumentHelp(
            "Trainings run at once, at most (default: 2, or 1 on one core or with --executor slurm); 0 queues runs without "
                + "starting any.",
            valueName: "n"))
    var maxConcurrent: Int?

    @Option(
        help: ArgumentHelp(
            "Cores the local trainings may use together: a run starts while its spec's threads and those of the runs "
                + "training fit (default: this machine's cores). The launch form proposes --cpus ÷ --max-concurrent threads a run.",
            valueName: "n"))
    var cpus: Int?

    @Option(help: "Seconds between SIGTERM and SIGKILL when a run is cancelled or the server stops.")
    var cancelGrace: Double = 10

    @Option(help: "Seconds a trainer may print no line before its run fails as hung (\"no output for …\").")
    var stallTimeout: Double = 600

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(
        help: ArgumentHelp(
            "File holding the token every write must carry (Authorization: Bearer, or the pages' sign-in); "
                + "created with a random token if missing. POLYAK_TOKEN works too.",
            valueName: "path"))
    var tokenFile: String?

    @Flag(help: "With a token: reads need it too (pages ask to sign in).")
    var `private` = false

    @Option(help: ArgumentHelp("Another Host name this server answers to (name or name:port; repeatable).", valueName: "name"))
    var allowedHost: [String] = []

    @Option(
        help: ArgumentHelp(
            "An origin whose pages may call the API (CORS), e.g. http://localhost:3000 (repeatable).", valueName: "url"))
    var allowOrigin: [String] = []

    @Flag(help: "Listen on a non-loopback --host without a token (anyone on the network can launch and delete runs).")
    var insecureNoToken = false

    @OptionGroup(title: "Slurm")
    var slurm: SlurmServeOptions

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        if let maxConcurrent, !(0...64).contains(maxConcurrent) { throw ValidationError("--max-concurrent must be in 0...64") }
        if let cpus, !(1...1024).contains(cpus) { throw ValidationError("--cpus must be in 1...1024") }
        if !(stallTimeout > 0) { throw ValidationError("--stall-timeout must be > 0 seconds") }
        if cancelGrace < 0 { throw ValidationError("--cancel-grace must be ≥ 0") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level: unknown level \(logLevel)") }
        for origin in allowOrigin {
            guard let url = URL(string: origin), url.scheme == "http" || url.scheme == "https", url.host != nil,
                url.path.isEmpty || url.path == "/"
            else {
                throw ValidationError("--allow-origin \(origin): an origin is scheme://host[:port], e.g. http://localhost:3000")
            }
        }
        if `private` && tokenFile == nil && Self.environmentToken == nil {
            throw ValidationError("--private needs a token: give --token-file PATH (or set POLYAK_TOKEN)")
        }
    }

    static var environmentToken: String? {
        ProcessInfo.processInfo.environment["POLYAK_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The token from --token-file or POLYAK_TOKEN, and the refusal to open a network port without one.
    func accessPolicy(_ logger: Logger) throws -> AccessPolicy {
        var token: String?
        if let tokenFile {
            let (read, created) = try AccessPolicy.token(fromFile: tokenFile)
            if created { logger.notice("wrote a new random token to \(tokenFile) (mode 0600): writes need it") }
            token = read
        } else if let env = Self.environmentToken {
            token = env
        }
        if !AccessPolicy.isLoopback(host) && token == nil && !insecureNoToken {
            throw AccessError(
                "--host \(host) opens the server to other machines, and without a token anyone there could launch, cancel and "
                    + "delete runs: give --token-file PATH (or POLYAK_TOKEN), or --insecure-no-token if that is really meant")
        }
        if !AccessPolicy.isLoopback(host) && allowedHost.isEmpty {
            logger.notice("listening on \(host): browsers must name it as \(host) or by a name given with --allowed-host")
        }
        return AccessPolicy(token: token, privateReads: `private`, allowedHosts: allowedHost, allowedOrigins: allowOrigin)
    }

    func run() async throws {
        var logger = Logger(label: "polyak")
        logger.logLevel = Logger.Level(rawValue: logLevel)!
        let access: AccessPolicy
        do {
            access = try accessPolicy(logger)
        } catch let error as AccessError {
            fail(error.description)
        }
        var options = ServerOptions(
            host: host, port: port, databasePath: db, dataDirectory: dataDir, maxConcurrent: 1,
            executable: Self.ownExecutable(), presets: Self.presets, cancelGrace: cancelGrace,
            version: PolyakVersion.current, logLevel: logger.logLevel, stallTimeout: stallTimeout, access: access)
        options.slurm = slurm.settings(host: host, port: port, tokenFile: tokenFile, ownExecutable: Self.ownExecutable())
        let cores = cpus ?? ProcessInfo.processInfo.activeProcessorCount
        options.cpus = cores
        // Two at once is what was measured faster on 2 cores (README, "Two cores, best used"); more
        // children than that are the user's call (each holds its own ~365 MB at width 16).
        options.maxConcurrent = maxConcurrent ?? (options.slurm == nil ? min(2, cores) : 1)
        if let s = options.slurm {
            // Run folders live where the nodes see them.
            options.dataDirectory = s.sharedDirectory
            logger.notice("runs go to Slurm as jobs; run folders in \(s.sharedDirectory), the nodes report to \(s.publicURL)")
        }
        do {
            let app = try buildApplication(options)
            try await app.runService()
        } catch let error as StoreError {
            // A database newer than this binary, or one that cannot be opened: say so plainly.
            fail("\(error)")
        } catch let error as DatabaseLockError {
            // A second server on one database: name the one that holds it.
            fail("\(error)")
        } catch let error as SlurmHeldRuns {
            // Runs still training on a Slurm cluster: name them and how to follow them.
            fail("\(error)")
        }
    }

    /// This binary, so children run the same code as the server (`/proc/self/exe` resolved: the
    /// path stays right even if `nice` is put in front of it).
    static func ownExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static var presets: [PresetEntry] {
        Presets.all.map { p in PresetEntry(name: p.name, summary: p.summary, overlay: { p.overlay(for: $0) }) }
    }
}
