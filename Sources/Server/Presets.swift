import Experiments

/// A named preset as the server uses it: a name, one sentence, and the spec fragment it lays over
/// a base spec. `polyak serve` fills these from `Experiments.Presets`; tests may pass their own.
public struct PresetEntry: Sendable {
    public var name: String
    public var summary: String
    public var overlay: @Sendable (JSONValue) -> JSONValue

    public init(name: String, summary: String, overlay: @escaping @Sendable (JSONValue) -> JSONValue) {
        self.name = name
        self.summary = summary
        self.overlay = overlay
    }
}
