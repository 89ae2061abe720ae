import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import XCTest

@testable import Server

/// A small finished experiment written straight into a store, with values the tests can predict:
/// top-1 of variant `v` (its index), seed `s`, weight set `w` after epoch `e` is
/// 0.80 + 0.01·e + 0.002·v + 0.001·s (+ 0.003 for `ema@0.998`).
struct PageFixture {
    static let variants = ["none", "ema"]
    static let seeds: [Int64] = [0, 1, 2]
    static let epochs: Int64 = 3

    static func top1(variant: Int, seed: Int64, weights: String, epoch: Int64) -> Double {
        0.80 + 0.01 * Double(epoch) + 0.002 * Double(variant) + 0.001 * Double(seed) + (weights == "ema@0.998" ? 0.003 : 0)
    }

    var experimentID: Int64
    var runs: [RunRecord]
    var failedRunID: Int64
    var liveRunID: Int64

    /// A live server over a fresh database holding the fixture.
    static func serve(_ body: (any TestClientProtocol, PageFixture) async throws -> Void) async throws {
        let folder = try TempFolder()
        let fixture = try PageFixture.write(store: try TrackingStore(path: folder.db), dataDirectory: folder.data)
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in try await body(client, fixture) }
    }

    /// Writes the experiment (2 variants × 3 seeds, completed, with curves, grids and an export
    /// file), a failed run and an external run in progress.
    static func write(store: TrackingStore, dataDirectory: String) throws -> PageFixture {
        let spec = try RunSpec.decode(["experiment": "fixture", "seed": 0]).json()
        var news: [NewRun] = []
        for v in variants {
            for s in seeds {
                news.append(
                    NewRun(
                        experiment: "fixture", variant: v, seed: s, name: "\(v)-seed\(s)",
                        strategies: v == "none" ? ["none"] : ["ema"],
                        status: .completed,
                        specJSON: spec.merged(with: ["seed": .number(Double(s)), "name": .string("\(v)-seed\(s)")]).text(),
                        codeVersion: "test"))
            }
        }
        let variantsJSON = JSONValue.array(variants.map { ["name": .string($0), "preset": .string($0), "spec": [:]] }).text()
        let (experiment, runs) = try store.createExperiment(
            name: "fixture", baseJSON: "{}", variantsJSON: variantsJSON, seedsJSON: "[0,1,2]", baseline: "none", runs: news)
        for r in runs {
            let v = variants.firstIndex(of: r.variant!)!
            let sets = v == 0 ? ["raw"] : ["raw", "ema@0.998"]
            var points: [MetricPoint] = []
            for e in 1...epochs {
                for w in sets {
                    let top1 = top1(variant: v, seed: r.seed, weights: w, epoch: e)
                    points.append(
                        MetricPoint(
                            key: "test/top1", weights: w, step: e * 10, epoch: e, value: top1, time: 1_764_000_000 + Double(e)))
                    points.append(
                        MetricPoint(
                            key: "test/loss", weights: w, step: e * 10, epoch: e, value: 2 - 2 * top1,
                            time: 1_764_000_000 + Double(e)))
                }
                points.append(
                    MetricPoint(
                        key: "train/loss", step: e * 10, epoch: e, value: 1.0 / Double(e), time: 1_764_000_000 + Double(e)))
                if v == 1 {
                    points.append(
                        MetricPoint(
                            key: "ema/decay", weights: "ema@0.998", step: e * 10, epoch: e, value: 0.9 + 0.03 * Double(e),
                            time: 1_764_000_000))
                }
            }
            _ = try store.logBatch(run: r.id, points, policy: .refuse)
            var cells: [GridCell] = []
            for w in sets {
                for (resize, crop) in [(28, 24), (28, 28), (32, 24), (32, 28)] {
                    let t =
                        top1(variant: v, seed: r.seed, weights: w, epoch: epochs) - 0.01 * Double(abs(crop - 28)) - 0.005
                        * Double(resize - 28)
                    cells.append(
                        GridCell(
                            weights: w, stage: "base", trainSize: 28, resize: Int64(resize), crop: Int64(crop), top1: t,
                            top5: 0.99, loss: 0.3))
                }
            }
            try store.saveGrid(run: r.id, cells)
            let folder = dataDirectory + "/runs/\(r.id)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let bytes = Array("weights of run \(r.id)".utf8)
            _ = FileManager.default.createFile(atPath: folder + "/final.safetensors", contents: Data(bytes))
            try store.saveArtifact(
                run: r.id,
                Artifact(
                    name: "raw", kind: .export, path: "final.safetensors", bytes: Int64(bytes.count),
                    sha256: SHA256.hex(of: bytes)))
            var final: [String: JSONValue] = [:]
            for w in sets { final[w] = ["test/top1": .number(top1(variant: v, seed: r.seed, weights: w, epoch: epochs))] }
            try store.setSummary(r.id, json: JSONValue.object(["status": "completed", "final": .object(final)]).text())
            try store.setProgress(r.id, json: #"{"epoch":3,"step":30,"total_steps":30,"images_per_sec":5000,"eta_s":0}"#)
            try store.setStatus(r.id, .running)
            try store.setStatus(r.id, .completed)
        }
        let failed = try store.createRun(
            NewRun(seed: 7, name: "broken <run>", status: .queued, specJSON: spec.text(), codeVersion: "test"))
        try store.setStatus(failed.id, .running)
        try store.setStatus(failed.id, .failed, error: "diverged at step 812 & <stopped>")
        let live = try store.createRun(
            NewRun(name: "external-live", external: true, status: .running, specJSON: "{}", codeVersion: "test"))
        try store.setProgress(live.id, json: #"{"epoch":2,"step":150,"total_steps":600,"images_per_sec":4321,"eta_s":95}"#)
        _ = try store.logBatch(
            run: live.id,
            [
                MetricPoint(key: "val/acc", step: 1, value: 0.5, time: 1),
                MetricPoint(key: "val/acc", step: 2, value: .nan, time: 2),
                MetricPoint(key: "val/acc", step: 3, value: 0.7, time: 3),
            ], policy: .refuse)
        return PageFixture(experimentID: experiment.id, runs: runs, failedRunID: failed.id, liveRunID: live.id)
    }
}
