import Charts
import Foundation
import XCTest

#if canImport(FoundationXML)
    import FoundationXML
#endif

// MARK: helpers

private func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) throws -> XMLElement {
    let doc = try XMLDocument(xmlString: svg, options: [])
    let root = try XCTUnwrap(doc.rootElement(), file: file, line: line)
    XCTAssertEqual(root.localName ?? root.name, "svg", file: file, line: line)
    return root
}

private func elements(_ root: XMLElement, _ name: String, class cls: String? = nil) -> [XMLElement] {
    var out: [XMLElement] = []
    func walk(_ e: XMLElement) {
        if (e.localName ?? e.name) == name,
            cls == nil || (attr(e, "class") ?? "").split(separator: " ").contains(Substring(cls!))
        {
            out.append(e)
        }
        for c in e.children ?? [] { if let ce = c as? XMLElement { walk(ce) } }
    }
    walk(root)
    return out
}

/// Attribute value by name. (`attribute(forName:)` of swift-corelibs-foundation misses attributes of
/// elements in a default namespace, so look through `attributes`.)
private func attr(_ e: XMLElement, _ name: String) -> String? {
    e.attributes?.first { ($0.localName ?? $0.name) == name }?.stringValue
}

private func numbers(_ d: String) -> [Double] {
    var out: [Double] = []
    var cur = ""
    for ch in d {
        if ch.isNumber || ch == "." || (ch == "-" && cur.isEmpty) {
            cur.append(ch)
        } else {
            if let v = Double(cur) { out.append(v) }
            cur = ch == "-" ? "-" : ""
        }
    }
    if let v = Double(cur) { out.append(v) }
    return out
}

private func series(
    _ label: String, _ ys: [Double], color: Int = 0, dashed: Bool = false,
    band: Bool = false, markers: Bool = false
) -> ChartSeries {
    let pts = ys.enumerated().map { ChartPoint(x: Double($0.offset), y: $0.element) }
    let bands =
        band ? ys.enumerated().map { ChartBand(x: Double($0.offset), low: $0.element - 0.01, high: $0.element + 0.01) } : []
    return ChartSeries(label: label, colorIndex: color, dashed: dashed, points: pts, band: bands, markers: markers)
}

private func curve(_ n: Int, seed: Double) -> [Double] {
    (0..<n).map { i -> Double in
        let e = Double(i)
        let trend: Double = 0.9 - 0.5 * exp(-e / 12)
        return trend + 0.01 * sin(e * 1.3 + seed)
    }
}

final class SVGTests: XCTestCase {
    func testParsesWithTitleAndViewBox() throws {
        let chart = LineChart(
            title: "Validation accuracy", xLabel: "epoch", yLabel: "accuracy",
            series: [
                series("raw", curve(20, seed: 0), dashed: true),
                series("ema · ema@0.998", curve(20, seed: 1), color: 1),
            ],
            yFormat: .percent)
        let svg = chart.svg()
        let root = try parse(svg)
        let L = chart.layout()
        XCTAssertEqual(attr(root, "viewBox"), "0 0 640 \(Int(L.height))")
        XCTAssertEqual(attr(root, "width"), "640")
        XCTAssertEqual(attr(root, "height"), "\(Int(L.height))")
        XCTAssertEqual(attr(root, "role"), "img")
        let title = try XCTUnwrap(elements(root, "title").first)
        XCTAssertEqual(title.stringValue, "Validation accuracy")
        let labelledBy = try XCTUnwrap(attr(root, "aria-labelledby"))
        XCTAssertTrue(labelledBy.split(separator: " ").contains(Substring(attr(title, "id")!)))
        XCTAssertEqual(elements(root, "text", class: "title").first?.stringValue, "Validation accuracy")
        XCTAssertEqual(elements(root, "text", class: "x-label").first?.stringValue, "epoch")
        XCTAssertEqual(elements(root, "text", class: "y-label").first?.stringValue, "accuracy")
        let yTicks = elements(root, "g", class: "y-ticks").first.map { elements($0, "text") } ?? []
        XCTAssertGreaterThanOrEqual(yTicks.count, 3)
        XCTAssertTrue(yTicks.allSatisfy { $0.stringValue!.hasSuffix(" %") })
        let xTicks = elements(root, "g", class: "x-ticks").first.map { elements($0, "text") } ?? []
        XCTAssertGreaterThanOrEqual(xTicks.count, 3)
        XCTAssertTrue(xTicks.allSatisfy { Int($0.stringValue!) != nil }, "integer x ticks")
        XCTAssertEqual(elements(root, "path", class: "grid").count, 1)
        XCTAssertEqual(attr(elements(root, "g", class: "series")[0], "stroke-dasharray"), "5 3")
        XCTAssertNil(attr(elements(root, "g", class: "series")[1], "stroke-dasharray"))
    }

