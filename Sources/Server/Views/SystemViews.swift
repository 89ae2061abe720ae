import Experiments
import Hummingbird

/// `GET /api/health`.
struct HealthView: ResponseEncodable {
    var status = "ok"
    var version: String
    var schemaVersion: Int
    var queueLength: Int
    var running: Int
    var maxConcurrent: Int

    enum CodingKeys: String, CodingKey {
        case status, version, schemaVersion = "schema_version", queueLength = "queue_length", running
        case maxConcurrent = "max_concurrent"
    }
}

/// `GET /api/presets`: each preset's name, its sentence and the full settings it gives a default spec.
struct PresetsView: ResponseEncodable {
    var presets: [Preset]

    struct Preset: Encodable {
        var name: String
        var summary: String
        var settings: JSONDocument
    }
}

/// An API error's body: `{"error": {"status", "message", "field"}}`.
struct ErrorView: Encodable {
    var error: Body

    struct Body: Encodable {
        var status: Int
        var message: String
        var field: String?
    }
}
