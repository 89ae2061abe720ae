import Charts
import Foundation
import XCTest

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The log x axis and the labelled x marks (the post-hoc EMA-length sweep's chart).
final class LogAxisTests: XCTestCase {
    func testLogTicksAreOneTwoFiveThinnedToDecades() {
        XCTAssertEqual(Ticks.logarithmic(0.01, 0.25, maxCount: 8), [0.01, 0.02, 0.05, 0.1, 0.2])
        XCTAssertEqual(Ticks.logarithmic(0.01, 0.25, maxCount: 3), [0.01, 0.1])
        XCTAssertEqual(Ticks.logarithmic(1e-4, 10, maxCount: 3), [1e-4, 0.01, 1])
        // Fewer than two nice values inside: the ends.
        XCTAssertEqual(Ticks.logarithmic(0.03, 0.04, maxCount: 5), [0.03, 0.04])
        XCTAssertEqual(Ticks.logarithmic(-1, 1, maxCount: 5), [])
    }

    func testPointsAreEvenlySpacedInLogAndMarksSitOnTheirWidth() throws {
        var chart = LineChart(
            title: "sweep", xLabel: "σ_rel", yLabel: "top-1",
            series: [
                ChartSeries(
                    label: "ph", colorIndex: 0, points: [.init(x: 0.01, y: 0.8), .init(x: 0.1, y: 0.9), .init(x: 1, y: 0.85)])
            ],
            xIsInteger: false)
        chart.xLogarithmic = true
        chart.xMarks = [ChartMark(x: 0.1, label: "ema@0.999"), ChartMark(x: 5, label: "outside")]
        let L = chart.layout()
        XCTAssertTrue(L.x.logarithmic)
        // 0.01, 0.1 and 1 are a decade apart each: equal distances on the axis.
        XCTAssertEqual(L.x(0.1) - L.x(0.01), L.x(1) - L.x(0.1), accuracy: 1e-9)
        XCTAssertEqual(L.x(0.01), L.plotLeft, accuracy: 1e-9)
        XCTAssertEqual(L.x(1), L.plotRight, accuracy: 1e-9)
        XCTAssertEqual(L.xTickLabels, ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"])

        let svg = chart.svg()
        let doc = try XMLDocument(xmlString: svg, options: [])
        XCTAssertNotNil(doc.rootElement())
        XCTAssertTrue(svg.contains(">ema@0.999</text>"), svg)
        XCTAssertFalse(svg.contains("outside"), "a mark beyond the axis is not drawn")
        let tenths = Int((L.x(0.1) * 10).rounded())  // as the SVG writes coordinates: one decimal, none when whole
        let x = tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(tenths % 10)"
        XCTAssertTrue(svg.contains("<path d=\"M\(x) "), "the mark's line sits at x = \(x)")
    }

    func testALinearChartIsUnchangedByTheNewFields() {
        let chart = LineChart(
            title: "t", series: [ChartSeries(label: "a", colorIndex: 0, points: [.init(x: 1, y: 1), .init(x: 3, y: 2)])])
        let L = chart.layout()
        XCTAssertFalse(L.x.logarithmic)
        XCTAssertEqual(L.x(2), (L.plotLeft + L.plotRight) / 2, accuracy: 1e-9)
        XCTAssertFalse(chart.svg().contains("class=\"marks\""))
    }
}
