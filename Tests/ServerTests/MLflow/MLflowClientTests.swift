import Experiments
import Foundation
import PolyakTestSupport
import XCTest

@testable import Server
@testable import Store

/// The real mlflow client (mlflow-skinny from PyPI, pinned in scripts/mlflow-client.sh) against a
/// live `polyak serve` started with a token: `mlflow_client.py` is a user's unchanged script and
/// asserts what the client sees; this side then checks the same runs through Polyak's own API and
/// pages. Without the client the test is skipped (CI=1: a failure), naming the installer.
final class MLflowClientTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The python that imports mlflow: `POLYAK_MLFLOW_PYTHON`, else the venv scripts/mlflow-client.sh fills.
    static func python() throws -> String {
        let env = ProcessInfo.processInfo.environment
        let path = env["POLYAK_MLFLOW_PYTHON"] ?? root.appendingPathComponent(".build/mlflow-venv/bin/python").path
        if FileManager.default.isExecutableFile(atPath: path),
            (try? runProcess(path, ["-c", "import mlflow"]))?.status == 0
        {
            return path
        }
        let message = "the mlflow client is not installed at \(path); scripts/mlflow-client.sh installs it (make test runs it)"
        if env["CI"] == "1" { throw MLflowClientMissing(message: message) }
        throw XCTSkip(message)
    }

    struct MLflowClientMissing: Error, CustomStringConvertible { var message: String; var description: String { message } }

    func testUnchangedMLflowScriptLandsInPolyaksComparison() async throws {
        let python = try Self.python()
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        let token = "mlflow-test-token-0123456789abcdef"
        let tokenFile = folder.url.appendingPathComponent("token").path
        try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: exe)
        server.arguments = [
            "serve", "--port", "\(port)", "--db", folder.db, "--data-dir", folder.data, "--log-level", "warning",
            "--max-concurrent", "0", "--token-file", tokenFile,
        ]
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        let http = HTTP(port: port)
        try await http.waitUntilUp()

        let scratch = folder.url.appendingPathComponent("scratch")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:\(port)"
        environment["MLFLOW_TRACKING_TOKEN"] = token
        environment["ARTIFACT_DIR"] = scratch.path
        environment["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  // a refusal is an answer, not a reason to wait and retry
        let started = Date()
        let script = Self.root.appendingPathComponent("Tests/ServerTests/MLflow/mlflow_client.py").path
        let out = try runProcess(python, [script], environment: environment)
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(out.status, 0, "mlflow_client.py failed:\n\(out.err)")
        guard out.status == 0, let last = out.out.split(separator: "\n").last else { return }
        XCTAssertLessThan(seconds, 60, "the client script took \(seconds) s")
        let summary = try JSONValue.parse(String(last))
        let experiment = try XCTUnwrap(summary["experiment_id"]?.stringValue.flatMap { Int64($0) })
        guard case .array(let runs)? = summary["runs"] else { return XCTFail("no runs in \(summary)") }
        XCTAssertTrue(summary["filter_error"]?.stringValue?.contains("at position 14") == true, "\(summary)")

        // The compare table equals Polyak's comparison of the values the script logged.
        var finals: [FinalValue] = []
        for r in runs {
            let id = try XCTUnwrap(r["run_id"]?.stringValue.flatMap { Int64($0) })
            guard case .object(let sets)? = r["finals"] else { return XCTFail("no finals in \(r)") }
            for (weights, value) in sets {
                finals.append(
                    FinalValue(
                        runID: id, variant: r["variant"]!.stringValue!, seed: Int64(r["seed"]!.intValue!), weights: weights,
                        value: value.doubleValue!))
            }
        }
        let rows = Comparison.compare(finals, baseline: "none", variants: ["none", "ema"], metric: "test/top1")
        XCTAssertEqual(
            rows.map { "\($0.variant)/\($0.weights)/\($0.summary.n)" }, ["none/raw/3", "ema/raw/3", "ema/ema@0.998/3"])
        let record = ExperimentRecord(
            id: experiment, name: "mlflow-compare", baseJSON: "{}", variantsJSON: "[]", seedsJSON: "[]", baseline: "none",
            createdAt: 0)
        let expected = String(
            decoding: try ViewEncoder.bytes(CompareView(record, metric: "test/top1", rows: rows)), as: UTF8.self)
        let (status, body) = try await http.request("GET", "/api/experiments/\(experiment)/compare?metric=test/top1")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(String(decoding: body, as: UTF8.self), expected)

        // Each run as Polyak's API shows it: external, placed, completed, every point kept.
        let first = try await http.json("GET", "/api/runs/\(runs[3]["run_id"]!.stringValue!)")
        XCTAssertEqual(first["variant"]?.stringValue, "ema")
        XCTAssertEqual(first["seed"]?.intValue, 0)
        XCTAssertEqual(first["status"]?.stringValue, "completed")
        let points = try await http.json("GET", "/api/runs/\(runs[3]["run_id"]!.stringValue!)/metrics?key=test/top1")
        XCTAssertEqual(points["points"]?.count, 6, "3 steps × raw and ema@0.998")
        let failed = try await http.json("GET", "/api/runs/\(summary["failed"]!.stringValue!)")
        XCTAssertEqual(failed["status"]?.stringValue, "failed")
        let killed = try await http.json("GET", "/api/runs/\(summary["killed"]!.stringValue!)")
        XCTAssertEqual(killed["status"]?.stringValue, "cancelled")
        let weird = try await http.json("GET", "/api/runs/\(summary["child"]!.stringValue!)/metrics?key=weird")
        XCTAssertEqual(
            (0..<3).compactMap { weird["points"]?[$0]?["value"] }, [.string("NaN"), .string("Infinity"), .string("-Infinity")])

        // The pages: the experiment's table and curves name the weight sets; a run page its params and files.
        let (_, page) = try await http.request("GET", "/experiments/\(experiment)")
        let html = String(decoding: page, as: UTF8.self)
        let links = runs.map { "href=\"/runs/\($0["run_id"]!.stringValue!)\"" }
        for text in ["ema@0.998", "<td>none</td>", "<td>ema</td>"] + links {
            XCTAssertTrue(html.contains(text), "experiment page lacks \(text)")
        }
        let (_, runPage) = try await http.request("GET", "/runs/\(runs[0]["run_id"]!.stringValue!)")
        let runHTML = String(decoding: runPage, as: UTF8.self)
        for text in ["notes-none-0.txt", "&quot;lr&quot;", "none-seed0"] {
            XCTAssertTrue(runHTML.contains(text), "run page lacks \(text)")
        }
        print("MLflowClientTests: the client script took \(String(format: "%.1f", seconds)) s")
    }
}
