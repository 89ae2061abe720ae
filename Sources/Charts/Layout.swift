import Foundation

/// A linear map from data values to pixels, e.g. y data `[low, high]` → pixels `[bottom, top]`.
/// Exposed so pages and tests can find where a value is drawn.
public struct LinearScale: Sendable, Equatable {
    public var domainLow: Double
    public var domainHigh: Double
    public var rangeLow: Double
    public var rangeHigh: Double
    /// The domain is in log10 units and values are mapped through log10 first (a log axis); a
    /// value ≤ 0 then maps to the middle of the range, like any non-finite one.
    public var logarithmic: Bool

    public init(domainLow: Double, domainHigh: Double, rangeLow: Double, rangeHigh: Double, logarithmic: Bool = false) {
        self.domainLow = domainLow
        self.domainHigh = domainHigh
        self.rangeLow = rangeLow
        self.rangeHigh = rangeHigh
        self.logarithmic = logarithmic
    }

    /// `domainLow` → `rangeLow`, `domainHigh` → `rangeHigh`, linear in between.
    /// An empty or non-finite domain, or a non-finite value, maps to the middle of the range. Values
    /// far outside the domain are clamped to a million range widths, so the result is always finite.
    public func callAsFunction(_ v: Double) -> Double {
        let v = logarithmic ? (v > 0 ? log10(v) : .nan) : v
        let middle = rangeLow / 2 + rangeHigh / 2
        let half = domainHigh / 2 - domainLow / 2
        guard half.isFinite, half > 0 || half < 0, v.isFinite else { return middle }
        let t = (v / 2 - domainLow / 2) / half
        guard !t.isNaN else { return middle }
        return rangeLow + min(max(t, -1e6), 1e6) * (rangeHigh - rangeLow)
    }
}

/// Where a `LineChart` puts things (in SVG user units, origin top left): the plot area,
/// the two scales, the ticks and their labels, and the legend. `svg()` draws exactly this.
public struct ChartLayout: Sendable {
    /// Size of the whole SVG; `height` includes the legend rows below the chart.
    public var width: Double
    public var height: Double
    public var plotLeft: Double
    public var plotTop: Double
    public var plotRight: Double
    public var plotBottom: Double
    public var x: LinearScale
    public var y: LinearScale
    public var xTicks: [Double]
    public var xTickLabels: [String]
    public var yTicks: [Double]
    public var yTickLabels: [String]
    /// False when no series has a finite y value: the chart then says "no data yet".
    public var hasData: Bool
    /// Top edge of the legend (below the x axis label); equals the chart's `height` setting.
    public var legendTop: Double
    /// Legend rows used (0 without series).
    public var legendRows: Int

    struct LegendSlot: Sendable {
        var x: Double
        var row: Int
        var text: String
    }
    var legend: [LegendSlot]
    var title: String
}

/// Rough text widths, good enough to reserve room for labels without a font engine.
enum TextMetrics {
    static func width(_ s: String, fontSize: Double) -> Double {
        var em = 0.0
        for u in s.unicodeScalars {
            switch u {
            case "i", "l", "j", "I", ".", ",", ":", ";", "|", "!", "'", "\u{00B7}": em += 0.28
            case "f", "t", "r", " ", "(", ")", "[", "]", "-", "/": em += 0.36
            case "m", "w", "M", "W", "@", "%": em += 0.86
            case "0"..."9": em += 0.57
            case "A"..."Z": em += 0.68
            case "a"..."z": em += 0.55
            default: em += u.value < 0x2E80 ? 0.62 : 1.0  // CJK and wide symbols take a full em
            }
        }
        return em * fontSize
    }

    /// `s` cut with "…" so that it fits in `maxWidth`.
    static func truncate(_ s: String, fontSize: Double, maxWidth: Double) -> String {
        if width(s, fontSize: fontSize) <= maxWidth { return s }
        var out = ""
        let budget = maxWidth - width("…", fontSize: fontSize)
        for ch in s {
            let next = out + String(ch)
            if width(next, fontSize: fontSize) > budget { break }
            out = next
        }
        return out + "…"
    }
}

