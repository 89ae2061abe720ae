import Experiments
import Foundation
import Hummingbird

/// Serves the embedded `Public/` files (`/css/polyak.css`, `/js/polyak.js`, `/favicon.svg`) with
/// their content types, an ETag, and a year of caching when the link carries the current version.
struct StaticFilesMiddleware<Context: RequestContext>: RouterMiddleware {
    struct File: Sendable {
        var bytes: [UInt8]
        var contentType: String
        var etag: String
    }

    let files: [String: File]
    let version: String

    init(version: String) {
        var files: [String: File] = [:]
        for (path, text) in EmbeddedAssets.publicFiles {
            let bytes = Array(text.utf8)
            files["/" + path] = File(
                bytes: bytes, contentType: Self.contentType(path), etag: "\"" + String(SHA256.hex(of: bytes).prefix(16)) + "\"")
        }
        self.files = files
        self.version = version
    }

    static func contentType(_ path: String) -> String {
        switch (path as NSString).pathExtension {
        case "css": return "text/css; charset=utf-8"
        case "js": return "text/javascript; charset=utf-8"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "html": return "text/html; charset=utf-8"
        case "txt": return "text/plain; charset=utf-8"
        default: return "application/octet-stream"
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        guard request.method == .get || request.method == .head, let file = files[request.uri.path] else {
            return try await next(request, context)
        }
        // A versioned link names these exact bytes forever; an unversioned one must revalidate.
        let versioned = request.uri.queryParameters.get("v") == version
        var headers: HTTPFields = [
            .contentType: file.contentType, .eTag: file.etag,
            .cacheControl: versioned ? "public, max-age=31536000, immutable" : "public, max-age=0, must-revalidate",
        ]
        if let match = request.headers[.ifNoneMatch],
            match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == file.etag })
        {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentLength] = String(file.bytes.count)
        let body: ResponseBody = request.method == .head ? .init() : .init(byteBuffer: ByteBuffer(bytes: file.bytes))
        return Response(status: .ok, headers: headers, body: body)
    }
}
