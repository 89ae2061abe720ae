import Foundation

/// Live events per run (progress, status, warnings) for `GET /api/runs/{id}/events`.
///
/// Publishing never blocks: each subscriber has its own buffered stream, and the newest 64
/// events are kept per subscriber when a client reads slowly.
final class EventHub: @unchecked Sendable {
    struct Event: Sendable {
        var name: String
        /// JSON text (one line).
        var data: String
    }

    private let lock = NSLock()
    private var subscribers: [Int64: [UUID: AsyncStream<Event>.Continuation]] = [:]
    private let timer: DispatchSourceTimer

    /// A comment line to every subscriber every `heartbeat` seconds: proxies keep the stream open,
    /// and a write to a client that went away ends its handler.
    init(heartbeat: Double = 15) {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        timer.schedule(deadline: .now() + heartbeat, repeating: heartbeat)
        timer.setEventHandler { [weak self] in self?.ping() }
        timer.resume()
    }

    deinit { timer.cancel() }

    private func ping() {
        lock.lock()
        let all = subscribers.values.flatMap { $0.values }
        lock.unlock()
        for c in all { c.yield(Event(name: "ping", data: "")) }
    }

    /// A new stream of `run`'s events, unless the caps on open streams (``Limits/subscribersPerRun``,
    /// ``Limits/subscribers``) are reached: each holds a connection and a buffer for as long as it lasts.
    func subscribe(run: Int64, perRun: Int = Limits.subscribersPerRun, total: Int = Limits.subscribers) throws -> AsyncStream<
        Event
    > {
        let id = UUID()
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(64))
        lock.lock()
        let onRun = subscribers[run]?.count ?? 0
        let all = subscribers.values.reduce(0) { $0 + $1.count }
        guard onRun < perRun, all < total else {
            lock.unlock()
            throw APIError(
                .tooManyRequests,
                onRun >= perRun
                    ? "run \(run) has \(onRun) open event streams; the cap is \(perRun) event streams per run"
                    : "the server has \(all) open event streams; the cap is \(total) event streams in all")
        }
        subscribers[run, default: [:]][id] = continuation
        lock.unlock()
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.lock.lock()
            self.subscribers[run]?[id] = nil
            if self.subscribers[run]?.isEmpty == true { self.subscribers[run] = nil }
            self.lock.unlock()
        }
        return stream
    }

    func publish(run: Int64, _ name: String, _ data: String) {
        lock.lock()
        let targets = subscribers[run].map { Array($0.values) } ?? []
        lock.unlock()
        for c in targets { c.yield(Event(name: name, data: data)) }
    }
}