    func testLegendEntryPerSeriesAndWrapping() throws {
        var all: [ChartSeries] = []
        for v in 0..<10 {
            for (w, name) in ["raw", "ema · ema@0.998", "swa · swa@epoch 5"].enumerated() {
                all.append(
                    series(
                        "variant-\(v) \(name)", curve(50, seed: Double(v * 3 + w)),
                        color: v, dashed: w == 0, band: w == 1))
            }
        }
        let chart = LineChart(title: "30 series", xLabel: "epoch", yLabel: "loss", series: all)
        let root = try parse(chart.svg())
        let L = chart.layout()
        let entries = elements(root, "g", class: "legend-entry")
        XCTAssertEqual(entries.count, 30)
        XCTAssertGreaterThan(L.legendRows, 3, "30 entries need several rows")
        XCTAssertGreaterThan(L.height, 300, "chart grows to fit its legend")
        let texts = entries.map { elements($0, "text")[0] }
        XCTAssertEqual(texts.map { $0.stringValue! }, all.map(\.label))
        for t in texts {
            let y = Double(attr(t, "y")!)!, x = Double(attr(t, "x")!)!
            XCTAssertGreaterThan(y, L.plotBottom + 30, "legend below the axis labels, not on the data")
            XCTAssertLessThanOrEqual(y, L.height)
            XCTAssertLessThan(x, L.width)
        }
        // Entries in the same row do not overlap (swatches start after the previous text).
        var previousByRow: [Double: Double] = [:]
        for t in texts {
            let y = Double(attr(t, "y")!)!, x = Double(attr(t, "x")!)!
            if let prev = previousByRow[y] { XCTAssertGreaterThan(x, prev + 40) }
            previousByRow[y] = x
        }
        XCTAssertEqual(elements(root, "g", class: "band").count, 10)
        // Swatches: band rect for the band series, dash for raw.
        XCTAssertEqual(elements(entries[1], "rect").count, 1)
        XCTAssertEqual(elements(entries[0], "rect").count, 0)
        XCTAssertEqual(attr(elements(entries[0], "path")[0], "stroke-dasharray"), "5 3")
    }

