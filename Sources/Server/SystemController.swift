import Experiments
import Hummingbird
import Store

/// `GET /api/health`, `GET /api/presets`, `GET /api/openapi.json` (`/` is the home page, in PagesController).
struct SystemController: Sendable {
    let context: ServiceContext

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/api/health") { _, _ in try health() }
        router.table("/api/presets") { _, _, csv in presets(csv: csv) }
        router.get("/api/openapi.json") { _, _ in Reply.bytes(Array(Self.openAPI.utf8)) }
    }

    /// The OpenAPI 3.1 description of every `/api` route (`Public/openapi.json`, embedded).
    static let openAPI = EmbeddedAssets.publicFiles["openapi.json"] ?? "{}"

    func health() throws -> Response {
        let queued = try context.store.count(status: .queued)
        let interrupted = try context.store.count(status: .interrupted)
        return Reply.json([
            "status": "ok", "version": .string(context.options.version),
            "schema_version": .number(Double(TrackingStore.schemaVersion)),
            "queue_length": .number(Double(queued + interrupted)),
            "running": .number(Double(context.runner.activeCount)),
            "max_concurrent": .number(Double(context.options.maxConcurrent)),
        ])
    }

    func presets(csv: Bool) -> Response {
        // The full settings a preset gives a default run spec.
        let base = RunSpec().json()
        if csv {
            var w = CSVWriter(header: ["name", "summary", "settings"])
            for p in context.options.presets { w.row([.text(p.name), .text(p.summary), .text(p.overlay(base).text())]) }
            return Reply.csv(w)
        }
        return Reply.json([
            "presets": .array(
                context.options.presets.map {
                    ["name": .string($0.name), "summary": .string($0.summary), "settings": $0.overlay(base)]
                })
        ])
    }
}
