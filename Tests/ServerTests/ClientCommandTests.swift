import Experiments
import Foundation
import PolyakTestSupport
import Server
import XCTest

/// The client commands (`polyak launch`, `ls`, `runs`, `compare`, `grid`, `cancel`, `logs`) against a
/// real `polyak serve` with real tiny training runs.
final class ClientCommandTests: XCTestCase {
    /// 128 training images (two steps), width 4, one epoch: a few seconds a run in a debug build.
    static let base = """
        {"data": {"train_limit": 128, "test_limit": 100}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64},
         "resolution": {"test_grid": {"resize": [28, 32], "crop": [24, 28]}}}
        """
    static let experiment = """
        {"name": "cli check", "base": \(base), "variants": ["none", "ema"], "seeds": [0, 1], "baseline": "none"}
        """

    struct Server {
        let process: Process
        let port: Int
        var url: String { "http://127.0.0.1:\(port)" }
    }

    /// `polyak serve` with `extra` arguments, up and answering.
    func serve(_ extra: [String] = []) async throws -> Server {
        let folder = try TempFolder()
        let port = try freePort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try polyakExecutable())
        p.arguments =
            ["serve", "--port", "\(port)", "--db", folder.db, "--data-dir", folder.data, "--log-level", "error"] + extra
        p.standardOutput = FileHandle.nullDevice
        p.environment = ProcessInfo.processInfo.environment.filter { $0.key != "POLYAK_TOKEN" }
        try p.run()
        addTeardownBlock {
            if p.isRunning {
                p.terminate()
                p.waitUntilExit()
            }
            _ = folder
        }
        try await HTTP(port: port).waitUntilUp()
        return Server(process: p, port: port)
    }

    /// `polyak ARGS --server URL`, without POLYAK_TOKEN unless `token` is given.
    func polyak(_ args: [String], _ server: Server, stdin: String? = nil, token: String? = nil) throws -> ProcessOutput {
        var env = ProcessInfo.processInfo.environment.filter { $0.key != "POLYAK_TOKEN" }
        env["POLYAK_TOKEN"] = token
        return try runProcess(try polyakExecutable(), args + ["--server", server.url], stdin: stdin, environment: env)
    }

    func page(_ server: Server, _ path: String) async throws -> String {
        let (status, data) = try await HTTP(port: server.port).request("GET", path)
        XCTAssertEqual(status, 200, path)
        return String(decoding: data, as: UTF8.self)
    }

    func testLaunchWatchThenCompareGridRunsLogsAndLs() async throws {
        let server = try await serve()
        let launched = try polyak(["launch", "-", "--watch"], server, stdin: Self.experiment)
        XCTAssertEqual(launched.status, 0, launched.err)
        XCTAssertTrue(
            launched.out.hasPrefix("experiment 1 “cli check”: 2 runs queued\n\(server.url)/experiments/1\n"), launched.out)
        // none and ema share one run per seed (shared trajectories), named by both variants.
        XCTAssertEqual(launched.out.components(separatedBy: ": completed, top-1 raw ").count, 3, launched.out)
        XCTAssertTrue(launched.out.contains("run 1 (none+ema, seed 0): completed"), launched.out)
        XCTAssertTrue(
            launched.out.contains("all 2 runs ended: 2 completed\ncompare them: polyak compare 1 --server"), launched.out)
        XCTAssertFalse(launched.err.contains("\u{1B}"), "stderr is a pipe here: \(launched.err)")

        // The comparison table says what the page says: each row's mean ± std, CI, Δ and advice.
        let compare = try polyak(["compare", "1"], server)
        XCTAssertEqual(compare.status, 0, compare.err)
        let html = try await page(server, "/experiments/1")
        let answer = try JSONValue.parse(try await page(server, "/api/experiments/1/compare"))
        let rows = (0..<answer["rows"]!.count).map { answer["rows"]![$0]! }
        XCTAssertEqual(rows.count, 2, "none · raw and ema · ema@0.5; no copy ema · raw")
        for row in rows {
            let mean = Format.metric(row["mean"]!.doubleValue, key: "test/top1")
            let std = Format.spread(row["std"]!.doubleValue, key: "test/top1")!
            let ci = Format.interval((row["ci95_low"]!.doubleValue!, row["ci95_high"]!.doubleValue!), key: "test/top1")
            for text in ["\(mean) ± \(std)", ci] {
                XCTAssertTrue(compare.out.contains(text), "\(text) not in\n\(compare.out)")
                XCTAssertTrue(html.contains(text), "\(text) not on the page")
            }
            if row["variant"]!.stringValue == "ema" {
                let delta = Format.delta(row["delta_mean"]!.doubleValue, key: "test/top1")
                XCTAssertTrue(compare.out.contains(delta) && html.contains(delta), delta)
                XCTAssertTrue(
                    compare.out.contains("\(row["wins"]!.intValue!) / \(row["losses"]!.intValue!) / \(row["ties"]!.intValue!)"))
            }
        }
        for header in [
            "variant", "weights", "mean ± std", "95 % CI", "Δ vs none raw", "Δ 95 % CI", "W / L / T", "baseline", "★ best",
        ] {
            XCTAssertTrue(compare.out.contains(header), "\(header) not in\n\(compare.out)")
        }
        let advice = compare.out.split(separator: "\n").filter { $0.hasPrefix("  ema · ") }
        XCTAssertFalse(advice.isEmpty, compare.out)
        for line in advice {
            let sentence = String(line.split(separator: ":", maxSplits: 1)[1].dropFirst())
            XCTAssertTrue(html.contains(sentence), "the page does not say “\(sentence)”")
        }
        let csv = try polyak(["compare", "1", "--csv"], server)
        let csvFromTheAPI = try await page(server, "/api/experiments/1/compare.csv")
        XCTAssertEqual(csv.out, csvFromTheAPI)
        let loss = try polyak(["compare", "1", "--metric", "test/loss"], server)
        XCTAssertTrue(loss.out.hasPrefix("test/loss, final value of each completed run"), loss.out)

        let grid = try polyak(["grid", "1", "--variant", "none", "--weights", "raw"], server)
        XCTAssertEqual(grid.status, 0, grid.err)
        XCTAssertTrue(grid.out.hasPrefix("none · raw (mean of 2 seeds)\nresize \\ crop  "), grid.out)
        XCTAssertEqual(grid.out.split(separator: "\n").count, 5, grid.out)
        let noGrid = try polyak(["grid", "1", "--variant", "swa"], server)
        XCTAssertEqual(noGrid.status, 1)
        XCTAssertTrue(noGrid.err.hasPrefix("polyak: no grid cell matches; experiment 1 has ema · "), noGrid.err)

        let runs = try polyak(["runs", "1"], server)
        XCTAssertEqual(runs.status, 0, runs.err)
        XCTAssertTrue(runs.out.hasPrefix("experiment 1 “cli check”: 2 completed\n"), runs.out)
        let runLines = runs.out.split(separator: "\n").filter { $0.contains("completed") && $0.hasSuffix("100 %") }
        XCTAssertEqual(runLines.count, 2, runs.out)
        XCTAssertTrue(runLines.allSatisfy { $0.contains("none+ema") }, "a shared run names its variants: \(runs.out)")

        let logs = try polyak(["logs", "1"], server)
        XCTAssertEqual(logs.status, 0, logs.err)
        let logLines = logs.out.split(separator: "\n")
        XCTAssertTrue(logLines[0].hasPrefix("step  epoch  train/loss  train/top1"), logs.out)
        XCTAssertTrue(logLines[1].hasPrefix("   2      1  "), logs.out)
        XCTAssertEqual(logLines.last, "run 1: completed")

        let ls = try polyak(["ls"], server)
        XCTAssertEqual(ls.status, 0, ls.err)
        XCTAssertTrue(ls.out.hasPrefix("Experiments\n"), ls.out)
        XCTAssertTrue(ls.out.contains("cli check") && ls.out.contains("none, ema") && ls.out.contains("Recent runs"), ls.out)
    }

    func testCancelAndServerErrorsAsOneSentence() async throws {
        let server = try await serve(["--max-concurrent", "0"])  // queues without starting
        let run = try polyak(["launch", "-"], server, stdin: Self.base)
        XCTAssertEqual(run.out, "run 1: queued\n\(server.url)/runs/1\n", run.err)
        let cancelled = try polyak(["cancel", "1"], server)
        XCTAssertEqual(cancelled.out, "run 1: cancelled\n", cancelled.err)
        let again = try polyak(["cancel", "1"], server)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.err.hasPrefix("polyak: ") && again.err.contains("cancelled"), again.err)
        XCTAssertEqual(again.err.split(separator: "\n").count, 1, again.err)

        XCTAssertEqual(try polyak(["launch", "-"], server, stdin: Self.experiment).status, 0)
        let all = try polyak(["cancel", "--experiment", "1"], server)
        // none and ema share one run per seed (shared trajectories): 2 seeds, 2 runs.
        XCTAssertEqual(all.out, "experiment 1: 2 runs cancelled\n", all.err)

        let bad = try polyak(["launch", "-"], server, stdin: #"{"optim": {"lr": -1}}"#)
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.err, "polyak: optim.lr must be greater than 0, got -1\n")
        XCTAssertEqual(bad.out, "")
        let missing = try polyak(["compare", "9"], server)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.err.hasPrefix("polyak: ") && missing.err.contains("9"), missing.err)
        let otherMetric = try polyak(["compare", "1", "--metric", "test/top5"], server)
        XCTAssertEqual(otherMetric.status, 0, otherMetric.err)
        XCTAssertTrue(otherMetric.out.hasPrefix("No completed run has reported test/top5 yet."), otherMetric.out)

        let nobody = try runProcess(try polyakExecutable(), ["ls", "--server", "http://127.0.0.1:\(try freePort())"])
        XCTAssertEqual(nobody.status, 1)
        XCTAssertTrue(nobody.err.hasPrefix("polyak: cannot reach a Polyak server at http://127.0.0.1:"), nobody.err)
    }

    func testTheTokenComesFromAFileOrTheEnvironment() async throws {
        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent("polyak-token-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: tokenFile) }
        let server = try await serve(["--token-file", tokenFile, "--max-concurrent", "0"])
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let refused = try polyak(["launch", "-"], server, stdin: Self.base)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.err.contains("--token-file or POLYAK_TOKEN"), refused.err)
        let fromFile = try polyak(["launch", "-", "--token-file", tokenFile], server, stdin: Self.base)
        XCTAssertEqual(fromFile.status, 0, fromFile.err)
        let fromEnvironment = try polyak(["cancel", "1"], server, token: token)
        XCTAssertEqual(fromEnvironment.out, "run 1: cancelled\n", fromEnvironment.err)
    }

    /// `logs --follow` prints rows while the run trains and stops when it ends; `launch --watch` of
    /// one run spec follows it to its end.
    func testLogsFollowAndWatchingOneRun() async throws {
        let server = try await serve()
        let spec = Self.base.replacingOccurrences(of: #""epochs": 1"#, with: #""epochs": 3"#)
        let launched = try polyak(["launch", "-"], server, stdin: spec)
        XCTAssertEqual(launched.status, 0, launched.err)
        let follow = try polyak(["logs", "1", "--follow"], server)
        XCTAssertEqual(follow.status, 0, follow.err)
        let lines = follow.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 5, follow.out)  // header, three epochs, the end
        XCTAssertEqual(lines.map { $0.split(separator: " ").first.map(String.init) ?? "" }, ["step", "2", "4", "6", "run"])
        XCTAssertEqual(lines.last, "run 1: completed")

        let watched = try polyak(["launch", "-", "--watch"], server, stdin: Self.base)
        XCTAssertEqual(watched.status, 0, watched.err)
        XCTAssertTrue(watched.out.hasPrefix("run 2: queued\n\(server.url)/runs/2\nrun 2: completed, top-1 raw "), watched.out)
    }
}
