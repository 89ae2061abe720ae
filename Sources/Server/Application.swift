import Experiments
import Foundation
import Hummingbird
import Logging
import Store

/// What `polyak serve` (and the tests) configure.
public struct ServerOptions: Sendable {
    public var host: String
    public var port: Int
    public var databasePath: String
    public var dataDirectory: String
    public var maxConcurrent: Int
    /// Cores local trainers may use together (their specs' `threads` summed); nil: no budget, only
    /// `maxConcurrent` counts (as under Slurm, which places its jobs itself).
    public var cpus: Int? = nil
    /// The `polyak` executable that runs trainings (`polyak train`).
    public var executable: String
    public var presets: [PresetEntry]
    public var cancelGrace: Double
    /// Seconds a trainer may print no event line before its run fails as hung.
    public var stallTimeout: Double
    public var version: String
    public var logLevel: Logger.Level
    /// Token, private reads, admitted hosts and origins (see `AccessPolicy`).
    public var access: AccessPolicy
    /// Runs go to Slurm as jobs instead of local children (`--executor slurm`); `dataDirectory` is its shared directory.
    public var slurm: SlurmOptions? = nil

    public init(
        host: String = "127.0.0.1", port: Int = 8080, databasePath: String = "./polyak.sqlite",
        dataDirectory: String = "./polyak-data", maxConcurrent: Int = 1, executable: String,
        presets: [PresetEntry] = [], cancelGrace: Double = 10, version: String = "dev", logLevel: Logger.Level = .info,
        stallTimeout: Double = 600, access: AccessPolicy = AccessPolicy()
    ) {
        self.host = host
        self.port = port
        self.databasePath = databasePath
        self.dataDirectory = dataDirectory
        self.maxConcurrent = maxConcurrent
        self.executable = executable
        self.presets = presets
        self.cancelGrace = cancelGrace
        self.stallTimeout = stallTimeout
        self.version = version
        self.logLevel = logLevel
        self.access = access
    }
}

extension ServerOptions {
    /// The threads the launch form proposes per run: the core budget shared by the runs trained at
    /// once (two 1-thread runs on 2 cores finished the default comparison 1.09–1.18× sooner than one
    /// 2-thread run at a time); the spec's default where there is no budget.
    public var launchFormThreads: Int {
        guard slurm == nil, let cpus, maxConcurrent > 0 else { return RunSpec().threads }
        return min(64, max(1, cpus / maxConcurrent))
    }

    /// How many runs on `threads` each train at once (at least 1, for time estimates).
    public func trainingSlots(threads: Int) -> Int {
        guard slurm == nil, let cpus else { return max(1, maxConcurrent) }
        return max(1, min(maxConcurrent, cpus / max(1, threads)))
    }
}

/// What the services share.
struct ServiceContext: Sendable {
    let store: TrackingStore
    let runner: JobRunner
    let hub: EventHub
    let options: ServerOptions
    /// Held while the routes live: no second server on this database.
    let databaseLock: DatabaseLock
    /// `POST /api/runs/{id}/posthoc`'s children, one per run at a time.
    let postHocJobs = PostHocJob()

    func preset(_ name: String) -> PresetEntry? { options.presets.first { $0.name == name } }
}

/// The tracking service: routes, the job runner as a service, the store. Tests use this too.
public func buildApplication(_ options: ServerOptions) throws -> some ApplicationProtocol {
    var logger = Logger(label: "polyak")
    logger.logLevel = options.logLevel
    try FileManager.default.createDirectory(atPath: options.dataDirectory + "/runs", withIntermediateDirectories: true)
    let databaseLock = try DatabaseLock(database: options.databasePath)
    let store = try TrackingStore(path: options.databasePath)
    // Runs held by Slurm jobs are not this server's to train when it is not executing on Slurm.
    if options.slurm == nil { try SlurmHeldRuns.refuseLocalExecutor(store) }
    let hub = EventHub()
    let runner = JobRunner(
        store: store, hub: hub,
        options: .init(
            executable: options.executable, dataDirectory: options.dataDirectory,
            maxConcurrent: options.maxConcurrent, cpus: options.slurm == nil ? options.cpus : nil,
            cancelGrace: options.cancelGrace,
            stallTimeout: options.stallTimeout),
        logger: logger,
        executor: options.slurm.map { SlurmExecutor(store: store, hub: hub, options: $0, logger: logger) })
    let context = ServiceContext(store: store, runner: runner, hub: hub, options: options, databaseLock: databaseLock)
    let listening = ListeningPort(options.port)
    let router = buildRouter(context, listening: listening)
    return Application(
        router: router,
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "polyak"),
        services: [runner],
        onServerRunning: { channel in listening.set(channel.localAddress?.port) },
        logger: logger)
}

