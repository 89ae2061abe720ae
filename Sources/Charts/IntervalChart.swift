import Foundation

/// A forest plot: one row per item with a dot at its estimate and a bar over its interval,
/// against a reference line (0 for differences). It answers "which one helps, and how sure are
/// we" at a glance: a bar clear of the line is a difference the seeds agree on.
public struct IntervalChart: Sendable {
    public struct Row: Sendable {
        /// Text left of the row, e.g. "ema · ema@0.998". Escaped on output.
        public var label: String
        public var estimate: Double
        /// The interval; nil when there is none (a single seed). Non-finite ends are not drawn.
        public var low: Double?
        public var high: Double?
        public var colorIndex: Int
        /// Drawn heavier (the best row).
        public var emphasized: Bool

        public init(
            label: String, estimate: Double, low: Double? = nil, high: Double? = nil, colorIndex: Int = 0,
            emphasized: Bool = false
        ) {
            self.label = label
            self.estimate = estimate
            self.low = low
            self.high = high
            self.colorIndex = colorIndex
            self.emphasized = emphasized
        }
    }

    public var title: String
    public var xLabel: String
    public var rows: [Row]
    /// Where "no difference" lies; nil draws no line.
    public var reference: Double? = 0
    public var format: ValueFormat = .automatic
    public var width: Int = 560
    /// Prefix for element ids; by default derived from the title.
    public var id: String?

    public init(
        title: String, xLabel: String, rows: [Row], reference: Double? = 0, format: ValueFormat = .automatic, width: Int = 560,
        id: String? = nil
    ) {
        self.title = title
        self.xLabel = xLabel
        self.rows = rows
        self.reference = reference
        self.format = format
        self.width = width
        self.id = id
    }

    static let rowHeight = 24.0

    /// The x scale and the ticks `svg()` draws with (every finite estimate and interval end, and
    /// the reference, padded by 5 %).
    public func scale() -> (x: LinearScale, ticks: [Double], plotLeft: Double, plotRight: Double) {
        var values: [Double] = reference.map { [$0] } ?? []
        for r in rows { values += [r.estimate, r.low ?? .nan, r.high ?? .nan] }
        let finite = values.filter(\.isFinite)
        var lo = finite.min() ?? 0, hi = finite.max() ?? 1
        let half = hi / 2 - lo / 2  // half the span: cannot overflow
        if half <= max(abs(lo), abs(hi)) * 0.5e-12 {
            let pad = lo != 0 ? max(abs(lo) * 0.1, Double.leastNormalMagnitude) : 1
            lo = clampFinite(lo - pad)
            hi = clampFinite(hi + pad)
        } else {
            let pad = half * 0.1  // 5 % of the span
            lo = clampFinite(lo - pad)
            hi = clampFinite(hi + pad)
        }
        let labelWidth = rows.map { TextMetrics.width($0.label, fontSize: Style.labelFont) }.max() ?? 0
        // Bold (the emphasized row) runs about a tenth wider than the estimate.
        let plotLeft = min(max(labelWidth * 1.12 + 16, 60), Double(width) * 0.45)
        let plotRight = Double(width) - 16
        // The axis runs from tick to tick, so every dot and bar end sits between labelled values.
        let ticks = Ticks.nice(lo, hi, maxCount: 6)
        if let first = ticks.first, let last = ticks.last, first < last {
            lo = min(lo, first)
            hi = max(hi, last)
        }
        return (LinearScale(domainLow: lo, domainHigh: hi, rangeLow: plotLeft, rangeHigh: plotRight), ticks, plotLeft, plotRight)
    }

