import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import PolyakTestSupport
import Store
import XCTest

@testable import Server

/// Shared trajectories end to end: one run per seed for the variants that train the same weights,
/// each variant answering with its own weight sets, and the same numbers as separate runs.
final class SharedRunsTests: XCTestCase {
    static let tiny =
        #"{"data": {"train_limit": 256, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}, "resolution": {"test_grid": {"resize": [28], "crop": [28]}}}"#
    static let defaultVariants = #"["none", "ema", "ema-warmup", "swa"]"#

    /// What `polyak train` printed: every metric line (weights → "key@step" → value) and every line of
    /// the EMA-length sweep (weights → the line without its clock reading, `seconds`).
    struct Trained {
        var metrics: [String: [String: Double]] = [:]
        var sweep: [String: String] = [:]
    }

    func train(_ exe: String, _ spec: RunSpec, in folder: TempFolder, as name: String) throws -> Trained {
        let file = folder.url.appendingPathComponent("\(name).json")
        try spec.jsonData().write(to: file)
        let out = try runProcess(exe, ["train", "--spec", file.path, "--out", folder.url.appendingPathComponent(name).path])
        XCTAssertEqual(out.status, 0, out.err)
        var trained = Trained()
        for line in out.out.split(separator: "\n") {
            let event = try JSONValue.parse(String(line))
            switch event["type"]?.stringValue {
            case "metric":
                let key = "\(event["key"]!.stringValue!)@\(event["step"]!.intValue!)"
                trained.metrics[event["weights"]!.stringValue!, default: [:]][key] = event["value"]!.doubleValue!
            case "posthoc":
                guard case .object(var fields) = event else { continue }
                fields["seconds"] = nil
                trained.sweep[event["weights"]!.stringValue!] = JSONValue.object(fields).text()
            default: continue
            }
        }
        return trained
    }

