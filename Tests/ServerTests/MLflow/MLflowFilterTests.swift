import XCTest

@testable import Server

/// MLflow's search grammar, parsed: what it accepts, and the position it names when it cannot.
final class MLflowFilterTests: XCTestCase {
    typealias F = MLflowFilter

    func testClausesOfEveryEntityJoinedByAnd() throws {
        let c = try F.parse(
            "metrics.`test/top1` > 0.9 and params.lr = '0.1' AND tags.\"polyak.variant\" ILIKE 'E%' "
                + "AND attributes.run_name IN ('a', 'b''c') AND run_id NOT IN (\"7\") AND attr.start_time >= 1700000000000")
        XCTAssertEqual(
            c,
            [
                .init(entity: .metric, key: "test/top1", op: .gt, value: .number(0.9)),
                .init(entity: .param, key: "lr", op: .eq, value: .string("0.1")),
                .init(entity: .tag, key: "polyak.variant", op: .ilike, value: .string("E%")),
                .init(entity: .attribute, key: "run_name", op: .isIn, value: .list(["a", "b'c"])),
                .init(entity: .attribute, key: "run_id", op: .notIn, value: .list(["7"])),
                .init(entity: .attribute, key: "start_time", op: .ge, value: .number(1_700_000_000_000)),
            ])
    }

    func testBareKeysMayHoldDotsSlashesAndColons() throws {
        XCTAssertEqual(
            try F.parse("metrics.test/top1:ema@0.998 <= -1e-3"),
            [.init(entity: .metric, key: "test/top1:ema@0.998", op: .le, value: .number(-0.001))])
        XCTAssertEqual(
            try F.parse("tags.polyak.seed != '2'"), [.init(entity: .tag, key: "polyak.seed", op: .ne, value: .string("2"))])
        XCTAssertEqual(try F.parse("params.a IS NOT NULL"), [.init(entity: .param, key: "a", op: .isNotNull, value: .none)])
        XCTAssertEqual(try F.parse("  "), [])
        XCTAssertEqual(try F.parse("created < 5"), [.init(entity: .attribute, key: "start_time", op: .lt, value: .number(5))])
    }

    func testRefusalsNameThePosition() {
        func position(_ text: String) -> Int? {
            do {
                _ = try F.parse(text)
                return nil
            } catch let e as F.ParseError {
                XCTAssertTrue(e.description.hasPrefix("at position \(e.position): "), e.description)
                return e.position
            } catch {
                return nil
            }
        }
        XCTAssertEqual(position("metrics.loss >> 1"), 14)  // `>` then a second `>` where a number belongs
        XCTAssertEqual(position("metrics.loss < 1 OR params.a = 'b'"), 17)
        XCTAssertEqual(position("metrics.loss LIKE '%'"), 13)  // LIKE on a number
        XCTAssertEqual(position("params.lr > '0.1'"), 10)  // order on text
        XCTAssertEqual(position("params.lr = 0.1"), 12)  // params compare as quoted text
        XCTAssertEqual(position("bogus.x = 'a'"), 0)
        XCTAssertEqual(position("attributes.colour = 'red'"), 11)
        XCTAssertEqual(position("tags.t = 'open"), 9)
        XCTAssertEqual(position("metrics.`open > 1"), 8)
        XCTAssertEqual(position("run_name IN ('a' 'b')"), 17)
        XCTAssertEqual(position("metrics.x = nan"), 12)
    }

    func testOrderItems() throws {
        XCTAssertEqual(try F.parseOrder("metrics.`test/top1` DESC"), .init(entity: .metric, key: "test/top1", ascending: false))
        XCTAssertEqual(try F.parseOrder("attributes.start_time"), .init(entity: .attribute, key: "start_time", ascending: true))
        XCTAssertEqual(try F.parseOrder("params.lr asc"), .init(entity: .param, key: "lr", ascending: true))
        XCTAssertThrowsError(try F.parseOrder("params.lr sideways")) { e in
            XCTAssertEqual((e as? F.ParseError)?.position, 10)
        }
    }

    func testLikeMatchesAsSQL() {
        XCTAssertTrue(F.like("ema-seed2", "ema%", ignoringCase: false))
        XCTAssertTrue(F.like("ema-seed2", "%seed_", ignoringCase: false))
        XCTAssertFalse(F.like("EMA", "ema", ignoringCase: false))
        XCTAssertTrue(F.like("EMA", "e%a", ignoringCase: true))
        XCTAssertTrue(F.like("", "%", ignoringCase: false))
        XCTAssertFalse(F.like("abc", "a_", ignoringCase: false))
        XCTAssertTrue(F.like("a%b", "a%%b", ignoringCase: false))
        XCTAssertTrue(F.like(String(repeating: "a", count: 2000) + "b", "%a%a%a%b", ignoringCase: false))
    }
}
