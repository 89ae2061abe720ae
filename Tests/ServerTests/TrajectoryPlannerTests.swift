import Experiments
import Store
import XCTest

@testable import Server

/// The planner alone: who shares a run, the union's weight sets and their names, who reads what.
final class TrajectoryPlannerTests: XCTestCase {
    /// One seed's member specs of an experiment body, as the service expands it.
    func members(_ body: String, seed: UInt64 = 0) throws -> (members: [TrajectoryPlanner.Member], baseline: String) {
        let request = try ExperimentRequest(try JSONValue.parse(body), presets: realPresets)
        let specs = try request.runSpecs(presets: realPresets) { _ in }
        return (
            specs.filter { $0.spec.seed == seed }.map { TrajectoryPlanner.Member(variant: $0.variant.name, spec: $0.spec) },
            request.baseline
        )
    }

    func plan(_ body: String) throws -> [TrajectoryPlanner.PlannedRun] {
        let (m, baseline) = try members(body)
        return TrajectoryPlanner.plan(m, baseline: baseline)
    }

    /// variant → [(its name, the run's name)].
    func reads(_ run: TrajectoryPlanner.PlannedRun) -> [String: [[String]]] {
        Dictionary(grouping: run.shares, by: \.variant).mapValues { $0.map { [$0.weights, $0.runWeights] } }
    }

    let base = #"{"data": {"train_limit": 6400}, "optim": {"epochs": 10, "batch_size": 64}}"#

    func testTheDefaultComparisonTrainsTwoRunsPerSeed() throws {
        // The reference recipe (4 680 steps), as ../shared/spec/examples/default-comparison.json asks.
        let body = #"{"name": "d", "base": {}, "variants": ["none", "ema", "ema-warmup", "swa"], "seeds": [0, 1, 2]}"#
        let (members, _) = try members(body)
        let runs = try plan(body)
        XCTAssertEqual(runs.map(\.variants), [["none", "ema", "ema-warmup"], ["swa"]])
        let shared = runs[0]
        XCTAssertEqual(shared.owner, "none")
        XCTAssertEqual(shared.spec.name, "none+ema+ema-warmup-seed0")
        XCTAssertEqual(runs[1].spec, members[3].spec, "a run of one variant is that variant's spec, untouched")
        XCTAssertEqual(runs[1].shares, [])

        // Both presets track 0.996, with and without warmup: two trajectories, so the later entry is
        // labelled, whole (its 0.998 too, so one file name never hides which EMA it holds).
        let ema = members[1].spec.emaSpecs[0], warm = members[2].spec.emaSpecs[0]
        XCTAssertEqual(ema.weightSetNames, ["ema@0.996", "ema@0.999"])
        XCTAssertEqual(warm.weightSetNames, ["ema@0.996", "ema@0.998"])
        XCTAssertEqual(
            shared.spec.weightSetNames, ["raw", "ema@0.996", "ema@0.999", "ema@0.996~ema-warmup", "ema@0.998~ema-warmup"])
        XCTAssertEqual(
            reads(shared),
            [
                "none": [["raw", "raw"]],
                "ema": [["ema@0.996", "ema@0.996"], ["ema@0.999", "ema@0.999"]],
                "ema-warmup": [["ema@0.996", "ema@0.996~ema-warmup"], ["ema@0.998", "ema@0.998~ema-warmup"]],
            ], "raw is none's alone: no ema · raw copy")
        XCTAssertEqual(shared.shares.map(\.variant), ["none", "ema", "ema", "ema-warmup", "ema-warmup"], "experiment order")
        // The union trains exactly what none trains, and is a valid spec on its own.
        XCTAssertEqual(TrajectoryPlanner.trajectoryKey(shared.spec), TrajectoryPlanner.trajectoryKey(members[0].spec))
        XCTAssertEqual(try RunSpec.decode(shared.spec.json()), shared.spec)
    }

