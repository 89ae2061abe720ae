import Foundation

/// A server-side SVG line chart (training curves: metric vs. epoch/step) for inline use in HTML.
/// Draws every point it is given, breaks lines at NaN/±Inf, shades optional bands, and puts a
/// wrapping legend below the plot. Output is deterministic: the same chart gives the same bytes.
public struct LineChart: Sendable {
    /// Rendered as the SVG `<title>` (accessible name) and as a visible heading.
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [ChartSeries]
    /// Width of the SVG in user units (also its `viewBox` width).
    public var width: Int = 640
    /// Height of the chart without its legend; the SVG grows by one row per legend row.
    public var height: Int = 300
    public var yFormat: ValueFormat = .automatic
    /// Ticks on the x axis only at whole numbers (epochs, steps).
    public var xIsInteger: Bool = true
    /// Prefix for the element ids inside the SVG (`<id>-title`, `<id>-desc`). Set it when one page
    /// shows the same chart twice; by default it is derived from the chart's content.
    public var id: String? = nil
    /// A y range every panel of a figure shares, so they compare at a glance; nil = the data's own.
    public var yRange: ClosedRange<Double>? = nil
    /// Where values can lie at all (0...1 for an accuracy): the axis' padding stops there.
    public var yLimits: ClosedRange<Double>? = nil
    /// A log10 x axis (every x must then be > 0; the extents ignore any other); ticks at 1-2-5 × 10ⁿ.
    public var xLogarithmic: Bool = false
    /// Labelled vertical lines at given x values (e.g. the EMA decays on a sweep's σ_rel axis);
    /// one outside the x axis is not drawn.
    public var xMarks: [ChartMark] = []

