import Experiments
import Store

/// The server's own state (liveness, queue) and the presets it offers.
struct SystemService: Sendable {
    let context: ServiceContext

    struct Health: Sendable {
        var queued: Int
        var running: Int
    }

    /// Queued (and interrupted, which wait to resume) runs, and the children training now.
    func health() async throws -> Health {
        let store = context.store
        let queued = try await Blocking.run { try store.count(status: .queued) + store.count(status: .interrupted) }
        return Health(queued: queued, running: context.runner.activeCount)
    }

    /// Each preset with the full settings it gives a default run spec.
    func presets() -> [(entry: PresetEntry, settings: JSONValue)] {
        let base = RunSpec().json()
        return context.options.presets.map { ($0, $0.overlay(base)) }
    }

    /// "1 running · 4 queued · 2 training slots on 2 cores", in every page's header.
    func queueText() -> String {
        let running = (try? context.store.count(status: .running)) ?? 0
        let queued = (try? context.store.count(status: .queued)) ?? 0
        let slots = context.options.maxConcurrent
        let cores = context.options.slurm == nil ? context.options.cpus.map { " on \($0) core\($0 == 1 ? "" : "s")" } ?? "" : ""
        return "\(running) running · \(queued) queued · \(slots) training slot\(slots == 1 ? "" : "s")\(cores)"
    }
}
