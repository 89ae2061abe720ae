import XCTest

@testable import Charts

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The forest plot: rows where the scale puts them, intervals and the reference line, escaped text.
final class IntervalChartTests: XCTestCase {
    let chart = IntervalChart(
        title: "Δ top-1 <vs> none", xLabel: "difference",
        rows: [
            .init(label: "ema · ema@0.998", estimate: 0.005, low: 0.002, high: 0.008, colorIndex: 1, emphasized: true),
            .init(label: "swa & co", estimate: -0.003, low: -0.01, high: 0.004, colorIndex: 2),
            .init(label: "one seed", estimate: 0.001),
            .init(label: "diverged", estimate: .nan),
        ], format: .percentPoints)

    func testScaleCoversEveryEstimateIntervalAndTheReference() {
        let (x, ticks, left, right) = chart.scale()
        XCTAssertLessThan(x.domainLow, -0.01)
        XCTAssertGreaterThan(x.domainHigh, 0.008)
        XCTAssertEqual(x(x.domainLow), left, accuracy: 1e-9)
        XCTAssertEqual(x(x.domainHigh), right, accuracy: 1e-9)
        XCTAssertTrue(ticks.contains(0))
        XCTAssertEqual(x.domainLow, ticks.first!, "the axis starts at a tick")
        XCTAssertEqual(x.domainHigh, ticks.last!, "and ends at one")
        XCTAssertEqual(ValueFormat.percentPoints.labels(for: [-0.01, 0, 0.005]), ["−1.0 pp", "0.0 pp", "0.5 pp"])
    }

    func testSVGParsesAndDrawsEachRow() throws {
        let svg = chart.svg()
        #if canImport(FoundationXML) || os(macOS)
            _ = try XMLDocument(xmlString: svg)
        #endif
        XCTAssertTrue(svg.contains("<title id=\"intervals-"))
        XCTAssertTrue(svg.contains("Δ top-1 &lt;vs&gt; none"))
        XCTAssertTrue(svg.contains(">swa &amp; co</text>"))
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 3, "a dot per finite estimate")
        XCTAssertEqual(svg.components(separatedBy: "v10\"/>").count - 1, 2, "an interval bar per row that has one")
        XCTAssertTrue(svg.contains(">not finite</text>"))
        XCTAssertTrue(svg.contains("class=\"reference\""))
        XCTAssertFalse(svg.lowercased().contains("nan\""), "no non-finite coordinate")
        // The emphasized row's dot sits where the scale says.
        let (x, _, _, _) = chart.scale()
        let cx = String(format: "%.1f", x(0.005)).replacingOccurrences(of: ".0", with: "")
        XCTAssertTrue(svg.contains("cx=\"\(cx)\" cy=\"46\" r=\"5.5\""), svg)
    }
}