    public init(
        title: String, xLabel: String = "", yLabel: String = "", series: [ChartSeries],
        width: Int = 640, height: Int = 300, yFormat: ValueFormat = .automatic,
        xIsInteger: Bool = true, id: String? = nil
    ) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.width = width
        self.height = height
        self.yFormat = yFormat
        self.xIsInteger = xIsInteger
        self.id = id
    }

    static let fontFamily = "system-ui, -apple-system, &quot;Segoe UI&quot;, Roboto, Helvetica, Arial, sans-serif"

    /// The element id prefix: the caller's `id` made safe, or a hash of the content.
    var elementID: String {
        if let id, !id.isEmpty {
            let safe = String(
                id.unicodeScalars.map { u -> Character in
                    (u.properties.isAlphabetic && u.isASCII) || ("0"..."9").contains(u) || u == "-" || u == "_"
                        ? Character(u) : "-"
                })
            return safe.first.map { $0.isLetter } == true ? safe : "c" + safe
        }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a, stable across runs and platforms
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        }
        mix(title.utf8); mix([0]); mix(xLabel.utf8); mix([0]); mix(yLabel.utf8)
        for s in series {
            mix([1]); mix(s.label.utf8)
            mix(String(s.points.count).utf8)
            if let p = s.points.first { mix(String(p.x.bitPattern).utf8); mix(String(p.y.bitPattern).utf8) }
            if let p = s.points.last { mix(String(p.x.bitPattern).utf8); mix(String(p.y.bitPattern).utf8) }
        }
        let hex = String(h, radix: 16)
        return "chart-" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// A complete inline `<svg>` element. Scales with CSS `max-width:100%; height:auto`.
    public func svg() -> String {
        let L = layout()
        let id = elementID
        var pointCount = 0
        for s in series { pointCount += s.points.count + 2 * s.band.count }
        var b = SVGBuffer(capacity: 6000 + 14 * pointCount + 64 * series.count)

        // Root, accessible name and description, white background.
        b.put("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 ")
        b.num(L.width); b.put(" "); b.num(L.height)
        b.put("\" width=\""); b.num(L.width); b.put("\" height=\""); b.num(L.height)
        b.put("\" role=\"img\" aria-labelledby=\"\(id)-title \(id)-desc\" font-family=\"\(Self.fontFamily)\" font-size=\"11\">\n")
        b.put("<title id=\"\(id)-title\">"); b.text(title); b.put("</title>\n")
        b.put("<desc id=\"\(id)-desc\">Line chart, \(series.count) series")
        if !xLabel.isEmpty { b.put("; x: "); b.text(xLabel) }
        if !yLabel.isEmpty { b.put("; y: "); b.text(yLabel) }
        b.put(L.hasData ? "." : "; no data yet.")
        b.put("</desc>\n")
        b.put("<rect class=\"background\" width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n")
        if !title.isEmpty {
            b.put("<text class=\"title\" x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"600\" fill=\"#000\">")
            b.text(L.title); b.put("</text>\n")
        }

        // Horizontal grid lines at the y ticks.
        if !L.yTicks.isEmpty {
            b.put("<path class=\"grid\" fill=\"none\" stroke=\"#e2e2e2\" stroke-width=\"1\" shape-rendering=\"crispEdges\" d=\"")
            for t in L.yTicks {
                b.put("M"); b.num(L.plotLeft); b.put(" "); b.num(L.y(t)); b.put("H"); b.num(L.plotRight)
            }
            b.put("\"/>\n")
        }

        // Marks: a dashed grey line and a label at the top, beneath the data.
        if L.hasData {
            let lo = min(L.x.rangeLow, L.x.rangeHigh), hi = max(L.x.rangeLow, L.x.rangeHigh)
            let placed = xMarks.filter { m in
                (!xLogarithmic || m.x > 0) && m.x.isFinite && L.x(m.x) >= lo - 0.5 && L.x(m.x) <= hi + 0.5
            }
            if !placed.isEmpty {
                b.put("<g class=\"marks\" font-size=\"10\" fill=\"#555\">")
                for (k, m) in placed.enumerated() {
                    let x = L.x(m.x)
                    b.put("<path d=\"M"); b.num(x); b.put(" "); b.num(L.plotTop); b.put("V"); b.num(L.plotBottom)
                    b.put("\" stroke=\"#888\" stroke-width=\"1\" stroke-dasharray=\"2 3\"/>")
                    // Alternate rows so neighbouring labels do not overprint.
                    b.put("<text x=\""); b.num(x + 3); b.put("\" y=\""); b.num(L.plotTop + 10 + Double(k % 2) * 11); b.put("\">")
                    b.text(m.label); b.put("</text>")
                }
                b.put("</g>\n")
            }
        }

        // Bands, beneath every line.
        for (i, s) in series.enumerated() where !s.band.isEmpty {
            b.put("<g class=\"band band-\(i)\" fill=\"\(s.color)\" fill-opacity=\"0.18\" stroke=\"none\">")
            drawBand(s.band, L, &b)
            b.put("</g>\n")
        }

        // Axes: lines and tick marks, then tick labels and axis labels.
        b.put(
            "<g class=\"axis\">\n<path class=\"axis-line\" fill=\"none\" stroke=\"#000\" stroke-width=\"1\" shape-rendering=\"crispEdges\" d=\"M"
        )
        b.num(L.plotLeft); b.put(" "); b.num(L.plotTop); b.put("V"); b.num(L.plotBottom); b.put("H"); b.num(L.plotRight)
        for t in L.yTicks { b.put("M"); b.num(L.plotLeft - 4); b.put(" "); b.num(L.y(t)); b.put("h4") }
        for t in L.xTicks { b.put("M"); b.num(L.x(t)); b.put(" "); b.num(L.plotBottom); b.put("v4") }
        b.put("\"/>\n")
        if !L.yTicks.isEmpty {
            b.put("<g class=\"tick-labels y-ticks\" fill=\"#000\" font-size=\"11\" text-anchor=\"end\">")
            for (t, label) in zip(L.yTicks, L.yTickLabels) {
                b.put("<text x=\""); b.num(L.plotLeft - 7); b.put("\" y=\""); b.num(L.y(t) + 4); b.put("\">")
                b.text(label); b.put("</text>")
            }
            b.put("</g>\n")
        }
        if !L.xTicks.isEmpty {
            b.put("<g class=\"tick-labels x-ticks\" fill=\"#000\" font-size=\"11\" text-anchor=\"middle\">")
            for (t, label) in zip(L.xTicks, L.xTickLabels) {
                b.put("<text x=\""); b.num(L.x(t)); b.put("\" y=\""); b.num(L.plotBottom + 17); b.put("\">")
                b.text(label); b.put("</text>")
            }
            b.put("</g>\n")
        }
        if !xLabel.isEmpty {
            b.put("<text class=\"axis-label x-label\" x=\""); b.num((L.plotLeft + L.plotRight) / 2)
            b.put("\" y=\""); b.num(L.plotBottom + 35)
            b.put("\" text-anchor=\"middle\" font-size=\"12\" fill=\"#000\">")
            b.text(TextMetrics.truncate(xLabel, fontSize: Style.labelFont, maxWidth: L.plotRight - L.plotLeft))
            b.put("</text>\n")
        }
        if !yLabel.isEmpty {
            b.put("<text class=\"axis-label y-label\" transform=\"translate(15 ")
            b.num((L.plotTop + L.plotBottom) / 2)
            b.put(") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\" fill=\"#000\">")
            b.text(TextMetrics.truncate(yLabel, fontSize: Style.labelFont, maxWidth: L.plotBottom - L.plotTop))
            b.put("</text>\n")
        }
        b.put("</g>\n")

        // Lines: one <path> per run of finite points; isolated points become dots.
        var breaks: [Int64] = []
        for (i, s) in series.enumerated() {
            var dots: [(Double, Double)] = []
            b.put(
                "<g class=\"series series-\(i)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.75\" stroke-linejoin=\"round\""
            )
            if s.dashed { b.put(" stroke-dasharray=\"5 3\"") }
            b.put(">")
            var start = -1
            let pts = s.points
            func flush(_ end: Int) {
                guard start >= 0 else { return }
                if end - start == 1 {
                    dots.append((L.x(pts[start].x), L.y(pts[start].y)))
                } else {
                    // Every point is drawn; only a point that lands on exactly the same rounded
                    // coordinates as the one before it is skipped (it would draw nothing).
                    b.put("<path d=\"M")
                    var previous = (Double.nan, Double.nan)
                    var written = 0
                    for k in start..<end {
                        let px = (L.x(pts[k].x) * 10).rounded(), py = (L.y(pts[k].y) * 10).rounded()
                        if px == previous.0 && py == previous.1 { continue }
                        previous = (px, py)
                        if written == 1 { b.put("L") } else if written > 1 { b.put(" ") }
                        b.num(px / 10); b.put(" "); b.num(py / 10)
                        written += 1
                    }
                    if written == 1 { b.put("h0"); dots.append((previous.0 / 10, previous.1 / 10)) }
                    b.put("\"/>")
                    if s.markers {
                        for k in start..<end { dots.append((L.x(pts[k].x), L.y(pts[k].y))) }
                    }
                }
                start = -1
            }
            for (k, p) in pts.enumerated() {
                if p.x.isFinite && p.y.isFinite {
                    if start < 0 { start = k }
                } else {
                    flush(k)
                    if p.x.isFinite && L.hasData { breaks.append(Int64((L.x(p.x) * 10).rounded())) }
                }
            }
            flush(pts.count)
            for bd in s.band where bd.x.isFinite && !(bd.low.isFinite && bd.high.isFinite) && L.hasData {
                breaks.append(Int64((L.x(bd.x) * 10).rounded()))
            }
            b.put("</g>\n")
            if !dots.isEmpty {
                b.put("<g class=\"markers markers-\(i)\" fill=\"\(s.color)\" stroke=\"#fff\" stroke-width=\"0.75\">")
                for (cx, cy) in dots {
                    b.put("<circle cx=\""); b.num(cx); b.put("\" cy=\""); b.num(cy); b.put("\" r=\"2.75\"/>")
                }
                b.put("</g>\n")
            }
        }

        // A small grey × just above the x axis wherever some value was NaN/±Inf.
        if !breaks.isEmpty {
            breaks.sort()
            b.put(
                "<g class=\"breaks\" fill=\"#777\" font-size=\"11\" text-anchor=\"middle\"><title>missing or non-finite value</title>"
            )
            var last: Int64? = nil
            for x in breaks where x != last {
                last = x
                b.put("<text x=\""); b.num(Double(x) / 10); b.put("\" y=\""); b.num(L.plotBottom - 3); b.put("\">×</text>")
            }
            b.put("</g>\n")
        }

        if !L.hasData {
            b.put("<text class=\"no-data\" x=\""); b.num((L.plotLeft + L.plotRight) / 2)
            b.put("\" y=\""); b.num((L.plotTop + L.plotBottom) / 2 + 5)
            b.put("\" text-anchor=\"middle\" font-size=\"14\" fill=\"#555\">no data yet</text>\n")
        }

        // Legend below the chart, wrapping into rows.
        if !L.legend.isEmpty {
            b.put("<g class=\"legend\" font-size=\"11\" fill=\"#000\">\n")
            for (s, slot) in zip(series, L.legend) {
                let cy = L.legendTop + Style.legendRow * (Double(slot.row) + 0.5)
                b.put("<g class=\"legend-entry\">")
                if !s.band.isEmpty {
                    b.put("<rect x=\""); b.num(slot.x); b.put("\" y=\""); b.num(cy - 6)
                    b.put("\" width=\"24\" height=\"12\" fill=\"\(s.color)\" fill-opacity=\"0.18\"/>")
                }
                b.put("<path d=\"M"); b.num(slot.x); b.put(" "); b.num(cy);
                b.put("h24\" stroke=\"\(s.color)\" stroke-width=\"2\"")
                if s.dashed { b.put(" stroke-dasharray=\"5 3\"") }
                b.put("/>")
                if s.markers {
                    b.put("<circle cx=\""); b.num(slot.x + 12); b.put("\" cy=\""); b.num(cy)
                    b.put("\" r=\"2.75\" fill=\"\(s.color)\" stroke=\"#fff\" stroke-width=\"0.75\"/>")
                }
                b.put("<text x=\""); b.num(slot.x + Style.swatch + 6); b.put("\" y=\""); b.num(cy + 4); b.put("\">")
                b.text(slot.text)
                b.put("</text></g>\n")
            }
            b.put("</g>\n")
        }
        b.put("</svg>")
        return b.string
    }

    /// Closed polygons (low edge forward, high edge backward), one per run of finite values.
    private func drawBand(_ band: [ChartBand], _ L: ChartLayout, _ b: inout SVGBuffer) {
        var start = -1
        func flush(_ end: Int) {
            guard start >= 0 else { return }
            if end - start == 1 {
                // A single x: a narrow bar, so one-epoch charts still show their spread.
                let x = L.x(band[start].x)
                b.put("<path d=\"M"); b.num(x - 3); b.put(" "); b.num(L.y(band[start].low))
                b.put("H"); b.num(x + 3); b.put("V"); b.num(L.y(band[start].high))
                b.put("H"); b.num(x - 3); b.put("Z\"/>")
            } else {
                b.put("<path d=\"M")
                for k in start..<end {
                    if k == start + 1 { b.put("L") } else if k > start { b.put(" ") }
                    b.num(L.x(band[k].x)); b.put(" "); b.num(L.y(band[k].low))
                }
                for k in stride(from: end - 1, through: start, by: -1) {
                    b.put(" "); b.num(L.x(band[k].x)); b.put(" "); b.num(L.y(band[k].high))
                }
                b.put("Z\"/>")
            }
            start = -1
        }
        for (k, p) in band.enumerated() {
            if p.x.isFinite && p.low.isFinite && p.high.isFinite {
                if start < 0 { start = k }
            } else {
                flush(k)
            }
        }
        flush(band.count)
    }
}
