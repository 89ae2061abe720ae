import Foundation
import PolyakTestSupport
import XCTest

@testable import Charts

/// Whatever a run stored (±1e308, ±greatestFiniteMagnitude, denormals, NaN, ±Inf, one point, a flat
/// line), the tick, scale, label and SVG code answers without trapping, with finite coordinates
/// and short labels. A fixed-seed property test plus the cases that used to trap.
final class ExtremeValueTests: XCTestCase {

    static let special: [Double] = [
        1e308, -1e308, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude,
        -.leastNonzeroMagnitude, .leastNormalMagnitude, 2.2250738585072009e-308, 1e-320, 0, -0.0, 1, -1, 0.5,
        1e15, 1e-15, 9.007199254740993e15, 123_456.789, .nan, .infinity, -.infinity,
    ]

    /// Special values, neighbours of special values, and doubles with random bit patterns.
    static func value(_ r: inout SplitMix64) -> Double {
        switch r.below(4) {
        case 0, 1: return special[r.below(special.count)]
        case 2: return special[r.below(special.count)].nextUp
        default: return Double(bitPattern: r.next())
        }
    }

    func checkTicks(_ lo: Double, _ hi: Double, maxCount: Int, file: StaticString = #filePath, line: UInt = #line) {
        let ticks = Ticks.nice(lo, hi, maxCount: maxCount)
        let what = "nice(\(lo), \(hi), \(maxCount)) = \(ticks)"
        guard lo.isFinite, hi.isFinite else { return XCTAssertEqual(ticks, [], what, file: file, line: line) }
        XCTAssertFalse(ticks.isEmpty, what, file: file, line: line)
        XCTAssertLessThanOrEqual(ticks.count, max(3, maxCount), what, file: file, line: line)
        XCTAssertTrue(ticks.allSatisfy(\.isFinite), what, file: file, line: line)
        XCTAssertEqual(ticks, ticks.sorted(), what, file: file, line: line)
        // They cover the range, up to the rounding noise `nice` snaps away (1e-9 of a step).
        let noise = (ticks.last! / 2 - ticks.first! / 2) * 2e-6
        XCTAssertLessThanOrEqual(ticks.first!, min(lo, hi) + noise, what, file: file, line: line)
        XCTAssertGreaterThanOrEqual(ticks.last!, max(lo, hi) - noise, what, file: file, line: line)
        for integerOnly in [false, true] {
            let inside = Ticks.inside(min(lo, hi), max(lo, hi), maxCount: maxCount, integerOnly: integerOnly)
            XCTAssertTrue(inside.allSatisfy(\.isFinite), "inside: \(inside)", file: file, line: line)
        }
    }

    func checkLabels(_ values: [Double], file: StaticString = #filePath, line: UInt = #line) {
        for format in [ValueFormat.automatic, .percent, .percentPoints, .fixed(3), .fixed(0)] {
            let labels = format.labels(for: values)
            XCTAssertEqual(labels.count, values.count, file: file, line: line)
            for (v, text) in zip(values, labels) {
                // Short enough for an axis, and something is written for every finite value.
                XCTAssertLessThanOrEqual(text.count, 32, "\(format) \(v) → \(text)", file: file, line: line)
                if v.isFinite && format == .automatic {
                    XCTAssertFalse(text.isEmpty, "\(v)", file: file, line: line)
                    XCTAssertFalse(text.hasPrefix("e"), "\(v) → \(text)", file: file, line: line)
                }
            }
        }
    }

    func checkChart(_ series: [ChartSeries], format: ValueFormat, file: StaticString = #filePath, line: UInt = #line) {
        var chart = LineChart(title: "t", xLabel: "step", yLabel: "v", series: series, yFormat: format, xIsInteger: false)
        chart.yLimits = 0...1
        let layout = chart.layout()
        let numbers =
            [
                layout.plotLeft, layout.plotRight, layout.height, layout.x.domainLow, layout.x.domainHigh,
                layout.y.domainLow, layout.y.domainHigh,
            ] + layout.xTicks + layout.yTicks
        XCTAssertTrue(numbers.allSatisfy(\.isFinite), "\(numbers)", file: file, line: line)
        XCTAssertLessThan(layout.plotLeft, layout.plotRight, file: file, line: line)
        for s in series {
            for p in s.points where p.x.isFinite && p.y.isFinite {
                let x = layout.x(p.x), y = layout.y(p.y)
                XCTAssertTrue(
                    x >= layout.plotLeft - 0.5 && x <= layout.plotRight + 0.5, "x \(p.x) → \(x)", file: file, line: line)
                XCTAssertTrue(
                    y >= layout.plotTop - 0.5 && y <= layout.plotBottom + 0.5, "y \(p.y) → \(y)", file: file, line: line)
            }
        }
        let svg = chart.svg()
        XCTAssertTrue(svg.hasSuffix("</svg>"), file: file, line: line)
        XCTAssertFalse(svg.lowercased().contains("nan") || svg.contains("inf\""), file: file, line: line)
        XCTAssertLessThan(svg.utf8.count, 20_000 + 200 * series.reduce(0) { $0 + $1.points.count }, file: file, line: line)
    }

