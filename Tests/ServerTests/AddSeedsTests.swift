import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import XCTest

@testable import Server

/// `POST /api/experiments/{id}/seeds`: more seeds for every variant, as if listed from the start.
final class AddSeedsTests: XCTestCase {
    func testAddingSeedsQueuesThemForEveryVariant() async throws {
        let folder = try TempFolder()
        // Nothing starts: the runs stay queued and the answer is about storing, not training.
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            // ema-fast's own learning rate keeps it apart from none (SharedRunsTests adds seeds to shared runs).
            let created = try await client.json(
                .post, "/api/experiments",
                #"{"name": "more", "variants": ["none", {"name": "ema-fast", "preset": "ema", "spec": {"averaging": {"kind": "ema", "decays": [0.99]}, "optim": {"lr": 0.05}}}], "seeds": [0, 4], "base": {"optim": {"epochs": 2}}}"#,
                expect: .created)
            let id = try XCTUnwrap(created["id"]?.intValue)

            let added = try await client.json(.post, "/api/experiments/\(id)/seeds", #"{"add": 2}"#, expect: .created)
            XCTAssertEqual(added["seeds"], [0, 4, 5, 6])
            XCTAssertEqual(added["runs"]?.count, 8)
            XCTAssertEqual(added["status_counts"]?["queued"]?.intValue, 8)
            let runs = try await client.json(.get, "/api/runs?experiment=more&limit=100")
            guard case .array(let items)? = runs["runs"] else { return XCTFail("\(runs)") }
            let newFast = try XCTUnwrap(items.first { $0["variant"]?.stringValue == "ema-fast" && $0["seed"]?.intValue == 6 })
            let oldFast = try XCTUnwrap(items.first { $0["variant"]?.stringValue == "ema-fast" && $0["seed"]?.intValue == 0 })
            let newRun = try await client.json(.get, "/api/runs/\(try XCTUnwrap(newFast["id"]?.intValue))")
            let oldRun = try await client.json(.get, "/api/runs/\(try XCTUnwrap(oldFast["id"]?.intValue))")
            XCTAssertEqual(newRun["spec"]?["averaging"], oldRun["spec"]?["averaging"], "the variant's own spec")
            XCTAssertEqual(newRun["spec"]?["optim"]?["epochs"]?.intValue, 2, "the experiment's base")
            XCTAssertEqual(newRun["spec"]?["seed"]?.intValue, 6)

            for (body, message) in [
                (#"{"add": 0}"#, "add must be an integer in [1, 64], got 0"),
                (#"{"add": 1.5}"#, #"the body must be {"add": k} with k an integer number of seeds"#),
                (#"{"add": 2, "seeds": [9]}"#, #"the body must be {"add": k} with k an integer number of seeds"#),
            ] {
                let r = try await client.call(.post, "/api/experiments/\(id)/seeds", body)
                XCTAssertEqual(r.status, .badRequest, body)
                let error = try JSONValue.parse(String(buffer: r.body))["error"]
                XCTAssertEqual(error?["message"]?.stringValue, message, body)
                XCTAssertEqual(error?["field"]?.stringValue, "add", body)
            }
            let missing = try await client.call(.post, "/api/experiments/999/seeds", #"{"add": 1}"#)
            XCTAssertEqual(missing.status, .notFound)
            let unchanged = try await client.json(.get, "/api/experiments/\(id)")
            XCTAssertEqual(unchanged["runs"]?.count, 8, "refused requests added nothing")

            // The page's form reaches the same service and comes back to the experiment.
            let posted = try await client.call(
                .post, "/experiments/\(id)/seeds", "add=1", headers: [.contentType: "application/x-www-form-urlencoded"])
            XCTAssertEqual(posted.status, .seeOther)
            XCTAssertEqual(posted.headers[.location], "/experiments/\(id)")
            let after = try await client.json(.get, "/api/experiments/\(id)")
            XCTAssertEqual(after["seeds"], [0, 4, 5, 6, 7])
            XCTAssertEqual(after["runs"]?.count, 10)
        }
    }
}
