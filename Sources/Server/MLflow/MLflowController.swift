import Hummingbird
import NIOCore

/// MLflow's REST API: the routes its Python client calls, under `/api/2.0/mlflow/` and (as MLflow's
/// own UI calls them) `/ajax-api/2.0/mlflow/`, plus the artifact proxy. Every error is answered in
/// MLflow's shape (``MLflowErrorMiddleware``). Writes go through the same guards as Polyak's API:
/// the token (`MLFLOW_TRACKING_TOKEN` is sent as a bearer token), origin and JSON content type.
struct MLflowController: Sendable {
    let service: MLflowService
    let artifacts: MLflowArtifacts

    init(context: ServiceContext) {
        service = MLflowService(context: context)
        artifacts = MLflowArtifacts(context: context)
    }

    /// `{}`: what MLflow answers a write with.
    static let emptyObject = Array("{}".utf8)

    typealias Handler = @Sendable (MLflowService, MLflowArgs) async throws -> any Encodable

    /// Method, path under the prefix, handler.
    static let endpoints: [(HTTPRequest.Method, String, Handler)] = [
        (.post, "experiments/create", { try await $0.createExperiment($1) }),
        (.get, "experiments/get", { try await $0.getExperiment($1) }),
        (.get, "experiments/get-by-name", { try await $0.experimentByName($1) }),
        (.post, "experiments/search", { try await $0.searchExperiments($1) }),
        (.get, "experiments/search", { try await $0.searchExperiments($1) }),
        (.post, "experiments/update", { try await $0.updateExperiment($1) }),
        (.post, "experiments/delete", { try await $0.setExperimentDeleted($1, true) }),
        (.post, "experiments/restore", { try await $0.setExperimentDeleted($1, false) }),
        (.post, "runs/create", { try await $0.createRun($1) }),
        (.get, "runs/get", { try await $0.getRun($1) }),
        (.post, "runs/update", { try await $0.updateRun($1) }),
        (.post, "runs/delete", { try await $0.setRunDeleted($1, true) }),
        (.post, "runs/restore", { try await $0.setRunDeleted($1, false) }),
        (.post, "runs/search", { try await $0.searchRuns($1) }),
        (.post, "runs/log-metric", { try await $0.logMetric($1) }),
        (.post, "runs/log-parameter", { try await $0.logParameter($1) }),
        (.post, "runs/set-tag", { try await $0.setTag($1) }),
        (.post, "runs/delete-tag", { try await $0.deleteTag($1) }),
        (.get, "metrics/get-history", { try await $0.metricHistory($1) }),
    ]

    func addRoutes(to router: Router<AppRequestContext>) {
        for prefix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
            let group = router.group(RouterPath(prefix)).add(middleware: MLflowErrorMiddleware())
            for (method, path, handler) in Self.endpoints {
                group.on(
                    RouterPath(path), method: method,
                    use: { [service] request, context in
                        let args = try await MLflowArgs.read(request, context: context)
                        let answer = try await handler(service, args)
                        if let json = answer as? MLflowJSON { return Reply.bytes(json.bytes) }
                        return try Reply.view(answer)
                    })
            }
            // log-batch, the ingestion hot path, reads its body from bytes without a JSONValue tree.
            group.post(RouterPath("runs/log-batch")) { [service] request, _ in
                let body = try await MLflowArgs.body(request)
                let batch = try body.withUnsafeReadableBytes { try MLflowBatchReader.read($0) }
                _ = try await service.logBatch(batch)
                return Reply.bytes(Self.emptyObject)
            }
        }
        let files = router.group(RouterPath(MLflowArtifacts.prefix)).add(middleware: MLflowErrorMiddleware())
        files.get { [artifacts] request, _ in
            try Reply.view(try await artifacts.list(request.uri.queryParameters.get("path") ?? ""))
        }
        files.get("**") { [artifacts] _, context in
            Reply.bytes(try await artifacts.download(Self.path(context)), contentType: "application/octet-stream")
        }
        files.put("**") { [artifacts] request, context in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: Limits.bodyBytes)
            } catch let e as HTTPResponseError where e.status == .contentTooLarge {
                throw Limits.bodyTooLarge()
            }
            return try Reply.view(try await artifacts.upload(Self.path(context), body: body))
        }
    }

    /// The catch-all part of the path, each part percent-decoded.
    static func path(_ context: AppRequestContext) -> String {
        context.parameters.getCatchAll().map { $0.removingPercentEncoding ?? String($0) }.joined(separator: "/")
    }
}