    func testNonFiniteValuesBreakTheLine() throws {
        var ys = curve(10, seed: 0)
        ys[4] = .nan
        ys[7] = .infinity
        ys[8] = -.infinity  // 7 and 8 together: one gap
        var s = series("raw", ys, band: true)
        s.band[2].high = .nan  // the band breaks at 2, 4, 7, 8
        let chart = LineChart(title: "Loss", xLabel: "epoch", yLabel: "loss", series: [s])
        let svg = chart.svg()
        let root = try parse(svg)
        let group = try XCTUnwrap(elements(root, "g", class: "series").first)
        let paths = elements(group, "path")
        XCTAssertEqual(paths.count, 2, "segments 0…3 and 5…6; the lone point 9 becomes a dot")
        XCTAssertEqual(paths.map { numbers(attr($0, "d")!).count / 2 }, [4, 2])
        XCTAssertEqual(elements(root, "circle").count, 1, "isolated point 9 is drawn as a dot")
        let bandPaths = elements(elements(root, "g", class: "band")[0], "path")
        XCTAssertEqual(bandPaths.count, 4, "band runs 0…1, 3, 5…6, 9")
        XCTAssertTrue(bandPaths.allSatisfy { attr($0, "d")!.hasSuffix("Z") })
        XCTAssertEqual(elements(root, "text").filter { $0.stringValue == "×" }.count, 4, "break marks at x = 2, 4, 7, 8")

        let lower = svg.lowercased()
        XCTAssertFalse(lower.contains("nan"))
        XCTAssertFalse(lower.contains("inf"))
        for e in elements(root, "path") + elements(root, "circle") + elements(root, "text") {
            for name in ["d", "x", "y", "cx", "cy"] {
                guard let v = attr(e, name) else { continue }
                XCTAssertTrue(v.allSatisfy { "MLHVZhvz0123456789.- ".contains($0) }, "\(name)=\(v)")
            }
        }
        // The y range comes from the finite values only.
        let finite = ys.filter(\.isFinite) + s.band.flatMap { [$0.low, $0.high] }.filter(\.isFinite)
        let lo = finite.min()!, hi = finite.max()!
        let L = chart.layout()
        XCTAssertEqual(L.y.domainLow, lo - 0.05 * (hi - lo), accuracy: 1e-12)
        XCTAssertEqual(L.y.domainHigh, hi + 0.05 * (hi - lo), accuracy: 1e-12)
    }

    func testCallerTextIsEscaped() throws {
        let chart = LineChart(
            title: "A & B <c>", xLabel: "\"step\"", yLabel: "it's",
            series: [series("<script>&", [0.1, 0.2])])
        let svg = chart.svg()
        XCTAssertTrue(svg.contains("&lt;script&gt;&amp;"))
        XCTAssertFalse(svg.contains("<script>"))
        XCTAssertTrue(svg.contains("A &amp; B &lt;c&gt;"))
        XCTAssertTrue(svg.contains("&quot;step&quot;"))
        XCTAssertTrue(svg.contains("it&#39;s"))
        let root = try parse(svg)
        XCTAssertEqual(elements(root, "title").first?.stringValue, "A & B <c>")
        let legendText = elements(elements(root, "g", class: "legend-entry")[0], "text")[0]
        XCTAssertEqual(legendText.stringValue, "<script>&")
        // Control characters that XML forbids do not break the document.
        XCTAssertNoThrow(try parse(LineChart(title: "bell\u{07}", series: [series("x\u{0}", [1, 2])]).svg()))
    }

    func testFirstPointIsDrawnWhereTheScaleSays() throws {
        let ys = [0.5, 0.62, 0.7, 0.74, 0.9]
        let pts = ys.enumerated().map { ChartPoint(x: Double($0.offset + 1), y: $0.element) }
        let chart = LineChart(
            title: "t", xLabel: "epoch", yLabel: "acc",
            series: [ChartSeries(label: "s", colorIndex: 0, points: pts)])
        let L = chart.layout()
        // Data min → plot left / bottom edge (y padded by 5 % of the span).
        XCTAssertEqual(L.x(1), L.plotLeft)
        XCTAssertEqual(L.x(5), L.plotRight)
        XCTAssertEqual(L.y.domainLow, 0.5 - 0.02, accuracy: 1e-12)
        XCTAssertEqual(L.y(L.y.domainLow), L.plotBottom, accuracy: 1e-9)
        XCTAssertEqual(L.y(L.y.domainHigh), L.plotTop, accuracy: 1e-9)
        let expectedY = L.plotBottom - (L.plotBottom - L.plotTop) * (0.02 / 0.44)
        XCTAssertEqual(L.y(0.5), expectedY, accuracy: 1e-9)

        let root = try parse(chart.svg())
        let d = try XCTUnwrap(attr(elements(elements(root, "g", class: "series")[0], "path")[0], "d"))
        XCTAssertTrue(d.hasPrefix("M"))
        let n = numbers(d)
        XCTAssertEqual(n.count, 10, "every point is drawn")
        XCTAssertEqual(n[0], L.plotLeft, accuracy: 0.051)
        XCTAssertEqual(n[1], expectedY, accuracy: 0.051)
        XCTAssertEqual(n[8], L.plotRight, accuracy: 0.051)
        XCTAssertEqual(n[9], L.y(0.9), accuracy: 0.051)
        // Tick labels sit at their tick.
        XCTAssertTrue(L.yTicks.allSatisfy { $0 >= L.y.domainLow && $0 <= L.y.domainHigh })
        XCTAssertEqual(L.xTicks, [1, 2, 3, 4, 5])
    }

