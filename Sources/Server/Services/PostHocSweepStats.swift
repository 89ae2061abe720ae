import Experiments
import Foundation
import Store

/// The EMA-length sweep of an experiment as pure functions: the runs' sweep points in, per variant
/// and per relative width σ_rel the test top-1 over seeds (mean, Student-t 95 % CI, paired Δ vs
/// the baseline's raw weights) and the best width out. No store, no HTTP: the API, the CSV and
/// the experiment page read these.
enum PostHocSweepStats {
    /// A run whose sweep and raw weights count for a variant, with the seed Δ pairs on.
    struct Member: Equatable {
        var run: Int64
        var seed: Int64
        /// Whether the run's sweep is this variant's: false for a variant that shares the run's
        /// trajectory without asking for post-hoc EMA (its raw weights may still be the reference).
        var ownsSweep = true
    }

    /// Which runs stand for each variant: each completed run of the experiment for its own variant
    /// (a run outside any variant as ""); a shared run for every variant it serves, its sweep
    /// only for those that read one of its `phema@…` sets.
    static func members(_ runs: [RunRecord]) -> [String: [Member]] {
        var out: [String: [Member]] = [:]
        for r in runs where r.status == .completed {
            guard !r.shares.isEmpty else {
                out[r.variant ?? "", default: []].append(Member(run: r.id, seed: r.seed))
                continue
            }
            for variant in r.variants {
                let owns = r.shares.contains { $0.variant == variant && $0.weights.hasPrefix("phema@") }
                out[variant, default: []].append(Member(run: r.id, seed: r.seed, ownsSweep: owns))
            }
        }
        return out
    }

    /// One σ_rel of one variant's sweep (with one BN mode).
    struct Point {
        var sigmaRel: Double
        /// The mean over the runs of the classical EMA decay of this width at their last step.
        var decay: Double
        var summary: Statistics.Summary
        /// Top-1 minus the baseline's raw top-1 of the same seed, over the seeds both have.
        var delta: Statistics.Summary?
    }

    /// A variant's sweep with one BN mode, widths ascending; `best` is the width of highest mean
    /// top-1 (the narrower on a tie).
    struct Series {
        var variant: String
        var batchNorm: String
        var points: [Point]
        var best: Point? {
            points.max { a, b in
                a.summary.mean < b.summary.mean || (a.summary.mean == b.summary.mean && a.sigmaRel > b.sigmaRel)
            }
        }
    }

    /// The series of every variant with a sweep, variants in the experiment's order (others after,
    /// by name), `synthesized` before `precise`. `rawTop1` holds each run's final raw test top-1.
    static func sweep(
        _ points: [PostHocPoint], members: [String: [Member]], rawTop1: [Int64: Double], baseline: String,
        variants: [String]
    ) -> [Series] {
        let byRun = Dictionary(grouping: points, by: \.runID)
        var reference: [Int64: Double] = [:]  // seed → the baseline's raw top-1
        for m in members[baseline] ?? [] { if let v = rawTop1[m.run] { reference[m.seed] = v } }
        let order = variants + members.keys.filter { !variants.contains($0) }.sorted()
        var out: [Series] = []
        for variant in order {
            // bn → σ_rel → (seed, top-1, decay) of each run
            var groups: [String: [Double: [(seed: Int64, top1: Double, decay: Double)]]] = [:]
            for m in members[variant] ?? [] where m.ownsSweep {
                for p in byRun[m.run] ?? [] {
                    guard let top1 = p.top1 else { continue }
                    groups[p.batchNorm, default: [:]][p.sigmaRel, default: []].append((m.seed, top1, p.decay))
                }
            }
            for bn in groups.keys.sorted(by: >) {
                let widths = groups[bn]!
                let series = widths.keys.sorted().compactMap { sigma -> Point? in
                    let runs = widths[sigma]!.sorted { $0.seed < $1.seed }
                    guard let summary = Statistics.summarize(runs.map(\.top1)) else { return nil }
                    let deltas = runs.compactMap { r in reference[r.seed].map { r.top1 - $0 } }
                    return Point(
                        sigmaRel: sigma, decay: runs.map(\.decay).reduce(0, +) / Double(runs.count), summary: summary,
                        delta: Statistics.summarize(deltas))
                }
                out.append(Series(variant: variant, batchNorm: bn, points: series))
            }
        }
        return out
    }

    /// A classical EMA weight set placed on the sweep's σ_rel axis.
    struct Mark: Equatable {
        var weights: String
        var sigmaRel: Double
    }

    /// Each distinct EMA (decay, every) of `emas` as a width at `steps` (the sweeps' last step),
    /// narrowest first; one wider than a power function can be (0.289) is still listed.
    static func emaMarks(_ emas: [(decay: Double, every: Int, weights: String)], steps: Int) -> [Mark] {
        var seen = Set<String>()
        return emas.filter { seen.insert($0.weights).inserted }
            .map { Mark(weights: $0.weights, sigmaRel: PostHocSpec.sigmaRel(emaDecay: $0.decay, every: $0.every, steps: steps)) }
            .sorted { $0.sigmaRel < $1.sigmaRel }
    }
}
