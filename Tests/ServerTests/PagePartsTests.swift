import XCTest

@testable import Server

/// The small pieces the pages are made of: number formats, form decoding, heat-map tables.
final class PagePartsTests: XCTestCase {
    func testFormats() {
        XCTAssertEqual(Format.metric(0.92137, key: "test/top1"), "92.14 %")
        XCTAssertEqual(Format.metric(0.28712, key: "test/loss"), "0.2871")
        XCTAssertEqual(Format.metric(.nan, key: "test/top1"), "NaN")
        XCTAssertEqual(Format.metric(-.infinity, key: "test/loss"), "−Inf")
        XCTAssertEqual(Format.metric(nil, key: "test/top1"), "—")
        XCTAssertEqual(Format.delta(0.0012, key: "test/top1"), "+0.12 pp")
        XCTAssertEqual(Format.delta(-0.0031, key: "test/loss"), "−0.00310")
        XCTAssertEqual(Format.interval((-0.0019, 0.0007), key: "test/top1", signed: true), "[−0.19, +0.07] pp")
        XCTAssertEqual(Format.interval((0.9172, 0.9256), key: "test/top1"), "[91.72, 92.56] %")
        XCTAssertEqual(Format.duration(95), "1 min 35 s")
        XCTAssertEqual(Format.duration(3725), "1 h 02 min")
        XCTAssertNil(Format.duration(.nan))
        XCTAssertEqual(Format.bytes(1_234_567), "1.2 MB")
        XCTAssertEqual(Format.time(1_764_000_000), "2025-11-24 16:00 UTC")
        XCTAssertEqual(Format.iso(1_764_000_000), "2025-11-24T16:00:00Z")
    }

    /// The form proposes the cores shared by the runs trained at once; Slurm's jobs and a server
    /// without a budget keep the spec's default.
    func testTheLaunchFormProposesTheCoresPerTrainingSlot() {
        var o = ServerOptions(maxConcurrent: 2, executable: "/bin/false")
        XCTAssertEqual(o.launchFormThreads, 2, "no budget: the spec's default")
        o.cpus = 2
        XCTAssertEqual(o.launchFormThreads, 1)
        XCTAssertEqual(o.trainingSlots(threads: 1), 2)
        XCTAssertEqual(o.trainingSlots(threads: 2), 1)
        XCTAssertEqual(o.trainingSlots(threads: 8), 1, "a run wider than the budget still trains, alone")
        o.cpus = 8
        o.maxConcurrent = 1
        XCTAssertEqual(o.launchFormThreads, 8)
        o.maxConcurrent = 0
        XCTAssertEqual(o.launchFormThreads, 2, "nothing trains: the spec's default")
    }

    func testFormBodyDecodesRepeatsSpacesAndEscapes() {
        let f = FormBody("name=my+exp%21&presets=none&presets=ema&empty=&seeds=%200%2C%201%20&bad=%zz")
        XCTAssertEqual(f.first("name"), "my exp!")
        XCTAssertEqual(f.all("presets"), ["none", "ema"])
        XCTAssertNil(f.first("empty"), "blank is absent")
        XCTAssertEqual(f.first("seeds"), "0, 1", "trimmed")
        XCTAssertEqual(f.first("bad"), "%zz", "a malformed escape is kept as written")
        XCTAssertEqual(FormBody("").values.count, 0)
    }

    func testHeatMapTablesShareOneScaleAndMarkWhatWasNotEvaluated() throws {
        func entry(_ label: String, _ weights: String, _ stage: String, _ resize: Int64, _ crop: Int64, _ top1: Double?)
            -> HeatMap.Entry
        {
            HeatMap.Entry(
                label: label, weights: weights, stage: stage, trainSize: 20,
                cell: HeatMap.Cell(resize: resize, crop: crop, top1: top1, detail: "d"))
        }
        let figure = try XCTUnwrap(
            HeatMap.figure([
                entry("fixres", "raw", "finetuned", 24, 24, 0.9), entry("fixres", "raw", "base", 24, 24, 0.8),
                entry("fixres", "raw", "base", 28, 24, .nan), entry("fixres", "raw", "base", 28, 28, 0.82),
                entry("none", "raw", "base", 24, 24, 0.85),
            ]))
        XCTAssertEqual(
            figure.tables.map(\.title),
            [
                "fixres · raw · before fine-tuning · trained at 20 px", "fixres · raw · after fine-tuning · trained at 20 px",
                "none · raw · trained at 20 px",
            ])
        let base = figure.tables[0]
        XCTAssertEqual(base.crops, [24, 28])
        XCTAssertEqual(base.rows.map(\.resize), [24, 28])
        XCTAssertEqual(base.rows[0].cells[0].text, "80.0")
        XCTAssertEqual(base.rows[0].cells[0].style, "background:#fff7bc;color:#1b1f24", "the lowest cell: the light end")
        XCTAssertEqual(figure.tables[1].rows[0].cells[0].style, "background:#0c2c84;color:#fff", "the highest: the dark end")
        XCTAssertTrue(base.rows[0].cells[1].na, "a crop larger than the image was never evaluated")
        XCTAssertTrue(base.rows[0].cells[1].tip.contains("does not fit"))
        XCTAssertEqual(base.rows[1].cells[0].text, "NaN")
        XCTAssertEqual(figure.scaleText, "80.0 % to 90.0 %")
        XCTAssertNil(HeatMap.figure([entry("x", "raw", "base", 24, 24, nil)]), "nothing finite: no figure")
    }

    func testPageCacheServesARevisionUntilTheNextAndStaysWithinItsBytes() {
        let cache = PageCache(limitBytes: 400)
        var renders = 0
        func render(_ text: String) -> () -> String {
            {
                renders += 1; return text
            }
        }
        XCTAssertEqual(cache.page("/a", revision: 1, render: render("a1")), "a1")
        XCTAssertEqual(cache.page("/a", revision: 1, render: render("other")), "a1", "same revision: served again")
        XCTAssertEqual(renders, 1)
        XCTAssertEqual(cache.page("/a", revision: 2, render: render("a2")), "a2", "a write happened: rendered anew")
        XCTAssertEqual(renders, 2)
        // Larger than a quarter of the limit: rendered, never kept.
        let big = String(repeating: "x", count: 101)
        _ = cache.page("/big", revision: 2, render: render(big))
        _ = cache.page("/big", revision: 2, render: render(big))
        XCTAssertEqual(renders, 4)
        // Over the limit: the oldest go first.
        for i in 0..<10 { _ = cache.page("/p\(i)", revision: 2, render: render(String(repeating: "y", count: 90))) }
        renders = 0
        _ = cache.page("/p9", revision: 2, render: render("new"))
        XCTAssertEqual(renders, 0, "the newest is kept")
        _ = cache.page("/p0", revision: 2, render: render("new"))
        XCTAssertEqual(renders, 1, "the oldest was evicted")
    }
}
