import Foundation
import PolyakTestSupport
import XCTest

/// `polyak train` and `polyak eval` at a terminal (a real pseudo-terminal): a live line redrawn in
/// place, tables a person reads, colour only where allowed; piped or with `--json`, the JSON lines.
final class TerminalOutputTests: XCTestCase {
    /// One tiny epoch, no averaging: for what is not about the tables' content.
    static let small =
        #"{"data": {"train_limit": 128, "test_limit": 100}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}}"#

    /// The best row and cell marks sit where the numbers put them: checked, then taken out of a golden text.
    func unmarked(_ screen: String) -> String {
        screen.replacingOccurrences(of: "  ★ best", with: "").replacingOccurrences(of: "% *", with: "%  ")
    }

    /// Two tiny epochs with an EMA set and a 2 × 2 grid: every part of the terminal view shows.
    static let spec = """
        {"data": {"train_limit": 128, "test_limit": 100}, "model": {"width": 4}, "optim": {"epochs": 2, "batch_size": 64},
         "averaging": [{"kind": "ema", "decays": [0.9]}], "resolution": {"test_grid": {"resize": [28, 32], "crop": [24, 28]}}}
        """

    var environment: [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["NO_COLOR"] = nil
        e["TERM"] = "xterm-256color"
        return e
    }

