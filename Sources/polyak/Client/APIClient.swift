import ArgumentParser
import AsyncHTTPClient
import Experiments
import Foundation
import NIOCore

/// Where the client commands find the server, and the token they show it.
struct ServerConnection: ParsableArguments {
    static let defaultServer = "http://127.0.0.1:8080"

    @Option(help: "The Polyak server.")
    var server = ServerConnection.defaultServer

    @Option(help: "A file holding the server's API token (else the POLYAK_TOKEN environment variable).")
    var tokenFile: String?

    func validate() throws {
        guard let url = URL(string: server), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw ValidationError("--server must be an http(s) URL such as http://127.0.0.1:8080, got \(server)")
        }
    }

    func client() throws -> APIClient {
        var token = ProcessInfo.processInfo.environment["POLYAK_TOKEN"]
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw ClientError("cannot read the token file \(tokenFile)")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var base = server
        while base.hasSuffix("/") { base.removeLast() }
        return APIClient(base: base, token: token.flatMap { $0.isEmpty ? nil : $0 })
    }
}

/// What went wrong, as one sentence; the command prints it after `polyak:` and exits 1.
struct ClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The server's REST API over AsyncHTTPClient (one event loop, no busy waiting).
struct APIClient: Sendable {
    let base: String
    let token: String?

    /// A refused connection fails at once (the default retries until the deadline): a command
    /// run with no server says so instead of waiting a minute.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        return HTTPClient(configuration: configuration)
    }()

    func url(_ path: String) -> String { base + path }

    func request(_ method: String, _ path: String, body: Data? = nil, accept: String = "application/json") -> HTTPClientRequest {
        var r = HTTPClientRequest(url: base + path)
        r.method = .RAW(value: method)
        r.headers.add(name: "Accept", value: accept)
        if let token { r.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            r.body = .bytes(ByteBuffer(bytes: body))
            r.headers.add(name: "Content-Type", value: "application/json")
        }
        return r
    }

    /// The answer's body; an error status becomes the server's own sentence naming the field.
    func send(_ method: String, _ path: String, body: Data? = nil, accept: String = "application/json") async throws -> Data {
        let data: Data
        let status: Int
        do {
            let response = try await Self.http.execute(request(method, path, body: body, accept: accept), timeout: .seconds(60))
            status = Int(response.status.code)
            data = Data(buffer: try await response.body.collect(upTo: 256 << 20))
        } catch {
            throw unreachable(error)
        }
        guard (200..<300).contains(status) else { throw Self.refusal(status: status, body: data, method: method, path: path) }
        return data
    }

    func json(_ path: String) async throws -> JSONValue { try await json("GET", path) }

    func json(_ method: String, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        let data = try await send(method, path, body: body.map { $0.data() })
        do {
            return try JSONValue.parse(data)
        } catch {
            throw ClientError("the server's answer to \(method) \(path) is not JSON (\(error)); is \(base) a Polyak server?")
        }
    }

    func unreachable(_ error: Error) -> ClientError {
        ClientError(
            "cannot reach a Polyak server at \(base) (\(Self.reason(error))); start one with `polyak serve` or name it with --server"
        )
    }

    /// NIO's words for the common failures, shortened ("connection refused" rather than the errno dump).
    static func reason(_ error: Error) -> String {
        let text = "\(error)"
        for known in ["Connection refused", "No route to host", "Network is unreachable"] where text.contains(known) {
            return known.lowercased()
        }
        if let e = error as? HTTPClientError { return e.shortDescription }
        return text
    }

    /// `{"error": {"status", "message", "field"}}` as one sentence; the status alone when the body says nothing.
    static func refusal(status: Int, body: Data, method: String, path: String) -> ClientError {
        let error = (try? JSONValue.parse(body))?["error"]
        guard let message = error?["message"]?.stringValue else {
            let hint = status == 401 ? " (give the token with --token-file or POLYAK_TOKEN)" : ""
            return ClientError("the server answered \(status) to \(method) \(path)\(hint)")
        }
        var text = message
        if let field = error?["field"]?.stringValue, !field.isEmpty, !message.contains(field) { text += " (field \(field))" }
        if status == 401 { text += "; give the token with --token-file or POLYAK_TOKEN" }
        return ClientError(text)
    }
}

extension JSONValue {
    var int: Int? { doubleValue.flatMap { $0.isFinite && abs($0) < 1e15 ? Int($0) : nil } }
    var items: [JSONValue] {
        if case .array(let a) = self { return a }
        return []
    }
    var fields: [String: JSONValue] {
        if case .object(let o) = self { return o }
        return [:]
    }
    /// A run's variants: those a shared run serves (`variants`), else its one `variant`.
    var runVariants: String? {
        let shared = self["variants"]?.items.compactMap(\.stringValue) ?? []
        return shared.isEmpty ? self["variant"]?.stringValue : shared.joined(separator: "+")
    }
}

/// Runs a client command's body, printing its error as `polyak: …` with exit status 1.
func runClient(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as ClientError {
        TerminalStream.standardError.line("polyak: \(e.description)")
        throw ExitCode(1)
    }
}
