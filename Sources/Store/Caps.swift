/// A cap the store checks inside the transaction that would pass it, so nothing of the refused
/// write is kept. The server chooses the values (Server/Limits.swift) and the status code.
public struct CapReached: Error, CustomStringConvertible, Sendable {
    public enum Cap: Sendable { case queuedRuns, seriesPerRun }

    public var cap: Cap
    public var limit: Int
    /// What is there now and what the refused write would have added.
    public var current: Int
    public var adding: Int

    public var description: String {
        switch cap {
        case .queuedRuns:
            return "\(current) runs are queued and this would queue \(adding) more; the cap is \(limit) queued runs"
        case .seriesPerRun:
            return
                "the run has \(current) metric series and this batch would add \(adding) or more; the cap is \(limit) series per run"
        }
    }
}
