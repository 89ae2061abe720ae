import Experiments
import Foundation
import PolyakTestSupport
import XCTest

/// What the Slurm test classes share: the cluster (`SlurmCluster`, one per test process), a
/// `polyak serve --executor slurm` over a temporary folder, waiting, reading a run's points, and
/// the reference points of a spec trained without Slurm (trained once per spec and process).
class SlurmTestCase: XCTestCase {
    var cluster: SlurmCluster!

    override func setUpWithError() throws {
        cluster = try SlurmCluster.acquire()
    }

    /// 2 epochs of 2 steps at width 4, one thread (the cluster has 4 CPUs), one grid cell.
    static let tinyBase =
        #"{"threads": 1, "data": {"train_limit": 128, "test_limit": 64}, "model": {"width": 4}, "optim": {"epochs": 2, "batch_size": 64}, "resolution": {"test_grid": {"resize": [28], "crop": [28]}}}"#

    /// Long enough to be caught running (40 epochs of 16 steps).
    static let longSpec =
        #"{"threads": 1, "data": {"train_limit": 1024, "test_limit": 100}, "model": {"width": 4}, "optim": {"epochs": 40, "batch_size": 64}, "resolution": {"test_grid": {"resize": [28], "crop": [28]}}}"#

    static let finished: Set<String> = ["completed", "failed", "cancelled"]

    /// A Slurm-executing server, its client and its folder.
    struct Served {
        let exe: String
        let folder: TempFolder
        let port: Int
        let http: HTTP
        var server: Process
    }

    /// A fresh folder and a server on it, up.
    func serve(extra: [String] = []) async throws -> Served {
        let exe = try polyakExecutable()
        let folder = try TempFolder()
        let port = try freePort()
        let server = try startServer(exe, folder, port: port, extra: extra)
        let http = HTTP(port: port)
        try await http.waitUntilUp()
        return Served(exe: exe, folder: folder, port: port, http: http, server: server)
    }

    /// `polyak serve --executor slurm` on `folder`; its stderr is appended to the folder's `serve.log`.
    func startServer(
        _ exe: String, _ folder: TempFolder, port: Int, extra: [String] = [], environment: [String: String]? = nil
    ) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments =
            [
                "serve", "--port", "\(port)", "--db", folder.db, "--executor", "slurm", "--shared-dir", folder.data,
                "--slurm-poll", "0.5", "--max-concurrent", "4", "--log-level", "info",
            ] + extra
        p.environment = environment ?? cluster.environment
        p.standardOutput = FileHandle.nullDevice
        let log = folder.url.appendingPathComponent("serve.log").path
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        p.standardError = handle
        try p.run()
        return p
    }

    func serverLog(_ folder: TempFolder) -> String {
        (try? String(contentsOfFile: folder.url.appendingPathComponent("serve.log").path, encoding: .utf8)) ?? ""
    }

    /// Waits until `done` holds (polling), failing after `seconds`.
    func wait(_ seconds: Double, _ what: @autoclosure () -> String, _ done: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try await !done() {
            if Date() > deadline {
                XCTFail("timed out after \(Int(seconds)) s waiting for \(what())")
                throw CancellationError()
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
    }

    func status(_ http: HTTP, _ runID: Int) async throws -> String {
        try await http.json("GET", "/api/runs/\(runID)")["status"]?.stringValue ?? ""
    }

    func runs(_ http: HTTP, experiment id: Int) async throws -> [JSONValue] {
        let e = try await http.json("GET", "/api/experiments/\(id)")
        return (0..<(e["runs"]?.count ?? 0)).compactMap { e["runs"]![$0] }
    }

    func points(_ http: HTTP, _ runID: Int) async throws -> [CrashTests.Point] {
        let p = try await http.json("GET", "/api/runs/\(runID)/metrics")["points"]!
        return (0..<p.count).map { CrashTests.Point(p[$0]!) }.sorted()
    }

    /// The files `slurm-<job>.out` in a run folder: one per job that ran there.
    func jobOutputs(_ runFolder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: runFolder).filter { $0.hasPrefix("slurm-") && $0.hasSuffix(".out") }
            .sorted()
    }

    private static let referenceLock = NSLock()
    nonisolated(unsafe) private static var references: [String: [CrashTests.Point]] = [:]

    /// The metric points of `spec` trained by `polyak train` without Slurm, without interruption.
    static func reference(_ exe: String, spec: JSONValue) throws -> [CrashTests.Point] {
        let text = spec.text()
        if let known = Self.referenceLock.withLock({ Self.references[text] }) { return known }
        let folder = try TempFolder()
        let specFile = folder.url.appendingPathComponent("spec.json").path
        try spec.data(pretty: true).write(to: URL(fileURLWithPath: specFile))
        let trained = try runProcess(exe, ["train", "--spec", specFile, "--out", folder.url.appendingPathComponent("ref").path])
        XCTAssertEqual(trained.status, 0, trained.err)
        let points = Set(
            try trained.out.split(separator: "\n").map { try JSONValue.parse(String($0)) }
                .filter { $0["type"]?.stringValue == "metric" }.map(CrashTests.Point.init)
        ).sorted()
        Self.referenceLock.withLock { Self.references[text] = points }
        return points
    }
}
