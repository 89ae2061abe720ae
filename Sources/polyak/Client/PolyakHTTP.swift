import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The binary's one HTTP client: the client commands (async) and `train --report`'s sender thread
/// (blocking) both talk to a Polyak server through it, over AsyncHTTPClient. It knows the server's
/// base URL and token; it sends JSON bodies and names the URL in every failure. What a status means
/// is the caller's business: the commands print the server's sentence, the reporter retries or stops.
struct PolyakHTTP: Sendable {
    /// One client for the process, made on first use (a trainer without `--report` never starts its
    /// event loop). A refused connection fails at once (the default retries until the deadline): a
    /// command run with no server says so instead of waiting a minute, and the reporter backs off.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        return HTTPClient(configuration: configuration)
    }()

    /// Without a trailing slash: paths are appended to it.
    let base: String
    let token: String?

    init(base: String, token: String?) {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A status and the body that came with it.
    struct Answer: Sendable {
        var status: Int
        var body: Data
        var isSuccess: Bool { (200..<300).contains(status) }
        /// The body's start as text, for a message.
        var excerpt: String { String(decoding: body.prefix(300), as: UTF8.self) }
    }

    /// No answer at all: the connection failed, broke or timed out.
    struct Unreachable: Error, CustomStringConvertible {
        var method: String
        var url: String
        var reason: String
        var description: String { "\(method) \(url): \(reason)" }
    }

    /// A URL no request can be made of: sending again will not help.
    struct InvalidURL: Error, CustomStringConvertible {
        var url: String
        var reason: String
        var description: String { "\(url) is not a URL to send to (\(reason))" }
    }

    func url(_ path: String) -> String { base + path }

    func headers(accept: String, hasBody: Bool) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: accept)
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        if hasBody { headers.add(name: "Content-Type", value: "application/json") }
        return headers
    }

    func request(_ method: String, _ path: String, body: Data? = nil, accept: String = "application/json") -> HTTPClientRequest {
        var r = HTTPClientRequest(url: url(path))
        r.method = HTTPMethod(rawValue: method)
        r.headers = headers(accept: accept, hasBody: body != nil)
        if let body { r.body = .bytes(ByteBuffer(bytes: body)) }
        return r
    }

    /// Sends a request and collects the whole answer, whatever its status.
    func send(
        _ method: String, _ path: String, body: Data? = nil, accept: String = "application/json",
        timeout: TimeAmount = .seconds(60)
    ) async throws -> Answer {
        do {
            let response = try await Self.client.execute(request(method, path, body: body, accept: accept), timeout: timeout)
            let data = try await response.body.collect(upTo: 256 << 20)
            return Answer(status: Int(response.status.code), body: Data(buffer: data))
        } catch {
            throw unreachable(method, path, error)
        }
    }

    /// Starts a request whose answer's body is read as it arrives (an event stream); `timeout` bounds it all.
    func open(_ method: String, _ path: String, accept: String, timeout: TimeAmount) async throws -> HTTPClientResponse {
        do {
            return try await Self.client.execute(request(method, path, accept: accept), timeout: timeout)
        } catch {
            throw unreachable(method, path, error)
        }
    }

    /// ``send`` for a thread outside Swift concurrency (the trainer's sender): it waits on the
    /// client's event loop, no task and no extra thread.
    func sendWaiting(
        _ method: String, _ path: String, body: Data? = nil, accept: String = "application/json",
        timeout: TimeAmount = .seconds(60)
    ) throws -> Answer {
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(
                url: url(path), method: HTTPMethod(rawValue: method), headers: headers(accept: accept, hasBody: body != nil),
                body: body.map { HTTPClient.Body.data($0) })
        } catch {
            throw InvalidURL(url: url(path), reason: Self.reason(error))
        }
        do {
            let response = try Self.client.execute(request: request, deadline: .now() + timeout).wait()
            return Answer(status: Int(response.status.code), body: response.body.map { Data(buffer: $0) } ?? Data())
        } catch {
            throw unreachable(method, path, error)
        }
    }

    func unreachable(_ method: String, _ path: String, _ error: Error) -> Unreachable {
        Unreachable(method: method, url: url(path), reason: Self.reason(error))
    }

    /// NIO's words for the common failures, shortened ("connection refused" rather than the errno dump).
    static func reason(_ error: Error) -> String {
        let text = "\(error)"
        for known in ["Connection refused", "No route to host", "Network is unreachable"] where text.contains(known) {
            return known.lowercased()
        }
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "no answer in time (\(e.shortDescription))"
            default: return e.shortDescription
            }
        }
        return text
    }
}
