import Experiments
import Store

/// Shared trajectories: the variants of one seed whose specs differ only in strategies that never
/// change training train **one** run together, with the union of their weight sets.
///
/// Trajectory-neutral: EMA entries (any decay, `every`, warmup, label), post-hoc EMA and `none`;
/// they only read the weights after a step. Everything else stays in the key that decides who may
/// share: SWA (its SWALR phase changes the learning rate), distillation, resolution/FixRes,
/// `precise_bn` (it re-measures the statistics of every set, `raw` included, so two variants that
/// differ in it evaluate different `raw` weights), the seed and any other field.
///
/// Each variant reads its own sets back under its own names (``WeightShare``):
/// - `raw` belongs to one variant: the baseline if it shares the run, else the first without
///   neutral entries, else the first in the experiment's order (and to any variant whose only
///   set is `raw`, which would otherwise vanish), so `none` is the shared run's raw set and the
///   copy `ema · raw` disappears;
/// - an EMA decay tracked the same way (decay, `every`, warmup) by two variants is tracked once;
///   the same name for another trajectory (`ema@0.999` with and without warmup) gets the later
///   variant's label, `ema@0.999~ema-warmup`;
/// - post-hoc profiles merge when the entries agree on `snapshots` (else the variant trains apart);
/// - `swa` and everything else in the key is every variant's own.
enum TrajectoryPlanner {
    /// One variant's run spec for one seed (experiment order).
    struct Member {
        var variant: String
        var spec: RunSpec
    }

    /// A run to queue: its spec, the variants it answers for (experiment order; the first owns
    /// `raw`) and, when more than one, which of its sets each reads.
    struct PlannedRun {
        var spec: RunSpec
        var variants: [String]
        var shares: [WeightShare]
        var owner: String { variants[0] }
    }

    /// Groups the members (one seed's variants, in experiment order) into runs, in the order their
    /// first member appears.
    static func plan(_ members: [Member], baseline: String) -> [PlannedRun] {
        var buckets: [[Member]] = []
        for m in members {
            let key = trajectoryKey(m.spec)
            if let i = buckets.firstIndex(where: { trajectoryKey($0[0].spec) == key && postHocFits(m.spec, $0) }) {
                buckets[i].append(m)
            } else {
                buckets.append([m])
            }
        }
        let order = members.map(\.variant)
        return buckets.map { union($0, baseline: baseline, order: order) }
    }

    /// The spec with the neutral entries and the display name removed: equal keys, same training.
    static func trajectoryKey(_ spec: RunSpec) -> RunSpec {
        var key = spec
        key.name = nil
        key.averaging = spec.averaging.filter { !isNeutral($0) }
        return key
    }

    static func isNeutral(_ entry: AveragingSpec) -> Bool {
        switch entry {
        case .none, .ema, .posthoc: return true
        case .swa: return false
        }
    }

    /// A run holds one post-hoc entry: a member joins only if its own agrees on `snapshots` and on
    /// the sweep (its widths and BN mode), which the shared run does once for every member.
    static func postHocFits(_ spec: RunSpec, _ bucket: [Member]) -> Bool {
        guard let mine = spec.postHocSpec else { return true }
        return bucket.allSatisfy { other in
            other.spec.postHocSpec.map {
                $0.snapshots == mine.snapshots && $0.sweep == mine.sweep && $0.sweepBatchNorm == mine.sweepBatchNorm
            } ?? true
        }
    }

    /// The label a variant's renamed EMA sets take: its name when that is a valid label, else
    /// `v<position>` (1-based, experiment order).
    static func label(_ variant: String, order: [String]) -> String {
        if EMASpec.isValidLabel(variant) { return variant }
        return "v\((order.firstIndex(of: variant) ?? 0) + 1)"
    }

    private struct Tracked: Equatable {
        var decay: Double
        var every: Int
        var warmup: EMAWarmup
    }