    func temporaryFolder() -> String {
        let f = FileManager.default.temporaryDirectory.appendingPathComponent("polyak-tty-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: f) }
        return f
    }

    func testTrainOnATerminalShowsProgressTablesAndTheSummary() throws {
        let dir = temporaryFolder()
        var env = environment
        env["NO_COLOR"] = "1"
        let t = try runOnTerminal(
            try polyakExecutable(), ["train", "--spec", "-", "--out", dir], stdin: Self.spec, environment: env)
        XCTAssertEqual(t.status, 0, t.bytes)
        // The live line is drawn and redrawn in place on the terminal, and is gone at the end.
        XCTAssertTrue(t.bytes.contains("\r\u{1B}[Kepoch 1/2"), t.bytes)
        XCTAssertFalse(t.bytes.contains("\u{1B}[1m"), "NO_COLOR is set, yet there is colour")
        XCTAssertFalse(t.bytes.contains("{\"type\""), "JSON lines on a terminal")
        let screen = maskNumbers(unmarked(t.screen)).replacingOccurrences(of: maskNumbers(dir), with: "DIR")
        XCTAssertEqual(
            screen,
            """
            warning: ema@#: Horizon longer than the run: after # updates the first weights still carry # % of ema@# (d^(n-#) > # %); use a smaller decay or a warmup.
            epoch train loss top-# raw top-# ema@# lr time
             #/# # # % # % # # s
             #/# # # % # % # # s

            weights top-# top-# loss file
            raw # % # % # final.safetensors
            ema@# # % # % # ema@#.safetensors

            Grid of raw
            resize \\ crop # #
            # # % # %
            # # % # %
            top-# on the test set; * the best cell, · a crop larger than the resize

            Grid of ema@#
            resize \\ crop # #
            # # % # %
            # # % # %
            top-# on the test set; * the best cell, · a crop larger than the resize

            completed: # steps in # s, # images/s; weights exported to DIR/

            """, t.screen)
        // Ties are common on 100 test images: at least one best row, at least one best cell a grid.
        XCTAssertGreaterThanOrEqual(t.screen.components(separatedBy: "★ best").count, 2, t.screen)
        XCTAssertGreaterThanOrEqual(t.screen.components(separatedBy: "% *").count, 3, t.screen)
    }

    func testColourOnATerminalAndNoEscapesOnAPipedStandardError() throws {
        let coloured = try runOnTerminal(
            try polyakExecutable(), ["train", "--spec", "-", "--out", temporaryFolder()], stdin: Self.spec,
            environment: environment)
        XCTAssertEqual(coloured.status, 0, coloured.bytes)
        XCTAssertTrue(coloured.bytes.contains("\u{1B}[1m"), "a terminal without NO_COLOR gets bold headers")
        // stdout on the terminal, stderr to a pipe (a log file): tables, and not one escape code on stderr.
        let piped = try runOnTerminal(
            try polyakExecutable(), ["train", "--spec", "-", "--out", temporaryFolder()], stdin: Self.spec,
            environment: environment,
            pipeStandardError: true)
        XCTAssertEqual(piped.status, 0, piped.err)
        XCTAssertFalse(piped.err.contains("\u{1B}"), piped.err)
        XCTAssertFalse(piped.err.contains("\r"), piped.err)
        XCTAssertTrue(piped.screen.contains("completed"), piped.screen)
    }

    /// Piped, and with `--json` on a terminal, stdout is the JSON lines: compact, keys sorted, the
    /// same lines either way but for the clock's fields (every `…_s` of the summary's `timing`, and how
    /// many `progress` lines a second brings).
    func testJSONLinesArePipedUnchangedAndWithJSONOnATerminal() throws {
        let piped = try runProcess(
            try polyakExecutable(), ["train", "--spec", "-", "--out", temporaryFolder()], stdin: Self.small)
        XCTAssertEqual(piped.status, 0, piped.err)
        let json = try runOnTerminal(
            try polyakExecutable(), ["train", "--json", "--spec", "-", "--out", temporaryFolder()], stdin: Self.small,
            environment: environment, pipeStandardError: true)
        XCTAssertEqual(json.status, 0, json.err)
        XCTAssertEqual(json.err, "")
        func clockless(_ s: String) -> [String] {
            s.split(separator: "\n").map(String.init).filter { !$0.contains(#""type":"progress""#) }.map {
                $0.replacingOccurrences(
                    of: #""(time|images_per_sec|raw|[a-z_]+_s)":[-0-9.e]+"#, with: "\"$1\":#",
                    options: .regularExpression
                )
                // A checkpoint carries the costs so far (wall-clock seconds): its size and hash vary run to run.
                .replacingOccurrences(
                    of: #""(sha256|bytes)":("[0-9a-f]+"|[0-9]+)"#, with: "\"$1\":#", options: .regularExpression)
            }
        }
        let lines = clockless(piped.out)
        XCTAssertEqual(lines.count, 8, piped.out)  // train ×3, test ×3, checkpoint, summary
        XCTAssertTrue(lines[0].hasPrefix(#"{"epoch":1,"key":"train/loss","step":2,"time":#"#), lines[0])
        XCTAssertEqual(clockless(json.bytes.replacingOccurrences(of: "\r\n", with: "\n")), lines)
        XCTAssertTrue(lines.last!.hasPrefix(#"{"exports":{"raw":"final.safetensors"},"final":{"raw":{"test/loss":"#), lines.last!)
        XCTAssertFalse(piped.out.contains("\u{1B}"))
    }

    func testEvalOnATerminalPrintsASentenceOrAGridTable() throws {
        let dir = temporaryFolder()
        let spec =
            #"{"data": {"train_limit": 256, "test_limit": 200}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}}"#
        XCTAssertEqual(try runProcess(try polyakExecutable(), ["train", "--spec", "-", "--out", dir], stdin: spec).status, 0)
        var env = environment
        env["NO_COLOR"] = "1"
        let one = try runOnTerminal(
            try polyakExecutable(), ["eval", "--weights", dir + "/final.safetensors", "--test-limit", "200"], environment: env)
        XCTAssertEqual(one.status, 0, one.bytes)
        XCTAssertEqual(
            maskNumbers(one.screen).replacingOccurrences(of: maskNumbers(dir), with: "DIR"),
            "raw (DIR/final.safetensors) at resize #, crop # on # test images: top-# # %, top-# # %, loss #\n")
        let grid = try runOnTerminal(
            try polyakExecutable(),
            ["eval", "--weights", dir + "/final.safetensors", "--test-limit", "200", "--grid", "28,32:24,28,32"], environment: env
        )
        XCTAssertEqual(grid.status, 0, grid.bytes)
        XCTAssertGreaterThanOrEqual(grid.screen.components(separatedBy: "% *").count, 2, grid.screen)
        XCTAssertEqual(
            maskNumbers(unmarked(grid.screen)).replacingOccurrences(of: maskNumbers(dir), with: "DIR"),
            """
            raw (DIR/final.safetensors) on # test images
            resize \\ crop # # #
            # # % # % ·
            # # % # % # %
            top-# on the test set; * the best cell, · a crop larger than the resize

            """)
        let piped = try runProcess(
            try polyakExecutable(), ["eval", "--weights", dir + "/final.safetensors", "--test-limit", "200", "--json"])
        XCTAssertTrue(piped.out.hasPrefix(#"{"crop":28,"images":200,"loss":"#), piped.out)
    }
}
