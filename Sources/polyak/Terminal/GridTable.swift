import Server

/// A resolution grid as a person reads it: one row per resize, one column per crop, top-1 in each
/// cell (as the page's heat map), the best cell marked with `*`.
enum GridTable {
    struct Cell {
        var resize: Int
        var crop: Int
        var top1: Double?
    }

    /// The table's text, or nil for no cells.
    static func render(_ cells: [Cell], on stream: TerminalStream) -> String? {
        guard !cells.isEmpty else { return nil }
        let resizes = Array(Set(cells.map(\.resize))).sorted()
        let crops = Array(Set(cells.map(\.crop))).sorted()
        var byCell: [[Int]: Double] = [:]
        for c in cells { if let t = c.top1 { byCell[[c.resize, c.crop]] = t } }
        let best = byCell.values.filter(\.isFinite).max()
        var table = TextTable([TextTable.Column("resize \\ crop", .left)] + crops.map { TextTable.Column("\($0)") })
        for r in resizes {
            table.add(
                ["\(r)"]
                    + crops.map { c in
                        guard let v = byCell[[r, c]] else { return "·" }
                        let text = Format.metric(v, key: "top1")
                        return v == best ? text + " *" : text + "  "
                    })
        }
        return table.render(on: stream)
            + stream.paint("top-1 on the test set; * the best cell, · a crop larger than the resize", .dim)
            + "\n"
    }
}
