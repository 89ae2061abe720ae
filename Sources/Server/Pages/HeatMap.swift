import Foundation
import Mustache

/// A resize × crop grid as a colour heat-map table: one table per weight set and stage, colours
/// on one scale for the whole page so tables compare at a glance, values printed in each cell.
struct HeatMap {
    /// One evaluated cell: top-1 (mean over seeds) with what the tooltip should add.
    struct Cell {
        var resize: Int64
        var crop: Int64
        var top1: Double?
        var detail: String
    }

    struct Table {
        var title: String
        var crops: [Int64]
        var rows: [Row]
    }

    struct Row {
        var resize: Int64
        var cells: [CellView]
    }

    struct CellView {
        var text: String
        var tip: String
        var style: String?
        var na: Bool
    }

    /// The scale's ends: the lowest and the highest finite top-1 on the page.
    struct Scale {
        var low: Double
        var high: Double

        init?(_ values: [Double]) {
            let finite = values.filter(\.isFinite)
            guard let lo = finite.min(), let hi = finite.max() else { return nil }
            low = lo
            high = hi
        }

        /// Light yellow → deep blue (a sequential, colour-blind-safe ramp after viridis' ends);
        /// text turns white where the background is dark.
        func style(_ x: Double) -> String {
            let (background, text) = colors(x)
            return "background:\(background);color:\(text)"
        }

        /// The background at `x` (`#rrggbb`) and the text colour that reads on it.
        func colors(_ x: Double) -> (background: String, text: String) {
            // Halves keep ±1e308 from overflowing; NaN (never passed, but cheap to rule out) reads as the top.
            let half = high / 2 - low / 2
            let ratio = half > 0 ? (x / 2 - low / 2) / half : 1
            let t = ratio.isNaN ? 1 : ratio
            let stops: [(Double, Double, Double)] = [
                (255, 247, 188), (161, 218, 180), (65, 182, 196), (34, 94, 168), (12, 44, 132),
            ]
            let f = max(0, min(1, t)) * Double(stops.count - 1)
            let i = min(Int(f), stops.count - 2)
            let u = f - Double(i)
            let a = stops[i], b = stops[i + 1]
            let r = Int((a.0 + (b.0 - a.0) * u).rounded()), g = Int((a.1 + (b.1 - a.1) * u).rounded()),
                bl = Int((a.2 + (b.2 - a.2) * u).rounded())
            return (String(format: "#%02x%02x%02x", r, g, bl), t > 0.55 ? "#fff" : "#1b1f24")
        }

        var lowColor: String { colors(low).background }
        var highColor: String { colors(high).background }
    }

    /// One evaluated cell with the table it belongs to.
    struct Entry {
        /// What tells tables of different runs apart on one page (the variant), or nil.
        var label: String?
        var weights: String
        var stage: String
        var trainSize: Int64
        var cell: Cell
    }

    /// A page's grids: one table per label × weight set × stage × training size, all on one scale.
    struct Figure {
        var tables: [Table]
        var scaleLow: String
        var scaleHigh: String
        var scaleText: String
    }

    /// Tables in the order labels first appear, then weight set, then before fine-tuning ahead of
    /// after; nil when no cell has a finite top-1.
    static func figure(_ entries: [Entry]) -> Figure? {
        guard let scale = Scale(entries.compactMap(\.cell.top1)) else { return nil }
        struct Key: Hashable { var label: String?; var weights, stage: String; var trainSize: Int64 }
        var labels: [String?] = []
        var keys: [Key] = []
        var cells: [Key: [Cell]] = [:]
        for e in entries {
            let k = Key(label: e.label, weights: e.weights, stage: e.stage, trainSize: e.trainSize)
            if !labels.contains(e.label) { labels.append(e.label) }
            if cells[k] == nil { keys.append(k) }
            cells[k, default: []].append(e.cell)
        }
        let finetuned = Set(entries.filter { $0.stage == "finetuned" }.map(\.label))
        keys.sort { a, b in
            if a.label != b.label { return labels.firstIndex(of: a.label)! < labels.firstIndex(of: b.label)! }
            if a.weights != b.weights { return Comparison.weightOrder(a.weights, b.weights) }
            if a.stage != b.stage { return a.stage == "base" }
            return a.trainSize < b.trainSize
        }
        let tables = keys.map { k in
            let stage =
                k.stage == "finetuned" ? " · after fine-tuning" : finetuned.contains(k.label) ? " · before fine-tuning" : ""
            let title = (k.label.map { $0 + " · " } ?? "") + k.weights + stage + " · trained at \(k.trainSize) px"
            return table(title: title, cells: cells[k]!, scale: scale)
        }
        let text = Format.metric(scale.low, key: "top1", digits: 1) + " to " + Format.metric(scale.high, key: "top1", digits: 1)
        return Figure(tables: tables, scaleLow: scale.lowColor, scaleHigh: scale.highColor, scaleText: text)
    }

    /// A table of `cells` (any order); crops larger than the resize were never evaluated and show as "—".
    static func table(title: String, cells: [Cell], scale: Scale?) -> Table {
        let resizes = Array(Set(cells.map(\.resize))).sorted()
        let crops = Array(Set(cells.map(\.crop))).sorted()
        var byPosition: [Int64: [Int64: Cell]] = [:]
        for c in cells { byPosition[c.resize, default: [:]][c.crop] = c }
        let rows = resizes.map { resize in
            Row(
                resize: resize,
                cells: crops.map { crop in
                    guard let c = byPosition[resize]?[crop] else {
                        let why = crop > resize ? "a \(crop) px crop does not fit a \(resize) px image" : "not evaluated"
                        return CellView(text: "—", tip: why, style: nil, na: true)
                    }
                    guard let v = c.top1 else { return CellView(text: "—", tip: "no value", style: nil, na: true) }
                    guard v.isFinite else {
                        return CellView(text: Format.nonFinite(v), tip: "not a finite accuracy", style: nil, na: true)
                    }
                    return CellView(
                        text: String(format: "%.1f", 100 * v), tip: "resize \(resize), crop \(crop): " + c.detail,
                        style: scale?.style(v), na: false)
                })
        }
        return Table(title: title, crops: crops, rows: rows)
    }
}

extension HeatMap.CellView: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "text": return text
        case "tip": return tip
        case "style": return style.map { $0 as Any }
        case "na": return na
        default: return nil
        }
    }
}
