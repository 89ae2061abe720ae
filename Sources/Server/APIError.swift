import Experiments
import Hummingbird
import Store

/// An error as the API answers it: `{"error": {"status": 400, "message": "…", "field": "…"}}`.
///
/// `field` names the offending part of the request (`optim.lr`, `metrics[3].value`, `cursor`) or
/// is `null` when the request as a whole is at fault.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var field: String?

    public init(_ status: HTTPResponse.Status, _ message: String, field: String? = nil) {
        self.status = status
        self.message = message
        self.field = field
    }

    public var description: String { "\(status.code) \(message)" + (field.map { " (\($0))" } ?? "") }

    static func badRequest(_ message: String, field: String? = nil) -> APIError { APIError(.badRequest, message, field: field) }
    static func notFound(_ message: String) -> APIError { APIError(.notFound, message) }
    static func conflict(_ message: String, field: String? = nil) -> APIError { APIError(.conflict, message, field: field) }

    /// A spec refused by validation: its sentence and its field.
    /// `field` is null when the document as a whole is at fault (it is not JSON, say).
    init(spec e: SpecError, prefix: String = "") {
        let field = prefix.isEmpty ? e.field : (e.field.isEmpty ? String(prefix.dropLast()) : prefix + e.field)
        if field.isEmpty {
            self.init(.badRequest, "body: " + e.message, field: nil)
        } else {
            self.init(.badRequest, e.field.isEmpty ? "\(field): \(e.message)" : "\(field) \(e.message)", field: field)
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        try Reply.view(ErrorView(error: .init(status: status.code, message: message, field: field)), status: status)
    }
}

/// Gives every error the API's JSON shape: route misses and body limits from Hummingbird, store
/// failures, anything unexpected (logged, answered 500 without internals).
struct ErrorShapeMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            throw e
        } catch let e as HTTPError {
            let message: String
            switch e.status {
            case .notFound: message = "no route for \(request.method) \(request.uri.path)"
            case .contentTooLarge: message = "request body too large"
            case .methodNotAllowed: message = "\(request.method) is not allowed on \(request.uri.path)"
            default: message = e.body ?? e.status.reasonPhrase
            }
            throw APIError(e.status, message)
        } catch let e as MetricConflict {
            throw APIError(.conflict, e.description, field: "metrics[\(e.index)].value")
        } catch {
            // SQL text and internals stay in the log: the answer carries only an id to find them by.
            let id = Self.requestID()
            context.logger.error("request \(id) \(request.method) \(request.uri.path) failed: \(error)")
            throw APIError(.internalServerError, "internal error (request \(id))")
        }
    }

    /// A short random id (12 hex digits) that ties a 500 to its line in the server log.
    static func requestID() -> String {
        let n = UInt64.random(in: 0..<(1 << 48))
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 12 - hex.count) + hex
    }
}
