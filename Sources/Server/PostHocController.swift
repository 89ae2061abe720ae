import Foundation
import Hummingbird

/// `/api/runs/{id}/posthoc` and `/api/experiments/{id}/posthoc` (JSON, or CSV with `.csv` or
/// `Accept: text/csv`): the post-hoc EMA-length sweeps; `POST /api/runs/{id}/posthoc` sweeps more
/// widths of a completed run.
struct PostHocController: Sendable {
    let service: PostHocService

    func addRoutes(to router: Router<AppRequestContext>) {
        router.table("/api/runs/:id/posthoc") { _, ctx, csv in
            let (run, points) = try await service.run(try ctx.id())
            return csv ? Reply.csv(RunPostHocView.csv(points)) : try Reply.view(RunPostHocView(run: run.id, points: points))
        }
        router.post("/api/runs/:id/posthoc") { request, ctx in
            let id = try ctx.id()
            let (run, points) = try await service.sweepMore(id, try await request.jsonBody(context: ctx))
            return try Reply.view(RunPostHocView(run: run.id, points: points))
        }
        router.table("/api/experiments/:id/posthoc") { _, ctx, csv in
            let sweep = try await service.experiment(try ctx.id())
            return csv ? Reply.csv(ExperimentPostHocView.csv(sweep)) : try Reply.view(ExperimentPostHocView(sweep))
        }
    }
}
