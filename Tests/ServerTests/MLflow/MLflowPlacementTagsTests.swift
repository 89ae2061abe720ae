import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// Runs Polyak trains itself, seen through MLflow's API, carry their placement as read-only tags
/// (`polyak.variant`, `polyak.seed`) that filters find; a shared run names all its variants.
final class MLflowPlacementTagsTests: XCTestCase {
    let api = "/api/2.0/mlflow"

    func testPolyaksOwnRunsCarryTheirVariantAndSeedAsTags() async throws {
        let folder = try TempFolder()
        // Nothing trains: the runs stay queued, placed in their experiment.
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let created = try await client.json(
                .post, "/api/experiments",
                #"{"name": "placed", "variants": ["none", "ema", {"name": "ema-fast", "preset": "ema", "spec": {"averaging": {"kind": "ema", "decays": [0.99]}, "optim": {"lr": 0.05}}}], "seeds": [0, 4], "base": {"optim": {"epochs": 1}}}"#,
                expect: .created)
            let experiment = try XCTUnwrap(created["id"]?.intValue)
            func search(_ filter: String) async throws -> [(variant: String?, seed: String?, id: String)] {
                let body = JSONValue.object(["experiment_ids": [.string("\(experiment)")], "filter": .string(filter)]).text()
                let found = try await client.json(.post, "\(api)/runs/search", body)
                guard case .array(let runs)? = found["runs"] else { return [] }
                return runs.map { run in
                    let tags = run["data"]?["tags"]
                    func tag(_ key: String) -> String? {
                        guard case .array(let items)? = tags else { return nil }
                        return items.first { $0["key"]?.stringValue == key }?["value"]?.stringValue
                    }
                    return (tag("polyak.variant"), tag("polyak.seed"), run["info"]?["run_id"]?.stringValue ?? "")
                }
            }
            // none and ema share one run per seed; ema-fast (its own lr) trains apart.
            let seed4 = try await search("tags.polyak.seed = '4'")
            XCTAssertEqual(Set(seed4.map { $0.variant ?? "-" }), ["none+ema", "ema-fast"])
            XCTAssertEqual(Set(seed4.map { $0.seed ?? "-" }), ["4"])
            let fast = try await search("tags.`polyak.variant` = 'ema-fast'")
            XCTAssertEqual(fast.map { $0.seed ?? "-" }.sorted(), ["0", "4"])
            let shared = try await search("tags.polyak.variant LIKE '%ema' AND tags.polyak.variant != 'ema-fast'")
            XCTAssertEqual(shared.count, 2)

            // runs/get shows the same tags; they take no writes.
            let id = try XCTUnwrap(fast.first?.id)
            let got = try await client.json(.get, "\(api)/runs/get?run_id=\(id)")
            XCTAssertEqual(
                got["run"]?["data"]?["tags"],
                [["key": "polyak.seed", "value": .string(fast[0].seed!)], ["key": "polyak.variant", "value": "ema-fast"]])
            for (path, body) in [
                ("runs/set-tag", #"{"run_id": "\#(id)", "key": "polyak.variant", "value": "none"}"#),
                ("runs/delete-tag", #"{"run_id": "\#(id)", "key": "polyak.seed"}"#),
            ] {
                let r = try await client.call(.post, "\(api)/\(path)", body)
                XCTAssertEqual(r.status, .badRequest, String(buffer: r.body))
                XCTAssertTrue(String(buffer: r.body).contains("trained by Polyak itself"), String(buffer: r.body))
            }
            let again = try await client.json(.get, "\(api)/runs/get?run_id=\(id)")
            XCTAssertEqual(again["run"]?["data"]?["tags"], got["run"]?["data"]?["tags"])
        }
    }
}