    /// The shared run and each variant's own run, through the real trainer: every point of every
    /// weight set a variant reads is the same Double, bit for bit (raw included: the copy it replaces),
    /// and so is every point of the post-hoc variant's EMA-length sweep, which the shared run does once.
    /// Two widths, not the default 16 or more: each costs 50 precise-BN batches and an evaluation, in
    /// both runs (the default list is PostHocSweepPlanTests').
    func testASharedRunTrainsWhatSeparateRunsTrain() throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let body = #"""
            {"name": "same", "base": \#(Self.tiny), "variants": ["none", "ema", "ema-warmup",
              {"name": "ph", "spec": {"averaging": {"kind": "posthoc", "snapshots": 2, "sweep": [0.07, 0.2]}}}], "seeds": [7]}
            """#
        let request = try ExperimentRequest(try JSONValue.parse(body), presets: realPresets)
        let members = try request.runSpecs(presets: realPresets) { _ in }.map {
            TrajectoryPlanner.Member(variant: $0.variant.name, spec: $0.spec)
        }
        let runs = TrajectoryPlanner.plan(members, baseline: "none")
        XCTAssertEqual(runs.count, 1)
        let shared = try train(exe, runs[0].spec, in: folder, as: "shared")
        XCTAssertTrue(runs[0].spec.weightSetNames.contains { $0.hasSuffix("~ema-warmup") }, "a renamed set is covered")
        XCTAssertEqual(Set(shared.sweep.keys), ["phema@0.07", "phema@0.2"])
        for m in members {
            let alone = try train(exe, m.spec, in: folder, as: m.variant)
            XCTAssertEqual(Set(alone.metrics.keys), Set(m.spec.weightSetNames))
            XCTAssertEqual(alone.sweep, m.spec.postHocSpec == nil ? [:] : shared.sweep, m.variant)
            for weights in m.spec.weightSetNames {
                let runWeights = runs[0].shares.first { $0.variant == m.variant && $0.weights == weights }?.runWeights ?? weights
                let (a, s) = (alone.metrics[weights] ?? [:], shared.metrics[runWeights] ?? [:])
                XCTAssertGreaterThan(a.count, 2, "\(m.variant) · \(weights)")
                XCTAssertEqual(Set(a.keys), Set(s.keys), "\(m.variant) · \(weights)")
                for (key, value) in a {
                    XCTAssertEqual(value.bitPattern, s[key]?.bitPattern, "\(m.variant) · \(weights) (\(runWeights)) \(key)")
                }
            }
        }
    }

    func waitForAll(_ client: some TestClientProtocol, experiment id: Int) async throws -> JSONValue {
        let deadline = Date().addingTimeInterval(300)
        while true {
            let e = try await client.json(.get, "/api/experiments/\(id)")
            let statuses = (0..<e["runs"]!.count).compactMap { e["runs"]![$0]!["status"]?.stringValue }
            if statuses.allSatisfy({ ["completed", "failed", "cancelled"].contains($0) }) { return e }
            guard Date() < deadline else {
                XCTFail("runs did not finish: \(statuses)")
                return e
            }
            try await Task.sleep(nanoseconds: 300_000_000)
        }
    }

    /// The default comparison (none/ema/ema-warmup/swa × 3 seeds) on a tiny recipe: 6 runs, and the
    /// comparison, grid and pages per variant × weight set as before, without `ema · raw`.
    func testTheDefaultComparisonQueuesSixRunsAndComparesPerVariant() async throws {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, executable: exe))
        try await app.test(.live) { client in
            let body = #"{"name": "default", "base": \#(Self.tiny), "variants": \#(Self.defaultVariants), "seeds": [0, 1, 2]}"#
            let created = try await client.json(.post, "/api/experiments", body, expect: .created)
            let id = try XCTUnwrap(created["id"]?.intValue)
            XCTAssertEqual(created["runs"]?.count, 6)
            let experiment = try await waitForAll(client, experiment: id)
            let runs = (0..<6).map { experiment["runs"]![$0]! }
            XCTAssertEqual(
                runs.map { $0["name"]?.stringValue ?? "" },
                [0, 1, 2].map { "none+ema+ema-warmup-seed\($0)" } + [0, 1, 2].map { "swa-seed\($0)" })
            XCTAssertEqual(runs.map { $0["variant"]?.stringValue ?? "" }, ["none", "none", "none", "swa", "swa", "swa"])
            XCTAssertEqual(runs[0]["variants"], ["none", "ema", "ema-warmup"])
            XCTAssertNil(runs[3]["variants"], "a run of one variant reads as before")
            for r in runs { XCTAssertEqual(r["status"]?.stringValue, "completed", "\(r)") }

            // The tiny run's presets: ema tracks 0.5; ema-warmup 0.5 (renamed in the run) and 0.6.
            let sharedRun = try await client.json(.get, "/api/runs/\(runs[0]["id"]!.intValue!)")
            XCTAssertEqual(
                sharedRun["shares"],
                try JSONValue.parse(
                    #"""
                    [{"variant": "none", "weights": "raw", "run_weights": "raw"},
                     {"variant": "ema", "weights": "ema@0.5", "run_weights": "ema@0.5"},
                     {"variant": "ema-warmup", "weights": "ema@0.5", "run_weights": "ema@0.5~ema-warmup"},
                     {"variant": "ema-warmup", "weights": "ema@0.6", "run_weights": "ema@0.6~ema-warmup"}]
                    """#))
            // variant → seed → weights → final test/top1, read from each run's own sets.
            var finals: [String: [Int: [String: Double]]] = [:]
            for r in runs {
                let full = try await client.json(.get, "/api/runs/\(r["id"]!.intValue!)")
                let seed = r["seed"]!.intValue!
                if case .array(let shares)? = full["shares"] {
                    for s in shares {
                        finals[s["variant"]!.stringValue!, default: [:]][seed, default: [:]][s["weights"]!.stringValue!] =
                            full["summary"]!["final"]![s["run_weights"]!.stringValue!]!["test/top1"]!.doubleValue!
                    }
                } else {
                    for w in ["raw", "swa"] {
                        finals["swa", default: [:]][seed, default: [:]][w] = full["summary"]!["final"]![w]!["test/top1"]!
                            .doubleValue!
                    }
                }
            }

            let compare = try await client.json(.get, "/api/experiments/\(id)/compare")
            let rows = (0..<compare["rows"]!.count).map { compare["rows"]![$0]! }
            XCTAssertEqual(
                rows.map { "\($0["variant"]!.stringValue!) · \($0["weights"]!.stringValue!)" },
                ["none · raw", "ema · ema@0.5", "ema-warmup · ema@0.5", "ema-warmup · ema@0.6", "swa · raw", "swa · swa"])
            for row in rows {
                let variant = row["variant"]!.stringValue!, weights = row["weights"]!.stringValue!
                let xs = [0, 1, 2].map { finals[variant]![$0]![weights]! }
                let deltas = [0, 1, 2].map { xs[$0] - finals["none"]![$0]!["raw"]! }
                XCTAssertEqual(row["n"]?.intValue, 3)
                XCTAssertEqual(row["mean"]!.doubleValue!, xs.reduce(0, +) / 3, accuracy: 1e-12, "\(variant) · \(weights)")
                XCTAssertEqual(row["delta_mean"]!.doubleValue!, deltas.reduce(0, +) / 3, accuracy: 1e-12)
            }
            let csv = String(buffer: try await client.call(.get, "/api/experiments/\(id)/compare.csv").body)
            let lines = csv.split(separator: "\r\n")
            XCTAssertEqual(lines.count, 7)
            XCTAssertTrue(lines[3].hasPrefix("ema-warmup,ema@0.5,test/top1,3,"), String(lines[3]))

            // The grid and the curves per variant × weight set, under the variant's names.
            let grid = try await client.json(.get, "/api/experiments/\(id)/grid")
            let cells = (0..<grid["cells"]!.count).map { grid["cells"]![$0]! }
            XCTAssertEqual(
                cells.map { "\($0["variant"]!.stringValue!) · \($0["weights"]!.stringValue!)" },
                ["none · raw", "ema · ema@0.5", "ema-warmup · ema@0.5", "ema-warmup · ema@0.6", "swa · raw", "swa · swa"])
            for c in cells { XCTAssertEqual(c["n"]?.intValue, 3) }
            let page = String(buffer: try await client.call(.get, "/experiments/\(id)").body)
            XCTAssertTrue(page.contains("none, ema, ema-warmup (shared)"), "the run list names a shared run's variants")
            XCTAssertTrue(page.contains("ema-warmup · test/top1"), "a curve panel per variant")
            XCTAssertFalse(page.contains("~ema-warmup"), "the experiment speaks the variants' own names")
            let runPage = String(buffer: try await client.call(.get, "/runs/\(runs[0]["id"]!.intValue!)").body)
            XCTAssertTrue(runPage.contains("ema-warmup: ema@0.5 = ema@0.5~ema-warmup, ema@0.6 = ema@0.6~ema-warmup"))

            // ?variant= finds the shared runs of every variant they serve.
            for (variant, count) in [("ema-warmup", 3), ("none", 3), ("swa", 3), ("kd", 0)] {
                let listed = try await client.json(.get, "/api/runs?variant=\(variant)")
                XCTAssertEqual(listed["runs"]?.count, count, variant)
            }
        }
    }

    /// An experiment stored before sharing (a run per variant, no shares) reads as it did: each run
    /// is its variant's, every set under its own name, `ema · raw` included.
    func testExperimentsStoredBeforeReadAsTheyDid() async throws {
        try await PageFixture.serve { client, f in
            let compare = try await client.json(.get, "/api/experiments/\(f.experimentID)/compare")
            let rows = (0..<compare["rows"]!.count).map { compare["rows"]![$0]! }
            XCTAssertEqual(
                rows.map { "\($0["variant"]!.stringValue!) · \($0["weights"]!.stringValue!)" },
                ["none · raw", "ema · raw", "ema · ema@0.998"])
            XCTAssertEqual(
                rows[1]["mean"]!.doubleValue!, PageFixture.top1(variant: 1, seed: 1, weights: "raw", epoch: 3), accuracy: 1e-12)
            let grid = try await client.json(.get, "/api/experiments/\(f.experimentID)/grid")
            XCTAssertEqual(grid["cells"]?.count, 3 * 4)
            let e = try await client.json(.get, "/api/experiments/\(f.experimentID)")
            for i in 0..<6 {
                XCTAssertNil(e["runs"]?[i]?["variants"])
                XCTAssertNil(e["runs"]?[i]?["shares"])
            }
            let listed = try await client.json(.get, "/api/runs?variant=ema")
            XCTAssertEqual(listed["runs"]?.count, 3)
            let page = String(buffer: try await client.call(.get, "/experiments/\(f.experimentID)").body)
            XCTAssertFalse(page.contains("(shared)"))
        }
    }

    /// Adding seeds and running a shared run again keep the sharing.
    func testAddedSeedsAndRerunsShareToo() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let body = #"{"name": "grow", "base": \#(Self.tiny), "variants": \#(Self.defaultVariants), "seeds": [0]}"#
            let created = try await client.json(.post, "/api/experiments", body, expect: .created)
            let id = try XCTUnwrap(created["id"]?.intValue)
            XCTAssertEqual(created["runs"]?.count, 2)
            let first = try XCTUnwrap(created["runs"]?[0])
            let added = try await client.json(.post, "/api/experiments/\(id)/seeds", #"{"add": 2}"#, expect: .created)
            XCTAssertEqual(added["runs"]?.count, 6)
            let shared = (0..<6).compactMap { added["runs"]?[$0] }.filter { $0["variants"] != nil }
            XCTAssertEqual(
                shared.map { $0["name"]?.stringValue ?? "" },
                ["none+ema+ema-warmup-seed0", "none+ema+ema-warmup-seed1", "none+ema+ema-warmup-seed2"])
            let source = try await client.json(.get, "/api/runs/\(first["id"]!.intValue!)")
            for run in shared {
                let full = try await client.json(.get, "/api/runs/\(run["id"]!.intValue!)")
                XCTAssertEqual(full["shares"], source["shares"])
                XCTAssertEqual(full["spec"]?["averaging"], source["spec"]?["averaging"])
            }

            let rerun = try await client.json(.post, "/api/runs/\(first["id"]!.intValue!)/rerun", expect: .created)
            XCTAssertEqual(rerun["name"]?.stringValue, "none+ema+ema-warmup-seed3")
            XCTAssertEqual(rerun["variant"]?.stringValue, "none")
            XCTAssertEqual(rerun["variants"], ["none", "ema", "ema-warmup"])
            XCTAssertEqual(rerun["shares"], source["shares"])
            XCTAssertEqual(rerun["spec"]?["averaging"], source["spec"]?["averaging"])
        }
    }
}
