import Experiments
import Foundation

/// The run page's "Where the time went": the summary's `timing` as two small tables, the shared
/// parts and each weight set's total against the wall time (a `<meter>` each: no inline style),
/// and each weight set's own parts.
struct RunTiming {
    struct Part { var label: String; var seconds: String; var share: String; var fraction: String }
    struct WeightSet {
        var weights: String
        var eval, grid, averaging, batchNorm, fixRes, export, postHoc, total: String
    }

    var wall: String
    var parts: [Part]
    var sets: [WeightSet]

    /// Nil for a run whose summary has no split (not completed, external, or older than the split).
    init?(summaryJSON: String?) {
        guard let text = summaryJSON, case .summary(let s)? = try? TrainerEvent.decode(line: text),
            let t = s.timing, let split = t.split
        else { return nil }
        let wall = max(split.wallSeconds, 1e-9)
        func seconds(_ x: Double) -> String { x < 10 ? String(format: "%.2f s", x) : Format.duration(x) ?? "—" }
        func part(_ label: String, _ x: Double) -> Part {
            Part(
                label: label, seconds: seconds(x), share: String(format: "%.1f %%", 100 * x / wall),
                fraction: String(format: "%.4f", min(1, max(0, x / wall))))
        }
        let names = split.perWeights.keys.sorted(by: Comparison.weightOrder)
        var parts = [
            part("setup (data, teacher, resume)", split.setupSeconds), part("training steps", t.trainSeconds),
            part("teacher forwards (distillation)", split.teacherSeconds), part("checkpoints", split.checkpointSeconds),
        ]
        parts += names.map { part("weight set \($0) (its own parts below)", split.perWeights[$0]!.totalSeconds) }
        let attributed = (t.sharedSeconds ?? 0) + split.total(\.totalSeconds)
        parts.append(part("not attributed (logging, start-up, exit)", max(0, split.wallSeconds - attributed)))
        self.wall = seconds(split.wallSeconds)
        self.parts = parts
        sets = names.map { name in
            let w = split.perWeights[name]!
            return WeightSet(
                weights: name, eval: seconds(w.evalSeconds), grid: seconds(w.gridSeconds), averaging: seconds(w.averagingSeconds),
                batchNorm: seconds(w.batchNormSeconds), fixRes: seconds(w.fixResSeconds), export: seconds(w.exportSeconds),
                postHoc: seconds(w.postHocSeconds),
                total: seconds(w.totalSeconds))
        }
    }
}
