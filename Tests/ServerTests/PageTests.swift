import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import XCTest

@testable import Server

/// The HTML pages over real HTTP against a real SQLite file holding a small finished experiment.
final class PageTests: XCTestCase {
    func withFixture(_ body: (any TestClientProtocol, PageFixture) async throws -> Void) async throws {
        try await PageFixture.serve(body)
    }

    func page(
        _ client: some TestClientProtocol, _ path: String, expect: HTTPResponse.Status = .ok,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> String {
        let r = try await client.call(.get, path)
        let html = String(buffer: r.body)
        XCTAssertEqual(r.status, expect, "\(path): \(html.prefix(400))", file: file, line: line)
        if let dump = ProcessInfo.processInfo.environment["POLYAK_PAGE_DUMP"] {
            // For a person to read the pages the tests saw: POLYAK_PAGE_DUMP=/tmp/pages swift test --filter PageTests
            try? FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
            let name = path.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "?", with: "_")
            _ = FileManager.default.createFile(atPath: dump + "/page\(name).html", contents: Data(html.utf8))
        }
        XCTAssertEqual(r.headers[.contentType], "text/html; charset=utf-8", path, file: file, line: line)
        XCTAssertTrue(html.hasPrefix("<!doctype html>"), path, file: file, line: line)
        XCTAssertTrue(html.contains("<title>"), path, file: file, line: line)
        XCTAssertTrue(html.contains("href=\"/\""), "every page links back home", file: file, line: line)
        return html
    }

