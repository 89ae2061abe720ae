import Experiments
import Foundation
import Hummingbird
import Mustache

/// Renders pages from the embedded templates: a page's own template, then the layout around it.
struct PageRenderer: Sendable {
    let library: MustacheLibrary
    let version: String
    /// Changes whenever a file under Public/ does: links carry it, so browsers may cache for a year.
    let assetVersion: String

    /// A link in the breadcrumb trail of the header.
    struct Crumb { var label: String; var href: String }

    init(version: String) {
        var library = MustacheLibrary()
        for (name, text) in EmbeddedAssets.templates {
            // The templates are part of the binary and covered by tests; a broken one is a build defect.
            do { try library.register(text, named: name) } catch { preconditionFailure("template \(name): \(error)") }
        }
        self.library = library
        self.version = version
        var all = Data()
        for path in EmbeddedAssets.publicFiles.keys.sorted() {
            all.append(contentsOf: Array((path + "\0" + EmbeddedAssets.publicFiles[path]! + "\0").utf8))
        }
        assetVersion = String(SHA256.hex(all).prefix(12))
    }

    /// The page's HTML: `template` rendered with `model`, inside the layout.
    func html(_ template: String, _ model: Any, title: String, crumbs: [Crumb] = [], queue: String, refresh: Int? = nil) -> String
    {
        guard let body = library.render(model, withTemplate: template) else { preconditionFailure("no template \(template)") }
        let page: [String: Any] = [
            "title": title, "crumbs": crumbs, "queue": queue, "body": body, "assets": assetVersion, "version": version,
            "refresh": refresh as Any,
        ]
        return library.render(page, withTemplate: "layout")!
    }

    func response(_ html: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
            body: .init(byteBuffer: ByteBuffer(string: Self.withAccount(html))))
    }

    /// Cached pages are everyone's: the visitor's own "Sign in" / "Sign out" goes in after the cache.
    static let accountMarker = "<!--polyak:account-->"

    static func withAccount(_ html: String) -> String {
        let snippet: String
        switch Visitor.state {
        case .open: snippet = ""
        case .signedOut: snippet = #"<a class="account" href="/sign-in">Sign in</a>"#
        case .signedIn:
            snippet = #"<form class="account" method="post" action="/sign-out"><button type="submit">Sign out</button></form>"#
        }
        // The marker sits in the header: look only there, byte-wise (a page can be 400 KB, and
        // Foundation's `range(of:)` over all of it cost ~8 % of the 1 000-run page's render).
        guard let range = html.utf8.prefix(4096).firstRange(of: accountMarker.utf8) else { return html }
        var page = String()
        page.reserveCapacity(html.utf8.count + snippet.utf8.count)
        page += html[..<range.lowerBound]
        page += snippet
        page += html[range.upperBound...]
        return page
    }

    /// 404, 400, 500… in the site's style, with the message the API would give.
    func error(status: HTTPResponse.Status, message: String, queue: String) -> Response {
        let heading: String
        switch status {
        case .notFound: heading = "Not found"
        case .badRequest: heading = "That request could not be used"
        case .conflict: heading = "Not possible right now"
        default: heading = status.code >= 500 ? "Something went wrong on the server" : status.reasonPhrase
        }
        let model: [String: Any] = ["heading": heading, "status": "\(status.code) \(status.reasonPhrase)", "message": message]
        return response(html("error", model, title: heading, queue: queue), status: status)
    }
}
