import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// Requests from elsewhere, over real HTTP against a real SQLite file: other sites' pages, DNS
/// rebinding, the token and its sign-in form, the headers every answer carries.
final class SecurityTests: XCTestCase {
    let experiment = #"{"name": "x", "variants": ["none"], "seeds": [0]}"#

    func testAnotherSitesPageCannotWrite() async throws {
        let folder = try TempFolder()
        try await buildApplication(options(folder)).test(.live) { client in
            // The "simple" request any page can send without a preflight: text/plain, another Origin.
            let simple = try await client.call(
                .post, "/api/experiments", experiment, headers: [.contentType: "text/plain", .origin: "http://evil.example"])
            try assertError(simple, .forbidden, field: nil, contains: "http://evil.example")
            let fetchMeta = try await client.call(
                .post, "/api/experiments", experiment, headers: [.secFetchSite: "cross-site"])
            try assertError(fetchMeta, .forbidden, field: nil, contains: "cross-site")
            let nullOrigin = try await client.call(.delete, "/api/runs/1", headers: [.origin: "null"])
            XCTAssertEqual(nullOrigin.status, .forbidden)
            // Same origin but not JSON: 415 naming what came.
            let plain = try await client.call(.post, "/api/experiments", experiment, headers: [.contentType: "text/plain"])
            try assertError(plain, .unsupportedMediaType, field: nil, contains: "got text/plain")
            let form = try await client.call(
                .post, "/api/runs?launch=false", "name=x", headers: [.contentType: "application/x-www-form-urlencoded"])
            XCTAssertEqual(form.status, .unsupportedMediaType)
            let port = try XCTUnwrap(client.port)
            let untyped = try RawConnection.exchange(
                port: port,
                "POST /api/experiments HTTP/1.1\r\nHost: localhost:\(port)\r\nContent-Length: \(experiment.utf8.count)\r\n"
                    + "Connection: close\r\n\r\n\(experiment)")
            XCTAssertEqual(untyped.status, 415, untyped.text)
            XCTAssertTrue(untyped.text.contains("got no Content-Type"), untyped.text)
            let listed = try await client.json(.get, "/api/experiments")
            XCTAssertEqual(listed["experiments"]?.count, 0, "nothing was created: \(listed)")
            // Our own pages' origin and plain scripts (no Origin) may write.
            let own = try await client.call(
                .post, "/api/runs?launch=false", #"{"name": "a"}"#, headers: [.origin: "http://localhost"])
            XCTAssertEqual(own.status, .created, String(buffer: own.body))
            let script = try await client.call(.post, "/api/runs?launch=false", #"{"name": "b"}"#)
            XCTAssertEqual(script.status, .created)
            // No CORS headers for anyone unless --allow-origin names them.
            let read = try await client.call(.get, "/api/runs", headers: [.origin: "http://evil.example"])
            XCTAssertEqual(read.status, .ok)
            XCTAssertNil(read.headers[.accessControlAllowOrigin])
        }
    }

    func testHostMustNameTheServer() async throws {
        let folder = try TempFolder()
        var opts = options(folder)
        opts.access = AccessPolicy(allowedHosts: ["polyak.lab"])
        try await buildApplication(opts).test(.live) { client in
            let port = try XCTUnwrap(client.port)
            _ = try await client.json(.post, "/api/runs?launch=false", #"{"name": "keep me"}"#, expect: .created)
            for host in ["attacker.example:\(port)", "attacker.example", "127.0.0.1.nip.io:\(port)"] {
                for (method, path) in [("GET", "/api/runs"), ("DELETE", "/api/runs/1"), ("GET", "/")] {
                    let r = try RawConnection.exchange(
                        port: port, "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
                    XCTAssertEqual(r.status, 421, "\(method) \(path) with Host \(host): \(r.text)")
                    XCTAssertTrue(r.text.contains("--allowed-host"), r.text)
                }
            }
            for host in ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)", "polyak.lab:\(port)", "LOCALHOST:\(port)"] {
                let r = try RawConnection.exchange(
                    port: port, "GET /api/runs HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
                XCTAssertEqual(r.status, 200, "Host \(host): \(r.text)")
            }
            let otherPort = try RawConnection.exchange(
                port: port, "GET /api/runs HTTP/1.1\r\nHost: localhost:\(port + 1)\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(otherPort.status, 421)
            let run = try await client.json(.get, "/api/runs/1")
            XCTAssertEqual(run["name"]?.stringValue, "keep me", "the rebinding DELETE changed nothing")
        }
    }

    func testTokenGuardsWrites() async throws {
        let folder = try TempFolder()
        var opts = options(folder)
        let token = "s3cret-token-0123456789"
        opts.access = AccessPolicy(token: token)
        try await buildApplication(opts).test(.live) { client in
            let none = try await client.call(.post, "/api/runs?launch=false", #"{"name": "a"}"#)
            try assertError(none, .unauthorized, field: nil, contains: "Authorization: Bearer")
            XCTAssertEqual(none.headers[.wwwAuthenticate], "Bearer realm=\"polyak\"")
            let wrong = try await client.call(
                .post, "/api/runs?launch=false", #"{"name": "a"}"#, headers: [.authorization: "Bearer s3cret-token-0123456780"])
            try assertError(wrong, .unauthorized, field: nil, contains: "does not match")
            let basic = try await client.call(.delete, "/api/runs/1", headers: [.authorization: "Basic eDp5"])
            XCTAssertEqual(basic.status, .unauthorized)
            let good = try await client.call(
                .post, "/api/runs?launch=false", #"{"name": "a"}"#, headers: [.authorization: "Bearer \(token)"])
            XCTAssertEqual(good.status, .created, String(buffer: good.body))
            // Reads stay open without --private; the form posts of the pages need signing in.
            _ = try await client.json(.get, "/api/runs/1")
            let page = try await client.call(.get, "/runs/1")
            XCTAssertEqual(page.status, .ok)
            XCTAssertTrue(String(buffer: page.body).contains(#"href="/sign-in">Sign in</a>"#))
            let cancel = try await client.call(.post, "/runs/1/cancel")
            XCTAssertEqual(cancel.status, .unauthorized)
            XCTAssertTrue(String(buffer: cancel.body).contains("<!doctype html>"), "a page, not JSON")

            // The sign-in form: a wrong token keeps the visitor out, the right one sets the cookie.
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            let bad = try await client.call(.post, "/sign-in", "token=nope&next=%2Fruns%2F1", headers: form)
            XCTAssertEqual(bad.status, .unauthorized)
            XCTAssertNil(bad.headers[.setCookie])
            let signIn = try await client.call(.post, "/sign-in", "token=\(token)&next=%2Fruns%2F1", headers: form)
            XCTAssertEqual(signIn.status, .seeOther)
            XCTAssertEqual(signIn.headers[.location], "/runs/1")
            let cookie = try XCTUnwrap(signIn.headers[.setCookie])
            XCTAssertTrue(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), cookie)
            XCTAssertFalse(cookie.contains(token), "the cookie is derived from the token, not the token")
            let session = String(cookie.split(separator: ";")[0])
            let signedIn = try await client.call(.get, "/runs/1", headers: [.cookie: session])
            XCTAssertTrue(String(buffer: signedIn.body).contains(#"action="/sign-out""#))
            let cancelled = try await client.call(.post, "/runs/1/cancel", headers: [.cookie: session])
            XCTAssertEqual(cancelled.status, .seeOther, String(buffer: cancelled.body))
            // An open redirect through `next` is refused.
            let away = try await client.call(.post, "/sign-in", "token=\(token)&next=%2F%2Fevil.example", headers: form)
            XCTAssertEqual(away.headers[.location], "/")
            let signOut = try await client.call(.post, "/sign-out", headers: [.cookie: session])
            XCTAssertTrue(signOut.headers[.setCookie]?.contains("Max-Age=0") == true)
        }
    }

    func testPrivateServerGuardsReads() async throws {
        let folder = try TempFolder()
        var opts = options(folder)
        let token = "another-token-abcdefghij"
        opts.access = AccessPolicy(token: token, privateReads: true)
        try await buildApplication(opts).test(.live) { client in
            let runs = try await client.call(.get, "/api/runs")
            try assertError(runs, .unauthorized, field: nil)
            let health = try await client.call(.get, "/api/health")
            XCTAssertEqual(health.status, .ok)
            let style = try await client.call(.get, "/css/polyak.css")
            XCTAssertEqual(style.status, .ok)
            let page = try await client.call(.get, "/experiments/1?metric=test/top1")
            XCTAssertEqual(page.status, .seeOther)
            XCTAssertEqual(page.headers[.location], "/sign-in?next=/experiments/1%3Fmetric%3Dtest/top1")
            let signInPage = try await client.call(.get, "/sign-in?next=/experiments/1")
            XCTAssertEqual(signInPage.status, .ok)
            XCTAssertTrue(String(buffer: signInPage.body).contains(#"name="next" value="/experiments/1""#))
            let reads = try await client.call(.get, "/api/runs", headers: [.authorization: "Bearer \(token)"])
            XCTAssertEqual(reads.status, .ok)
        }
    }

    func testHeadersAndAllowedOrigins() async throws {
        let folder = try TempFolder()
        var opts = options(folder)
        opts.access = AccessPolicy(allowedOrigins: ["http://localhost:3000/"])
        try await buildApplication(opts).test(.live) { client in
            let home = try await client.call(.get, "/")
            let csp = try XCTUnwrap(home.headers[.contentSecurityPolicy])
            XCTAssertTrue(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), csp)
            XCTAssertFalse(csp.contains("script-src") && csp.contains("unsafe-inline';"), csp)
            XCTAssertEqual(home.headers[.xContentTypeOptions], "nosniff")
            XCTAssertEqual(home.headers[.referrerPolicy], "same-origin")
            let missing = try await client.call(.get, "/api/runs/77")
            XCTAssertEqual(missing.headers[.xContentTypeOptions], "nosniff", "errors carry the headers too")
            let write = try await client.call(.post, "/api/runs?launch=false", #"{"name": "a"}"#)
            XCTAssertEqual(write.headers[.cacheControl], "no-store")

            let preflight = try await client.call(
                .options, "/api/runs",
                headers: [.origin: "http://localhost:3000", .accessControlRequestMethod: "POST"])
            XCTAssertEqual(preflight.status, .noContent)
            XCTAssertTrue(preflight.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
            let allowed = try await client.call(
                .post, "/api/runs?launch=false", #"{"name": "b"}"#, headers: [.origin: "http://localhost:3000"])
            XCTAssertEqual(allowed.status, .created)
            XCTAssertEqual(allowed.headers[.accessControlAllowOrigin], "http://localhost:3000")
            let other = try await client.call(
                .post, "/api/runs?launch=false", #"{"name": "c"}"#, headers: [.origin: "http://localhost:3001"])
            XCTAssertEqual(other.status, .forbidden)
        }
    }

    /// The templates hold no inline script (the CSP would block it) and no event-handler attribute.
    func testTemplatesHaveNoInlineScript() throws {
        let inlineScript = try NSRegularExpression(pattern: #"<script(?![^>]*\ssrc=)[^>]*>"#, options: [.caseInsensitive])
        let handler = try NSRegularExpression(pattern: #"\son[a-z]+\s*="#, options: [.caseInsensitive])
        for (name, text) in EmbeddedAssets.templates {
            let range = NSRange(text.startIndex..., in: text)
            XCTAssertNil(inlineScript.firstMatch(in: text, range: range), "inline <script> in \(name)")
            XCTAssertNil(handler.firstMatch(in: text, range: range), "event handler attribute in \(name)")
            XCTAssertFalse(text.contains("javascript:"), "javascript: URL in \(name)")
        }
    }

    func testTokenFile() throws {
        let folder = try TempFolder()
        let path = folder.url.appendingPathComponent("token").path
        let (created, isNew) = try AccessPolicy.token(fromFile: path)
        XCTAssertTrue(isNew)
        XCTAssertEqual(created.count, 64)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
        let (again, isNewAgain) = try AccessPolicy.token(fromFile: path)
        XCTAssertEqual(again, created)
        XCTAssertFalse(isNewAgain)
        try "  \n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AccessPolicy.token(fromFile: path)) { XCTAssertTrue("\($0)".contains("is empty"), "\($0)") }
        XCTAssertTrue(AccessPolicy.constantTimeEqual("abc", "abc"))
        XCTAssertFalse(AccessPolicy.constantTimeEqual("abc", "abd"))
        XCTAssertFalse(AccessPolicy.constantTimeEqual("abc", "abcd"))
    }
}
