/// A table of text for a terminal: a header, columns padded to their widest cell (numbers to the
/// right), and rows that may be marked (the best), as the experiment page marks them.
struct TextTable {
    enum Alignment { case left, right }

    struct Column {
        var title: String
        var alignment: Alignment
        /// The column is at least this wide (a table printed row by row fixes its widths up front).
        var minimumWidth = 0

        init(_ title: String, _ alignment: Alignment = .right, minimumWidth: Int = 0) {
            (self.title, self.alignment, self.minimumWidth) = (title, alignment, minimumWidth)
        }
    }

    var columns: [Column]
    var rows: [[String]] = []
    /// Indexes of rows followed by `markText`.
    var marked: Set<Int> = []
    var markText = "★ best"

    init(_ columns: [Column]) { self.columns = columns }

    mutating func add(_ cells: [String], marked mark: Bool = false) {
        if mark { marked.insert(rows.count) }
        rows.append(cells)
    }

    /// Each column's width: its title, its cells and its minimum.
    var widths: [Int] {
        columns.indices.map { i in
            rows.reduce(max(columns[i].title.count, columns[i].minimumWidth)) {
                max($0, i < $1.count ? Self.visibleWidth($1[i]) : 0)
            }
        }
    }

    /// The columns `text` takes on a terminal: its characters without colour codes (`ESC [ … m`).
    static func visibleWidth(_ text: String) -> Int {
        var width = 0
        var inEscape = false
        for c in text.unicodeScalars {
            if inEscape {
                if c == "m" { inEscape = false }
            } else if c == "\u{1B}" {
                inEscape = true
            } else if c.properties.generalCategory != .nonspacingMark {
                width += 1
            }
        }
        return width
    }

    /// One row of cells at `widths`, two spaces between columns, no trailing blanks.
    func format(_ cells: [String], widths: [Int]) -> String {
        var parts: [String] = []
        for (i, column) in columns.enumerated() {
            let cell = i < cells.count ? cells[i] : ""
            let pad = String(repeating: " ", count: max(0, widths[i] - Self.visibleWidth(cell)))
            parts.append(column.alignment == .right ? pad + cell : cell + pad)
        }
        var line = parts.joined(separator: "  ")
        while line.last == " " { line.removeLast() }
        return line
    }

    func header(widths: [Int], on stream: TerminalStream) -> String {
        stream.paint(format(columns.map(\.title), widths: widths), .bold)
    }

    /// The whole table, header first; marked rows end with the mark.
    func render(on stream: TerminalStream) -> String {
        let w = widths
        var lines = [header(widths: w, on: stream)]
        for (i, row) in rows.enumerated() {
            let text = format(row, widths: w)
            lines.append(marked.contains(i) ? stream.paint(text, .bold) + "  " + stream.paint(markText, .green) : text)
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
