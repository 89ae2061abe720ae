import Experiments
import Foundation
import Hummingbird
import Store

/// `/api/runs…`: runs, their metrics, grids, artifacts and live events.
struct RunsController: Sendable {
    let context: ServiceContext
    var store: TrackingStore { context.store }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("/api/runs") { request, ctx in try await create(request, ctx) }
        router.table("/api/runs") { request, _, csv in try list(request, csv: csv) }
        router.get("/api/runs/:id") { _, ctx in try show(ctx.id()) }
        router.patch("/api/runs/:id") { request, ctx in try await update(request, ctx) }
        router.delete("/api/runs/:id") { _, ctx in try delete(ctx.id()) }
        router.post("/api/runs/:id/cancel") { _, ctx in try cancel(ctx.id()) }
        router.table("/api/runs/:id/metrics") { request, ctx, csv in try metrics(request, ctx.id(), csv: csv) }
        router.post("/api/runs/:id/metrics") { request, ctx in try await logMetrics(request, ctx) }
        router.table("/api/runs/:id/grid") { _, ctx, csv in try grid(ctx.id(), csv: csv) }
        router.table("/api/runs/:id/artifacts") { _, ctx, csv in try artifacts(ctx.id(), csv: csv) }
        router.get("/api/runs/:id/artifacts/:name") { _, ctx in try download(ctx.id(), ctx.parameters.require("name")) }
        router.get("/api/runs/:id/events") { _, ctx in try events(ctx.id()) }
    }

    func existing(_ id: Int64) throws -> RunRecord {
        guard let run = try store.run(id) else { throw APIError.notFound("run \(id) does not exist") }
        return run
    }

    // MARK: Create

    func create(_ request: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let launch: Bool
        switch request.query("launch") ?? "true" {
        case "true", "1": launch = true
        case "false", "0": launch = false
        case let other: throw APIError.badRequest("launch must be true or false, got \(other)", field: "launch")
        }
        let body = try await request.jsonBody(context: ctx)
        guard case .object = body else { throw APIError.badRequest("the body must be a run spec (a JSON object)") }
        let run: RunRecord
        if launch {
            let spec: RunSpec
            do { spec = try RunSpec.decode(body) } catch let e as SpecError { throw APIError(spec: e) }
            try checkTeacher(spec, field: "distillation.teacher_run")
            try context.specPaths.check(spec)
            try Limits.checkName(spec.name, field: "name")
            try Limits.checkName(spec.experiment, field: "experiment")
            run = try createRun(
                NewRun(
                    experiment: spec.experiment, seed: Int64(spec.seed), name: spec.name,
                    strategies: Self.strategyKinds(spec), status: .queued,
                    specJSON: spec.json().text(), codeVersion: context.options.version))
            context.runner.schedule()
        } else {
            // An external run trains elsewhere: its spec is the caller's record, stored as given.
            let seed = body["seed"]?.doubleValue ?? 0
            // Bounded before the Int64 conversion, which traps on 1e300.
            guard seed >= 0, seed == seed.rounded(), seed <= Double(RunSpec.maxSeed) else {
                throw APIError.badRequest("seed must be an integer in [0, 2^53]", field: "seed")
            }
            var tags: [String] = []
            if case .array(let items)? = body["tags"] {
                for (i, t) in items.enumerated() {
                    guard let s = t.stringValue else {
                        throw APIError.badRequest("tags[\(i)] must be a string", field: "tags[\(i)]")
                    }
                    tags.append(s)
                }
            }
            try Limits.checkName(body["name"]?.stringValue, field: "name")
            try Limits.checkName(body["experiment"]?.stringValue, field: "experiment")
            try Limits.checkTags(tags)
            run = try createRun(
                NewRun(
                    experiment: body["experiment"]?.stringValue, seed: Int64(seed), name: body["name"]?.stringValue, tags: tags,
                    strategies: Self.strategyKinds(body["averaging"]), external: true, status: .running,
                    specJSON: body.text(), codeVersion: context.options.version))
        }
        return Reply.json(Self.view(run, full: true), status: .created)
    }

    /// Stores a run, queued ones within ``Limits/queuedRuns`` (counted in the inserting transaction).
    func createRun(_ run: NewRun) throws -> RunRecord {
        do {
            return try store.createRun(run, maxQueued: Limits.queuedRuns)
        } catch let e as CapReached {
            throw APIError(cap: e)
        }
    }

    /// What a run is filtered by as `strategy`: its averaging kinds, plus `kd` and `fixres`.
    static func strategyKinds(_ spec: RunSpec) -> [String] {
        var kinds = spec.averaging.map(\.kind).filter { $0 != "none" }
        if spec.distillation != nil { kinds.append("kd") }
        if spec.resolution.finetune != nil { kinds.append("fixres") }
        return kinds
    }

    static func strategyKinds(_ averaging: JSONValue?) -> [String] {
        switch averaging {
        case .object(let o)?: return o["kind"]?.stringValue.map { [$0] } ?? []
        case .array(let items)?: return items.compactMap { $0["kind"]?.stringValue }
        default: return []
        }
    }

    /// A teacher run must exist when the run is submitted (it must have finished when it starts).
    func checkTeacher(_ spec: RunSpec, field: String) throws {
        guard let id = spec.distillation?.teacherRun else { return }
        guard try store.run(Int64(id)) != nil else { throw APIError.badRequest("\(field) \(id) does not exist", field: field) }
    }

    // MARK: Read

    func list(_ request: Request, csv: Bool) throws -> Response {
        var filter = RunFilter(limit: try request.intQuery("limit", default: 100, 1...1000))
        filter.experiment = request.query("experiment")
        filter.strategy = request.query("strategy")
        filter.tag = request.query("tag")
        if let s = request.query("status") {
            guard let status = RunStatus(rawValue: s) else {
                throw APIError.badRequest(
                    "status must be one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", ")), got \(s)",
                    field: "status")
            }
            filter.status = status
        }
        if let c = request.query("cursor") {
            guard let before = Int64(c), before > 0 else {
                throw APIError.badRequest("cursor is not one this server gave", field: "cursor")
            }
            filter.before = before
        }
        let runs = try store.runs(filter)
        let next = runs.count == filter.limit ? runs.last.map { String($0.id) } : nil
        if csv { return Reply.csv(Self.csv(runs), nextCursor: next) }
        return Reply.json([
            "runs": .array(runs.map { Self.view($0, full: false) }), "next_cursor": next.map { .string($0) } ?? .null,
        ])
    }

    static let csvHeader = [
        "id", "name", "experiment", "experiment_id", "variant", "seed", "status", "external", "strategies", "tags",
        "created_at", "started_at", "ended_at", "error",
    ]

    static func csv(_ runs: [RunRecord]) -> CSVWriter {
        var w = CSVWriter(header: csvHeader)
        for r in runs {
            w.row([
                .int(r.id), .optional(r.name), .optional(r.experiment), .optional(r.experimentID), .optional(r.variant),
                .int(r.seed),
                .text(r.status.rawValue), .text(r.external ? "true" : "false"), .text(r.strategies.joined(separator: ";")),
                .text(r.tags.joined(separator: ";")), .number(r.createdAt), .optional(r.startedAt), .optional(r.endedAt),
                .optional(r.error),
            ])
        }
        return w
    }

    /// A run as the API shows it; `full` adds the spec, the summary and the warnings.
    static func view(
        _ r: RunRecord, full: Bool, latest: [(key: String, weights: String, step: Int64, epoch: Int64?, value: Double)]? = nil
    ) -> JSONValue {
        func parsed(_ text: String?) -> JSONValue { text.flatMap { try? JSONValue.parse($0) } ?? .null }
        var o: [String: JSONValue] = [
            "id": .number(Double(r.id)), "name": r.name.map { .string($0) } ?? .null,
            "experiment": r.experiment.map { .string($0) } ?? .null,
            "experiment_id": r.experimentID.map { .number(Double($0)) } ?? .null,
            "variant": r.variant.map { .string($0) } ?? .null, "seed": .number(Double(r.seed)),
            "status": .string(r.status.rawValue), "external": .bool(r.external), "notes": .string(r.notes),
            "tags": .array(r.tags.map { .string($0) }), "strategies": .array(r.strategies.map { .string($0) }),
            "code_version": .string(r.codeVersion), "created_at": .number(r.createdAt),
            "started_at": r.startedAt.map { .number($0) } ?? .null, "ended_at": r.endedAt.map { .number($0) } ?? .null,
            "error": r.error.map { .string($0) } ?? .null, "progress": parsed(r.progressJSON),
        ]
        if full {
            o["spec"] = parsed(r.specJSON)
            o["summary"] = parsed(r.summaryJSON)
            o["warnings"] = parsed(r.warningsJSON)
        }
        if let latest {
            // Newest value of every series: weights → key → {step, epoch, value}.
            var byWeights: [String: [String: JSONValue]] = [:]
            for l in latest {
                byWeights[l.weights, default: [:]][l.key] = [
                    "step": .number(Double(l.step)), "epoch": l.epoch.map { .number(Double($0)) } ?? .null,
                    "value": JSONValue(l.value),
                ]
            }
            o["latest"] = .object(byWeights.mapValues { .object($0) })
        }
        return .object(o)
    }

    func show(_ id: Int64) throws -> Response {
        let run = try existing(id)
        return Reply.json(Self.view(run, full: true, latest: try store.latest(run: id)))
    }

    // MARK: Change

    func update(_ request: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let id = try ctx.id()
        let run = try existing(id)
        guard case .object(let fields) = try await request.jsonBody(context: ctx) else {
            throw APIError.badRequest("the body must be an object with name, notes, tags, status or error")
        }
        var name: String??, notes: String?, tags: [String]?, status: RunStatus?, error: String?
        for (key, value) in fields {
            switch key {
            case "name":
                switch value {
                case .null: name = .some(nil)
                case .string(let s): name = .some(s)
                default: throw APIError.badRequest("name must be a string or null", field: "name")
                }
            case "notes":
                guard let s = value.stringValue else { throw APIError.badRequest("notes must be a string", field: "notes") }
                notes = s
            case "tags":
                guard case .array(let items) = value else {
                    throw APIError.badRequest("tags must be a list of strings", field: "tags")
                }
                tags = try items.enumerated().map { i, t in
                    guard let s = t.stringValue, !s.isEmpty else {
                        throw APIError.badRequest("tags[\(i)] must be a non-empty string", field: "tags[\(i)]")
                    }
                    return s
                }
            case "status":
                // Only an external run's own script says how it ended; launched runs follow their process.
                guard run.external else { throw APIError.badRequest("status can be set only on external runs", field: "status") }
                guard let s = value.stringValue, let st = RunStatus(rawValue: s), st != .queued, st != .interrupted else {
                    throw APIError.badRequest("status must be running, completed, failed or cancelled", field: "status")
                }
                status = st
            case "error":
                // Why an external run failed, in its script's words.
                guard let s = value.stringValue, !s.isEmpty else {
                    throw APIError.badRequest("error must be a non-empty string", field: "error")
                }
                error = s
            default:
                throw APIError.badRequest(
                    "\(key) cannot be changed (name, notes, tags; status and error of external runs)", field: key)
            }
        }
        if error != nil {
            guard run.external else { throw APIError.badRequest("error can be set only on external runs", field: "error") }
            guard status == .failed || (status == nil && run.status == .failed) else {
                throw APIError.badRequest(
                    "error goes with \"status\": \"failed\" (or on a run that has failed already)", field: "error")
            }
        }
        try Limits.checkName(name ?? nil, field: "name")
        try Limits.checkNotes(notes)
        try Limits.checkTags(tags ?? [])
        try store.updateRun(id, name: name, notes: notes, tags: tags)
        if let status {
            try store.setStatus(id, status, error: status == .failed ? error ?? "reported failed" : nil)
            context.runner.publishStatus(id)
        } else if let error {
            try store.setError(id, error)
            context.runner.publishStatus(id)
        }
        return Reply.json(Self.view(try existing(id), full: true))
    }

    func delete(_ id: Int64) throws -> Response {
        // Checked and deleted while the scheduler waits: it cannot start this run in between.
        try context.runner.whileQueueHeld { active in
            let run = try existing(id)
            if run.status == .running || active(id) {
                throw APIError.conflict("run \(id) is running; cancel it first" + (run.external ? " (or PATCH its status)" : ""))
            }
            try store.deleteRun(id)
        }
        try? FileManager.default.removeItem(atPath: context.runner.runDirectory(id))
        return Response(status: .noContent)
    }

    func cancel(_ id: Int64) throws -> Response {
        let run = try existing(id)
        if run.external {
            guard run.status == .running else {
                throw APIError.conflict("run \(id) is \(run.status.rawValue); nothing to cancel")
            }
            try store.setStatus(id, .cancelled, error: "cancelled")
            context.runner.publishStatus(id)
        } else if !(try context.runner.cancel(id)) {
            throw APIError.conflict("run \(id) is \(run.status.rawValue); nothing to cancel")
        }
        return Reply.json(Self.view(try existing(id), full: false), status: .accepted)
    }

    // MARK: Metrics

    func metrics(_ request: Request, _ id: Int64, csv: Bool) throws -> Response {
        _ = try existing(id)
        let from = try request.intQuery("from_step", default: 0, 0...Int.max)
        let to = try request.intQuery("to_step", default: Int.max, 0...Int.max)
        let steps = Int64(from)...Int64(max(from, to))
        let series = try store.series(run: id, key: request.query("key"), weights: request.query("weights"))
        if csv {
            var w = CSVWriter(header: ["key", "weights", "step", "epoch", "value", "time"])
            for s in series {
                try store.forEachPoint(series: s.id, steps: steps) { step, epoch, value, time in
                    w.row([.text(s.key), .text(s.weights), .int(step), .optional(epoch), .number(value), .number(time)])
                }
            }
            return Reply.csv(w)
        }
        var writer = MetricSeriesWriter()
        for s in series {
            let prefix = MetricSeriesWriter.prefix(key: s.key, weights: s.weights)
            try store.forEachPoint(series: s.id, steps: steps) { step, epoch, value, time in
                writer.point(prefix: prefix, step: step, epoch: epoch, value: value, time: time)
            }
        }
        return Reply.bytes(writer.finish())
    }

    func logMetrics(_ request: Request, _ ctx: BasicRequestContext) async throws -> Response {
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
        let run = try existing(id)
        if !run.external {
            // A launched run's points come from its trainer alone: two writers of one series would
            // turn a resumed trainer's replays into conflicts.
            throw APIError.conflict(
                "run \(id) is trained by this server; only external runs (POST /api/runs?launch=false) take metrics over REST")
        }
        let points = try MetricBatchReader.parse(Array(buffer.readableBytesView), now: now())
        let result: BatchResult
        do {
            result = try await Blocking.run { [store] in
                try store.logBatch(run: id, points, policy: .refuse, maxSeries: Limits.seriesPerRun)
            }
        } catch let e as CapReached {
            throw APIError(cap: e)
        }
        return Reply.json([
            "inserted": .number(Double(result.inserted)), "unchanged": .number(Double(result.unchanged)),
        ])
    }

    // MARK: Grid, artifacts, events

    func grid(_ id: Int64, csv: Bool) throws -> Response {
        _ = try existing(id)
        let cells = try store.grid(run: id)
        if csv {
            var w = CSVWriter(header: ["weights", "stage", "train_size", "resize", "crop", "top1", "top5", "loss"])
            for c in cells {
                w.row([
                    .text(c.weights), .text(c.stage), .int(c.trainSize), .int(c.resize), .int(c.crop),
                    .optional(c.top1), .optional(c.top5), .optional(c.loss),
                ])
            }
            return Reply.csv(w)
        }
        return Reply.json(["cells": .array(cells.map(Self.cellJSON))])
    }

    static func optional(_ x: Double?) -> JSONValue {
        guard let x else { return .null }
        return JSONValue(x)
    }

    static func cellJSON(_ c: GridCell) -> JSONValue {
        var o: [String: JSONValue] = ["weights": .string(c.weights), "stage": .string(c.stage)]
        o["train_size"] = .number(Double(c.trainSize))
        o["resize"] = .number(Double(c.resize))
        o["crop"] = .number(Double(c.crop))
        o["top1"] = optional(c.top1)
        o["top5"] = optional(c.top5)
        o["loss"] = optional(c.loss)
        return .object(o)
    }

    func artifacts(_ id: Int64, csv: Bool) throws -> Response {
        _ = try existing(id)
        let list = try store.artifacts(run: id)
        if csv {
            var w = CSVWriter(header: ["name", "kind", "path", "bytes", "sha256"])
            for a in list {
                w.row([.text(a.name), .text(a.kind.rawValue), .text(a.path), .optional(a.bytes), .optional(a.sha256)])
            }
            return Reply.csv(w)
        }
        return Reply.json([
            "artifacts": .array(
                list.map { a in
                    [
                        "name": .string(a.name), "kind": .string(a.kind.rawValue), "path": .string(a.path),
                        "bytes": a.bytes.map { .number(Double($0)) } ?? .null, "sha256": a.sha256.map { .string($0) } ?? .null,
                        "url": .string(
                            "/api/runs/\(id)/artifacts/\(a.name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? a.name)"
                        ),
                    ]
                })
        ])
    }

    func download(_ id: Int64, _ name: String) throws -> Response {
        _ = try existing(id)
        let decoded = name.removingPercentEncoding ?? name
        guard let a = try store.artifacts(run: id).first(where: { $0.name == decoded }) else {
            throw APIError.notFound("run \(id) has no artifact \(decoded)")
        }
        // Paths come from the trainer's own lines and are relative to the run folder; refuse escapes,
        // by name and (symlinks followed) by where the file really is.
        let folder = context.runner.runDirectory(id)
        guard !a.path.hasPrefix("/"), !a.path.split(separator: "/").contains(".."), !a.path.contains("\0"),
            let base = SpecPaths.resolved(folder), let real = SpecPaths.resolved(folder + "/" + a.path),
            real.hasPrefix(base + "/")
        else {
            throw APIError.notFound("artifact \(decoded) has no file in the run folder")
        }
        guard let data = FileManager.default.contents(atPath: real) else {
            throw APIError.notFound("artifact \(decoded): its file \(a.path) is gone")
        }
        var r = Reply.bytes(Array(data), contentType: "application/octet-stream")
        r.headers[.contentDisposition] = "attachment; filename=\"\((a.path as NSString).lastPathComponent)\""
        return r
    }

    /// Server-Sent Events: the current status and progress first, then each change as it happens,
    /// until the run finishes or the client goes away.
    func events(_ id: Int64) throws -> Response {
        let stream = try context.hub.subscribe(run: id)
        let run = try existing(id)
        var opening = "retry: 2000\n\n"
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
