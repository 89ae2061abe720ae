import Foundation
import Hummingbird

/// The sign-in form of a server started with a token: it sets an `HttpOnly; SameSite=Strict` cookie
/// derived from the token, which the pages' form posts then carry; sign-out clears it.
struct SignIn: Sendable {
    static let cookieName = "polyak_session"
    let policy: AccessPolicy
    let renderer: PageRenderer
    let queue: @Sendable () -> String

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/sign-in") { request, _ in
            try await form(next: request.uri.queryParameters.get("next"), error: nil, status: .ok)
        }
        router.post("/sign-in") { request, _ in try await signIn(request) }
        router.post("/sign-out") { _, _ in signOut() }
    }

    func form(next: String?, error: String?, status: HTTPResponse.Status) async throws -> Response {
        let queueLine = try await Blocking.run(queue)  // the header's queue line reads the store
        let model: [String: Any] = ["next": Self.localPath(next), "error": error as Any, "privateReads": policy.privateReads]
        return renderer.response(renderer.html("signin", model, title: "Sign in", queue: queueLine), status: status)
    }

    func signIn(_ request: Request) async throws -> Response {
        let posted = try await PagesController.form(request)
        let next = Self.localPath(posted.first("next"))
        guard let session = policy.sessionValue else { return PagesController.redirect(next) }  // no token: nothing to sign in to
        guard let token = posted.first("token"), policy.isToken(token) else {
            return try await form(next: next, error: "That is not this server's token.", status: .unauthorized)
        }
        var response = PagesController.redirect(next)
        // 30 days: the person stays signed in across browser restarts while the server runs for days.
        response.headers[.setCookie] = "\(Self.cookieName)=\(session); Path=/; Max-Age=2592000; HttpOnly; SameSite=Strict"
        return response
    }

    func signOut() -> Response {
        var response = PagesController.redirect("/")
        response.headers[.setCookie] = "\(Self.cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        return response
    }

    /// Only a path of this server: `//evil.example` or `https://…` would make the form an open redirect.
    static func localPath(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\"), !next.hasPrefix("/sign-") else {
            return "/"
        }
        return next
    }
}
