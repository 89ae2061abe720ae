import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import PolyakTestSupport
import Store
import XCTest

@testable import Server

/// The EMA-length sweep end to end: `polyak train` children of the server with a post-hoc EMA
/// entry end with a stored sweep, read back as JSON and CSV and drawn on the pages.
final class PostHocSweepTests: XCTestCase {
    static let base =
        #"{"data": {"train_limit": 128, "test_limit": 100}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 32}}"#

    func testARealSweepIsStoredSummarisedAndDrawn() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, executable: exe))
        try await app.test(.live) { client in
            // 4 steps: ema@0.2 is σ_rel √0.2 / 0.8 / 4 = 0.1398 on the sweep's axis. Four widths keep
            // it quick (the default list is PostHocSweepPlanTests').
            let variant =
                #"{"name": "phema", "spec": {"averaging": [{"kind": "ema", "decays": [0.2]}, {"kind": "posthoc", "snapshots": 4, "sweep": [0.2, 0.03, 0.05, 0.1]}], "precise_bn": {"batches": 2}}}"#
            let body = #"{"name": "sweep", "base": \#(Self.base), "variants": ["none", \#(variant)], "seeds": [0, 1]}"#
            let created = try await client.json(.post, "/api/experiments", body, expect: .created)
            let id = try XCTUnwrap(created["id"]?.intValue)
            var experiment: JSONValue = .null
            let deadline = Date().addingTimeInterval(240)
            while true {
                experiment = try await client.json(.get, "/api/experiments/\(id)")
                let statuses = (0..<4).compactMap { experiment["runs"]?[$0]?["status"]?.stringValue }
                if statuses.allSatisfy({ ["completed", "failed", "cancelled"].contains($0) }) { break }
                guard Date() < deadline else { return XCTFail("runs did not finish: \(statuses)") }
                try await Task.sleep(nanoseconds: 300_000_000)
            }
            var sweepRuns: [Int] = []
            for i in 0..<4 {
                let run = experiment["runs"]![i]!
                XCTAssertEqual(run["status"]?.stringValue, "completed", "\(run)")
                let runID = run["id"]!.intValue!
                let sweepText = String(buffer: try await client.call(.get, "/api/runs/\(runID)/posthoc").body)
                let sweep = try JSONValue.parse(sweepText)
                XCTAssertEqual(sweep["run"]?.intValue, runID)
                if run["variant"]?.stringValue == "none" {
                    XCTAssertEqual(sweep["points"]?.count, 0, "a run without post-hoc EMA has no sweep")
                    continue
                }
                sweepRuns.append(runID)
                // The listed widths, narrowest first.
                let points = sweep["points"]!
                XCTAssertEqual(points.count, 4, "\(sweep)")
                let widths = (0..<points.count).compactMap { points[$0]?["sigma_rel"]?.doubleValue }
                XCTAssertEqual(widths, [0.03, 0.05, 0.1, 0.2])
                let first = points[0]!
                XCTAssertTrue(
                    sweepText.hasPrefix(#"{"run":\#(runID),"points":[{"sigma_rel":0.03,"decay":"#)
                        && sweepText.contains(#","weights":"phema@0.03","step":4,"bn":"precise","top1":"#), sweepText)
                XCTAssertEqual(first["weights"]?.stringValue, "phema@0.03")
                XCTAssertEqual(first["step"]?.intValue, 4)
                XCTAssertEqual(first["bn"]?.stringValue, "precise", "the default: precise BN, on precise_bn.batches")
                XCTAssertTrue((0...1).contains(first["top1"]!.doubleValue!))
                // The summary still ends the run and the sweep's widths are not exported.
                let full = try await client.json(.get, "/api/runs/\(runID)")
                XCTAssertEqual(full["summary"]?["status"]?.stringValue, "completed")
                let csv = try await client.call(.get, "/api/runs/\(runID)/posthoc.csv")
                let lines = String(buffer: csv.body).split(separator: "\r\n")
                XCTAssertEqual(lines.first, "sigma_rel,decay,weights,step,bn,top1,top5,loss")
                XCTAssertEqual(lines.count, 5)
                XCTAssertTrue(lines[1].hasPrefix("0.03,"), "\(lines[1])")

                let page = String(buffer: try await client.call(.get, "/runs/\(runID)").body)
                XCTAssertTrue(page.contains("EMA length (post-hoc EMA)"), page)
                XCTAssertTrue(page.contains("<table class=\"sortable\" id=\"sweep\">"), page)
                XCTAssertTrue(
                    page.contains("<td class=\"num\">0.03</td>") || page.contains("<td class=\"num\">0.03 <strong>"), page)
            }
            XCTAssertEqual(sweepRuns.count, 2)

            // The experiment's statistics: per width n = 2, a CI, a Δ vs none raw; one best per variant.
            let statsText = String(buffer: try await client.call(.get, "/api/experiments/\(id)/posthoc").body)
            let stats = try JSONValue.parse(statsText)
            XCTAssertEqual(
                ServiceTests.topLevelKeys(statsText), ["experiment", "metric", "baseline", "rows", "best", "ema_decays"])
            XCTAssertTrue(
                statsText.contains(#""rows":[{"variant":"phema","bn":"precise","sigma_rel":0.03,"decay":"#), statsText)
            XCTAssertEqual(stats["metric"]?.stringValue, "test/top1")
            XCTAssertEqual(stats["baseline"]?["variant"]?.stringValue, "none")
            let rows = stats["rows"]!
            XCTAssertEqual(rows.count, 4)
            let row = rows[0]!
            XCTAssertEqual(row["variant"]?.stringValue, "phema")
            XCTAssertEqual(row["n"]?.intValue, 2)
            XCTAssertNotNil(row["ci95_low"]?.doubleValue)
            XCTAssertNotNil(row["delta_mean"]?.doubleValue)
            XCTAssertEqual(stats["best"]?.count, 1)
            let best = stats["best"]![0]!
            let bestMean = best["mean"]!.doubleValue!
            let means = (0..<rows.count).compactMap { rows[$0]?["mean"]?.doubleValue }
            XCTAssertEqual(bestMean, means.max())
            XCTAssertEqual(stats["ema_decays"]?[0]?["weights"]?.stringValue, "ema@0.2")
            XCTAssertEqual(stats["ema_decays"]![0]!["sigma_rel"]!.doubleValue!, 0.2.squareRoot() / 0.8 / 4, accuracy: 1e-12)

            let csv = String(buffer: try await client.call(.get, "/api/experiments/\(id)/posthoc.csv").body)
            let lines = csv.split(separator: "\r\n")
            XCTAssertEqual(
                lines.first,
                "variant,bn,sigma_rel,decay,n,mean,std,ci95_low,ci95_high,delta_mean,delta_ci95_low,delta_ci95_high,best")
            XCTAssertEqual(lines.count, 5)
            XCTAssertEqual(lines.filter { $0.hasSuffix(",1") }.count, 1, csv)

            // The page: the chart on a log axis with ema@0.2 marked, and the best width in words.
            let page = String(buffer: try await client.call(.get, "/experiments/\(id)").body)
            XCTAssertTrue(page.contains("<h2 id=\"sweep-heading\">EMA length (post-hoc EMA)</h2>"), page)
            XCTAssertTrue(page.contains("σ_rel (relative EMA width, log scale)"))
            XCTAssertTrue(page.contains(">ema@0.2</text>"))
            XCTAssertTrue(page.contains("phema: best σ_rel \(PostHocFigure.short(best["sigma_rel"]!.doubleValue!))"), page)
            XCTAssertTrue(page.contains("Δ vs none raw"))

            // More widths of a completed run, later: a `polyak posthoc` child of the server.
            try assertError(
                try await client.call(.post, "/api/runs/\(sweepRuns[0])/posthoc", #"{"sigma_rels": [0.03, 0.3]}"#), .badRequest,
                field: "sigma_rels[1]", contains: "must be a width in (0, 0.25], got 0.3")
            try assertError(
                try await client.call(.post, "/api/runs/\(sweepRuns[0])/posthoc", #"{"sigma_rels": []}"#), .badRequest,
                field: "sigma_rels", contains: "give 1 to 100")
            try assertError(
                try await client.call(.post, "/api/runs/\(sweepRuns[0])/posthoc", #"{"sigma_rels": [0.03], "precise_bn": 0}"#),
                .badRequest, field: "precise_bn", contains: "[1, 10000]")
            let baselineRun = (0..<4).compactMap { i -> Int? in
                let r = experiment["runs"]![i]!
                return r["variant"]?.stringValue == "none" ? r["id"]!.intValue : nil
            }[0]
            try assertError(
                try await client.call(.post, "/api/runs/\(baselineRun)/posthoc", #"{"sigma_rels": [0.03]}"#), .conflict,
                field: nil,
                contains: "tracked no post-hoc EMA profiles")
            let more = try await client.json(
                .post, "/api/runs/\(sweepRuns[0])/posthoc", #"{"sigma_rels": [0.033, 0.05]}"#)
            XCTAssertEqual(more["points"]?.count, 6, "two widths with synthesised BN beside the 4 precise ones")
            let synthesized = (0..<6).compactMap { more["points"]?[$0] }.filter { $0["bn"]?.stringValue == "synthesized" }
            XCTAssertEqual(synthesized.compactMap { $0["sigma_rel"]?.doubleValue }, [0.033, 0.05])
        }
    }

    func testAnExperimentWithoutASweepAnswersEmptyAndItsPageHasNoChart() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.router) { client in
            let created = try await client.json(
                .post, "/api/experiments", #"{"name": "plain", "base": \#(Self.base), "variants": ["none"], "seeds": [0]}"#,
                expect: .created)
            let id = created["id"]!.intValue!
            let stats = try await client.json(.get, "/api/experiments/\(id)/posthoc")
            XCTAssertEqual(stats["rows"]?.count, 0)
            XCTAssertEqual(stats["best"]?.count, 0)
            let page = String(buffer: try await client.call(.get, "/experiments/\(id)").body)
            XCTAssertFalse(page.contains("sweep-heading"))
            let run = created["runs"]![0]!["id"]!.intValue!
            let runSweep = try await client.json(.get, "/api/runs/\(run)/posthoc")
            XCTAssertEqual(runSweep["points"]?.count, 0)
            try assertError(try await client.call(.get, "/api/runs/999/posthoc"), .notFound, field: nil, contains: "run 999")
            try assertError(
                try await client.call(.get, "/api/experiments/999/posthoc.csv"), .notFound, field: nil, contains: "experiment 999"
            )
        }
    }

    func testBadSweepsAreRefusedWithTheirField() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.router) { client in
            let bad =
                #"{"name": "bad", "base": \#(Self.base), "variants": [{"name": "p", "spec": {"averaging": {"kind": "posthoc", "sweep": [0.05, 0.4]}}}], "seeds": [0]}"#
            let r = try await client.call(.post, "/api/experiments", bad)
            XCTAssertEqual(r.status, .badRequest)
            XCTAssertTrue(
                String(buffer: r.body).contains("averaging.sweep[1] must be in (0, 0.25], got 0.4"), String(buffer: r.body))
            let run = #"{"data": {"train_limit": 256}, "averaging": {"kind": "posthoc", "sweep": [0.1, 0.1]}}"#
            try assertError(
                try await client.call(.post, "/api/runs", run), .badRequest, field: "averaging.sweep[1]",
                contains: "repeats the width 0.1")
            let bn = #"{"averaging": {"kind": "posthoc", "sweep_bn": "recomputed"}}"#
            try assertError(
                try await client.call(.post, "/api/runs", bn), .badRequest, field: "averaging.sweep_bn",
                contains: "must be one of synthesized, precise")
            let list = try await client.json(.get, "/api/experiments")
            XCTAssertEqual(list["experiments"]?.count, 0, "nothing stored")
        }
    }
}
