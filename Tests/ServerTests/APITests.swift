import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import XCTest

@testable import Server

/// The REST API over real HTTP, a real SQLite file, no training: external runs and error paths.
final class APITests: XCTestCase {
    func testExternalRunMetricsAreIdempotentAndExact() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            let run = try await client.json(
                .post, "/api/runs?launch=false", #"{"name": "from-python", "seed": 3, "tags": ["ext"]}"#, expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            XCTAssertEqual(run["status"]?.stringValue, "running")
            XCTAssertEqual(run["external"], .bool(true))

            let batch =
                #"{"metrics": [{"key": "train/loss", "step": 1, "value": 2.5, "time": 100}, {"key": "train/loss", "step": 2, "value": "NaN", "time": 101}, {"key": "test/top1", "step": 2, "value": "-Infinity", "weights": "ema@0.998", "epoch": 1, "time": 102}]}"#
            var r = try await client.json(.post, "/api/runs/\(id)/metrics", batch)
            XCTAssertEqual(r["inserted"]?.intValue, 3)
            // The same batch again (a retry): 200, nothing new.
            r = try await client.json(.post, "/api/runs/\(id)/metrics", batch)
            XCTAssertEqual(r["unchanged"]?.intValue, 3)
            // A different value at a stored step: 409 naming the point, and nothing of the batch stored.
            let conflict = try await client.call(
                .post, "/api/runs/\(id)/metrics",
                #"{"metrics": [{"key": "train/loss", "step": 3, "value": 1}, {"key": "train/loss", "step": 1, "value": 2.0}]}"#)
            try assertError(conflict, .conflict, field: "metrics[1].value", contains: "already stored")

            let points = try await client.json(.get, "/api/runs/\(id)/metrics?key=train/loss")
            XCTAssertEqual(points["points"]?.count, 2)
            XCTAssertEqual(points["points"]?[1]?["value"], .string("NaN"))
            let ema = try await client.json(.get, "/api/runs/\(id)/metrics?weights=ema@0.998")
            XCTAssertEqual(ema["points"]?[0]?["value"], .string("-Infinity"))
            XCTAssertEqual(ema["points"]?[0]?["epoch"]?.intValue, 1)
            let ranged = try await client.json(.get, "/api/runs/\(id)/metrics?from_step=2&to_step=2")
            XCTAssertEqual(ranged["points"]?.count, 2)

            let csv = try await client.call(.get, "/api/runs/\(id)/metrics.csv")
            XCTAssertEqual(csv.headers[.contentType]?.hasPrefix("text/csv"), true)
            XCTAssertEqual(
                String(buffer: csv.body),
                "key,weights,step,epoch,value,time\r\n"
                    + "test/top1,ema@0.998,2,1,-Inf,102.0\r\ntrain/loss,raw,1,,2.5,100.0\r\ntrain/loss,raw,2,,NaN,101.0\r\n")
            let viaAccept = try await client.call(.get, "/api/runs/\(id)/metrics", headers: [.accept: "text/csv"])
            XCTAssertEqual(String(buffer: viaAccept.body), String(buffer: csv.body))

            // Rename, annotate, tag; the run shows its latest values.
            let patched = try await client.json(
                .patch, "/api/runs/\(id)", #"{"name": "renamed", "notes": "n", "tags": ["a", "b"]}"#)
            XCTAssertEqual(patched["name"]?.stringValue, "renamed")
            let listed = try await client.json(.get, "/api/runs?tag=b")
            XCTAssertEqual(listed["runs"]?.count, 1)
            let one = try await client.json(.get, "/api/runs/\(id)")
            XCTAssertEqual(one["latest"]?["raw"]?["train/loss"]?["value"], .string("NaN"))

            // Running: no delete. Finished (reported by its script): delete, then 404.
            try assertError(try await client.call(.delete, "/api/runs/\(id)"), .conflict, field: nil, contains: "running")
            _ = try await client.json(.patch, "/api/runs/\(id)", #"{"status": "completed"}"#)
            let deleted = try await client.call(.delete, "/api/runs/\(id)")
            XCTAssertEqual(deleted.status, .noContent)
            try assertError(try await client.call(.get, "/api/runs/\(id)"), .notFound, field: nil)
            try assertError(try await client.call(.get, "/api/runs/\(id)/metrics"), .notFound, field: nil)
        }
    }

    func testErrorPaths() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            let run = try await client.json(.post, "/api/runs?launch=false", "{}", expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            // Bare NaN: not JSON, refused naming the field.
            try assertError(
                try await client.call(.post, "/api/runs/\(id)/metrics", #"{"metrics": [{"key": "a", "step": 1, "value": NaN}]}"#),
                .badRequest, field: "metrics[0].value", contains: "NaN")
            // MLflow's caps and wording.
            let many =
                "{\"metrics\": [" + (0..<1001).map { "{\"key\": \"k\", \"step\": \($0), \"value\": 1}" }.joined(separator: ",")
                + "]}"
            try assertError(
                try await client.call(.post, "/api/runs/\(id)/metrics", many), .badRequest, field: "metrics",
                contains: "A batch logging request can contain at most 1000 metrics. Got 1001 metrics.")
            let padded =
                "{\"metrics\": [{\"key\": \"" + String(repeating: "x", count: 200) + "\", \"step\": 1, \"value\": 1}]"
                + String(repeating: " ", count: 1_000_001) + "}"
            try assertError(
                try await client.call(.post, "/api/runs/\(id)/metrics", padded), .badRequest, field: "metrics",
                contains: "at most 1 MB")
            let none = try await client.json(.get, "/api/runs/\(id)/metrics")
            XCTAssertEqual(none["points"]?.count, 0)

            // Specs refused by name, nothing stored.
            try assertError(try await client.call(.post, "/api/runs", #"{"optim": {"lr": -1}}"#), .badRequest, field: "optim.lr")
            try assertError(
                try await client.call(.post, "/api/runs", #"{"averaging": {"kind": "ema", "decays": [1.5]}}"#),
                .badRequest, field: "averaging.decays[0]")
            try assertError(try await client.call(.post, "/api/runs", #"{"optim": {"lr": NaN}}"#), .badRequest, field: "optim.lr")
            try assertError(try await client.call(.post, "/api/runs", #"{"colour": 1}"#), .badRequest, field: "colour")
            try assertError(
                try await client.call(.post, "/api/runs", #"{"distillation": {"teacher_run": 999}}"#),
                .badRequest, field: "distillation.teacher_run")
            try assertError(try await client.call(.post, "/api/runs", "{"), .badRequest, field: nil, contains: "body: ")
            try assertError(try await client.call(.post, "/api/runs?launch=maybe", "{}"), .badRequest, field: "launch")
            let all = try await client.json(.get, "/api/runs")
            XCTAssertEqual(all["runs"]?.count, 1)

            // Experiments.
            try assertError(
                try await client.call(.post, "/api/experiments", #"{"name": "x", "variants": ["nope"], "seeds": [0]}"#),
                .badRequest, field: "variants[0]", contains: "unknown preset")
            try assertError(
                try await client.call(.post, "/api/experiments", #"{"name": "x", "variants": ["none"], "seeds": [0, 0]}"#),
                .badRequest, field: "seeds[1]")
            try assertError(
                try await client.call(.post, "/api/experiments", #"{"name": "x", "variants": ["none"], "baseline": "ema"}"#),
                .badRequest, field: "baseline")
            try assertError(
                try await client.call(
                    .post, "/api/experiments",
                    #"{"name": "x", "base": {"optim": {"epochs": 2}}, "variants": [{"name": "v", "preset": "none", "spec": {"optim": {"lr": 0}}}]}"#
                ),
                .badRequest, field: "variants[0].spec.optim.lr")
            try assertError(
                try await client.call(
                    .post, "/api/experiments", #"{"name": "x", "base": {"model": {"width": 0}}, "variants": ["none"]}"#),
                .badRequest, field: "base.model.width")

            // 404s and bad parameters.
            try assertError(try await client.call(.get, "/api/runs/999"), .notFound, field: nil)
            try assertError(try await client.call(.post, "/api/runs/999/metrics", #"{"metrics": []}"#), .notFound, field: nil)
            try assertError(try await client.call(.get, "/api/experiments/999/compare"), .notFound, field: nil)
            try assertError(try await client.call(.get, "/api/nothing"), .notFound, field: nil)
            try assertError(try await client.call(.get, "/api/runs/abc"), .badRequest, field: "id")
            try assertError(try await client.call(.get, "/api/runs?status=sleeping"), .badRequest, field: "status")
            try assertError(try await client.call(.get, "/api/runs?limit=0"), .badRequest, field: "limit")
            try assertError(try await client.call(.get, "/api/runs/\(id)/artifacts/raw"), .notFound, field: nil)
            try assertError(try await client.call(.patch, "/api/runs/\(id)", #"{"seed": 4}"#), .badRequest, field: "seed")
        }
    }

    func testHealthPresetsAndCursorPagination() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            let health = try await client.json(.get, "/api/health")
            XCTAssertEqual(health["status"]?.stringValue, "ok")
            XCTAssertEqual(health["queue_length"]?.intValue, 0)
            let presets = try await client.json(.get, "/api/presets")
            XCTAssertEqual(presets["presets"]?.count, Presets.all.count)
            XCTAssertNotNil(presets["presets"]?[1]?["settings"]?["averaging"])
            for i in 0..<5 {
                _ = try await client.json(.post, "/api/runs?launch=false", #"{"name": "r\#(i)"}"#, expect: .created)
            }
            var seen: [Int] = []
            var cursor: String? = nil
            repeat {
                let page = try await client.json(.get, "/api/runs?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""))
                for i in 0..<page["runs"]!.count { seen.append(page["runs"]![i]!["id"]!.intValue!) }
                cursor = page["next_cursor"]?.stringValue
            } while cursor != nil
            XCTAssertEqual(seen, [5, 4, 3, 2, 1])
            let csv = String(buffer: try await client.call(.get, "/api/runs.csv").body)
            XCTAssertTrue(csv.hasPrefix("id,name,experiment,experiment_id,variant,seed,status"), csv)
            XCTAssertEqual(csv.split(separator: "\r\n").count, 6)
        }
    }

    /// Compare and grid over runs stored directly (no training), checked against numbers by hand.
    func testCompareAndGridByHand() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        let store = try TrackingStore(path: folder.db)
        // baseline none/raw: seeds 0, 1, 2 → 0.90, 0.91, 0.92
        // ema/raw: 0.905, 0.90, 0.93; ema/ema@0.99: 0.92, 0.93, 0.92 (seed 2 present), ema seed 3 only in ema.
        let values: [(String, Int64, String, Double)] = [
            ("none", 0, "raw", 0.90), ("none", 1, "raw", 0.91), ("none", 2, "raw", 0.92),
            ("ema", 0, "raw", 0.905), ("ema", 1, "raw", 0.90), ("ema", 2, "raw", 0.93), ("ema", 3, "raw", 0.95),
            ("ema", 0, "ema@0.99", 0.92), ("ema", 1, "ema@0.99", 0.93), ("ema", 2, "ema@0.99", 0.92),
            ("ema", 3, "ema@0.99", 0.93),
        ]
        let runs: [NewRun] = [("none", 0), ("none", 1), ("none", 2), ("ema", 0), ("ema", 1), ("ema", 2), ("ema", 3)].map {
            NewRun(experiment: "hand", variant: $0.0, seed: $0.1, status: .completed, specJSON: "{}", codeVersion: "t")
        }
        let (experiment, created) = try store.createExperiment(
            name: "hand", baseJSON: "{}", variantsJSON: #"[{"name":"none"},{"name":"ema"}]"#, seedsJSON: "[0,1,2,3]",
            baseline: "none", runs: runs)
        for (variant, seed, weights, value) in values {
            let run = created.first { $0.variant == variant && $0.seed == seed }!
            // An earlier epoch first: compare must use the final value.
            try store.logBatch(
                run: run.id,
                [
                    MetricPoint(key: "test/top1", weights: weights, step: 10, value: 0.5, time: 0),
                    MetricPoint(key: "test/top1", weights: weights, step: 20, value: value, time: 1),
                ], policy: .refuse)
            try store.saveGrid(
                run: run.id,
                [
                    GridCell(
                        weights: weights, stage: "base", trainSize: 28, resize: 32, crop: 28,
                        top1: value, top5: 1, loss: 1 - value)
                ])
        }
        try await app.test(.live) { client in
            let c = try await client.json(.get, "/api/experiments/\(experiment.id)/compare")
            XCTAssertEqual(c["baseline"], ["variant": "none", "weights": "raw"])
            let rows = try XCTUnwrap(c["rows"])
            XCTAssertEqual(rows.count, 3)
            func row(_ i: Int, _ k: String) -> Double { rows[i]![k]!.doubleValue! }
            // none/raw: mean 0.91, std 0.01, CI 0.91 ∓ 4.302653 · 0.01/√3; Δ against itself 0.
            XCTAssertEqual(rows[0]?["variant"]?.stringValue, "none")
            XCTAssertEqual(row(0, "n"), 3)
            XCTAssertEqual(row(0, "mean"), 0.91, accuracy: 1e-12)
            XCTAssertEqual(row(0, "std"), 0.01, accuracy: 1e-12)
            XCTAssertEqual(row(0, "ci95_low"), 0.885158622365024, accuracy: 1e-9)
            XCTAssertEqual(row(0, "ties"), 3)
            // ema/raw over 4 seeds: 0.905, 0.90, 0.93, 0.95 → mean 0.92125,
            // std = sqrt(((−.01625)² + (−.02125)² + .00875² + .02875²)/3) = sqrt(0.00161875/3) = 0.0232289331…
            XCTAssertEqual(rows[1]?["weights"]?.stringValue, "raw")
            XCTAssertEqual(row(1, "n"), 4)
            XCTAssertEqual(row(1, "mean"), 0.92125, accuracy: 1e-12)
            XCTAssertEqual(row(1, "std"), 0.0232289331, accuracy: 1e-9)
            // t(0.975, 3) = 3.182446305 → half-width 3.182446305 · 0.0232289331 / 2 = 0.0369624…
            XCTAssertEqual(row(1, "ci95_high") - row(1, "mean"), 3.182446305 * 0.0232289331 / 2, accuracy: 1e-8)
            // Paired Δ over seeds 0, 1, 2 (seed 3 has no baseline): 0.005, −0.01, 0.01 → mean 0.001666…,
            // std sqrt((0.00333…² + 0.011666…² + 0.008333…²)/2) = 0.0104083, half-width 4.302653 · 0.0104083/√3.
            XCTAssertEqual(row(1, "delta_mean"), 0.005 / 3, accuracy: 1e-12)
            let dstd = ((pow(0.005 - 0.005 / 3, 2) + pow(-0.01 - 0.005 / 3, 2) + pow(0.01 - 0.005 / 3, 2)) / 2).squareRoot()
            XCTAssertEqual(dstd, 0.0104083, accuracy: 1e-7)
            XCTAssertEqual(row(1, "delta_ci95_high"), 0.005 / 3 + 4.302652729749464 * dstd / 3.0.squareRoot(), accuracy: 1e-9)
            XCTAssertEqual(row(1, "wins"), 2)
            XCTAssertEqual(row(1, "losses"), 1)
            XCTAssertEqual(row(1, "ties"), 0)
            // The seed advisor: (t(0.975, 2) + t(0.80, 2)) · s_Δ / √3 with the tables' 4.302653 and 1.060660;
            // the reference row has no advice.
            XCTAssertEqual(row(1, "min_detectable_delta"), (4.302653 + 1.060660) * dstd / 3.0.squareRoot(), accuracy: 1e-6)
            XCTAssertEqual(rows[1]?["seeds_needed"]?.intValue, SeedAdvisor.seedsNeeded(spread: dstd))
            XCTAssertGreaterThan(rows[1]?["seeds_needed"]?.intValue ?? 0, 150)
            XCTAssertEqual(rows[0]?["min_detectable_delta"], .null)
            XCTAssertEqual(rows[0]?["seeds_needed"], .null)
            // ema/ema@0.99: Δ 0.02, 0.02, 0.0 → 2 wins, 1 tie.
            XCTAssertEqual(rows[2]?["weights"]?.stringValue, "ema@0.99")
            XCTAssertEqual(row(2, "delta_mean"), 0.04 / 3, accuracy: 1e-12)
            XCTAssertEqual(row(2, "wins"), 2)
            XCTAssertEqual(row(2, "ties"), 1)

            // CSV: exactly the row fields, in order.
            let csv = String(buffer: try await client.call(.get, "/api/experiments/\(experiment.id)/compare.csv").body)
            let lines = csv.split(separator: "\r\n").map(String.init)
            XCTAssertEqual(
                lines[0],
                "variant,weights,metric,n,mean,std,ci95_low,ci95_high,delta_mean,delta_ci95_low,delta_ci95_high,wins,losses,ties,"
                    + "min_detectable_delta,seeds_needed,cost_minutes,extra_minutes,gain_per_extra_minute")
            XCTAssertEqual(lines.count, 4)
            XCTAssertTrue(lines[2].hasPrefix("ema,raw,test/top1,4,0.92125"), lines[2])
            XCTAssertEqual(Double(lines[2].split(separator: ",")[5])!, 0.0232289331, accuracy: 1e-9)
            XCTAssertTrue(lines[2].contains(",2,1,0,0.03"), lines[2])
            XCTAssertTrue(lines[1].hasSuffix(",0,0,3,,,,,"), lines[1])  // no costs stored: the cost columns are empty
            // JSON keys in the same order as the CSV columns.
            let raw = String(buffer: try await client.call(.get, "/api/experiments/\(experiment.id)/compare").body)
            let keys = CompareView.columns.map { "\"\($0)\":" }
            var last = raw.startIndex
            for k in keys {
                let r = try XCTUnwrap(raw.range(of: k, range: last..<raw.endIndex), k)
                last = r.upperBound
            }

            // Grid aggregated over seeds: none/raw at 32/28 has n 3, top1 mean 0.91, std 0.01.
            let grid = try await client.json(.get, "/api/experiments/\(experiment.id)/grid")
            let cell = try XCTUnwrap(grid["cells"]?[0])
            XCTAssertEqual(cell["variant"]?.stringValue, "none")
            XCTAssertEqual(cell["n"]?.intValue, 3)
            XCTAssertEqual(cell["top1_mean"]!.doubleValue!, 0.91, accuracy: 1e-12)
            XCTAssertEqual(cell["top1_std"]!.doubleValue!, 0.01, accuracy: 1e-12)
            XCTAssertEqual(cell["loss_mean"]!.doubleValue!, 0.09, accuracy: 1e-12)
            XCTAssertEqual(grid["cells"]?.count, 3)
            let gridCSV = String(buffer: try await client.call(.get, "/api/experiments/\(experiment.id)/grid.csv").body)
            XCTAssertTrue(
                gridCSV.hasPrefix("variant,weights,stage,train_size,resize,crop,n,top1_mean,top1_std,top5_mean,loss_mean\r\n"))

            // A loss metric: lower wins.
            let loss = try await client.json(.get, "/api/experiments/\(experiment.id)/compare?metric=test/top1")
            XCTAssertEqual(loss["metric"]?.stringValue, "test/top1")
        }
    }
}
