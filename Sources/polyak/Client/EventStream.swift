import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One Server-Sent Event: its `event:` name and `data:` text.
struct ServerSentEvent: Sendable {
    var name: String
    var data: String
}

extension APIClient {
    /// The events of `path` (`/api/runs/{id}/events`) as they arrive, until the server ends the stream.
    func events(_ path: String) throws -> AsyncThrowingStream<ServerSentEvent, Error> {
        var r = try request("GET", path, accept: "text/event-stream")
        r.timeoutInterval = 300  // the server pings an open stream well within this
        let request = r
        return AsyncThrowingStream { continuation in
            let reader = EventStreamReader(client: self, path: path, continuation: continuation)
            let session = URLSession(configuration: .default, delegate: reader, delegateQueue: nil)
            let task = session.dataTask(with: request)
            continuation.onTermination = { _ in
                task.cancel()
                session.invalidateAndCancel()
            }
            task.resume()
        }
    }
}

/// Cuts the stream's bytes into events (blank-line separated; `event:` and `data:` lines, `:` comments).
private final class EventStreamReader: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private let client: APIClient
    private let path: String
    private let continuation: AsyncThrowingStream<ServerSentEvent, Error>.Continuation
    private var buffer: [UInt8] = []
    private var status = 0
    private var errorBody = Data()

    init(client: APIClient, path: String, continuation: AsyncThrowingStream<ServerSentEvent, Error>.Continuation) {
        (self.client, self.path, self.continuation) = (client, path, continuation)
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        status = (response as? HTTPURLResponse)?.statusCode ?? 0
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard (200..<300).contains(status) else {
            errorBody.append(data)
            return
        }
        buffer.append(contentsOf: data)
        while let end = blockEnd() {
            let block = String(decoding: buffer[..<end.start], as: UTF8.self)
            buffer.removeFirst(end.next)
            var name = "message"
            var data: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                let line = line.hasSuffix("\r") ? line.dropLast() : line
                if line.hasPrefix("event:") { name = line.dropFirst(6).trimmingCharacters(in: .whitespaces) }
                if line.hasPrefix("data:") { data.append(String(line.dropFirst(5).drop { $0 == " " })) }
            }
            if !data.isEmpty { continuation.yield(ServerSentEvent(name: name, data: data.joined(separator: "\n"))) }
        }
    }

    /// Where the first complete block ends (before its blank line) and the next begins.
    private func blockEnd() -> (start: Int, next: Int)? {
        var i = 0
        while i + 1 < buffer.count {
            if buffer[i] == 10 && buffer[i + 1] == 10 { return (i, i + 2) }
            i += 1
        }
        return nil
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error {
            continuation.finish(throwing: client.unreachable(error))
        } else if !(200..<300).contains(status) {
            continuation.finish(throwing: APIClient.refusal(status: status, body: errorBody, method: "GET", path: path))
        } else {
            continuation.finish()
        }
        session.finishTasksAndInvalidate()
    }
}