/// `v` clamped into Double's finite range: padding around ±greatestFiniteMagnitude must not
/// make an axis end infinite.
func clampFinite(_ v: Double) -> Double {
    v.isNaN ? 0 : min(max(v, -Double.greatestFiniteMagnitude), Double.greatestFiniteMagnitude)
}

enum Style {
    static let tickFont = 11.0
    static let labelFont = 12.0
    static let titleFont = 14.0
    static let legendFont = 11.0
    static let legendRow = 18.0
    static let swatch = 24.0
}

extension LineChart {
    /// Computes the geometry `svg()` uses. Pure; cheap (one pass over the data).
    public func layout() -> ChartLayout {
        let W = Double(max(width, 200))
        let H = Double(max(height, 140))

        // Data extents over finite values only.
        var xmin = Double.infinity, xmax = -Double.infinity
        var ymin = Double.infinity, ymax = -Double.infinity
        // On a log x axis only x > 0 can be placed; extents are in log10 units from here on.
        func placeable(_ x: Double) -> Bool { x.isFinite && (!xLogarithmic || x > 0) }
        func axisX(_ x: Double) -> Double { xLogarithmic ? log10(x) : x }
        for s in series {
            for p in s.points where placeable(p.x) {
                xmin = min(xmin, axisX(p.x)); xmax = max(xmax, axisX(p.x))
                if p.y.isFinite { ymin = min(ymin, p.y); ymax = max(ymax, p.y) }
            }
            for b in s.band where placeable(b.x) {
                xmin = min(xmin, axisX(b.x)); xmax = max(xmax, axisX(b.x))
                if b.low.isFinite { ymin = min(ymin, b.low); ymax = max(ymax, b.low) }
                if b.high.isFinite { ymin = min(ymin, b.high); ymax = max(ymax, b.high) }
            }
        }
        // Panels that share an axis ask for a common range: it widens, never narrows, the data's.
        if let shared = yRange, ymin <= ymax, shared.lowerBound.isFinite, shared.upperBound.isFinite {
            ymin = min(ymin, shared.lowerBound); ymax = max(ymax, shared.upperBound)
        }
        let hasData = ymin <= ymax

        // y domain: finite data padded by 5 %; a flat line is widened around its value.
        var ylo = 0.0, yhi = 1.0
        if hasData {
            ylo = ymin; yhi = ymax
            let half = yhi / 2 - ylo / 2
            if half <= max(abs(ylo), abs(yhi)) * 1e-12 {
                let c = ylo == yhi ? ylo : ylo / 2 + yhi / 2  // halving a denormal can round it to 0
                // At least the smallest normal number, so a denormal still gets an axis with ticks.
                let pad = c != 0 ? max(abs(c) * 0.1, Double.leastNormalMagnitude) : 1
                ylo = clampFinite(c - pad); yhi = clampFinite(c + pad)
            } else {
                let pad = half * 0.1  // 5 % of the full span
                if (ylo - pad).isFinite { ylo -= pad }
                if (yhi + pad).isFinite { yhi += pad }
            }
            // The padding never takes the axis where no value can be (an accuracy above 100 %),
            // unless the data itself is there.
            if let limits = yLimits, limits.lowerBound < limits.upperBound {
                if ylo < limits.lowerBound && ymin >= limits.lowerBound { ylo = limits.lowerBound }
                if yhi > limits.upperBound && ymax <= limits.upperBound { yhi = limits.upperBound }
            }
        }

        // x domain: the data's x range; a single x gets room on both sides.
        var xlo = 0.0, xhi = 1.0
        if hasData && xmin <= xmax {
            xlo = xmin; xhi = xmax
            if xhi / 2 - xlo / 2 <= max(abs(xlo), abs(xhi)) * 1e-12 {
                let pad = xLogarithmic ? 0.1 : xIsInteger ? 0.5 : (xlo != 0 ? max(abs(xlo) * 0.1, 1e-300) : 0.5)
                xlo = clampFinite(xlo - pad); xhi = clampFinite(xhi + pad)
            }
        }

        // Vertical layout.
        let plotTop = title.isEmpty ? 12.0 : 34.0
        let plotBottom = H - (xLabel.isEmpty ? 24.0 : 42.0)
        let plotH = plotBottom - plotTop

        var yTicks: [Double] = []
        var yLabels: [String] = []
        if hasData {
            yTicks = Ticks.inside(ylo, yhi, maxCount: max(3, Int(plotH / 36)), integerOnly: false)
            yLabels = yFormat.labels(for: yTicks)
        }
        let yLabelWidth = yLabels.map { TextMetrics.width($0, fontSize: Style.tickFont) }.max() ?? 0
        let plotLeft = ((yLabel.isEmpty ? 6.0 : 24.0) + yLabelWidth + 10).rounded()
        var plotRight = W - 16

        var xTicks: [Double] = []
        var xLabels: [String] = []
        if hasData {
            var maxCount = max(2, Int((plotRight - plotLeft) / 64))
            while true {
                xTicks =
                    xLogarithmic
                    ? Ticks.logarithmic(pow(10, xlo), pow(10, xhi), maxCount: maxCount)
                    : Ticks.inside(xlo, xhi, maxCount: maxCount, integerOnly: xIsInteger)
                xLabels =
                    xIsInteger && !xLogarithmic
                    ? xTicks.map { NumberText.fixed($0, 0, minus: NumberText.minus) }
                    : ValueFormat.automatic.labels(for: xTicks)
                let widest = xLabels.map { TextMetrics.width($0, fontSize: Style.tickFont) }.max() ?? 0
                if maxCount <= 2 || Double(xTicks.count) * (widest + 16) <= plotRight - plotLeft { break }
                maxCount -= 1
            }
            // Keep the last tick label inside the SVG.
            if let last = xTicks.last, let text = xLabels.last {
                let scale = LinearScale(
                    domainLow: xlo, domainHigh: xhi, rangeLow: plotLeft, rangeHigh: plotRight, logarithmic: xLogarithmic)
                let overhang = scale(last) + TextMetrics.width(text, fontSize: Style.tickFont) / 2 - (W - 4)
                if overhang > 0 { plotRight -= overhang }
            }
        }

        // Legend: entries flow left to right, wrapping into rows below the chart.
        var slots: [ChartLayout.LegendSlot] = []
        let left = 8.0, avail = W - 16
        var x = left, row = 0
        for s in series {
            let maxText = avail - Style.swatch - 6
            let text = TextMetrics.truncate(s.label, fontSize: Style.legendFont, maxWidth: maxText)
            let w = Style.swatch + 6 + TextMetrics.width(text, fontSize: Style.legendFont)
            if x > left && x + w > left + avail { row += 1; x = left }
            slots.append(.init(x: x, row: row, text: text))
            x += w + 18
        }
        let rows = series.isEmpty ? 0 : row + 1
        let total = H + (rows > 0 ? Double(rows) * Style.legendRow + 8 : 0)

        return ChartLayout(
            width: W, height: total.rounded(.up),
            plotLeft: plotLeft, plotTop: plotTop, plotRight: plotRight, plotBottom: plotBottom,
            x: LinearScale(domainLow: xlo, domainHigh: xhi, rangeLow: plotLeft, rangeHigh: plotRight, logarithmic: xLogarithmic),
            y: LinearScale(domainLow: ylo, domainHigh: yhi, rangeLow: plotBottom, rangeHigh: plotTop),
            xTicks: xTicks, xTickLabels: xLabels, yTicks: yTicks, yTickLabels: yLabels,
            hasData: hasData, legendTop: H, legendRows: rows, legend: slots,
            title: TextMetrics.truncate(title, fontSize: Style.titleFont, maxWidth: W - 16))
    }
}