    func testEmptyChartSaysNoDataYet() throws {
        for s in [[], [series("diverged", [.nan, .infinity])]] {
            let chart = LineChart(title: "Nothing", xLabel: "epoch", yLabel: "loss", series: s)
            let root = try parse(chart.svg())
            XCTAssertFalse(chart.layout().hasData)
            XCTAssertEqual(elements(root, "text", class: "no-data").first?.stringValue, "no data yet")
            XCTAssertEqual(elements(root, "path", class: "axis-line").count, 1, "axes are still drawn")
            XCTAssertEqual(elements(root, "g", class: "legend-entry").count, s.count)
            XCTAssertEqual(elements(root, "g", class: "series").flatMap { elements($0, "path") }.count, 0)
        }
    }

    func testSinglePoint() throws {
        let chart = LineChart(
            title: "one epoch", xLabel: "epoch", yLabel: "acc",
            series: [
                ChartSeries(
                    label: "ema", colorIndex: 2, points: [ChartPoint(x: 0, y: 0.91)],
                    band: [ChartBand(x: 0, low: 0.9, high: 0.92)])
            ],
            yFormat: .percent)
        let L = chart.layout()
        XCTAssertTrue(L.hasData)
        XCTAssertEqual(L.xTickLabels, ["0"])
        XCTAssertGreaterThanOrEqual(L.yTicks.count, 2)
        let root = try parse(chart.svg())
        let dot = try XCTUnwrap(elements(root, "circle").first, "a lone point is drawn as a dot")
        XCTAssertEqual(Double(attr(dot, "cx")!)!, (L.plotLeft + L.plotRight) / 2, accuracy: 0.051)
        XCTAssertEqual(Double(attr(dot, "cy")!)!, L.y(0.91), accuracy: 0.051)
        XCTAssertEqual(elements(elements(root, "g", class: "band")[0], "path").count, 1)
    }

    func testAllEqualValues() throws {
        let chart = LineChart(title: "flat", series: [series("flat", Array(repeating: 0.7, count: 5))], yFormat: .percent)
        let L = chart.layout()
        XCTAssertLessThan(L.y.domainLow, 0.7)
        XCTAssertGreaterThan(L.y.domainHigh, 0.7)
        XCTAssertEqual(L.y(0.7), (L.plotTop + L.plotBottom) / 2, accuracy: 1e-9)
        XCTAssertGreaterThanOrEqual(L.yTicks.count, 2)
        XCTAssertEqual(Set(L.yTickLabels).count, L.yTickLabels.count)
        XCTAssertNoThrow(try parse(chart.svg()))
        let zero = LineChart(title: "zeros", series: [series("z", [0, 0, 0])]).layout()
        XCTAssertLessThan(zero.y.domainLow, 0)
        XCTAssertGreaterThan(zero.y.domainHigh, 0)
    }

    func testDeterministic() {
        func make() -> LineChart {
            LineChart(
                title: "same", xLabel: "epoch", yLabel: "acc",
                series: (0..<6).map { series("s\($0)", curve(30, seed: Double($0)), color: $0, band: $0 % 2 == 0) })
        }
        let a = make().svg()
        XCTAssertEqual(a, make().svg())
        XCTAssertEqual(a, make().svg())
        XCTAssertNotEqual(a, LineChart(title: "other", series: make().series).svg())
    }

