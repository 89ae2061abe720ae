import CSQLite
import Experiments
import Foundation
import PolyakTestSupport
import XCTest

@testable import Server

/// The server SIGKILLed at random moments, and a disk that fills up or turns read-only under a
/// checkpoint: nothing stored is lost, duplicated or changed. `make fault-test` runs the first
/// with 20 kills (`POLYAK_FAULT_KILLS`); the suite with 2.
final class CrashTests: XCTestCase {
    /// A metric point as compared: everything but its wall time, the value bit for bit.
    struct Point: Hashable, Comparable {
        var key, weights: String
        var step: Int
        var epoch: Int?
        var bits: String

        init(_ p: JSONValue) {
            key = p["key"]?.stringValue ?? "?"
            weights = p["weights"]?.stringValue ?? "raw"
            step = p["step"]?.intValue ?? -1
            epoch = p["epoch"]?.intValue
            bits = p["value"]?.doubleValue.map { String($0.bitPattern, radix: 16) } ?? (p["value"]?.stringValue ?? "null")
        }

        static func < (a: Point, b: Point) -> Bool { (a.key, a.weights, a.step) < (b.key, b.weights, b.step) }
    }

    static func integrityCheck(_ path: String) -> String {
        var db: OpaquePointer?
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else { return "cannot open \(path)" }
        defer { sqlite3_close(db) }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &statement, nil) == SQLITE_OK else { return "cannot prepare" }
        defer { sqlite3_finalize(statement) }
        var rows: [String] = []
        while sqlite3_step(statement) == SQLITE_ROW { rows.append(String(cString: sqlite3_column_text(statement, 0))) }
        return rows.joined(separator: "\n")
    }

    func testKilledAtRandomMomentsTheRunsEndAsIfUninterrupted() async throws {
        let kills = Int(ProcessInfo.processInfo.environment["POLYAK_FAULT_KILLS"] ?? "") ?? 2
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        let http = HTTP(port: port)
        var server = try startServe(exe, folder, port: port, logLevel: "error")
        defer { if server.isRunning { server.terminate() } }
        try await http.waitUntilUp()
        // 2 runs × 2 seeds (none and ema share one, swa trains apart), 3 epochs of 6 steps per kill (12
        // in the suite), a checkpoint at each epoch's end; one grid cell. Seconds of training per kill,
        // so that the kills (0.05–2.5 s apart) land while runs train, even on a quiet machine.
        let images = 384 * max(2, kills)
        let base =
            #"{"data": {"train_limit": \#(images), "test_limit": 100}, "model": {"width": 4}, "optim": {"epochs": 3, "batch_size": 64}, "resolution": {"test_grid": {"resize": [28], "crop": [28]}}}"#
        let created = try await http.json(
            "POST", "/api/experiments",
            #"{"name": "faults", "base": \#(base), "variants": ["none", "ema", "swa"], "seeds": [0, 1]}"#)
        let id = try XCTUnwrap(created["id"]?.intValue)

        func statuses() async throws -> [String] {
            let e = try await http.json("GET", "/api/experiments/\(id)")
            return (0..<e["runs"]!.count).compactMap { e["runs"]![$0]!["status"]?.stringValue }
        }
        var rng = Xoshiro(seed: 14)
        var done = 0
        while done < kills {
            try await Task.sleep(nanoseconds: UInt64(Double.random(in: 0.05...2.5, using: &rng) * 1e9))
            if try await statuses().allSatisfy({ $0 == "completed" }) { break }
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
            done += 1
            server = try startServe(exe, folder, port: port, logLevel: "error")
            try await http.waitUntilUp()
            // After each restart every run is done, waiting, or resuming: none failed or vanished.
            let now = try await statuses()
            XCTAssertEqual(now.count, 4)
            XCTAssertEqual(
                now.filter { !["queued", "running", "interrupted", "completed"].contains($0) }, [], "after kill \(done)")
        }
        XCTAssertGreaterThan(done, 0, "the runs finished before the first kill")
        print("CrashTests: the server was killed \(done) times of \(kills) asked for")
        let deadline = Date().addingTimeInterval(600)
        while try await !statuses().allSatisfy({ ["completed", "failed", "cancelled"].contains($0) }), Date() < deadline {
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        let experiment = try await http.json("GET", "/api/experiments/\(id)")
        var stored: [Int: [Point]] = [:], specs: [Int: JSONValue] = [:]
        for i in 0..<experiment["runs"]!.count {
            let run = experiment["runs"]![i]!
            let runID = try XCTUnwrap(run["id"]?.intValue)
            XCTAssertEqual(run["status"]?.stringValue, "completed", "run \(runID): \(run["error"] ?? .null)")
            let points = try await http.json("GET", "/api/runs/\(runID)/metrics")["points"]!
            stored[runID] = (0..<points.count).map { Point(points[$0]!) }.sorted()
            specs[runID] = try await http.json("GET", "/api/runs/\(runID)")["spec"]
        }
        server.terminate()
        server.waitUntilExit()
        XCTAssertEqual(Self.integrityCheck(folder.db), "ok")

        // The same specs trained without interruption: the same points, bit for bit, none missing, none twice.
        for (runID, spec) in specs.sorted(by: { $0.key < $1.key }) {
            let specFile = folder.url.appendingPathComponent("spec-\(runID).json").path
            try spec.data(pretty: true).write(to: URL(fileURLWithPath: specFile))
            let trained = try runProcess(
                exe, ["train", "--spec", specFile, "--out", folder.url.appendingPathComponent("ref-\(runID)").path])
            XCTAssertEqual(trained.status, 0, trained.err)
            // (The store keeps one point per key, weights and step, as the trainer prints them.)
            let reference = Set(
                try trained.out.split(separator: "\n").map { try JSONValue.parse(String($0)) }
                    .filter { $0["type"]?.stringValue == "metric" }.map(Point.init)
            ).sorted()
            XCTAssertGreaterThan(reference.count, 10)
            XCTAssertEqual(stored[runID], reference, "run \(runID) after \(done) kills differs from an uninterrupted run")
        }
    }
}

/// xoshiro256** for the kill moments: the same moments on every run of the test.
struct Xoshiro: RandomNumberGenerator {
    var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    mutating func next() -> UInt64 {
        func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }
}
