import Hummingbird
import Logging
import Store

/// An error as MLflow's server answers it: `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "…"}`
/// with the HTTP status MLflow gives that code (its `ERROR_CODE_TO_HTTP_STATUS`), which the mlflow
/// client turns back into an `MlflowException` with the same code.
struct MLflowError: Error, HTTPResponseError, CustomStringConvertible {
    enum Code: String {
        case invalidParameterValue = "INVALID_PARAMETER_VALUE"
        case resourceDoesNotExist = "RESOURCE_DOES_NOT_EXIST"
        case resourceAlreadyExists = "RESOURCE_ALREADY_EXISTS"
        case resourceConflict = "RESOURCE_CONFLICT"
        case endpointNotFound = "ENDPOINT_NOT_FOUND"
        case unauthenticated = "UNAUTHENTICATED"
        case permissionDenied = "PERMISSION_DENIED"
        case requestLimitExceeded = "REQUEST_LIMIT_EXCEEDED"
        case badRequest = "BAD_REQUEST"
        case internalError = "INTERNAL_ERROR"

        var status: HTTPResponse.Status {
            switch self {
            case .invalidParameterValue, .resourceAlreadyExists, .badRequest: .badRequest
            case .resourceDoesNotExist, .endpointNotFound: .notFound
            case .resourceConflict: .conflict
            case .unauthenticated: .unauthorized
            case .permissionDenied: .forbidden
            case .requestLimitExceeded: .tooManyRequests
            case .internalError: .internalServerError
            }
        }
    }

    var code: Code
    var message: String
    /// Set when the status differs from the code's usual one (a body past the cap is 413).
    var statusOverride: HTTPResponse.Status?

    init(_ code: Code, _ message: String, status: HTTPResponse.Status? = nil) {
        self.code = code
        self.message = message
        statusOverride = status
    }

    var status: HTTPResponse.Status { statusOverride ?? code.status }
    var description: String { "\(code.rawValue): \(message)" }

    static func invalid(_ message: String) -> MLflowError { MLflowError(.invalidParameterValue, message) }
    static func missing(_ name: String) -> MLflowError { invalid("Missing value for required parameter '\(name)'.") }
    static func noRun(_ id: String) -> MLflowError { MLflowError(.resourceDoesNotExist, "Run with id=\(id) not found") }
    static func noExperiment(_ id: String) -> MLflowError {
        MLflowError(.resourceDoesNotExist, "No Experiment with id=\(id) exists")
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        try Reply.view(MLflowErrorView(errorCode: code.rawValue, message: message), status: status)
    }

    /// Any error a handler throws, in MLflow's terms (never a bare 500 with internals).
    static func from(_ error: any Error, request: Request, logger: Logger) -> MLflowError {
        switch error {
        case let e as MLflowError: return e
        case let e as APIError:
            let code: Code =
                switch e.status.code {
                case 404: .resourceDoesNotExist
                case 401: .unauthenticated
                case 403: .permissionDenied
                case 409: .resourceConflict
                case 429: .requestLimitExceeded
                default: .invalidParameterValue
                }
            return MLflowError(code, e.message, status: e.status.code == 413 || e.status.code == 415 ? e.status : nil)
        case let e as HTTPError:
            if e.status == .contentTooLarge {
                return MLflowError(.invalidParameterValue, "request body too large", status: .contentTooLarge)
            }
            return MLflowError(
                .invalidParameterValue, e.body ?? e.status.reasonPhrase, status: e.status.code < 500 ? e.status : nil)
        case let e as MetricConflict:
            return MLflowError(
                .resourceConflict,
                "Metric \(e.point.key) at step \(e.point.step) is already stored with value \(e.stored.wireText), not "
                    + "\(e.point.value.wireText); Polyak keeps one value per (run, key, step)")
        case let e as CapReached:
            return MLflowError(.resourceConflict, e.description)
        case MLflowStoreError.experimentNameTaken(let name):
            return MLflowError(.resourceAlreadyExists, "Experiment '\(name)' already exists.")
        case MLflowStoreError.paramChanged(let key, let stored, let given):
            return .invalid(
                "Changing param values is not allowed. Param with key='\(key)' was already logged with value='\(stored)'. "
                    + "The attempted new value was '\(given)'.")
        default:
            let id = ErrorShapeMiddleware<AppRequestContext>.requestID()
            logger.error("request \(id) \(request.method) \(request.uri.path) failed: \(error)")
            return MLflowError(.internalError, "internal error (request \(id))")
        }
    }
}

/// Answers every error of the MLflow routes in MLflow's shape (the API's own shape is for `/api/…`).
struct MLflowErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            return try MLflowError.from(error, request: request, logger: context.logger).response(from: request, context: context)
        }
    }
}

struct MLflowErrorView: Encodable {
    var errorCode: String
    var message: String
    enum CodingKeys: String, CodingKey { case errorCode = "error_code", message }
}
