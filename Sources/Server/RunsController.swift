import Experiments
import Foundation
import Hummingbird
import Store

/// `/api/runs…`: parses the request, calls ``RunService``, answers with a view (or CSV, or the
/// byte-level metric series).
struct RunsController: Sendable {
    let service: RunService
    let hub: EventHub

    func addRoutes(to router: Router<AppRequestContext>) {
        router.post("/api/runs") { request, ctx in try await create(request, ctx) }
        router.table("/api/runs") { request, _, csv in try await list(request, csv: csv) }
        router.get("/api/runs/:id") { _, ctx in
            let (run, latest) = try await service.detail(try ctx.id())
            return RunView(run, full: true, latest: latest)
        }
        router.patch("/api/runs/:id") { request, ctx in try await update(request, ctx) }
        router.delete("/api/runs/:id") { _, ctx in
            try await service.delete(try ctx.id())
            return Response(status: .noContent)
        }
        router.post("/api/runs/:id/cancel") { _, ctx in
            EditedResponse(status: .accepted, response: RunView(try await service.cancel(try ctx.id()), full: false))
        }
        router.post("/api/runs/:id/rerun") { _, ctx in
            EditedResponse(status: .created, response: RunView(try await service.rerun(try ctx.id()), full: true, latest: []))
        }
        router.table("/api/runs/:id/metrics") { request, ctx, csv in try await metrics(request, ctx.id(), csv: csv) }
        router.post("/api/runs/:id/metrics") { request, ctx in try await logMetrics(request, ctx) }
        router.post("/api/runs/:id/events") { request, ctx in
            EventBatchView(stored: try await service.logEvents(try ctx.id(), try await request.jsonBody(context: ctx)))
        }
        router.table("/api/runs/:id/grid") { _, ctx, csv in
            let cells = try await service.grid(try ctx.id())
            return csv ? Reply.csv(GridCellView.csv(cells)) : try Reply.view(GridView(cells: cells.map(GridCellView.init)))
        }
        router.table("/api/runs/:id/artifacts") { _, ctx, csv in
            let id = try ctx.id()
            let list = try await service.artifacts(id)
            return csv
                ? Reply.csv(ArtifactView.csv(list))
                : try Reply.view(ArtifactListView(artifacts: list.map { ArtifactView($0, run: id) }))
        }
        router.get("/api/runs/:id/artifacts/:name") { _, ctx in
            let name = try ctx.parameters.require("name")
            let file = try await service.artifactFile(try ctx.id(), name: name.removingPercentEncoding ?? name)
            var r = Reply.bytes(file.bytes, contentType: "application/octet-stream")
            r.headers[.contentDisposition] = "attachment; filename=\"\(file.name)\""
            return r
        }
        router.get("/api/runs/:id/events") { _, ctx in try await events(ctx.id()) }
    }

    func create(_ request: Request, _ ctx: AppRequestContext) async throws -> EditedResponse<RunView> {
        let launch: Bool
        switch request.query("launch") ?? "true" {
        case "true", "1": launch = true
        case "false", "0": launch = false
        case let other: throw APIError.badRequest("launch must be true or false, got \(other)", field: "launch")
        }
        let body = try await request.jsonBody(context: ctx)
        guard case .object = body else { throw APIError.badRequest("the body must be a run spec (a JSON object)") }
        let run = launch ? try await service.create(spec: body) : try await service.createExternal(body)
        return EditedResponse(status: .created, response: RunView(run, full: true))
    }

    func list(_ request: Request, csv: Bool) async throws -> Response {
        var filter = RunFilter(limit: try request.intQuery("limit", default: 100, 1...1000))
        filter.experiment = request.query("experiment")
        filter.strategy = request.query("strategy")
        filter.tag = request.query("tag")
        filter.variant = request.query("variant")
        if let s = request.query("status") {
            guard let status = RunStatus(rawValue: s) else {
                throw APIError.badRequest(
                    "status must be one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", ")), got \(s)",
                    field: "status")
            }
            filter.status = status
        }
        filter.before = try request.cursor()
        let runs = try await service.list(filter)
        let next = runs.count == filter.limit ? runs.last.map { String($0.id) } : nil
        if csv { return Reply.csv(RunView.csv(runs), nextCursor: next) }
        return try Reply.view(RunListView(runs: runs.map { RunView($0, full: false) }, nextCursor: next))
    }

