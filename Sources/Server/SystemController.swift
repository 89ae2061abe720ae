import Experiments
import Hummingbird
import Store

/// `GET /api/health`, `GET /api/presets`, `GET /api/openapi.json` (`/` is the home page, in PagesController).
struct SystemController: Sendable {
    let service: SystemService

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/api/health") { _, _ in
            let health = try await service.health()
            let options = service.context.options
            return HealthView(
                version: options.version, schemaVersion: Int(TrackingStore.schemaVersion), queueLength: health.queued,
                running: health.running, maxConcurrent: options.maxConcurrent)
        }
        router.table("/api/presets") { _, _, csv in
            let presets = service.presets()
            if csv {
                var w = CSVWriter(header: ["name", "summary", "settings"])
                for p in presets { w.row([.text(p.entry.name), .text(p.entry.summary), .text(p.settings.text())]) }
                return Reply.csv(w)
            }
            return try Reply.view(
                PresetsView(
                    presets: presets.map {
                        .init(name: $0.entry.name, summary: $0.entry.summary, settings: JSONDocument($0.settings))
                    }))
        }
        router.get("/api/openapi.json") { _, _ in Reply.bytes(Array(Self.openAPI.utf8)) }
    }

    /// The OpenAPI 3.1 description of every `/api` route (`Public/openapi.json`, embedded).
    static let openAPI = EmbeddedAssets.publicFiles["openapi.json"] ?? "{}"
}
