import Experiments
import Foundation
import Hummingbird
import Store

/// The HTML pages: `/`, `/experiments/{id}`, `/runs/{id}`, and the form posts behind their
/// buttons (launch, cancel, run again), each answered with a redirect to the page it concerns.
/// Every change goes through the same services as the API; a page is built off the cooperative
/// pool (``Blocking``), since it reads the store.
struct PagesController: Sendable {
    let runs: RunService
    let experiments: ExperimentService
    let system: SystemService
    let renderer: PageRenderer
    let cache = PageCache()
    var store: TrackingStore { runs.store }
    var options: ServerOptions { runs.context.options }

    /// The POSTs are the pages' forms and buttons; `RequestGuard` has already refused one that another
    /// site's page sent (they start and stop trainings on the user's machine) or, with a token, one
    /// from a visitor who has not signed in.
    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/") { _, _ in try await Blocking.run { try home(form: nil, status: .ok) } }
        router.post("/experiments") { request, ctx in try await launch(request, ctx) }
        router.get("/experiments/:id") { request, ctx in
            let (id, metric) = (try ctx.id(), request.query("metric"))
            return try await Blocking.run { try experiment(id, metric: metric) }
        }
        router.post("/experiments/:id/cancel") { _, ctx in
            let id = try ctx.id()
            _ = try await experiments.cancel(id)
            return Self.redirect("/experiments/\(id)")
        }
        router.post("/experiments/:id/seeds") { request, ctx in
            let id = try ctx.id()
            let text = try await Self.form(request).first("add") ?? ""
            guard let count = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw APIError.badRequest("add must be a whole number of seeds, got \"\(text)\"", field: "add")
            }
            _ = try await experiments.addSeeds(id, count: count)
            return Self.redirect("/experiments/\(id)")
        }
        router.post("/experiments/:id/delete") { _, ctx in
            try await experiments.delete(try ctx.id())
            return Self.redirect("/")
        }
        router.get("/runs/:id") { _, ctx in
            let id = try ctx.id()
            return try await Blocking.run { try run(id) }
        }
        router.post("/runs/:id/cancel") { _, ctx in
            let id = try ctx.id()
            _ = try await runs.cancel(id)
            return Self.redirect("/runs/\(id)")
        }
        router.post("/runs/:id/again") { _, ctx in
            Self.redirect("/runs/\(try await runs.rerun(try ctx.id()).id)")
        }
        router.post("/runs/:id/edit") { request, ctx in try await editRun(request, ctx) }
        router.post("/runs/:id/delete") { _, ctx in
            // A finished run with its metrics and files; back to its experiment (or home).
            let deleted = try await runs.delete(try ctx.id())
            return Self.redirect(deleted.experimentID.map { "/experiments/\($0)" } ?? "/")
        }
    }

    /// "1 running · 4 queued · 1 training slot", in every page's header.
    func queueText() -> String { system.queueText() }

    static func redirect(_ path: String) -> Response {
        Response(status: .seeOther, headers: [.location: path])
    }

    // MARK: Home and the launch form

    func home(form: LaunchForm?, status: HTTPResponse.Status) throws -> Response {
        // A form coming back with its errors is this visitor's alone; the plain page is everyone's.
        guard form == nil else { return renderer.response(try homeHTML(form: form), status: status) }
        return renderer.response(try cache.page("/", revision: store.revision) { try homeHTML(form: nil) })
    }

    func homeHTML(form: LaunchForm?) throws -> String {
        let counts = try store.statusCounts()
        let experimentRows = try store.experiments(before: nil, limit: 50).map { e -> HomePage.ExperimentRow in
            let c = counts[e.id] ?? [:]
            let total = c.values.reduce(0, +)
            let finished = c.filter { $0.key.isFinished }.values.reduce(0, +)
            return HomePage.ExperimentRow(
                id: e.id, name: e.name, variants: ExperimentService.variantOrder(e).joined(separator: ", "),
                seeds: ExperimentPage.seeds(e.seedsJSON).count, total: total, finished: finished,
                fraction: total > 0 ? Double(finished) / Double(total) : 0, statuses: ExperimentPage.statusCounts(c),
                createdAt: e.createdAt, created: Format.time(e.createdAt), createdISO: Format.iso(e.createdAt))
        }
        let recent = try store.runs(RunFilter(limit: 30))
        let runRows = recent.map { r -> HomePage.RunRow in
            let (progress, _, eta) = RunPage.progress(r.progressJSON, status: r.status)
            let top1 = Self.finalTop1(r)
            let fraction = r.status == .completed ? 1 : progress.map { Double($0.value) / Double(max($0.max, 1)) } ?? 0
            return HomePage.RunRow(
                id: r.id, name: r.name ?? "run \(r.id)", experiment: r.experiment, experimentID: r.experimentID,
                variant: r.shares.isEmpty ? r.variant ?? "—" : r.variants.joined(separator: ", "), seed: r.seed,
                status: r.status.rawValue,
                progress: r.status == .running || r.status == .interrupted ? progress : nil, fraction: fraction, eta: eta ?? "",
                top1: top1.map { Format.metric($0, key: "test/top1") } ?? "—", top1Value: top1.map { String($0) } ?? "")
        }
        var form = form ?? LaunchForm(threads: options.launchFormThreads)
        let teachers = try store.runs(RunFilter(status: .completed, limit: 50)).filter { !$0.external }
        form.prepare(
            presets: options.presets, teachers: teachers,
            top1: Dictionary(uniqueKeysWithValues: teachers.compactMap { r in Self.finalTop1(r).map { (r.id, $0) } }))
        let page = HomePage(experiments: experimentRows, runs: runRows, form: form)
        let busy = recent.contains { !$0.status.isFinished }
        return renderer.html("home", page, title: "Experiments and runs", queue: queueText(), refresh: busy ? 5 : nil)
    }

    /// A run's final raw top-1 from its summary line.
    static func finalTop1(_ r: RunRecord) -> Double? {
        guard r.status == .completed, let summary = r.summaryJSON.flatMap({ try? JSONValue.parse($0) }) else { return nil }
        return summary["final"]?["raw"]?["test/top1"]?.doubleValue
    }

    func launch(_ request: Request, _ ctx: AppRequestContext) async throws -> Response {
        var form = LaunchForm(posted: try await Self.form(request))
        let (document, errors) = form.experimentDocument(knownPresets: options.presets.map(\.name))
        form.errors = errors
        if let document {
            do {
                let (experiment, _) = try await experiments.create(document)
                return Self.redirect("/experiments/\(experiment.id)")
            } catch let e as APIError where e.status == .badRequest {
                form.attach(e)
            }
        }
        let sent = form
        return try await Blocking.run { try home(form: sent, status: .badRequest) }
    }

    // MARK: Experiment

    func experiment(_ id: Int64, metric: String?) throws -> Response {
        let e = try experiments.existing(id)
        let metric = metric ?? "test/top1"
        guard ExperimentPage.metricKeys.contains(metric) else {
            throw APIError.badRequest(
                "metric must be one of \(ExperimentPage.metricKeys.joined(separator: ", ")), got \(metric)", field: "metric")
        }
        let html = try cache.page("/experiments/\(id)?metric=\(metric)", revision: store.revision) {
            let page = try ExperimentPage.build(e, metric: metric, service: experiments)
            return renderer.html(
                "experiment", page, title: e.name, crumbs: [.init(label: e.name, href: "/experiments/\(id)")], queue: queueText(),
                refresh: page.active ? 10 : nil)
        }
        return renderer.response(html)
    }

    // MARK: Run

    func run(_ id: Int64) throws -> Response {
        let revision = store.revision
        guard let r = try store.run(id) else { throw APIError.notFound("run \(id) does not exist") }
        return renderer.response(try cache.page("/runs/\(id)", revision: revision) { try runHTML(r) })
    }

    func runHTML(_ r: RunRecord) throws -> String {
        let id = r.id
        var page = try RunPage.build(r, store: store)
        page.artifacts += MLflowArtifacts.pageLinks(run: id, folder: runs.context.runner.runDirectory(id))
        var crumbs: [PageRenderer.Crumb] = []
        if let eid = r.experimentID, let name = r.experiment { crumbs.append(.init(label: name, href: "/experiments/\(eid)")) }
        crumbs.append(.init(label: page.name, href: "/runs/\(id)"))
        // The progress bar moves with the run's events (SSE); the metrics and charts of a run
        // that trains are refetched every 15 s.
        return renderer.html("run", page, title: page.name, crumbs: crumbs, queue: queueText(), refresh: page.active ? 15 : nil)
    }

    /// Name, notes and tags from the run page's form (tags separated by commas).
    func editRun(_ request: Request, _ ctx: AppRequestContext) async throws -> Response {
        let id = try ctx.id()
        _ = try await runs.run(id)  // a missing run is a 404 before its form is read
        let form = try await Self.form(request)
        let tags = (form.first("tags") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty
        }
        let changes = RunService.Changes(name: .some(form.first("name")), notes: form.values["notes"]?.first ?? "", tags: tags)
        _ = try await runs.update(id, changes)
        return Self.redirect("/runs/\(id)")
    }

    /// A posted form's fields, within the body cap (notes may fill their 64 KiB cap, escaped).
    static func form(_ request: Request) async throws -> FormBody {
        let type = request.headers[.contentType] ?? ""
        guard type.hasPrefix("application/x-www-form-urlencoded") else {
            throw APIError(
                .unsupportedMediaType,
                "the form posts application/x-www-form-urlencoded, got \(type.isEmpty ? "no content type" : type); the JSON API is under /api"
            )
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Limits.bodyBytes)
        } catch let e as HTTPResponseError where e.status == .contentTooLarge {
            throw Limits.bodyTooLarge()
        } catch {
            throw APIError.badRequest("the form could not be read completely (\(error))")
        }
        // Refused rather than decoded: decoding would store U+FFFD in place of the bad bytes.
        guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
            throw APIError.badRequest("the form is not valid UTF-8")
        }
        return FormBody(text)
    }
}

/// Errors on page routes come back as pages in the site's style; the API keeps its JSON.
struct PageErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let renderer: PageRenderer
    let queue: @Sendable () -> String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let e as APIError where !request.uri.path.hasPrefix("/api/") {
            var message = e.message
            if e.status == .notFound && message.hasPrefix("no route for") { message = "There is no page at \(request.uri.path)." }
            let queue = (try? await Blocking.run(queue)) ?? ""  // the header's queue line reads the store
            return renderer.error(status: e.status, message: message, queue: queue)
        }
    }
}