    /// `PATCH`: `name`, `notes`, `tags`; an external run's `status` and `error`.
    func update(_ request: Request, _ ctx: AppRequestContext) async throws -> RunView {
        let id = try ctx.id()
        guard case .object(let fields) = try await request.jsonBody(context: ctx) else {
            throw APIError.badRequest("the body must be an object with name, notes, tags, status or error")
        }
        var changes = RunService.Changes()
        for (key, value) in fields {
            switch key {
            case "name":
                switch value {
                case .null: changes.name = .some(nil)
                case .string(let s): changes.name = .some(s)
                default: throw APIError.badRequest("name must be a string or null", field: "name")
                }
            case "notes":
                guard let s = value.stringValue else { throw APIError.badRequest("notes must be a string", field: "notes") }
                changes.notes = s
            case "tags":
                guard case .array(let items) = value else {
                    throw APIError.badRequest("tags must be a list of strings", field: "tags")
                }
                changes.tags = try items.enumerated().map { i, t in
                    guard let s = t.stringValue, !s.isEmpty else {
                        throw APIError.badRequest("tags[\(i)] must be a non-empty string", field: "tags[\(i)]")
                    }
                    return s
                }
            case "status":
                guard let s = value.stringValue, let st = RunStatus(rawValue: s), st != .queued, st != .interrupted else {
                    throw APIError.badRequest("status must be running, completed, failed or cancelled", field: "status")
                }
                changes.status = st
            case "error":
                // Why an external run failed, in its script's words.
                guard let s = value.stringValue, !s.isEmpty else {
                    throw APIError.badRequest("error must be a non-empty string", field: "error")
                }
                changes.error = s
            default:
                throw APIError.badRequest(
                    "\(key) cannot be changed (name, notes, tags; status and error of external runs)", field: key)
            }
        }
        return RunView(try await service.update(id, changes), full: true)
    }

    func metrics(_ request: Request, _ id: Int64, csv: Bool) async throws -> Response {
        let from = try request.intQuery("from_step", default: 0, 0...Int.max)
        let to = try request.intQuery("to_step", default: Int.max, 0...Int.max)
        let steps = Int64(from)...Int64(max(from, to))
        let (key, weights) = (request.query("key"), request.query("weights"))
        if csv { return Reply.csv(try await service.metricsCSV(id, key: key, weights: weights, steps: steps)) }
        return Reply.bytes(try await service.metricsJSON(id, key: key, weights: weights, steps: steps))
    }

    func logMetrics(_ request: Request, _ ctx: AppRequestContext) async throws -> BatchResultView {
        let id = try ctx.id()
        let tooLarge = "Batched logging API requests must be at most 1 MB in size"
        if let length = request.headers[.contentLength].flatMap(Int.init), length > MetricBatchReader.maxBytes {
            throw APIError.badRequest("\(tooLarge); got \(length) bytes", field: "metrics")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: MetricBatchReader.maxBytes)
        } catch let e as HTTPResponseError where e.status == .contentTooLarge {
            throw APIError.badRequest(tooLarge, field: "metrics")
        } catch {
            throw APIError.badRequest("the body could not be read completely (\(error))")
        }
        let result = try await service.logMetrics(id, Array(buffer.readableBytesView))
        return BatchResultView(inserted: result.inserted, unchanged: result.unchanged)
    }

    /// Server-Sent Events: the current status and progress first, then each change as it happens,
    /// until the run finishes or the client goes away.
    func events(_ id: Int64) async throws -> Response {
        let stream = try hub.subscribe(run: id)
        let run = try await service.run(id)
        var opening = "retry: 2000\n\n"
        // The same line the job runner publishes for a status change (keys sorted, as `JSONValue` writes them).
        let status: JSONValue = ["status": .string(run.status.rawValue), "error": run.error.map { .string($0) } ?? .null]
        opening += "event: status\ndata: \(status.text())\n\n"
        if let p = run.progressJSON { opening += "event: progress\ndata: \(p)\n\n" }
        let first = opening
        let finished = run.status.isFinished
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: first))
                if !finished {
                    for await event in stream {
                        if event.name == "ping" {
                            try await writer.write(ByteBuffer(string: ": ping\n\n"))
                            continue
                        }
                        try await writer.write(ByteBuffer(string: "event: \(event.name)\ndata: \(event.data)\n\n"))
                        if event.name == "status", let s = (try? JSONValue.parse(event.data))?["status"]?.stringValue,
                            RunStatus(rawValue: s)?.isFinished == true
                        {
                            break
                        }
                    }
                }
                try await writer.finish(nil)
            })
    }
}
