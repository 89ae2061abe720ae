import Experiments
import Foundation
import Hummingbird
import Store

/// `/api/experiments…`: variants × seeds, and the comparisons that are the point of it all.
struct ExperimentsController: Sendable {
    let context: ServiceContext
    var store: TrackingStore { context.store }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("/api/experiments") { request, ctx in try await create(request, ctx) }
        router.table("/api/experiments") { request, _, csv in try list(request, csv: csv) }
        router.get("/api/experiments/:id") { request, ctx in try show(ctx.id(), csv: Reply.wantsCSV(request, suffixed: false)) }
        router.post("/api/experiments/:id/cancel") { _, ctx in try cancel(ctx.id()) }
        router.delete("/api/experiments/:id") { _, ctx in try delete(ctx.id()) }
        router.table("/api/experiments/:id/compare") { request, ctx, csv in
            try compare(ctx.id(), metric: request.query("metric") ?? "test/top1", csv: csv)
        }
        router.table("/api/experiments/:id/grid") { _, ctx, csv in try grid(ctx.id(), csv: csv) }
    }

    /// A variant as stored: its name, the preset it starts from, its own spec fragment.
    struct Variant {
        var name: String
        var preset: String?
        var spec: JSONValue

        var json: JSONValue { ["name": .string(name), "preset": preset.map { .string($0) } ?? .null, "spec": spec] }
    }

    func existing(_ id: Int64) throws -> ExperimentRecord {
        guard let e = try store.experiment(id) else { throw APIError.notFound("experiment \(id) does not exist") }
        return e
    }

    // MARK: Create

    func create(_ request: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let (experiment, created) = try createExperiment(try await request.jsonBody(context: ctx))
        return Reply.json(view(experiment, runs: created), status: .created)
    }

    /// Validates an experiment (`{name, base, variants, seeds, baseline?}`), stores it with its
    /// variants × seeds runs and queues them. The API and the launch form both come here.
    func createExperiment(_ document: JSONValue) throws -> (ExperimentRecord, [RunRecord]) {
        guard case .object(let body) = document else {
            throw APIError.badRequest("the body must be an object {name, base, variants, seeds, baseline?}")
        }
        for key in body.keys where !["name", "base", "variants", "seeds", "baseline"].contains(key) {
            throw APIError.badRequest(
                "\(key) is not a field of an experiment (name, base, variants, seeds, baseline)", field: key)
        }
        guard let name = body["name"]?.stringValue, !name.isEmpty else {
            throw APIError.badRequest("name is required: a non-empty string", field: "name")
        }
        try Limits.checkName(name, field: "name")
        let base = body["base"] ?? [:]
        guard case .object = base else { throw APIError.badRequest("base must be a run spec object", field: "base") }
        let variants = try parseVariants(body["variants"])
        let seeds = try parseSeeds(body["seeds"])
        try Limits.checkRunsPerExperiment(variants: variants.count, seeds: seeds.count)
        let paths = context.specPaths
        let baseline = body["baseline"]?.stringValue ?? variants[0].name
        if body["baseline"] != nil && body["baseline"]?.stringValue == nil {
            throw APIError.badRequest("baseline must be a variant name", field: "baseline")
        }
        guard variants.contains(where: { $0.name == baseline }) else {
            throw APIError.badRequest(
                "baseline \(baseline) is not one of the variants (\(variants.map(\.name).joined(separator: ", ")))",
                field: "baseline")
        }
        var runs: [NewRun] = []
        for (vi, v) in variants.enumerated() {
            var spec = base
            if let preset = v.preset, let p = context.preset(preset) { spec = spec.merged(with: p.overlay(base)) }
            spec = spec.merged(with: v.spec)
            for seed in seeds {
                let full = spec.merged(with: [
                    "experiment": .string(name), "seed": .number(Double(seed)), "name": .string("\(v.name)-seed\(seed)"),
                ])
                let runSpec: RunSpec
                do {
                    runSpec = try RunSpec.decode(full)
                } catch let e as SpecError {
                    // Name where the field came from: the variant's own spec if it sets it, else the base.
                    let inVariant = Self.sets(v.spec, path: e.field)
                    let prefix = inVariant ? "variants[\(vi)].spec." : "base."
                    var err = APIError(spec: e, prefix: prefix)
                    err.message = "variant \(v.name): " + err.message
                    throw err
                }
                try RunsController(context: context).checkTeacher(runSpec, field: "base.distillation.teacher_run")
                do {
                    try paths.check(runSpec)
                } catch var e as APIError {
                    // The same rule as for the field itself: the variant's spec if it sets it, else the base.
                    let path = e.field ?? ""
                    let prefix = Self.sets(v.spec, path: path) ? "variants[\(vi)].spec." : "base."
                    e.field = prefix + path
                    e.message = "variant \(v.name): " + prefix + e.message
                    throw e
                }
                runs.append(
                    NewRun(
                        experiment: name, variant: v.name, seed: Int64(seed), name: runSpec.name,
                        strategies: RunsController.strategyKinds(runSpec), status: .queued, specJSON: runSpec.json().text(),
                        codeVersion: context.options.version))
            }
        }
        let experiment: ExperimentRecord, created: [RunRecord]
        do {
            (experiment, created) = try store.createExperiment(
                name: name, baseJSON: base.text(), variantsJSON: JSONValue.array(variants.map(\.json)).text(),
                seedsJSON: JSONValue.array(seeds.map { .number(Double($0)) }).text(), baseline: baseline, runs: runs,
                maxQueued: Limits.queuedRuns)
        } catch let e as CapReached {
            throw APIError(cap: e)
        }
        context.runner.schedule()
        return (experiment, created)
    }

    /// Whether `spec` holds a value at `path` (`optim.lr`, `averaging[0].decays[1]`, or a prefix of it).
    static func sets(_ spec: JSONValue, path: String) -> Bool {
        guard !path.isEmpty else { return false }
        var value = spec
        var matched = false
        for part in path.split(separator: ".") {
            let pieces = part.split(separator: "[")
            guard let name = pieces.first, let next = value[String(name)] else { return matched }
            value = next
            matched = true
            for index in pieces.dropFirst() {
                guard case .array(let items) = value, let i = Int(index.dropLast()), i < items.count else { return matched }
                value = items[i]
            }
        }
        return matched
    }

    func parseVariants(_ value: JSONValue?) throws -> [Variant] {
        guard case .array(let items)? = value, !items.isEmpty else {
            throw APIError.badRequest(
                "variants is required: a non-empty list of preset names or {name, preset, spec}", field: "variants")
        }
        var out: [Variant] = []
        for (i, item) in items.enumerated() {
            let field = "variants[\(i)]"
            var v: Variant
            switch item {
            case .string(let preset):
                guard context.preset(preset) != nil else { throw unknownPreset(preset, field: field) }
                v = Variant(name: preset, preset: preset, spec: [:])
            case .object(let o):
                for key in o.keys where !["name", "preset", "spec"].contains(key) {
                    throw APIError.badRequest(
                        "\(field).\(key) is not a field of a variant (name, preset, spec)", field: "\(field).\(key)")
                }
                let preset = o["preset"]?.stringValue
                if o["preset"] != nil, o["preset"] != .null, preset == nil {
                    throw APIError.badRequest("\(field).preset must be a preset name", field: "\(field).preset")
                }
                if let preset, context.preset(preset) == nil { throw unknownPreset(preset, field: "\(field).preset") }
                guard let name = o["name"]?.stringValue ?? preset, !name.isEmpty else {
                    throw APIError.badRequest("\(field).name is required (or a preset to name it after)", field: "\(field).name")
                }
                try Limits.checkName(name, field: "\(field).name")
                let spec = o["spec"] ?? [:]
                guard case .object = spec else {
                    throw APIError.badRequest("\(field).spec must be an object", field: "\(field).spec")
                }
                v = Variant(name: name, preset: preset, spec: spec)
            default:
                throw APIError.badRequest("\(field) must be a preset name or {name, preset, spec}", field: field)
            }
            if out.contains(where: { $0.name == v.name }) {
                throw APIError.badRequest("\(field): the variant name \(v.name) is used twice", field: field)
            }
            out.append(v)
        }
        return out
    }

    func unknownPreset(_ name: String, field: String) -> APIError {
        APIError.badRequest(
            "\(field): unknown preset \(name) (known: \(context.options.presets.map(\.name).joined(separator: ", ")))",
            field: field)
    }

    func parseSeeds(_ value: JSONValue?) throws -> [UInt64] {
        guard let value else { return [0] }
        guard case .array(let items) = value, !items.isEmpty else {
            throw APIError.badRequest("seeds must be a non-empty list of integers", field: "seeds")
        }
        var out: [UInt64] = []
        for (i, s) in items.enumerated() {
            guard let x = s.doubleValue, x >= 0, x == x.rounded(), x <= Double(RunSpec.maxSeed) else {
                throw APIError.badRequest("seeds[\(i)] must be an integer in [0, 2^53]", field: "seeds[\(i)]")
            }
            if out.contains(UInt64(x)) {
                throw APIError.badRequest("seeds[\(i)]: seed \(Int(x)) appears twice", field: "seeds[\(i)]")
            }
            out.append(UInt64(x))
        }
        return out
    }

    // MARK: Read

    func view(_ e: ExperimentRecord, runs: [RunRecord]?) -> JSONValue {
        var o: [String: JSONValue] = [
            "id": .number(Double(e.id)), "name": .string(e.name), "baseline": .string(e.baseline),
            "base": (try? JSONValue.parse(e.baseJSON)) ?? .null, "variants": (try? JSONValue.parse(e.variantsJSON)) ?? .null,
            "seeds": (try? JSONValue.parse(e.seedsJSON)) ?? .null, "created_at": .number(e.createdAt),
        ]
        if let runs {
            o["runs"] = .array(runs.map { RunsController.view($0, full: false) })
            var counts: [String: JSONValue] = [:]
            for r in runs { counts[r.status.rawValue] = .number((counts[r.status.rawValue]?.doubleValue ?? 0) + 1) }
            o["status_counts"] = .object(counts)
        }
        return .object(o)
    }

    func list(_ request: Request, csv: Bool) throws -> Response {
        let limit = try request.intQuery("limit", default: 100, 1...1000)
        var before: Int64?
        if let c = request.query("cursor") {
            guard let b = Int64(c), b > 0 else {
                throw APIError.badRequest("cursor is not one this server gave", field: "cursor")
            }
            before = b
        }
        let list = try store.experiments(before: before, limit: limit)
        let next = list.count == limit ? list.last.map { String($0.id) } : nil
        if csv {
            var w = CSVWriter(header: ["id", "name", "baseline", "variants", "seeds", "created_at"])
            for e in list {
                let variants =
                    ((try? JSONValue.parse(e.variantsJSON)).flatMap { v -> [String]? in
                        guard case .array(let items) = v else { return nil }
                        return items.compactMap { $0["name"]?.stringValue }
                    } ?? []).joined(separator: ";")
                let seeds = e.seedsJSON.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).replacingOccurrences(
                    of: ",", with: ";")
                w.row([.int(e.id), .text(e.name), .text(e.baseline), .text(variants), .text(seeds), .number(e.createdAt)])
            }
            return Reply.csv(w, nextCursor: next)
        }
        return Reply.json([
            "experiments": .array(list.map { view($0, runs: nil) }), "next_cursor": next.map { .string($0) } ?? .null,
        ])
    }

    func runs(_ id: Int64) throws -> [RunRecord] {
        try store.runs(RunFilter(experimentID: id, limit: 1_000_000))
    }

    func show(_ id: Int64, csv: Bool) throws -> Response {
        let e = try existing(id)
        let runs = try runs(id)
        if csv { return Reply.csv(RunsController.csv(runs)) }
        return Reply.json(view(e, runs: runs))
    }

    func cancel(_ id: Int64) throws -> Response {
        _ = try existing(id)
        var cancelled = 0
        for r in try runs(id) where !r.status.isFinished {
            if try context.runner.cancel(r.id) { cancelled += 1 }
        }
        return Reply.json(["experiment": .number(Double(id)), "cancelled": .number(Double(cancelled))], status: .accepted)
    }

    func delete(_ id: Int64) throws -> Response {
        // Checked and deleted while the scheduler waits: it cannot start one of these runs in between.
        let deleted = try context.runner.whileQueueHeld { active in
            _ = try existing(id)
            let all = try runs(id)
            if let r = all.first(where: { $0.status == .running || active($0.id) }) {
                throw APIError.conflict("experiment \(id) has a running run (\(r.id)); cancel it first")
            }
            try store.deleteExperiment(id)
            return all
        }
        for r in deleted { try? FileManager.default.removeItem(atPath: context.runner.runDirectory(r.id)) }
        return Response(status: .noContent)
    }

    // MARK: Compare

    /// The variants in the order the experiment lists them.
    func variantOrder(_ e: ExperimentRecord) -> [String] {
        guard case .array(let items)? = try? JSONValue.parse(e.variantsJSON) else { return [] }
        return items.compactMap { $0["name"]?.stringValue }
    }

    /// `raw` first, then EMA weight sets, then `swa`, then anything else by name.
    static func weightOrder(_ a: String, _ b: String) -> Bool {
        func rank(_ w: String) -> Int { w == "raw" ? 0 : w.hasPrefix("ema@") ? 1 : w == "swa" ? 2 : 3 }
        return rank(a) != rank(b) ? rank(a) < rank(b) : a < b
    }

    struct CompareRow {
        var variant: String
        var weights: String
        var summary: Statistics.Summary
        var delta: Statistics.Summary?
        var wins = 0, losses = 0, ties = 0
    }

    /// One row per variant × weight set over completed runs' final values of `metric`; the Δ is
    /// paired by seed against the baseline variant's raw weights. For metrics where lower is
    /// better (names ending in `loss`), a win is a lower value.
    func compareRows(_ e: ExperimentRecord, metric: String) throws -> [CompareRow] {
        let values = try store.finalValues(experiment: e.id, key: metric)
        var groups: [String: [String: [Int64: Double]]] = [:]  // variant → weights → seed → value
        for v in values { groups[v.variant, default: [:]][v.weights, default: [:]][v.seed] = v.value }
        let baseline = groups[e.baseline]?["raw"] ?? [:]
        let lowerIsBetter = metric.hasSuffix("loss")
        var rows: [CompareRow] = []
        for variant in variantOrder(e) {
            guard let sets = groups[variant] else { continue }
            for weights in sets.keys.sorted(by: Self.weightOrder) {
                let bySeed = sets[weights]!
                let seeds = bySeed.keys.sorted()
                guard let summary = Statistics.summarize(seeds.map { bySeed[$0]! }) else { continue }
                var row = CompareRow(variant: variant, weights: weights, summary: summary)
                let common = seeds.filter { baseline[$0] != nil }
                let deltas = common.map { bySeed[$0]! - baseline[$0]! }
                row.delta = Statistics.summarize(deltas)
                for d in deltas {
                    if d == 0 {
                        row.ties += 1
                    } else if (d > 0) != lowerIsBetter {
                        row.wins += 1
                    } else if !d.isNaN {
                        row.losses += 1
                    }
                }
                rows.append(row)
            }
        }
        return rows
    }

    static let compareColumns = [
        "variant", "weights", "metric", "n", "mean", "std", "ci95_low", "ci95_high", "delta_mean", "delta_ci95_low",
        "delta_ci95_high", "wins", "losses", "ties",
    ]

    func compare(_ id: Int64, metric: String, csv: Bool) throws -> Response {
        let e = try existing(id)
        let rows = try compareRows(e, metric: metric)
        if csv {
            var w = CSVWriter(header: Self.compareColumns)
            for r in rows {
                w.row([
                    .text(r.variant), .text(r.weights), .text(metric), .int(Int64(r.summary.n)), .number(r.summary.mean),
                    .optional(r.summary.std), .optional(r.summary.ci95?.low), .optional(r.summary.ci95?.high),
                    .optional(r.delta?.mean), .optional(r.delta?.ci95?.low), .optional(r.delta?.ci95?.high),
                    .int(Int64(r.wins)), .int(Int64(r.losses)), .int(Int64(r.ties)),
                ])
            }
            return Reply.csv(w)
        }
        // Written by hand in column order (JSONValue would sort the keys): clients reading the
        // JSON see the same order as the CSV's columns.
        var out = "{\"experiment\":\(id),\"metric\":\(JSONValue.string(metric).text()),"
        out += "\"baseline\":{\"variant\":\(JSONValue.string(e.baseline).text()),\"weights\":\"raw\"},\"rows\":["
        for (i, r) in rows.enumerated() {
            if i > 0 { out += "," }
            func n(_ x: Double?) -> String { x.map { JSONValue($0).text() } ?? "null" }
            out += "{\"variant\":\(JSONValue.string(r.variant).text()),\"weights\":\(JSONValue.string(r.weights).text()),"
            out += "\"metric\":\(JSONValue.string(metric).text()),\"n\":\(r.summary.n),\"mean\":\(n(r.summary.mean)),"
            out += "\"std\":\(n(r.summary.std)),\"ci95_low\":\(n(r.summary.ci95?.low)),\"ci95_high\":\(n(r.summary.ci95?.high)),"
            out += "\"delta_mean\":\(n(r.delta?.mean)),\"delta_ci95_low\":\(n(r.delta?.ci95?.low)),"
            out += "\"delta_ci95_high\":\(n(r.delta?.ci95?.high)),\"wins\":\(r.wins),\"losses\":\(r.losses),\"ties\":\(r.ties)}"
        }
        out += "]}"
        return Reply.bytes(Array(out.utf8))
    }

    // MARK: Grid

    struct GridKey: Hashable { var variant, weights, stage: String; var trainSize, resize, crop: Int64 }
    /// One cell of the experiment's grid: the seeds' cells of a variant × weight set × stage × size.
    struct GridRow { var key: GridKey; var n: Int; var top1: Statistics.Summary?; var top5: Double?; var loss: Double? }

    /// The experiment's resize × crop cells averaged over seeds, in variant, weight-set, stage order.
    func gridRows(_ e: ExperimentRecord) throws -> [GridRow] {
        var groups: [GridKey: [GridCell]] = [:]
        for c in try store.experimentGrid(e.id) {
            groups[
                GridKey(
                    variant: c.variant, weights: c.cell.weights, stage: c.cell.stage, trainSize: c.cell.trainSize,
                    resize: c.cell.resize, crop: c.cell.crop), default: []
            ].append(c.cell)
        }
        let order = Dictionary(uniqueKeysWithValues: variantOrder(e).enumerated().map { ($1, $0) })
        let keys = groups.keys.sorted {
            let a = ($0.weights, $0.stage), b = ($1.weights, $1.stage)
            if $0.variant != $1.variant { return (order[$0.variant] ?? .max) < (order[$1.variant] ?? .max) }
            if a.0 != b.0 { return Self.weightOrder(a.0, b.0) }
            if a.1 != b.1 { return a.1 < b.1 }
            return ($0.trainSize, $0.resize, $0.crop) < ($1.trainSize, $1.resize, $1.crop)
        }
        func mean(_ xs: [Double?]) -> Double? {
            let v = xs.compactMap { $0 }; return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        return keys.map { k -> GridRow in
            let cells = groups[k]!
            return GridRow(
                key: k, n: cells.count, top1: Statistics.summarize(cells.compactMap(\.top1)),
                top5: mean(cells.map(\.top5)), loss: mean(cells.map(\.loss)))
        }
    }

    func grid(_ id: Int64, csv: Bool) throws -> Response {
        let rows = try gridRows(try existing(id))
        if csv {
            var w = CSVWriter(header: [
                "variant", "weights", "stage", "train_size", "resize", "crop", "n", "top1_mean", "top1_std", "top5_mean",
                "loss_mean",
            ])
            for r in rows {
                w.row([
                    .text(r.key.variant), .text(r.key.weights), .text(r.key.stage), .int(r.key.trainSize), .int(r.key.resize),
                    .int(r.key.crop), .int(Int64(r.n)), .optional(r.top1?.mean), .optional(r.top1?.std), .optional(r.top5),
                    .optional(r.loss),
                ])
            }
            return Reply.csv(w)
        }
        return Reply.json([
            "experiment": .number(Double(id)),
            "cells": .array(
                rows.map { r in
                    var o: [String: JSONValue] = [
                        "variant": .string(r.key.variant), "weights": .string(r.key.weights), "stage": .string(r.key.stage),
                    ]
                    o["train_size"] = .number(Double(r.key.trainSize))
                    o["resize"] = .number(Double(r.key.resize))
                    o["crop"] = .number(Double(r.key.crop))
                    o["n"] = .number(Double(r.n))
                    o["top1_mean"] = RunsController.optional(r.top1?.mean)
                    o["top1_std"] = RunsController.optional(r.top1?.std)
                    o["top5_mean"] = RunsController.optional(r.top5)
                    o["loss_mean"] = RunsController.optional(r.loss)
                    return .object(o)
                }),
        ])
    }
}
