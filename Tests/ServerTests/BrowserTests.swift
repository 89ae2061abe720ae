import Foundation
import Hummingbird
import HummingbirdTesting
import PolyakTestSupport
import XCTest

@testable import Server

/// The pages in a real browser: Debian's chromium, headless, against a live server holding a small
/// finished experiment. `--dump-dom` gives the DOM after the page's script ran; `--screenshot`
/// what a person sees, at desktop and at phone width (kept in $POLYAK_SCREENSHOTS when set); the
/// DevTools protocol watches a run page while a real run trains.
final class BrowserTests: XCTestCase {
    static func chromium() throws -> String {
        for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        // CI installs chromium (.ci/run runs `scripts/setup.sh chromium` before `make test`): there it must be found.
        if ProcessInfo.processInfo.environment["CI"] != nil {
            throw BrowserError("chromium is not installed; scripts/setup.sh chromium installs it")
        }
        throw XCTSkip("chromium is not installed (scripts/setup.sh chromium)")
    }

    struct BrowserError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Runs chromium headless (as root it needs --no-sandbox) and returns its stdout; killed after `timeout`.
    static func browse(_ arguments: [String], timeout: Double = 90) async throws -> String {
        let exe = try chromium()
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("polyak-chromium-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: profile) }
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: exe)
                p.arguments =
                    [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                        "--hide-scrollbars", "--user-data-dir=" + profile,
                    ] + arguments
                let out = Pipe(), err = Pipe()
                p.standardOutput = out
                p.standardError = err
                do { try p.run() } catch { return continuation.resume(throwing: error) }
                let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
                // Drain stderr in the background so a chatty browser cannot block on a full pipe.
                DispatchQueue.global().async { _ = err.fileHandleForReading.readDataToEndOfFile() }
                let data = out.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                killer.cancel()
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
        }
    }

    static var screenshotFolder: String {
        if let dir = ProcessInfo.processInfo.environment["POLYAK_SCREENSHOTS"] { return dir }
        return FileManager.default.temporaryDirectory.appendingPathComponent("polyak-screenshots").path
    }

    func screenshot(_ url: String, name: String, width: Int, height: Int) async throws {
        let folder = Self.screenshotFolder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let file = folder + "/\(name)-\(width).png"
        try? FileManager.default.removeItem(atPath: file)
        _ = try await Self.browse(["--screenshot=" + file, "--window-size=\(width),\(height)", url])
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        XCTAssertGreaterThan(size, 10_000, "\(file): a screenshot of a rendered page")
    }

    func testPagesInABrowser() async throws {
        _ = try Self.chromium()
        try await PageFixture.serve { client, f in
            let base = "http://127.0.0.1:\(try XCTUnwrap(client.port))"
            let ema = try XCTUnwrap(f.runs.first { $0.variant == "ema" && $0.seed == 0 })

            let experiment = try await Self.browse(["--dump-dom", "\(base)/experiments/\(f.experimentID)"])
            XCTAssertTrue(
                experiment.contains("<table class=\"sortable compare\" id=\"compare\">"), String(experiment.prefix(2000)))
            XCTAssertTrue(experiment.contains("83.60 % ± 0.10"))
            XCTAssertEqual(experiment.components(separatedBy: "<svg").count - 1, 3, "the Δ plot and one chart per variant")
            XCTAssertTrue(experiment.contains("<table class=\"heat\">"))
            // The script ran (served with the right type): it made the headers sortable.
            XCTAssertTrue(experiment.contains("data-sortable=\"\""), "polyak.js ran")

            let run = try await Self.browse(["--dump-dom", "\(base)/runs/\(ema.id)"])
            XCTAssertEqual(run.components(separatedBy: "<svg").count - 1, 4)
            XCTAssertTrue(run.contains("href=\"/api/runs/\(ema.id)/artifacts/raw\""))

            let missing = try await Self.browse(["--dump-dom", "\(base)/nothing-here"])
            XCTAssertTrue(missing.contains("There is no page at /nothing-here."))

            // The launch form, submitted with exactly the fields the rendered form declares.
            let home = try await Self.browse(["--dump-dom", "\(base)/"])
            let fields = try Self.formFields(home, id: "launch-form")
            XCTAssertEqual(
                Set(fields.map(\.0)),
                ["name", "presets", "baseline", "teacher_run", "seeds", "epochs", "width", "train_limit", "threads"])
            let body = fields.map { k, v in k + "=" + (v.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? v) }
                .joined(separator: "&")
            let posted = try await client.call(
                .post, "/experiments", body, headers: [.contentType: "application/x-www-form-urlencoded"])
            XCTAssertEqual(posted.status, .seeOther, String(buffer: posted.body))
            let location = try XCTUnwrap(posted.headers[.location])
            let created = try await Self.browse(["--dump-dom", base + location])
            XCTAssertTrue(created.contains("fmnist-averaging"), "the default name")
            XCTAssertTrue(
                created.contains("of 6 runs finished"),
                "three default strategies × three default seeds, none and ema sharing a run")
            _ = try await client.call(.post, location + "/cancel")

            for (path, name) in [
                ("/", "home"), ("/experiments/\(f.experimentID)", "experiment"), ("/runs/\(ema.id)", "run"),
                ("/runs/\(f.failedRunID)", "run-failed"), ("/nothing-here", "not-found"),
            ] {
                try await screenshot(
                    base + path, name: name, width: 1280, height: name == "experiment" || name == "run" ? 2600 : 1500)
                try await screenshot(base + path, name: name, width: 390, height: 2400)
            }
        }
    }

    /// A real training run watched in the browser: the progress bar moves with the run's events
    /// (Server-Sent Events, no reload), and the page reloads itself into the finished run.
    func testRunPageFollowsTheRunLive() async throws {
        let browser = try Self.chromium()
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, executable: exe))
        try await app.test(.live) { client in
            // 200 steps of the trainer (its numeric modules built with -O even in debug): a few seconds,
            // a progress line every second.
            let spec =
                #"{"data": {"train_limit": 12800, "test_limit": 100}, "model": {"width": 4}, "optim": {"epochs": 1, "batch_size": 64}}"#
            let run = try await client.json(.post, "/api/runs", spec, expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            for _ in 0..<600 where try await client.json(.get, "/api/runs/\(id)")["status"]?.stringValue == "queued" {
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            let url = "http://127.0.0.1:\(try XCTUnwrap(client.port))/runs/\(id)"
            let probe = """
                (() => { const b = document.querySelector('.progress-big'); const p = b && b.querySelector('progress');
                  return JSON.stringify({connected: b ? b.getAttribute('data-connected') : null, value: p ? p.value : null,
                    status: (document.querySelector('[data-run-status]') || {}).textContent || null,
                    final: !!document.querySelector('#final-heading') && document.querySelector('#final-heading').textContent}); })()
                """
            let seen: [[String: Any]] = try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async {
                    do {
                        let page = try DevToolsBrowser(chromium: browser, url: url)
                        var seen: [[String: Any]] = []
                        let deadline = Date().addingTimeInterval(180)
                        while Date() < deadline {
                            usleep(250_000)
                            guard let text = try page.evaluate(probe) as? String,
                                let state = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                            else { continue }
                            seen.append(state)
                            if state["status"] as? String == "completed", state["final"] as? String == "Final test metrics" {
                                break
                            }
                        }
                        continuation.resume(returning: seen)
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
            let running = seen.filter { $0["status"] as? String == "running" }
            XCTAssertTrue(
                running.contains { $0["connected"] as? String == "true" }, "the event stream answered: \(seen.suffix(5))")
            let values = Set(running.compactMap { ($0["value"] as? NSNumber)?.intValue })
            XCTAssertGreaterThan(values.count, 1, "the bar moved while the page stayed open: \(values.sorted())")
            XCTAssertEqual(
                seen.last?["status"] as? String, "completed", "the page reloaded into the finished run: \(seen.suffix(3))")
            XCTAssertEqual(seen.last?["final"] as? String, "Final test metrics")
        }
    }

    /// The name and value of every field a form would submit: text and number inputs, ticked
    /// checkboxes, and each select's selected option (or its first).
    static func formFields(_ dom: String, id: String) throws -> [(String, String)] {
        guard let start = dom.range(of: "<form[^>]*id=\"\(id)\"", options: .regularExpression),
            let end = dom.range(of: "</form>", range: start.upperBound..<dom.endIndex)
        else { throw BrowserError("no form \(id)") }
        let form = String(dom[start.lowerBound..<end.upperBound])
        func attribute(_ tag: String, _ name: String) -> String? {
            guard let r = tag.range(of: " \(name)=\"([^\"]*)\"", options: .regularExpression) else {
                return tag.range(of: " \(name)(?=[ >])", options: .regularExpression) != nil ? "" : nil
            }
            let text = tag[r].dropFirst(name.count + 3).dropLast()
            return String(text).replacingOccurrences(of: "&amp;", with: "&").replacingOccurrences(of: "&lt;", with: "<")
                .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&quot;", with: "\"")
        }
        var fields: [(String, String)] = []
        var cursor = form.startIndex
        while let tag = form.range(of: "<(input|select)[^>]*>", options: .regularExpression, range: cursor..<form.endIndex) {
            let text = String(form[tag])
            cursor = tag.upperBound
            guard let name = attribute(text, "name") else { continue }
            if text.hasPrefix("<input") {
                if attribute(text, "type") == "checkbox" && attribute(text, "checked") == nil { continue }
                fields.append((name, attribute(text, "value") ?? ""))
            } else {
                guard let close = form.range(of: "</select>", range: cursor..<form.endIndex) else { continue }
                let options = String(form[cursor..<close.lowerBound])
                let all = options.components(separatedBy: "<option").dropFirst()
                let chosen = all.first { attribute("<option" + $0.prefix { $0 != ">" } + ">", "selected") != nil } ?? all.first
                if let chosen { fields.append((name, attribute("<option" + chosen.prefix { $0 != ">" } + ">", "value") ?? "")) }
                cursor = close.upperBound
            }
        }
        return fields
    }
}
