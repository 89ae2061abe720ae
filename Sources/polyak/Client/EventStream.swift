import AsyncHTTPClient
import Foundation
import NIOCore

/// One Server-Sent Event: its `event:` name and `data:` text.
struct ServerSentEvent: Sendable {
    var name: String
    var data: String
}

extension APIClient {
    /// The events of `path` (`/api/runs/{id}/events`) as they arrive, until the server ends the stream.
    func events(_ path: String) -> AsyncThrowingStream<ServerSentEvent, Error> {
        let http = http
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await http.open("GET", path, accept: "text/event-stream", timeout: .hours(24 * 365))
                    guard response.status.code == 200 else {
                        let body = Data(buffer: try await response.body.collect(upTo: 1 << 20))
                        throw Self.refusal(status: Int(response.status.code), body: body, method: "GET", path: path)
                    }
                    var parser = EventStreamParser()
                    for try await chunk in response.body {
                        for event in parser.feed(Array(chunk.readableBytesView)) { continuation.yield(event) }
                    }
                    continuation.finish()
                } catch let e as ClientError {
                    continuation.finish(throwing: e)
                } catch is CancellationError {
                    continuation.finish()
                } catch let e as PolyakHTTP.Unreachable {
                    continuation.finish(throwing: unreachable(e))
                } catch {
                    continuation.finish(throwing: unreachable(http.unreachable("GET", path, error)))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Cuts the stream's bytes into events (blank-line separated; `event:` and `data:` lines, `:` comments).
struct EventStreamParser {
    private var buffer: [UInt8] = []

    mutating func feed(_ bytes: [UInt8]) -> [ServerSentEvent] {
        buffer += bytes
        var events: [ServerSentEvent] = []
        var start = 0
        var i = 0
        while i + 1 < buffer.count {
            guard buffer[i] == 10 && buffer[i + 1] == 10 else {
                i += 1
                continue
            }
            let block = String(decoding: buffer[start..<i], as: UTF8.self)
            var name = "message"
            var data: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                let line = line.hasSuffix("\r") ? line.dropLast() : line
                if line.hasPrefix("event:") { name = line.dropFirst(6).trimmingCharacters(in: .whitespaces) }
                if line.hasPrefix("data:") { data.append(String(line.dropFirst(5).drop { $0 == " " })) }
            }
            if !data.isEmpty { events.append(ServerSentEvent(name: name, data: data.joined(separator: "\n"))) }
            i += 2
            start = i
        }
        buffer.removeFirst(start)
        return events
    }
}
