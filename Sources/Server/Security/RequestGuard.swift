import Foundation
import Hummingbird
import NIOCore

/// The port the server listens on, learned once it listens (`--port 0` picks one).
final class ListeningPort: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int?
    init(_ port: Int) { value = port == 0 ? nil : port }
    var port: Int? { lock.withLock { value } }
    func set(_ port: Int?) { lock.withLock { if let port { value = port } } }
}

/// Whether the request in flight came signed in: the layout shows "Sign in" or "Sign out" from it.
enum Visitor {
    enum State: Sendable { case open, signedIn, signedOut }
    @TaskLocal static var state: State = .open
}

extension HTTPRequest.Method {
    /// POST, PUT, PATCH, DELETE: what changes state and needs the origin and token checks.
    var isWrite: Bool { !(self == .get || self == .head || self == .options) }
}

/// The checks every request passes before a route sees it, in this order:
/// 1. `Host` names this server (a DNS-rebinding page sends its own name): else 421;
/// 2. a write whose `Origin` is another site's, or that a browser marks `Sec-Fetch-Site: cross-site`,
///    is refused (403): a "simple" cross-site POST needs no preflight, so CORS alone does not stop it;
/// 3. a JSON API write declares `Content-Type: application/json` (415), which a cross-site form or
///    `fetch` cannot send without a preflight;
/// 4. with a token: writes (and with `--private` reads) carry it as a bearer token or the sign-in
///    cookie (401; pages' GETs are sent to the sign-in form instead).
struct RequestGuard<Context: RequestContext>: RouterMiddleware {
    let policy: AccessPolicy
    let listening: ListeningPort
    /// The `--host` the server was given, admitted as a `Host` name when it is a specific address.
    let bindHost: String
    /// Paths open to anyone whatever the token: signing in and out, the static files, health.
    let openPaths: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        try checkHost(request)
        let write = request.method.isWrite
        if write { try checkOrigin(request) }
        // An MLflow artifact upload is a file in its own type; PUT needs a preflight cross-site, so no form can send it.
        let upload = request.method == .put && request.uri.path.hasPrefix(MLflowArtifacts.prefix + "/")
        // MLflow's routes answer under /ajax-api/ too (its web UI's prefix): the same API.
        let api = request.uri.path.hasPrefix("/api/") || request.uri.path.hasPrefix("/ajax-api/")
        if write && api && !upload { try checkJSONContentType(request) }
        let guardedRead = policy.privateReads && request.method != .options  // a preflight carries no credentials
        if policy.token != nil && (write || guardedRead) && !openPaths.contains(request.uri.path) {
            switch credentials(request) {
            case .valid: break
            case .none where !write && !api:
                // A person opening a page of a private server: to the form, and back afterwards.
                let next = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
                return Response(status: .seeOther, headers: [.location: "/sign-in?next=" + Self.queryEscaped(next)])
            case .none:
                throw APIError(
                    .unauthorized,
                    "this server needs its token for \(write ? "writes" : "reads"): send "
                        + "Authorization: Bearer <token> (the token is in the file given to polyak serve --token-file) or sign in at /sign-in"
                )
            case .wrong:
                throw APIError(.unauthorized, "the bearer token does not match this server's token")
            }
        }
        return try await next(request, context)
    }

    // MARK: Host

    func checkHost(_ request: Request) throws {
        guard let authority = request.head.authority?.lowercased(), !authority.isEmpty else {
            throw APIError(.badRequest, "the request has no Host header")
        }
        let (name, port) = Self.split(authority)
        let ownPort = listening.port
        let portMatches = port == nil || ownPort == nil || port == ownPort
        if portMatches && (name == "localhost" || name == "127.0.0.1" || name == "[::1]") { return }
        let bind = bindHost.lowercased()
        if portMatches && !bind.isEmpty && bind != "0.0.0.0" && bind != "::" && (name == bind || name == "[\(bind)]") { return }
        if policy.allowedHosts.contains(name) || policy.allowedHosts.contains(authority) { return }
        throw APIError(
            .misdirectedRequest,
            "Host \(authority) does not name this server; if it should, start polyak serve with --allowed-host \(name)")
    }

    /// `example.com:8080` → ("example.com", 8080); `[::1]:8080` → ("[::1]", 8080).
    static func split(_ authority: String) -> (name: String, port: Int?) {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            let name = String(authority[...close])
            let rest = authority[authority.index(after: close)...]
            return (name, rest.hasPrefix(":") ? Int(rest.dropFirst()) : nil)
        }
        guard let colon = authority.lastIndex(of: ":") else { return (authority, nil) }
        return (String(authority[..<colon]), Int(authority[authority.index(after: colon)...]))
    }

    // MARK: Origin

    func checkOrigin(_ request: Request) throws {
        if let origin = request.headers[.origin] {
            let normalized = AccessPolicy.normalizedOrigin(origin)
            if policy.allowedOrigins.contains(normalized) { return }
            if let url = URL(string: normalized), let host = url.host, url.scheme == "http" || url.scheme == "https" {
                let named = (host.contains(":") ? "[\(host)]" : host) + (url.port.map { ":\($0)" } ?? "")
                if named == request.head.authority?.lowercased() { return }
            }
            throw APIError(
                .forbidden,
                "a write from the origin \(origin) is refused: only this server's own pages (and origins given with "
                    + "--allow-origin) may change it")
        }
        if request.headers[.secFetchSite]?.lowercased() == "cross-site" {
            throw APIError(.forbidden, "a cross-site write (Sec-Fetch-Site: cross-site) is refused")
        }
    }

    // MARK: Content type

    /// A declared type must be JSON; no type is accepted only without a declared length (a client
    /// that streams an empty body, as NIO's does for a bodiless POST). Browsers always name the
    /// type of a body they send, so a cross-site form or `fetch` never passes with `text/plain`.
    func checkJSONContentType(_ request: Request) throws {
        let type = request.headers[.contentType] ?? ""
        if type.isEmpty {
            let length = request.headers[.contentLength].flatMap { Int($0) } ?? 0
            guard length > 0 else { return }
        }
        let media = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        if media == "application/json" || (media.hasPrefix("application/") && media.hasSuffix("+json")) { return }
        throw APIError(
            .unsupportedMediaType,
            "a JSON body needs Content-Type: application/json, got \(type.isEmpty ? "no Content-Type" : type) "
                + "(with curl: --json @file.json)")
    }

    // MARK: Token

    enum Credentials { case none, valid, wrong }

    func credentials(_ request: Request) -> Credentials {
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { return .wrong }
            return policy.isToken(parts[1].trimmingCharacters(in: .whitespaces)) ? .valid : .wrong
        }
        if let cookie = request.cookies[SignIn.cookieName], policy.isSession(cookie.value) { return .valid }
        return .none
    }

    static func queryEscaped(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? "/"
    }
}