    /// A complete inline `<svg>` element; its height follows the number of rows.
    public func svg() -> String {
        let (x, ticks, plotLeft, plotRight) = scale()
        let top = title.isEmpty ? 10.0 : 34.0
        let plotBottom = top + Double(max(rows.count, 1)) * Self.rowHeight
        let height = plotBottom + (xLabel.isEmpty ? 26 : 44)
        let elementID =
            "intervals-"
            + (id
                ?? String(
                    title.unicodeScalars.reduce(UInt64(0xcbf2_9ce4_8422_2325)) {
                        ($0 ^ UInt64($1.value)) &* 0x0000_0100_0000_01b3
                    }, radix: 16))
        var b = SVGBuffer(capacity: 2000 + 400 * rows.count)
        b.put("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart intervals\" viewBox=\"0 0 \(width) ")
        b.num(height)
        b.put("\" width=\"\(width)\" height=\"")
        b.num(height)
        b.put(
            "\" role=\"img\" aria-labelledby=\"\(elementID)-title\" font-family=\"\(LineChart.fontFamily)\" font-size=\"11\">\n")
        b.put("<title id=\"\(elementID)-title\">")
        b.text(title)
        b.put("</title>\n<rect class=\"background\" width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n")
        if !title.isEmpty {
            b.put("<text class=\"title\" x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"600\" fill=\"#000\">")
            b.text(TextMetrics.truncate(title, fontSize: 14, maxWidth: Double(width) - 16))
            b.put("</text>\n")
        }
        // Vertical grid at the ticks, the reference line, the axis with its labels.
        b.put("<path class=\"grid\" fill=\"none\" stroke=\"#e2e2e2\" shape-rendering=\"crispEdges\" d=\"")
        for t in ticks {
            b.put("M")
            b.num(x(t))
            b.put(" ")
            b.num(top)
            b.put("V")
            b.num(plotBottom)
        }
        b.put("\"/>\n")
        if let r = reference, r.isFinite {
            b.put("<path class=\"reference\" stroke=\"#555\" stroke-dasharray=\"4 3\" d=\"M")
            b.num(x(r))
            b.put(" ")
            b.num(top - 4)
            b.put("V")
            b.num(plotBottom)
            b.put("\"/>\n")
        }
        b.put("<g class=\"axis\" stroke=\"#000\" fill=\"#000\"><path fill=\"none\" shape-rendering=\"crispEdges\" d=\"M")
        b.num(plotLeft)
        b.put(" ")
        b.num(plotBottom)
        b.put("H")
        b.num(plotRight)
        for t in ticks {
            b.put("M")
            b.num(x(t))
            b.put(" ")
            b.num(plotBottom)
            b.put("v5")
        }
        b.put("\"/>\n")
        for (t, label) in zip(ticks, format.labels(for: ticks)) {
            b.put("<text stroke=\"none\" text-anchor=\"middle\" x=\"")
            b.num(x(t))
            b.put("\" y=\"")
            b.num(plotBottom + 17)
            b.put("\">")
            b.text(label)
            b.put("</text>")
        }
        if !xLabel.isEmpty {
            b.put("<text stroke=\"none\" text-anchor=\"middle\" font-size=\"12\" x=\"")
            b.num((plotLeft + plotRight) / 2)
            b.put("\" y=\"")
            b.num(plotBottom + 36)
            b.put("\">")
            b.text(xLabel)
            b.put("</text>")
        }
        b.put("</g>\n")
        // The rows: label, interval bar with caps, estimate dot.
        for (i, r) in rows.enumerated() {
            let y = top + (Double(i) + 0.5) * Self.rowHeight
            let color = ChartPalette.color(r.colorIndex)
            b.put(
                "<g class=\"row\"><text text-anchor=\"end\" font-size=\"12\" fill=\"#000\"\(r.emphasized ? " font-weight=\"700\"" : "") x=\""
            )
            b.num(plotLeft - 8)
            b.put("\" y=\"")
            b.num(y + 4)
            b.put("\">")
            b.text(
                TextMetrics.truncate(r.label, fontSize: Style.labelFont, maxWidth: (plotLeft - 12) / (r.emphasized ? 1.12 : 1)))
            b.put("</text>")
            if let lo = r.low, let hi = r.high, lo.isFinite, hi.isFinite {
                b.put("<path fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(r.emphasized ? 3 : 2)\" d=\"M")
                b.num(x(lo))
                b.put(" ")
                b.num(y)
                b.put("H")
                b.num(x(hi))
                b.put("M")
                b.num(x(lo))
                b.put(" ")
                b.num(y - 5)
                b.put("v10M")
                b.num(x(hi))
                b.put(" ")
                b.num(y - 5)
                b.put("v10\"/>")
            }
            if r.estimate.isFinite {
                b.put("<circle fill=\"\(color)\" stroke=\"#fff\" cx=\"")
                b.num(x(r.estimate))
                b.put("\" cy=\"")
                b.num(y)
                b.put("\" r=\"\(r.emphasized ? 5.5 : 4.5)\"/>")
            } else {
                b.put("<text fill=\"#b42318\" font-size=\"11\" x=\"")
                b.num(plotLeft + 4)
                b.put("\" y=\"")
                b.num(y + 4)
                b.put("\">not finite</text>")
            }
            b.put("</g>\n")
        }
        b.put("</svg>")
        return b.string
    }
}
