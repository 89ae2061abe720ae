import Experiments
import Foundation
import Store
import XCTest

@testable import Server

/// The byte-level reader and writer against Foundation's Codable, and the statistics by hand.
final class HotPathTests: XCTestCase {
    struct Batch: Codable { var metrics: [Point] }
    struct Point: Codable, Equatable {
        var key: String
        var weights: String?
        var step: Int64
        var epoch: Int64?
        var value: Double
        var time: Double?
    }

    func randomBatch(_ n: Int) -> Batch {
        var g = SystemRandomNumberGenerator()
        let keys = ["train/loss", "test/top1", "ema/decay", "a \"quoted\" key", "ünï/cødé\n"]
        return Batch(
            metrics: (0..<n).map { i in
                let special: [Double] = [.nan, .infinity, -.infinity, 0, -1e-300, 1e300]
                let value = i % 17 == 0 ? special[i % special.count] : Double.random(in: -10...10, using: &g)
                return Point(
                    key: keys[i % keys.count], weights: i % 3 == 0 ? nil : "ema@0.998", step: Int64(i),
                    epoch: i % 4 == 0 ? nil : Int64(i / 10), value: value,
                    time: i % 5 == 0 ? nil : 1_764_000_000 + Double(i) * 0.37)
            })
    }

    func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return e
    }

    func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return d
    }

    func testBatchReaderAgreesWithJSONDecoder() throws {
        let batch = randomBatch(1000)
        let data = try encoder().encode(batch)
        let mine = try MetricBatchReader.parse(Array(data), now: 42)
        let theirs = try decoder().decode(Batch.self, from: data).metrics
        XCTAssertEqual(mine.count, theirs.count)
        for (a, b) in zip(mine, theirs) {
            XCTAssertEqual(a.key, b.key)
            XCTAssertEqual(a.weights, b.weights ?? "raw")
            XCTAssertEqual(a.step, b.step)
            XCTAssertEqual(a.epoch, b.epoch)
            XCTAssertTrue(a.value.sameValue(as: b.value), "\(a.value) vs \(b.value)")
            XCTAssertEqual(a.time, b.time ?? 42)
        }
    }

    func testBatchReaderNamesTheField() {
        func field(_ body: String) -> String? {
            do {
                _ = try MetricBatchReader.parse(Array(body.utf8), now: 0)
                return "accepted"
            } catch let e as APIError {
                return e.field
            } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(
            field(#"{"metrics":[{"key":"a","step":1,"value":1},{"key":"a","step":2,"value":NaN}]}"#), "metrics[1].value")
        XCTAssertEqual(field(#"{"metrics":[{"key":"a","step":1,"value":-Infinity}]}"#), "metrics[0].value")
        XCTAssertEqual(field(#"{"metrics":[{"key":"a","step":1.5,"value":1}]}"#), "metrics[0].step")
        XCTAssertEqual(field(#"{"metrics":[{"key":"a","step":-1,"value":1}]}"#), "metrics[0].step")
        XCTAssertEqual(field(#"{"metrics":[{"step":1,"value":1}]}"#), "metrics[0].key")
        XCTAssertEqual(field(#"{"metrics":[{"key":"a","step":1}]}"#), "metrics[0].value")
        XCTAssertEqual(field(#"{"metrics":[{"key":"a","step":1,"value":"nan"}]}"#), "metrics[0].value")
        XCTAssertEqual(field(#"{"metrics":[{"key":"a","step":1,"value":1,"colour":2}]}"#), "metrics[0].colour")
        XCTAssertEqual(field(#"{"metric":[]}"#), "metric")
        XCTAssertEqual(field(#"{"metrics":[{"key":"a","step":01,"value":1}]}"#), "metrics[0].step")
        XCTAssertEqual(field(#"{"metrics":[]} x"#), nil)
        XCTAssertEqual(field(#"{"metrics":[{"key":"a\u00e9","step":1,"value":"NaN"}]}"#), "accepted")
    }

    func testSeriesWriterAgreesWithJSONEncoder() throws {
        struct Out: Codable { var points: [P] }
        struct P: Codable, Equatable {
            var key: String, weights: String, step: Int64, epoch: Int64?, value: Double, time: Double
            enum CodingKeys: String, CodingKey { case key, weights, step, epoch, value, time }
            // The API writes a missing epoch as null; Codable would omit the key.
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(key, forKey: .key)
                try c.encode(weights, forKey: .weights)
                try c.encode(step, forKey: .step)
                try c.encode(epoch, forKey: .epoch)
                try c.encode(value, forKey: .value)
                try c.encode(time, forKey: .time)
            }
            static func == (a: P, b: P) -> Bool {
                a.key == b.key && a.weights == b.weights && a.step == b.step && a.epoch == b.epoch
                    && a.value.sameValue(as: b.value) && a.time == b.time
            }
        }
        let batch = randomBatch(3000)
        let points = batch.metrics.map {
            P(key: $0.key, weights: $0.weights ?? "raw", step: $0.step, epoch: $0.epoch, value: $0.value, time: $0.time ?? 7)
        }
        var w = MetricSeriesWriter()
        for p in points {
            w.point(
                prefix: MetricSeriesWriter.prefix(key: p.key, weights: p.weights), step: p.step, epoch: p.epoch, value: p.value,
                time: p.time)
        }
        let mine = Data(w.finish())
        let theirs = try encoder().encode(Out(points: points))
        // Same document: both decode to the same values, through Codable and through JSONSerialization.
        XCTAssertEqual(try decoder().decode(Out.self, from: mine).points, points)
        let a = try JSONSerialization.jsonObject(with: mine) as? NSDictionary
        let b = try JSONSerialization.jsonObject(with: theirs) as? NSDictionary
        XCTAssertEqual(a, b)
    }

    func testStudentTQuantiles() {
        // Tables of t(0.975, df).
        let table: [(Int, Double)] = [
            (1, 12.7062047362), (2, 4.3026527297), (3, 3.1824463053), (4, 2.7764451052),
            (9, 2.2621571628), (29, 2.0452296421), (99, 1.9842169516),
        ]
        for (df, t) in table {
            XCTAssertEqual(Statistics.tQuantile975(df: df), t, accuracy: 1e-8, "df \(df)")
        }
    }

    func testSummaryByHand() throws {
        // 0.90, 0.91, 0.92: mean 0.91, std 0.01, half-width 4.302652729749464 · 0.01 / √3 = 0.0248413…
        let s = try XCTUnwrap(Statistics.summarize([0.90, 0.91, 0.92]))
        XCTAssertEqual(s.n, 3)
        XCTAssertEqual(s.mean, 0.91, accuracy: 1e-12)
        XCTAssertEqual(s.std!, 0.01, accuracy: 1e-12)
        XCTAssertEqual(s.ci95!.low, 0.91 - 0.024841377634976, accuracy: 1e-9)
        XCTAssertEqual(s.ci95!.high, 0.91 + 0.024841377634976, accuracy: 1e-9)
        let one = try XCTUnwrap(Statistics.summarize([0.5]))
        XCTAssertNil(one.std)
        XCTAssertNil(one.ci95)
    }

    func testCSVQuotesAsRFC4180() {
        var w = CSVWriter(header: ["a", "b"])
        w.row([.text("x,y"), .text("say \"hi\"\nthen")])
        w.row([.number(.nan), .number(-.infinity)])
        XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), "a,b\r\n\"x,y\",\"say \"\"hi\"\"\nthen\"\r\nNaN,-Inf\r\n")
    }
}
