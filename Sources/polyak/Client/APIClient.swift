import ArgumentParser
import Experiments
import Foundation

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
        return APIClient(base: server, token: token)
    }
}

/// What went wrong, as one sentence; the command prints it after `polyak:` and exits 1.
struct ClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The server's REST API: JSON in and out through the one ``PolyakHTTP`` client, an error status
/// turned into the server's own sentence.
struct APIClient: Sendable {
    let http: PolyakHTTP

    init(base: String, token: String?) { http = PolyakHTTP(base: base, token: token) }

    var base: String { http.base }

    func url(_ path: String) -> String { http.url(path) }

    /// The answer's body; an error status becomes the server's own sentence naming the field.
    func send(_ method: String, _ path: String, body: Data? = nil, accept: String = "application/json") async throws -> Data {
        let answer: PolyakHTTP.Answer
        do {
            answer = try await http.send(method, path, body: body, accept: accept)
        } catch let e as PolyakHTTP.Unreachable {
            throw unreachable(e)
        }
        guard answer.isSuccess else { throw Self.refusal(status: answer.status, body: answer.body, method: method, path: path) }
        return answer.body
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

    func unreachable(_ e: PolyakHTTP.Unreachable) -> ClientError {
        ClientError(
            "cannot reach a Polyak server at \(base) (\(e.reason)); start one with `polyak serve` or name it with --server")
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
