import Charts
import XCTest

final class TicksTests: XCTestCase {
    func testZeroToOne() {
        XCTAssertEqual(Ticks.nice(0, 1, maxCount: 6), [0, 0.2, 0.4, 0.6, 0.8, 1])
        XCTAssertEqual(Ticks.nice(0, 1, maxCount: 11), [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1])
    }

    func testNarrowAccuracyRange() {
        let t = Ticks.nice(0.873, 0.921, maxCount: 8)
        XCTAssertEqual(t, [0.87, 0.88, 0.89, 0.9, 0.91, 0.92, 0.93])
        let fine = Ticks.nice(0.873, 0.921, maxCount: 12)
        XCTAssertEqual(fine.first, 0.87)
        XCTAssertEqual(fine.last, 0.925)
        XCTAssertEqual(fine.count, 12)
        for (a, b) in zip(fine, fine.dropFirst()) { XCTAssertEqual(b - a, 0.005, accuracy: 1e-12) }
    }

    func testCoversAndRespectsMaxCount() {
        let ranges: [(Double, Double)] = [
            (0, 1), (-3.7, 12.2), (0.873, 0.921), (1e-5, 3e-5),
            (0, 99), (-1e9, 5e9), (2.3, 2.30001), (17, 18),
        ]
        for (lo, hi) in ranges {
            for n in 3...12 {
                let t = Ticks.nice(lo, hi, maxCount: n)
                XCTAssertLessThanOrEqual(t.count, n, "\(lo)…\(hi) max \(n)")
                XCTAssertGreaterThanOrEqual(t.count, 2)
                XCTAssertLessThanOrEqual(t.first!, lo)
                XCTAssertGreaterThanOrEqual(t.last!, hi)
                let step = t[1] - t[0]
                // 1-2-5 step
                let m = step / pow(10, floor(log10(step)))
                XCTAssertTrue([1, 2, 5].contains { abs(m - Double($0)) < 1e-6 }, "step \(step)")
                XCTAssertEqual(t, t.sorted())
            }
        }
    }

    func testDegenerateAndInvalid() {
        XCTAssertEqual(Ticks.nice(0.5, 0.5, maxCount: 5), [0.5])
        XCTAssertEqual(Ticks.nice(.nan, 1, maxCount: 5), [])
        XCTAssertEqual(Ticks.nice(0, .infinity, maxCount: 5), [])
        XCTAssertEqual(Ticks.nice(1, 0, maxCount: 6), [0, 0.2, 0.4, 0.6, 0.8, 1], "reversed range")
        XCTAssertEqual(Ticks.nice(0, 1, maxCount: 0), [0, 0.5, 1], "maxCount below 3 counts as 3")
        XCTAssertEqual(Ticks.nice(-3.7, 12.2, maxCount: 2), [-20, 0, 20], "a range across 0 needs 3 ticks")
    }
}

final class FormatTests: XCTestCase {
    func testPercent() {
        XCTAssertEqual(ValueFormat.percent.labels(for: [0.9123]), ["91.2 %"])
        XCTAssertEqual(ValueFormat.percent.labels(for: [0.9123, 0.9124]), ["91.23 %", "91.24 %"])
        XCTAssertEqual(ValueFormat.percent.labels(for: [0.9, 0.92, 0.94]), ["90 %", "92 %", "94 %"])
        XCTAssertEqual(ValueFormat.percent.labels(for: [0.9, 0.905, 0.91]), ["90.0 %", "90.5 %", "91.0 %"])
        XCTAssertEqual(ValueFormat.percent.labels(for: [-0.1, 0, 0.1]), ["\u{2212}10 %", "0 %", "10 %"])
    }

    func testAutomatic() {
        XCTAssertEqual(ValueFormat.automatic.labels(for: [0, 0.5, 1, 1.5]), ["0", "0.5", "1", "1.5"])
        XCTAssertEqual(ValueFormat.automatic.labels(for: [0, 500, 1000]), ["0", "500", "1000"])
        XCTAssertEqual(ValueFormat.automatic.labels(for: [0.0001, 0.0002]), ["1e-4", "2e-4"])
        XCTAssertEqual(ValueFormat.automatic.labels(for: [-0.00025, 0]), ["\u{2212}2.5e-4", "0"])
        XCTAssertEqual(ValueFormat.automatic.labels(for: [-1, -0.5, 0]), ["\u{2212}1", "\u{2212}0.5", "0"])
        XCTAssertEqual(
            ValueFormat.automatic.labels(for: Ticks.nice(0.873, 0.921, maxCount: 12)).prefix(3),
            ["0.87", "0.875", "0.88"])
        XCTAssertEqual(ValueFormat.automatic.labels(for: [0.1 + 0.2]), ["0.3"])
    }

    func testFixed() {
        XCTAssertEqual(ValueFormat.fixed(2).labels(for: [1, -2.345, .nan]), ["1.00", "\u{2212}2.35", ""])
        XCTAssertEqual(ValueFormat.fixed(0).labels(for: [-0.2]), ["0"], "no negative zero")
    }

    func testTickLabelsAreDistinct() {
        for (lo, hi) in [(0.873, 0.921), (0.0, 1.0), (0.91, 0.9102), (1e-5, 3e-5), (-2.0, 7.0)] {
            for n in 3...10 {
                let ticks = Ticks.nice(lo, hi, maxCount: n)
                for format in [ValueFormat.percent, .automatic] {
                    let labels = format.labels(for: ticks)
                    XCTAssertEqual(Set(labels).count, labels.count, "\(format) \(labels)")
                }
            }
        }
    }
}

final class ScaleTests: XCTestCase {
    func testLinearScale() {
        let s = LinearScale(domainLow: 10, domainHigh: 20, rangeLow: 50, rangeHigh: 250)
        XCTAssertEqual(s(10), 50)
        XCTAssertEqual(s(20), 250)
        XCTAssertEqual(s(15), 150)
        let inverted = LinearScale(domainLow: 0, domainHigh: 1, rangeLow: 300, rangeHigh: 20)
        XCTAssertEqual(inverted(0), 300)
        XCTAssertEqual(inverted(1), 20)
        XCTAssertEqual(inverted(0.25), 230)
        let empty = LinearScale(domainLow: 3, domainHigh: 3, rangeLow: 0, rangeHigh: 100)
        XCTAssertEqual(empty(3), 50)
        let huge = LinearScale(
            domainLow: -Double.greatestFiniteMagnitude, domainHigh: .greatestFiniteMagnitude,
            rangeLow: 0, rangeHigh: 100)
        XCTAssertEqual(huge(0), 50, accuracy: 1e-9)
    }
}