    func testOneTrajectoryTrackedTwiceIsTrackedOnce() throws {
        let runs = try plan(
            #"""
            {"name": "d", "base": \#(base), "variants": [
              {"name": "a", "spec": {"averaging": {"kind": "ema", "decays": [0.99]}}},
              {"name": "b", "spec": {"averaging": {"kind": "ema", "decays": [0.995, 0.99]}}},
              {"name": "c", "spec": {"averaging": {"kind": "ema", "decays": [0.99], "every": 2}}}]}
            """#)
        XCTAssertEqual(runs.count, 1)
        XCTAssertEqual(runs[0].owner, "a", "the baseline")
        XCTAssertEqual(runs[0].spec.weightSetNames, ["raw", "ema@0.99", "ema@0.995", "ema@0.99~c"])
        XCTAssertEqual(
            reads(runs[0]),
            [
                "a": [["raw", "raw"], ["ema@0.99", "ema@0.99"]],
                "b": [["ema@0.99", "ema@0.99"], ["ema@0.995", "ema@0.995"]],
                "c": [["ema@0.99", "ema@0.99~c"]],
            ])
    }

    func testLabelsStayValidAndDistinct() throws {
        let runs = try plan(
            #"""
            {"name": "d", "base": \#(base), "variants": ["none",
              {"name": "a", "spec": {"averaging": {"kind": "ema", "decays": [0.99]}}},
              {"name": "slow ema", "spec": {"averaging": {"kind": "ema", "decays": [0.99], "warmup": {"kind": "threshold"}}}},
              {"name": "v3", "spec": {"averaging": {"kind": "ema", "decays": [0.99], "warmup": {"kind": "yolo"}}}},
              {"name": "w", "spec": {"averaging": {"kind": "ema", "decays": [0.99], "every": 3, "label": "v3"}}}]}
            """#)
        XCTAssertEqual(runs.count, 1)
        // "slow ema" cannot name a file: as the 3rd variant it is v3; the variant v3 then takes v3-2,
        // and w's own label, taken by now, gives way to its name.
        XCTAssertEqual(runs[0].spec.weightSetNames, ["raw", "ema@0.99", "ema@0.99~v3", "ema@0.99~v3-2", "ema@0.99~w"])
        XCTAssertEqual(reads(runs[0])["w"], [["ema@0.99~v3", "ema@0.99~w"]])
        XCTAssertEqual(try RunSpec.decode(runs[0].spec.json()), runs[0].spec)
    }

    func testWhatChangesTrainingTrainsApart() throws {
        let runs = try plan(
            #"""
            {"name": "d", "base": \#(base), "variants": ["none", "ema", "swa", "fixres",
              {"name": "swa-ema", "preset": "swa", "spec": {"averaging": [{"kind": "swa"}, {"kind": "ema", "decays": [0.9]}]}},
              {"name": "swa-2", "preset": "swa", "spec": {"averaging": [{"kind": "swa"}, {"kind": "posthoc"}]}},
              {"name": "lr", "preset": "ema", "spec": {"optim": {"lr": 0.05}}},
              {"name": "pbn", "preset": "ema", "spec": {"precise_bn": {"batches": 2}}},
              {"name": "kd", "preset": "kd", "spec": {"distillation": {"teacher": {"path": "/t.safetensors", "model": {"width": 16}}}}}]}
            """#)
        XCTAssertEqual(
            runs.map(\.variants), [["none", "ema"], ["swa"], ["fixres"], ["swa-ema", "swa-2"], ["lr"], ["pbn"], ["kd"]])
        // Two variants with the same SWA share it; each reads its swa, only the first the raw.
        let swa = runs[3]
        XCTAssertEqual(swa.spec.weightSetNames, ["raw", "ema@0.9", "swa", "phema@0.05", "phema@0.1"])
        XCTAssertEqual(
            reads(swa),
            [
                "swa-ema": [["raw", "raw"], ["ema@0.9", "ema@0.9"], ["swa", "swa"]],
                "swa-2": [["swa", "swa"], ["phema@0.05", "phema@0.05"], ["phema@0.1", "phema@0.1"]],
            ])
    }

    func testRawGoesToTheBaselineOrAVariantWithoutAveraging() throws {
        // Baseline ema: it owns raw; none, whose only set is raw, keeps it too (it would vanish else).
        var runs = try plan(#"{"name": "d", "base": \#(base), "variants": ["none", "ema"], "baseline": "ema"}"#)
        XCTAssertEqual(runs[0].owner, "ema")
        XCTAssertEqual(runs[0].spec.name, "none+ema-seed0")
        XCTAssertEqual(runs[0].shares.filter { $0.weights == "raw" }.map(\.variant), ["none", "ema"])
        // Baseline apart (swa): the first variant without averaging, else the first.
        runs = try plan(#"{"name": "d", "base": \#(base), "variants": ["swa", "ema", "none"]}"#)
        XCTAssertEqual(runs.map(\.owner), ["swa", "none"])
        XCTAssertEqual(runs[1].spec.name, "ema+none-seed0", "named in the experiment's order")
        runs = try plan(#"{"name": "d", "base": \#(base), "variants": ["swa", "ema", "ema-warmup"]}"#)
        XCTAssertEqual(runs[1].owner, "ema")
        XCTAssertEqual(runs[1].shares.filter { $0.weights == "raw" }.map(\.variant), ["ema"])
    }

    func testPostHocEntriesMergeOnlyWithTheSameSnapshots() throws {
        let runs = try plan(
            #"""
            {"name": "d", "base": \#(base), "variants": ["none",
              {"name": "p1", "spec": {"averaging": {"kind": "posthoc", "sigma_rels": [0.05]}}},
              {"name": "p2", "spec": {"averaging": {"kind": "posthoc", "sigma_rels": [0.1, 0.05]}}},
              {"name": "p3", "spec": {"averaging": {"kind": "posthoc", "snapshots": 10}}},
              {"name": "p4", "spec": {"averaging": {"kind": "posthoc", "sweep": []}}},
              {"name": "p5", "spec": {"averaging": {"kind": "posthoc", "sweep": [], "sigma_rels": [0.2]}}},
              {"name": "p6", "spec": {"averaging": {"kind": "posthoc", "sweep_bn": "synthesized"}}}]}
            """#)
        // The sweep is the shared run's, done once: a member with other widths or BN mode trains apart.
        XCTAssertEqual(runs.map(\.variants), [["none", "p1", "p2"], ["p3"], ["p4", "p5"], ["p6"]])
        XCTAssertEqual(runs[2].spec.postHocSpec?.sweep, [])
        XCTAssertEqual(runs[2].spec.postHocSpec?.sigmaRels, [0.05, 0.1, 0.2])
        XCTAssertEqual(runs[3].spec.postHocSpec?.sweepBatchNorm, .synthesized)
        XCTAssertEqual(runs[0].spec.postHocSpec, PostHocSpec(sigmaRels: [0.05, 0.1], snapshots: 100))
        XCTAssertEqual(reads(runs[0])["p2"], [["phema@0.05", "phema@0.05"], ["phema@0.1", "phema@0.1"]])
    }

    /// The EMA entry's `label`: an addition; names its sets, lets one decay be tracked twice, and
    /// must be able to name a file.
    func testTheEMALabel() throws {
        let spec = try RunSpec.decode(
            try JSONValue.parse(
                #"{"averaging": [{"kind": "ema", "decays": [0.9]}, {"kind": "ema", "decays": [0.9], "label": "w-1.b_c"}]}"#))
        XCTAssertEqual(spec.weightSetNames, ["raw", "ema@0.9", "ema@0.9~w-1.b_c"])
        XCTAssertEqual(try RunSpec.decode(spec.json()), spec)
        XCTAssertNil(RunSpec().json()["averaging"]?[0], "defaults unchanged")
        XCTAssertNil(
            try RunSpec.decode(try JSONValue.parse(#"{"averaging": {"kind": "ema", "decays": [0.9]}}"#)).json()["averaging"]?[0]?[
                "label"])
        for bad in [#""a/b""#, #""""#, #""\#(String(repeating: "x", count: 65))""#, "3"] {
            XCTAssertThrowsError(
                try RunSpec.decode(try JSONValue.parse(#"{"averaging": {"kind": "ema", "decays": [0.9], "label": \#(bad)}}"#))
            ) { error in
                XCTAssertEqual((error as? SpecError)?.field, "averaging.label", bad)
            }
        }
        XCTAssertThrowsError(
            try RunSpec.decode(
                try JSONValue.parse(
                    #"{"averaging": [{"kind": "ema", "decays": [0.9], "label": "a"}, {"kind": "ema", "decays": [0.9], "label": "a"}]}"#
                ))
        ) { error in
            XCTAssertEqual((error as? SpecError)?.field, "averaging[1].decays[0]")
        }
    }

    func testLongNamesAreCut() {
        let long = String(repeating: "x", count: 120)
        let name = TrajectoryPlanner.runName([long, long + "y", "z"], seed: 3)
        XCTAssertEqual(name, long + "+2-seed3")
        XCTAssertEqual(TrajectoryPlanner.runName(["a", "b"], seed: 0), "a+b-seed0")
    }
}
