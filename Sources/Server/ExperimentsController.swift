import Experiments
import Foundation
import Hummingbird
import Store

/// `/api/experiments…`: parses the request, calls ``ExperimentService``, answers with a view or CSV.
struct ExperimentsController: Sendable {
    let service: ExperimentService

    func addRoutes(to router: Router<AppRequestContext>) {
        router.post("/api/experiments") { request, ctx in
            let (experiment, runs) = try await service.create(try await request.jsonBody(context: ctx))
            return EditedResponse(status: .created, response: ExperimentView(record: experiment, runs: runs))
        }
        router.table("/api/experiments") { request, _, csv in try await list(request, csv: csv) }
        router.get("/api/experiments/:id") { request, ctx in
            let (experiment, runs) = try await service.detail(try ctx.id())
            if Reply.wantsCSV(request, suffixed: false) { return Reply.csv(RunView.csv(runs)) }
            return try Reply.view(ExperimentView(record: experiment, runs: runs))
        }
        router.post("/api/experiments/:id/cancel") { _, ctx in
            let id = try ctx.id()
            return EditedResponse(
                status: .accepted, response: ExperimentCancelView(experiment: id, cancelled: try await service.cancel(id)))
        }
        router.post("/api/experiments/:id/seeds") { request, ctx in
            let body = try await request.jsonBody(context: ctx)
            guard case .object(let fields) = body, fields.keys.allSatisfy({ $0 == "add" }),
                let add = fields["add"]?.doubleValue, add == add.rounded(), abs(add) < 1e9
            else {
                throw APIError.badRequest("the body must be {\"add\": k} with k an integer number of seeds", field: "add")
            }
            let (experiment, runs) = try await service.addSeeds(try ctx.id(), count: Int(add))
            return EditedResponse(status: .created, response: ExperimentView(record: experiment, runs: runs))
        }
        router.delete("/api/experiments/:id") { _, ctx in
            try await service.delete(try ctx.id())
            return Response(status: .noContent)
        }
        router.table("/api/experiments/:id/compare") { request, ctx, csv in
            let metric = request.query("metric") ?? "test/top1"
            let (experiment, rows) = try await service.compare(try ctx.id(), metric: metric)
            if csv { return Reply.csv(CompareView.csv(rows, metric: metric)) }
            return try Reply.view(CompareView(experiment, metric: metric, rows: rows))
        }
        router.table("/api/experiments/:id/grid") { _, ctx, csv in
            let id = try ctx.id()
            let rows = try await service.grid(id)
            return csv ? Reply.csv(ExperimentGridView.csv(rows)) : try Reply.view(ExperimentGridView(experiment: id, rows: rows))
        }
    }

    func list(_ request: Request, csv: Bool) async throws -> Response {
        let limit = try request.intQuery("limit", default: 100, 1...1000)
        let list = try await service.list(before: try request.cursor(), limit: limit)
        let next = list.count == limit ? list.last.map { String($0.id) } : nil
        if csv { return Reply.csv(ExperimentView.csv(list), nextCursor: next) }
        return try Reply.view(ExperimentListView(experiments: list.map { ExperimentView(record: $0) }, nextCursor: next))
    }
}
