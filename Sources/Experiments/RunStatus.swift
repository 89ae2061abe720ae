/// A run's life: `queued → running → completed | failed | cancelled`; `interrupted` when its
/// process vanished with the server (resumed on the next start).
public enum RunStatus: String, CaseIterable, Sendable, Codable {
    case queued, running, completed, failed, cancelled, interrupted

    /// The run will not change again by itself.
    public var isFinished: Bool { self == .completed || self == .failed || self == .cancelled }
}