enum SecurityHeaders {
    /// Pages load only this server's files; no inline script anywhere. `style-src-attr
    /// 'unsafe-inline'` is for the heat-map cells and legend, whose colours are computed per value
    /// (style attributes only; no inline `<style>` element is allowed). The SVG charts use
    /// presentation attributes, which CSP does not govern.
    static let contentSecurityPolicy =
        "default-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; "
        + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

extension HTTPFields.Element.Name {
    static let secFetchSite = Self("Sec-Fetch-Site")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xFrameOptions = Self("X-Frame-Options")!
}

/// The outermost layer: records whether the visitor is signed in (for the layout), turns errors
/// into responses here so that they too get the headers, and adds the headers every answer carries.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: AccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        let state: Visitor.State
        if policy.token == nil {
            state = .open
        } else if let cookie = request.cookies[SignIn.cookieName], policy.isSession(cookie.value) {
            state = .signedIn
        } else {
            state = .signedOut
        }
        var response: Response
        do {
            response = try await Visitor.$state.withValue(state) { try await next(request, context) }
        } catch let e as HTTPResponseError {
            response = try e.response(from: request, context: context)
            if e.status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer realm=\"polyak\"" }
        }
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.referrerPolicy] = "same-origin"
        response.headers[.contentSecurityPolicy] = SecurityHeaders.contentSecurityPolicy
        response.headers[.xFrameOptions] = "DENY"
        if request.method.isWrite && request.uri.path.hasPrefix("/api/") { response.headers[.cacheControl] = "no-store" }
        if let origin = request.headers[.origin], policy.allowedOrigins.contains(AccessPolicy.normalizedOrigin(origin)) {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.accessControlExposeHeaders] = "X-Next-Cursor"
            response.headers[values: .vary].append("Origin")
        }
        return response
    }
}

/// A browser's CORS preflight for an origin given with `--allow-origin`; other origins get no CORS
/// headers at all, so their pages cannot read answers or send JSON.
struct PreflightMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: AccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        guard request.method == .options, request.headers[.accessControlRequestMethod] != nil,
            let origin = request.headers[.origin], policy.allowedOrigins.contains(AccessPolicy.normalizedOrigin(origin))
        else { return try await next(request, context) }
        return Response(
            status: .noContent,
            headers: [
                .accessControlAllowMethods: "GET, POST, PATCH, DELETE", .accessControlAllowHeaders: "Content-Type, Authorization",
                .accessControlMaxAge: "600",
            ])
    }
}