    func testPaletteWrapsAround() {
        XCTAssertEqual(ChartPalette.color(0), ChartPalette.color(8))
        XCTAssertEqual(ChartPalette.color(-1), ChartPalette.color(7))
        XCTAssertEqual(Set(ChartPalette.colors).count, 8)
    }

    func testThirtySeriesIsSmallAndFast() throws {
        var all: [ChartSeries] = []
        for v in 0..<30 { all.append(series("variant \(v)", curve(100, seed: Double(v)), color: v, dashed: v % 3 == 0)) }
        let chart = LineChart(title: "big", xLabel: "epoch", yLabel: "accuracy", series: all, yFormat: .percent)
        _ = chart.svg()  // warm up
        let start = Date()
        var svg = ""
        for _ in 0..<5 { svg = chart.svg() }
        let perChart = Date().timeIntervalSince(start) / 5
        XCTAssertLessThan(perChart, 0.2, "sanity bound only; expected a few ms")
        XCTAssertLessThan(svg.utf8.count, 100_000)
        let root = try parse(svg)
        XCTAssertEqual(elements(root, "g", class: "series").flatMap { elements($0, "path") }.count, 30)
        XCTAssertEqual(elements(root, "circle").count, 0, "no per-point elements without markers")
        // With bands the output stays compact too.
        let banded = LineChart(
            title: "big",
            series: all.map { s in
                var s = s; s.band = s.points.map { ChartBand(x: $0.x, low: $0.y - 0.01, high: $0.y + 0.01) }; return s
            })
        XCTAssertLessThan(banded.svg().utf8.count, 200_000)
    }

    func testMarkers() throws {
        let chart = LineChart(title: "few", series: [series("m", [1, 2, 3], markers: true)])
        let root = try parse(chart.svg())
        XCTAssertEqual(elements(elements(root, "g", class: "markers")[0], "circle").count, 3)
        XCTAssertEqual(elements(elements(root, "g", class: "legend-entry")[0], "circle").count, 1)
    }

    /// Writes example.svg when CHARTS_EXAMPLE is set to an output path (used to eyeball the look).
    func testWriteExample() throws {
        guard let path = ProcessInfo.processInfo.environment["CHARTS_EXAMPLE"] else { return }
        var all: [ChartSeries] = []
        for (v, name) in ["sgd", "adamw", "lion"].enumerated() {
            let raw = (0..<40).map { e -> ChartPoint in
                let t = Double(e), k = Double(v)
                let trend: Double = 0.93 - 0.35 * exp(-t / (6 + k * 2))
                let y: Double = trend + 0.012 * sin(t * 1.7 + k)
                return ChartPoint(x: Double(e), y: (v == 2 && e == 23) ? .nan : y)
            }
            let ema = raw.map { p -> ChartPoint in
                let smooth: Double = p.y + 0.01 - 0.01 * sin(p.x * 1.7 + Double(v))
                return ChartPoint(x: p.x, y: p.y.isFinite ? smooth : .nan)
            }
            let band = ema.map { p -> ChartBand in
                let w: Double = 0.008 + 0.01 * exp(-p.x / 10)
                return ChartBand(x: p.x, low: p.y - w, high: p.y + w)
            }
            all.append(ChartSeries(label: "\(name) · raw", colorIndex: v, dashed: true, points: raw))
            all.append(ChartSeries(label: "\(name) · ema@0.998", colorIndex: v, points: ema, band: band))
        }
        let chart = LineChart(
            title: "Validation accuracy (mean ± std over 5 seeds)", xLabel: "epoch",
            yLabel: "accuracy", series: all, yFormat: .percent)
        try chart.svg().write(toFile: path, atomically: true, encoding: .utf8)
    }
}
