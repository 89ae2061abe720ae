import Foundation

/// One data point of a line. `y` may be NaN or ±Inf: such a point is never drawn and
/// breaks the line into separate segments (a diverged run, a missing evaluation).
public struct ChartPoint: Sendable, Equatable {
    public var x: Double
    public var y: Double
    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// One x position of a shaded band around a line, e.g. min…max or mean ± std over seeds.
/// A non-finite `low` or `high` breaks the band, like a non-finite point breaks a line.
public struct ChartBand: Sendable, Equatable {
    public var x: Double
    public var low: Double
    public var high: Double
    public init(x: Double, low: Double, high: Double) {
        self.x = x
        self.low = low
        self.high = high
    }
}

/// One line of a chart (e.g. one variant's raw or averaged weights), with its legend text,
/// palette colour, dash style, optional band and optional point markers.
public struct ChartSeries: Sendable {
    /// Legend text, e.g. "ema · ema@0.998". Escaped on output.
    public var label: String
    /// Index into `ChartPalette.colors` (Okabe–Ito); wraps around, negatives allowed.
    public var colorIndex: Int
    /// Dashed (`stroke-dasharray="5 3"`), e.g. raw weights; solid for averaged weights.
    public var dashed: Bool
    /// Points sorted by x. Every point is drawn; nothing is down-sampled.
    public var points: [ChartPoint]
    /// Optional shaded area beneath the line; empty means none.
    public var band: [ChartBand]
    /// Draw a small circle at each finite point (useful when there are few points).
    public var markers: Bool

    public init(
        label: String, colorIndex: Int, dashed: Bool = false, points: [ChartPoint],
        band: [ChartBand] = [], markers: Bool = false
    ) {
        self.label = label
        self.colorIndex = colorIndex
        self.dashed = dashed
        self.points = points
        self.band = band
        self.markers = markers
    }

    /// The series colour as `#RRGGBB`.
    public var color: String { ChartPalette.color(colorIndex) }
}

/// A labelled vertical line of a `LineChart` at `x` (a reference value on the x axis).
public struct ChartMark: Sendable, Equatable {
    public var x: Double
    /// Escaped on output.
    public var label: String
    public init(x: Double, label: String) {
        self.x = x
        self.label = label
    }
}

/// The fixed, colour-blind-safe palette (Okabe & Ito, 2008) used by `ChartSeries.colorIndex`.
/// Ordered so the strongest-contrast colours come first; yellow and black come last.
public enum ChartPalette {
    public static let colors: [String] = [
        "#0072B2",  // blue
        "#E69F00",  // orange
        "#009E73",  // bluish green
        "#D55E00",  // vermillion
        "#CC79A7",  // reddish purple
        "#56B4E9",  // sky blue
        "#F0E442",  // yellow
        "#000000",  // black
    ]

    /// The colour for any index, wrapping around (also for negative indices).
    public static func color(_ index: Int) -> String {
        let n = colors.count
        return colors[((index % n) + n) % n]
    }
}

/// How tick labels on the y axis are written.
/// - `automatic`: the shortest form that shows each tick exactly (0.5, 1, 1.5; 1000; 1e-4).
/// - `percent`: a fraction as a percentage, 0.9123 → "91.2 %", same decimals on every tick.
/// - `percentPoints`: a difference of fractions in percentage points, 0.005 → "0.5 pp".
/// - `fixed(n)`: always `n` decimals.
/// Negative numbers use "−" (U+2212).
public enum ValueFormat: Sendable, Equatable {
    case automatic, percent, percentPoints, fixed(Int)

    /// Labels for a set of tick values (typically from `Ticks.nice`), formatted together so
    /// that adjacent ticks stay distinct. Non-finite values give an empty string.
    public func labels(for values: [Double]) -> [String] {
        NumberText.labels(values, format: self)
    }
}