    func checkIntervals(_ values: [Double], file: StaticString = #filePath, line: UInt = #line) {
        let rows = stride(from: 0, to: values.count - 2, by: 3).map { i in
            IntervalChart.Row(label: "r\(i)", estimate: values[i], low: values[i + 1], high: values[i + 2])
        }
        let chart = IntervalChart(title: "d", xLabel: "Δ", rows: rows)
        let s = chart.scale()
        XCTAssertTrue(
            ([s.x.domainLow, s.x.domainHigh] + s.ticks).allSatisfy(\.isFinite), "\(values) → \(s)", file: file, line: line)
        for r in rows where r.estimate.isFinite {
            let x = s.x(r.estimate)
            XCTAssertTrue(x >= s.plotLeft - 0.5 && x <= s.plotRight + 0.5, "\(r.estimate) → \(x)", file: file, line: line)
        }
        XCTAssertTrue(chart.svg().hasSuffix("</svg>"), file: file, line: line)
    }

    /// The exact inputs of the report: two points at ∓1e308 trapped converting an infinite span to Int.
    func testTheValuesThatUsedToTrap() {
        checkTicks(-1e308, 1e308, maxCount: 6)
        XCTAssertEqual(Ticks.nice(-1e308, 1e308, maxCount: 3), [-1e308, 0, 1e308])
        checkTicks(-.greatestFiniteMagnitude, .greatestFiniteMagnitude, maxCount: 5)
        checkTicks(.leastNonzeroMagnitude, 2 * .leastNonzeroMagnitude, maxCount: 5)
        checkTicks(0, .leastNonzeroMagnitude, maxCount: 5)
        checkLabels([.leastNonzeroMagnitude, 1e-320, -.greatestFiniteMagnitude, 1e308])
        XCTAssertEqual(ValueFormat.automatic.labels(for: [5e-324]), ["4.940656e-324"])
        XCTAssertEqual(ValueFormat.automatic.labels(for: [1e308, -1e300]), ["1e308", "\u{2212}1e300"])
        XCTAssertEqual(ValueFormat.fixed(2).labels(for: [1e300]), ["1e300"])
        let extremes = [-1e308, 1e308, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 5e-324]
        for v in extremes {
            checkChart([ChartSeries(label: "one", colorIndex: 0, points: [ChartPoint(x: 1, y: v)])], format: .automatic)
            checkChart(
                [ChartSeries(label: "flat", colorIndex: 0, points: (0..<4).map { ChartPoint(x: Double($0), y: v) })],
                format: .percent)
            checkChart(
                [ChartSeries(label: "x", colorIndex: 0, points: [ChartPoint(x: v, y: 1), ChartPoint(x: -v, y: 2)])],
                format: .automatic)
        }
        checkChart(
            [
                ChartSeries(
                    label: "pair", colorIndex: 0, points: [ChartPoint(x: 1, y: -1e308), ChartPoint(x: 2, y: 1e308)],
                    band: [ChartBand(x: 1, low: -.greatestFiniteMagnitude, high: .greatestFiniteMagnitude)])
            ],
            format: .automatic)
        checkIntervals([-.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .greatestFiniteMagnitude, 1e308, .nan, .infinity])
        var buffer = SVGBuffer(capacity: 16)
        buffer.num(1e300)
        buffer.num(-.greatestFiniteMagnitude)
        XCTAssertEqual(buffer.string, "1000000000000-1000000000000")
        let scale = LinearScale(domainLow: -.infinity, domainHigh: 1, rangeLow: 0, rangeHigh: 100)
        XCTAssertEqual(scale(0.5), 50)
    }

    /// 3 000 random charts from a fixed seed: ±extremes, denormals, NaN/Inf, one point, flat lines.
    func testRandomExtremeInputsNeverTrap() {
        var r = SplitMix64(seed: 0x5EED_0014)
        for _ in 0..<1000 {
            let a = Self.value(&r), b = Self.value(&r)
            checkTicks(a, b, maxCount: 2 + r.below(10))
            checkLabels((0..<(1 + r.below(6))).map { _ in Self.value(&r) })
        }
        for round in 0..<1000 {
            let count = [1, 2, 3, 8][r.below(4)]
            let flat = round % 5 == 0 ? Self.value(&r) : nil
            let series = (0..<(1 + r.below(3))).map { k in
                ChartSeries(
                    label: "s\(k)", colorIndex: k,
                    points: (0..<count).map { i in
                        ChartPoint(x: r.below(4) == 0 ? Self.value(&r) : Double(i), y: flat ?? Self.value(&r))
                    },
                    band: r.below(3) == 0
                        ? (0..<count).map { i in ChartBand(x: Double(i), low: Self.value(&r), high: Self.value(&r)) } : [],
                    markers: true)
            }
            checkChart(series, format: [ValueFormat.automatic, .percent, .percentPoints, .fixed(2)][r.below(4)])
        }
        for _ in 0..<1000 {
            checkIntervals((0..<(3 * (1 + r.below(3)))).map { _ in Self.value(&r) })
        }
    }
}
