import XCTest

@testable import Charts

/// Panels of one figure share a y range: it widens the data's range and never narrows it.
final class SharedRangeTests: XCTestCase {
    func testSharedRangeWidensButNeverNarrows() {
        let s = ChartSeries(label: "raw", colorIndex: 0, points: [ChartPoint(x: 1, y: 0.4), ChartPoint(x: 2, y: 0.6)])
        var chart = LineChart(title: "t", series: [s])
        let own = chart.layout().y
        chart.yRange = 0...1
        let shared = chart.layout().y
        XCTAssertLessThanOrEqual(shared.domainLow, 0)
        XCTAssertGreaterThanOrEqual(shared.domainHigh, 1)
        XCTAssertGreaterThan(own.domainLow, 0.3)
        chart.yRange = 0.45...0.5
        XCTAssertEqual(chart.layout().y, own, "a narrower shared range leaves the data's own")
    }

    func testLimitsStopThePaddingAtWhatCanBe() {
        let s = ChartSeries(label: "top5", colorIndex: 0, points: [ChartPoint(x: 1, y: 0.9), ChartPoint(x: 2, y: 0.999)])
        var chart = LineChart(title: "t", series: [s])
        XCTAssertGreaterThan(chart.layout().y.domainHigh, 1, "padded past 100 %")
        chart.yLimits = 0...1
        XCTAssertEqual(chart.layout().y.domainHigh, 1)
        XCTAssertLessThan(chart.layout().y.domainLow, 0.9, "the other end keeps its padding")
    }
}