func buildRouter(_ context: ServiceContext, listening: ListeningPort) -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self)
    let renderer = PageRenderer(version: context.options.version)
    let (runs, experiments, system) = (
        RunService(context: context), ExperimentService(context: context), SystemService(context: context)
    )
    let pages = PagesController(runs: runs, experiments: experiments, system: system, renderer: renderer)
    let access = context.options.access
    // Outermost first: security headers on every answer, errors as pages or as the API's JSON,
    // then the host, origin, content-type and token checks before any route or file.
    router.add(middleware: SecurityHeadersMiddleware(policy: access))
    router.add(middleware: PageErrorMiddleware(renderer: renderer, queue: { pages.queueText() }))
    router.add(middleware: ErrorShapeMiddleware())
    let openPaths = Set(["/api/health", "/sign-in", "/sign-out"] + EmbeddedAssets.publicFiles.keys.map { "/" + $0 })
    router.add(
        middleware: RequestGuard(policy: access, listening: listening, bindHost: context.options.host, openPaths: openPaths))
    router.add(middleware: PreflightMiddleware(policy: access))
    router.add(middleware: BodyCapMiddleware())
    router.add(middleware: StaticFilesMiddleware(version: renderer.assetVersion))
    SystemController(service: system).addRoutes(to: router)
    RunsController(service: runs, hub: context.hub).addRoutes(to: router)
    ExperimentsController(service: experiments).addRoutes(to: router)
    PostHocController(service: PostHocService(context: context)).addRoutes(to: router)
    MLflowController(context: context).addRoutes(to: router)
    pages.addRoutes(to: router)
    SignIn(policy: access, renderer: renderer, queue: { pages.queueText() }).addRoutes(to: router)
    return router
}

// MARK: Shared response helpers

enum Reply {
    /// A view written by the API's one encoder (``ViewEncoder``), for handlers that answer CSV too.
    static func view(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        bytes(try ViewEncoder.bytes(value), status: status)
    }

    static func bytes(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, contentType: String = "application/json") -> Response {
        Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func csv(_ writer: CSVWriter, nextCursor: String? = nil) -> Response {
        var r = bytes(writer.bytes, contentType: "text/csv; charset=utf-8; header=present")
        if let nextCursor { r.headers[HTTPFields.Element.Name("X-Next-Cursor")!] = nextCursor }
        return r
    }

    /// CSV was asked for: the route's `.csv` form, or `Accept: text/csv`.
    static func wantsCSV(_ request: Request, suffixed: Bool) -> Bool {
        suffixed || request.uri.path.hasSuffix(".csv") || (request.headers[.accept]?.contains("text/csv") ?? false)
    }
}

extension Router {
    /// Registers `GET path` and `GET path.csv`; the handler learns which was asked.
    func table(_ path: String, _ handler: @escaping @Sendable (Request, Context, Bool) async throws -> Response) {
        get(RouterPath(path)) { request, context in try await handler(request, context, Reply.wantsCSV(request, suffixed: false))
        }
        get(RouterPath(path + ".csv")) { request, context in try await handler(request, context, true) }
    }
}

extension RequestContext {
    /// The `{id}` of the path as a positive integer.
    func id(_ name: String = "id") throws -> Int64 {
        guard let text = parameters.get(name), let id = Int64(text.hasSuffix(".csv") ? String(text.dropLast(4)) : text), id > 0
        else {
            throw APIError.badRequest("\(name) must be a positive integer", field: name)
        }
        return id
    }
}

extension Request {
    /// A query parameter as an integer in `range`.
    func intQuery(_ name: String, default value: Int, _ range: ClosedRange<Int>) throws -> Int {
        guard let text = uri.queryParameters.get(name) else { return value }
        guard let x = Int(text), range.contains(x) else {
            throw APIError.badRequest(
                "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), got \(text)", field: name)
        }
        return x
    }

    func query(_ name: String) -> String? { uri.queryParameters.get(name).flatMap { $0.isEmpty ? nil : $0 } }

    /// `cursor`: the id a list page ended at, as this server gave it.
    func cursor() throws -> Int64? {
        guard let c = query("cursor") else { return nil }
        guard let before = Int64(c), before > 0 else {
            throw APIError.badRequest("cursor is not one this server gave", field: "cursor")
        }
        return before
    }

    /// The body as a JSON value (strict: a bare NaN is refused naming its field), up to `limit` bytes.
    func jsonBody(limit: Int = Limits.bodyBytes, context: some RequestContext) async throws -> JSONValue {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch let e as HTTPResponseError where e.status == .contentTooLarge {
            throw Limits.bodyTooLarge()
        } catch {
            // Only the cap is a 413: a body that ends early or cannot be read is the client's malformed request.
            throw APIError.badRequest("the body could not be read completely (\(error)); a JSON object is expected")
        }
        let data = Data(buffer.readableBytesView)
        if data.isEmpty { throw APIError.badRequest("the body is empty; a JSON object is expected") }
        do {
            return try JSONValue.parse(data)
        } catch let e as SpecError {
            throw APIError(spec: e)
        }
    }
}

/// Unix time now.
func now() -> Double { Date().timeIntervalSince1970 }

/// Work that blocks a thread (every SQLite call: a commit waits for fsync, a read for the reader's
/// lock) runs off Swift's cooperative pool, which has one thread per core here: two clients
/// committing must not stall every other request. The services call the store only through this.
enum Blocking {
    private static let queue = DispatchQueue(label: "polyak.blocking", qos: .userInitiated, attributes: .concurrent)

    /// `body` on the blocking queue. Task-locals do not cross to a dispatch thread, so the one a page
    /// reads (whether the visitor signed in) is carried over by hand.
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let visitor = Visitor.state
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try Visitor.$state.withValue(visitor) { try body() } }) }
        }
    }
}