    static func union(_ bucket: [Member], baseline: String, order: [String]) -> PlannedRun {
        guard bucket.count > 1 else { return PlannedRun(spec: bucket[0].spec, variants: [bucket[0].variant], shares: []) }
        let owner =
            bucket.first(where: { $0.variant == baseline })
            ?? bucket.first(where: { !$0.spec.averaging.contains(where: { isNeutral($0) && $0 != .none }) }) ?? bucket[0]
        // The owner first, then the others in experiment order.
        let members = [owner] + bucket.filter { $0.variant != owner.variant }

        var emas: [EMASpec] = []
        var tracked: [(Tracked, String)] = []  // every EMA set of the union and its name
        var postHoc: PostHocSpec?
        var shares: [WeightShare] = []
        for m in members {
            var own: [(weights: String, runWeights: String)] = []
            let onlyRaw = m.spec.weightSetNames == ["raw"]
            if m.variant == owner.variant || onlyRaw { own.append(("raw", "raw")) }
            for entry in m.spec.emaSpecs {
                var fresh: [Double] = []
                var mapped: [(String, Double)] = []
                for (decay, name) in zip(entry.decays, entry.weightSetNames) {
                    let t = Tracked(decay: decay, every: entry.every, warmup: entry.warmup)
                    if let existing = tracked.first(where: { $0.0 == t }) {
                        own.append((name, existing.1))
                    } else {
                        fresh.append(decay)
                        mapped.append((name, decay))
                    }
                }
                guard !fresh.isEmpty else { continue }
                var added = EMASpec(decays: fresh, every: entry.every, warmup: entry.warmup, label: entry.label)
                let taken = Set(tracked.map(\.1))
                if added.weightSetNames.contains(where: taken.contains) {
                    let stem = label(m.variant, order: order)
                    var candidate = stem
                    var k = 2
                    while EMASpec(decays: fresh, label: candidate).weightSetNames.contains(where: taken.contains) {
                        candidate = "\(stem.prefix(60))-\(k)"
                        k += 1
                    }
                    added.label = candidate
                }
                for ((name, decay), runName) in zip(mapped, added.weightSetNames) {
                    own.append((name, runName))
                    tracked.append((Tracked(decay: decay, every: entry.every, warmup: entry.warmup), runName))
                }
                emas.append(added)
            }
            if m.spec.swaSpec != nil { own.append(("swa", "swa")) }
            if let p = m.spec.postHocSpec {
                // The first member's entry (snapshots and sweep agree, `postHocFits`), widths united.
                var merged = postHoc ?? p
                merged.sigmaRels += p.sigmaRels.filter { !merged.sigmaRels.contains($0) }
                postHoc = merged
                own += p.weightSetNames.map { ($0, $0) }
            }
            shares += own.map { WeightShare(variant: m.variant, weights: $0.weights, runWeights: $0.runWeights) }
        }

        var spec = owner.spec
        let kept = owner.spec.averaging.filter { !isNeutral($0) }
        spec.averaging = emas.map { .ema($0) } + kept + (postHoc.map { [.posthoc($0)] } ?? [])
        let variants = members.map(\.variant)
        spec.name = runName(bucket.map(\.variant), seed: spec.seed)
        // Shares in the experiment's variant order, each variant's sets in its run's set order.
        let rank = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let setRank = Dictionary(spec.weightSetNames.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let sorted = shares.enumerated().sorted { a, b in
            let (ra, rb) = (rank[a.element.variant] ?? .max, rank[b.element.variant] ?? .max)
            if ra != rb { return ra < rb }
            let (sa, sb) = (setRank[a.element.runWeights] ?? .max, setRank[b.element.runWeights] ?? .max)
            return sa != sb ? sa < sb : a.offset < b.offset
        }.map(\.element)
        return PlannedRun(spec: spec, variants: variants, shares: sorted)
    }

    /// `none+ema+ema-warmup-seed0`; past the 200-character cap of a name, `none+2-seed0`.
    static func runName(_ variants: [String], seed: UInt64) -> String {
        let joined = variants.joined(separator: "+") + "-seed\(seed)"
        guard joined.unicodeScalars.count > Limits.nameCharacters else { return joined }
        return "\(String(variants[0].unicodeScalars.prefix(150)))+\(variants.count - 1)-seed\(seed)"
    }
}