    func testExperimentPageAnswersTheQuestion() async throws {
        try await withFixture { client, f in
            let html = try await page(client, "/experiments/\(f.experimentID)")
            // Comparison: ema@0.998 is 83.60 % ± 0.10 over seeds, 0.50 pp above none's raw weights, and best.
            XCTAssertTrue(html.contains("id=\"compare\""))
            XCTAssertTrue(html.contains("83.10 % ± 0.10"), "none raw mean ± std")
            XCTAssertTrue(html.contains("83.60 % ± 0.10"), "ema@0.998 mean ± std")
            XCTAssertTrue(html.contains("+0.50 pp"))
            XCTAssertTrue(html.contains("+0.20 pp"), "ema raw vs none raw")
            let best = try XCTUnwrap(html.range(of: "<tr class=\"best\">"))
            XCTAssertTrue(html[best.upperBound...].prefix(200).contains("ema@0.998"), "the best row is ema@0.998")
            XCTAssertEqual(html.components(separatedBy: "<tr class=\"best\">").count, 2, "one best row")
            // The seed advisor, for the rows that are not the baseline's raw weights.
            XCTAssertTrue(html.contains("How many seeds?"))
            XCTAssertTrue(html.contains("<strong>ema · ema@0.998</strong>: the 3 seeds give exactly the same Δ"), "advice")
            // Curves: one panel per variant, every weight set drawn, raw dashed.
            XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 3, "the Δ plot and a panel per variant")
            // The Δ plot: the two non-baseline rows, +0.20 and +0.50 pp with zero-width intervals (Δ is the same for every seed).
            XCTAssertTrue(html.contains("class=\"chart intervals\""))
            XCTAssertTrue(html.contains(">ema · ema@0.998</text>"))
            XCTAssertTrue(html.contains(">Δ test/top1 vs none raw, 95 % CI</title>"))
            XCTAssertTrue(html.contains("none · test/top1"))
            XCTAssertTrue(html.contains("stroke-dasharray"))
            // Grids: heat-map tables with values printed; 32 px with a 28 crop for ema@0.998: 83.6 − 2.0.
            XCTAssertEqual(html.components(separatedBy: "<table class=\"heat\">").count - 1, 3)
            XCTAssertTrue(html.contains(">81.6</td>"))
            XCTAssertTrue(html.contains("style=\"background:#"))
            // Runs and exports.
            XCTAssertTrue(html.contains("6 of 6 runs finished"))
            for link in [
                "/api/experiments/\(f.experimentID)/compare.csv?metric=test/top1", "/api/experiments/\(f.experimentID)/grid.csv",
                "/api/experiments/\(f.experimentID).csv",
            ] {
                XCTAssertTrue(html.contains("href=\"\(link)\""), link)
                let csv = try await client.call(.get, link)
                XCTAssertEqual(csv.status, .ok, link)
                XCTAssertEqual(csv.headers[.contentType]?.hasPrefix("text/csv"), true, link)
            }
            // Another metric: loss, where lower wins; an unknown one is refused on a page.
            let loss = try await page(client, "/experiments/\(f.experimentID)?metric=test/loss")
            XCTAssertTrue(loss.contains("Comparison · final test/loss"))
            XCTAssertTrue(loss.contains("0.3280"), "ema@0.998 loss 2 − 2 · 0.836")
            let bad = try await page(client, "/experiments/\(f.experimentID)?metric=nope", expect: .badRequest)
            XCTAssertTrue(bad.contains("metric must be one of"))
        }
    }

    func testRunPages() async throws {
        try await withFixture { client, f in
            let ema = try XCTUnwrap(f.runs.first { $0.variant == "ema" && $0.seed == 1 })
            let html = try await page(client, "/runs/\(ema.id)")
            XCTAssertTrue(html.contains("ema-seed1"))
            XCTAssertTrue(html.contains("status-completed"))
            // One chart per metric key: test/top1, test/loss, train/loss, ema/decay.
            XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 4)
            XCTAssertTrue(html.contains("The decay EMA actually applied"))
            // Final metrics: ema@0.998 at epoch 3 = 0.80 + 0.03 + 0.002 + 0.001 + 0.003.
            XCTAssertTrue(html.contains("83.60 %"))
            XCTAssertTrue(html.contains("href=\"/api/runs/\(ema.id)/artifacts/raw\""))
            XCTAssertTrue(html.contains("href=\"/experiments/\(f.experimentID)\""), "links to its experiment")
            XCTAssertTrue(html.contains("action=\"/runs/\(ema.id)/again\""))
            XCTAssertFalse(html.contains("action=\"/runs/\(ema.id)/cancel\""), "a finished run has nothing to cancel")
            XCTAssertEqual(html.components(separatedBy: "<table class=\"heat\">").count - 1, 2)

            let failed = try await page(client, "/runs/\(f.failedRunID)")
            XCTAssertTrue(failed.contains("diverged at step 812 &amp; &lt;stopped&gt;"), "error text, escaped")
            XCTAssertTrue(failed.contains("broken &lt;run&gt;"))

            let live = try await page(client, "/runs/\(f.liveRunID)")
            XCTAssertTrue(live.contains("step 150 of 600 · 25.0 % · 4321 images/s · ETA 1 min 35 s"))
            XCTAssertTrue(live.contains("data-events=\"/api/runs/\(f.liveRunID)/events\""))
            XCTAssertTrue(live.contains("<progress max=\"600\" value=\"150\">"))
            XCTAssertTrue(live.contains("action=\"/runs/\(f.liveRunID)/cancel\""))
            XCTAssertFalse(live.contains("/again\""), "an external run cannot be started again")
            XCTAssertTrue(live.contains("val/acc"), "any key an external script logs gets a chart")

            let home = try await page(client, "/")
            XCTAssertTrue(home.contains("href=\"/experiments/\(f.experimentID)\">fixture</a>"))
            XCTAssertTrue(home.contains("href=\"/runs/\(f.liveRunID)\">external-live</a>"))
            XCTAssertTrue(home.contains("data-refresh=\"5\""), "a running run makes the home page refresh itself")
            XCTAssertTrue(home.contains("<form class=\"launch\" method=\"post\" action=\"/experiments\""))
            XCTAssertTrue(home.contains("<option value=\"\(ema.id)\">"), "completed runs can teach")
        }
    }

    func form(_ fields: [(String, String)]) -> String {
        fields.map { k, v in
            k + "=" + (v.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? v)
        }.joined(separator: "&")
    }

    func testLaunchFormNamesTheFieldAndKeepsTheInput() async throws {
        try await withFixture { client, f in
            let headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            let bad = form([
                ("name", "my <test>"), ("presets", "none"), ("presets", "kd"), ("baseline", "swa"), ("seeds", "1, x"),
                ("epochs", "0"), ("width", "16"), ("train_limit", ""), ("threads", "0"),
            ])
            let r = try await client.call(.post, "/experiments", bad, headers: headers)
            let html = String(buffer: r.body)
            XCTAssertEqual(r.status, .badRequest)
            XCTAssertTrue(html.contains("<p class=\"field-error\" id=\"seeds-error\">x is not a whole number ≥ 0.</p>"), html)
            XCTAssertTrue(html.contains("id=\"epochs-error\">Must be between 1 and 1000, got 0.</p>"))
            XCTAssertTrue(html.contains("id=\"threads-error\">Must be between 1 and 64, got 0.</p>"))
            XCTAssertTrue(html.contains("id=\"teacher-error\">kd distils from an earlier run"))
            XCTAssertTrue(html.contains("id=\"baseline-error\">The baseline swa is not among the ticked strategies"))
            XCTAssertTrue(html.contains("value=\"my &lt;test&gt;\""), "the name is kept, escaped")
            XCTAssertTrue(html.contains("value=\"1, x\""), "the seeds are kept")
            XCTAssertTrue(html.contains("value=\"kd\" checked"), "ticked boxes stay ticked")
            XCTAssertFalse(html.contains("value=\"ema\" checked"))

            // Refused by the API's own validation (a teacher that does not exist): next to the teacher field.
            let ghost = form([
                ("name", "kd-try"), ("presets", "none"), ("presets", "kd"), ("baseline", "none"), ("teacher_run", "9999"),
                ("seeds", "0"), ("epochs", "1"), ("width", "4"),
            ])
            let g = try await client.call(.post, "/experiments", ghost, headers: headers)
            XCTAssertEqual(g.status, .badRequest)
            XCTAssertTrue(String(buffer: g.body).contains("id=\"teacher-error\">"), String(buffer: g.body))
            XCTAssertTrue(String(buffer: g.body).contains("9999"))

            // Another site's page cannot launch trainings from a visitor's browser.
            let foreign = try await client.call(
                .post, "/experiments", bad,
                headers: [.contentType: "application/x-www-form-urlencoded", .origin: "https://evil.example"])
            XCTAssertEqual(foreign.status, .forbidden)
            XCTAssertTrue(String(buffer: foreign.body).contains("the origin https://evil.example is refused"))
            let cancelForeign = try await client.call(
                .post, "/runs/\(f.liveRunID)/cancel", headers: [.origin: "http://localhost:1"])
            XCTAssertEqual(cancelForeign.status, .forbidden)
            // (The test client names its server `localhost`, without a port, in the request's authority.)
            let own = try await client.call(
                .post, "/experiments", bad,
                headers: [.contentType: "application/x-www-form-urlencoded", .origin: "http://localhost"])
            XCTAssertEqual(
                own.status, .badRequest,
                "our own page's origin is fine (the form has errors): \(String(buffer: own.body).prefix(2000))")

            // Not a form: 415 page naming the content type.
            let json = try await client.call(.post, "/experiments", "{}", headers: [.contentType: "application/json"])
            XCTAssertEqual(json.status, .unsupportedMediaType)
            XCTAssertTrue(String(buffer: json.body).contains("application/x-www-form-urlencoded"))

            // A good one: 303 to the new experiment, variants × seeds runs queued.
            let teacher = try XCTUnwrap(f.runs.first).id
            let good = form([
                ("name", "from the form"), ("presets", "none"), ("presets", "ema"), ("presets", "kd"), ("baseline", "none"),
                ("teacher_run", String(teacher)), ("seeds", "4 5"), ("epochs", "2"), ("width", "8"), ("train_limit", "512"),
                ("threads", "1"),
            ])
            let ok = try await client.call(.post, "/experiments", good, headers: headers)
            XCTAssertEqual(ok.status, .seeOther, String(buffer: ok.body))
            let location = try XCTUnwrap(ok.headers[.location])
            XCTAssertTrue(location.hasPrefix("/experiments/"))
            let id = try XCTUnwrap(Int(location.dropFirst("/experiments/".count)))
            let e = try await client.json(.get, "/api/experiments/\(id)")
            XCTAssertEqual(e["runs"]?.count, 4, "none and ema share one run per seed, kd trains apart")
            XCTAssertEqual(e["name"]?.stringValue, "from the form")
            let kdRun = try XCTUnwrap((0..<4).compactMap { e["runs"]?[$0] }.first { $0["variant"]?.stringValue == "kd" })
            let full = try await client.json(.get, "/api/runs/\(kdRun["id"]!.intValue!)")
            XCTAssertEqual(full["spec"]?["optim"]?["epochs"]?.intValue, 2)
            XCTAssertEqual(full["spec"]?["model"]?["width"]?.intValue, 8)
            XCTAssertEqual(full["spec"]?["data"]?["train_limit"]?.intValue, 512)
            XCTAssertEqual(full["spec"]?["threads"]?.intValue, 1)
            XCTAssertEqual(full["spec"]?["distillation"]?["teacher_run"]?.intValue, Int(teacher))
            _ = try await page(client, location)
        }
    }

    func testButtonsCancelAndRunAgain() async throws {
        try await withFixture { client, f in
            let source = try XCTUnwrap(f.runs.first { $0.variant == "ema" && $0.seed == 2 })
            let again = try await client.call(.post, "/runs/\(source.id)/again")
            XCTAssertEqual(again.status, .seeOther)
            let location = try XCTUnwrap(again.headers[.location])
            let newID = try XCTUnwrap(Int(location.dropFirst("/runs/".count)))
            let created = try await client.json(.get, "/api/runs/\(newID)")
            XCTAssertEqual(created["seed"]?.intValue, 3, "one above every seed of the experiment")
            XCTAssertEqual(created["variant"]?.stringValue, "ema")
            XCTAssertEqual(created["experiment_id"]?.intValue, Int(f.experimentID))
            XCTAssertEqual(created["spec"]?["seed"]?.intValue, 3)

            // Rename, tag, annotate from the form; delete a finished run, back to its experiment.
            let form = "name=" + "better%20name" + "&tags=" + "a%2C%20b%20%2C" + "&notes=" + "line%201%0Aline%202"
            let edit = try await client.call(
                .post, "/runs/\(source.id)/edit", form, headers: [.contentType: "application/x-www-form-urlencoded"])
            XCTAssertEqual(edit.status, .seeOther)
            let edited = try await client.json(.get, "/api/runs/\(source.id)")
            XCTAssertEqual(edited["name"]?.stringValue, "better name")
            XCTAssertEqual(edited["tags"], ["a", "b"])
            XCTAssertEqual(edited["notes"]?.stringValue, "line 1\nline 2")
            let shown = try await page(client, "/runs/\(source.id)")
            XCTAssertTrue(shown.contains("value=\"a, b\""))
            let delete = try await client.call(.post, "/runs/\(source.id)/delete")
            XCTAssertEqual(delete.headers[.location], "/experiments/\(f.experimentID)")
            try assertError(try await client.call(.get, "/api/runs/\(source.id)"), .notFound, field: nil)

            let cancel = try await client.call(.post, "/runs/\(f.liveRunID)/cancel")
            XCTAssertEqual(cancel.status, .seeOther)
            XCTAssertEqual(cancel.headers[.location], "/runs/\(f.liveRunID)")
            let cancelled = try await client.json(.get, "/api/runs/\(f.liveRunID)")
            XCTAssertEqual(cancelled["status"]?.stringValue, "cancelled")
            // Nothing left to cancel: a page saying so, not a JSON error.
            let twice = try await page(client, "/runs/\(f.liveRunID)/cancel", expect: .notFound)
            XCTAssertTrue(twice.contains("There is no page at"), "GET on a POST-only path")
            let r = try await client.call(.post, "/runs/\(f.liveRunID)/cancel")
            XCTAssertEqual(r.status, .conflict)
            XCTAssertTrue(String(buffer: r.body).contains("nothing to cancel"))

            // The experiment, once nothing of it runs (the run started again above is stopped first).
            _ = try await client.call(.post, "/runs/\(newID)/cancel")
            for _ in 0..<100 where try await client.json(.get, "/api/runs/\(newID)")["status"]?.stringValue == "running" {
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            let gone = try await client.call(.post, "/experiments/\(f.experimentID)/delete")
            XCTAssertEqual(gone.status, .seeOther, String(buffer: gone.body))
            XCTAssertEqual(gone.headers[.location], "/")
            _ = try await page(client, "/experiments/\(f.experimentID)", expect: .notFound)
        }
    }

    func testStaticFilesErrorsAndNotFound() async throws {
        try await withFixture { client, _ in
            let home = try await page(client, "/")
            let css = try await client.call(.get, "/css/polyak.css")
            XCTAssertEqual(css.status, .ok)
            XCTAssertEqual(css.headers[.contentType], "text/css; charset=utf-8")
            XCTAssertEqual(css.headers[.cacheControl], "public, max-age=0, must-revalidate")
            let etag = try XCTUnwrap(css.headers[.eTag])
            let again = try await client.call(.get, "/css/polyak.css", headers: [.ifNoneMatch: etag])
            XCTAssertEqual(again.status, .notModified)
            XCTAssertEqual(again.body.readableBytes, 0)
            // The page links the versioned URL, which may be cached for a year.
            let link = try XCTUnwrap(home.range(of: #"/css/polyak\.css\?v=[0-9a-f]{12}"#, options: .regularExpression))
            let versioned = try await client.call(.get, String(home[link]))
            XCTAssertEqual(versioned.headers[.cacheControl], "public, max-age=31536000, immutable")
            let js = try await client.call(.get, "/js/polyak.js")
            XCTAssertEqual(js.headers[.contentType], "text/javascript; charset=utf-8")
            let icon = try await client.call(.get, "/favicon.svg")
            XCTAssertEqual(icon.headers[.contentType], "image/svg+xml")

            let missing = try await page(client, "/no/such/page", expect: .notFound)
            XCTAssertTrue(missing.contains("There is no page at /no/such/page."))
            XCTAssertTrue(missing.contains("<title>Not found · Polyak</title>"))
            _ = try await page(client, "/experiments/999", expect: .notFound)
            let badID = try await page(client, "/runs/abc", expect: .badRequest)
            XCTAssertTrue(badID.contains("id must be a positive integer"))
            // The API keeps its JSON errors.
            try assertError(try await client.call(.get, "/api/nope"), .notFound, field: nil)
        }
    }
}
