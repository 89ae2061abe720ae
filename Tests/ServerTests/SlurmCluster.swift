import Foundation
import PolyakTestSupport
import XCTest

/// A real single-node Slurm cluster (munged, slurmctld, slurmd from Debian's packages) started by
/// `scripts/slurm-local.sh` for the Slurm tests, once per test process (every Slurm test class
/// shares it: a start costs seconds), and stopped when the test bundle ends. Without the packages
/// the tests skip, naming them; under CI (`CI=1`, where `.ci/run` installs them) a cluster that
/// cannot start is a failure.
final class SlurmCluster: @unchecked Sendable {
    let directory: String
    let port: Int
    /// `SLURM_CONF` for the clients (`sbatch`, `squeue`, `scancel`) and the server that calls them.
    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["SLURM_CONF"] = directory + "/slurm.conf"
        env["POLYAK_TOKEN"] = nil
        return env
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: Result<SlurmCluster, Error>?

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/slurm-local.sh").path
    }

    private init(directory: String, port: Int) {
        self.directory = directory
        self.port = port
    }

    /// The cluster, started on first use (a failure to start is remembered: every test reports it).
    static func acquire() throws -> SlurmCluster {
        try lock.withLock {
            if started == nil {
                started = Result { try start() }
                XCTestObservationCenter.shared.addTestObserver(StopAtTheEnd())
            }
            return try started!.get()
        }
    }

    /// Stops the cluster once every test has run.
    private final class StopAtTheEnd: NSObject, XCTestObservation {
        func testBundleDidFinish(_ testBundle: Bundle) { SlurmCluster.stop() }
    }

    /// Stops the cluster (its jobs cancelled, its daemons stopped) and removes its folder.
    static func stop() {
        lock.withLock {
            guard case .success(let c)? = started else { return }
            _ = shell(#""$0" stop "$1" >/dev/null 2>&1 </dev/null"#, [script, c.directory], c.environment)
            try? FileManager.default.removeItem(atPath: c.directory)
            started = nil
        }
    }

    private static func start() throws -> SlurmCluster {
        let needed = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"]
        if let missing = needed.first(where: { !FileManager.default.isExecutableFile(atPath: $0) }) {
            let message =
                "\(missing) is missing: the Slurm tests need Debian's slurmctld slurmd slurm-client munge "
                + "(scripts/setup.sh slurmctld slurmd slurm-client munge)"
            if ProcessInfo.processInfo.environment["CI"] != nil { throw ClusterError(message) }
            throw XCTSkip(message)
        }
        // munged's socket path must stay short (sockaddr_un).
        let directory = "/tmp/polyak-slurm-\(getpid())"
        var env = ProcessInfo.processInfo.environment
        // Four one-thread jobs side by side, whatever the machine's cores.
        env["SLURM_LOCAL_CPUS"] = "4"
        // ...which the node accepts although it may have fewer.
        env["SLURM_LOCAL_EXTRA"] = "SlurmdParameters=config_overrides"
        for attempt in 0..<3 {
            let port = 20000 + Int.random(in: 0..<20000) & ~1
            // Output to a file, not a pipe: the daemons would hold a pipe open and its reader would never see its end.
            let log = directory + ".start.log"
            let status = shell(#""$0" start "$1" "$2" >"$3" 2>&1 </dev/null"#, [script, directory, "\(port)", log], env)
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: log)
            if status == 0 { return SlurmCluster(directory: directory, port: port) }
            if attempt == 2 { throw ClusterError("scripts/slurm-local.sh start failed:\n\(output)") }
        }
        throw ClusterError("unreachable")
    }

    /// `bash -c command args…` to its end, spawned and reaped by hand: the cluster's daemons fork
    /// away from it, and Foundation's `Process` was seen never to reap such a shell.
    static func shell(_ command: String, _ arguments: [String], _ environment: [String: String]) -> Int32 {
        let argv = (["/bin/bash", "-c", command] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/bash", nil, nil, argv, envp) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status >> 8) & 0xff
    }

    /// Job ids Slurm lists now (pending, running or recently ended), all states.
    func jobs() throws -> [String] {
        let r = try runProcess("/usr/bin/squeue", ["-h", "-t", "all", "-o", "%i %T"], environment: environment)
        return r.out.split(separator: "\n").map(String.init)
    }

    /// The cluster's one node.
    func nodeName() throws -> String {
        let r = try runProcess("/usr/bin/sinfo", ["-h", "-o", "%N"], environment: environment)
        let name = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        if r.status != 0 || name.isEmpty { throw ClusterError("sinfo names no node: \(r.err)") }
        return name
    }

    /// `scontrol update nodename=NODE state=…`: `down` ends the jobs on it (NODE_FAIL), `resume` brings it back.
    func setNode(_ node: String, state: String, reason: String? = nil) throws {
        let r = try runProcess(
            "/usr/bin/scontrol", ["update", "nodename=\(node)", "state=\(state)"] + (reason.map { ["reason=\($0)"] } ?? []),
            environment: environment)
        XCTAssertEqual(r.status, 0, "scontrol update state=\(state): \(r.err)")
    }

    /// Brings `node` back if it is still down (it usually registers again by itself: `ReturnToService=2`).
    func resumeNode(_ node: String) {
        let state = (try? runProcess("/usr/bin/sinfo", ["-h", "-n", node, "-o", "%t"], environment: environment))?.out ?? ""
        if state.contains("down") || state.contains("drain") { try? setNode(node, state: "resume") }
    }

    func scancel(_ jobID: Int) throws {
        let r = try runProcess("/usr/bin/scancel", [String(jobID)], environment: environment)
        XCTAssertEqual(r.status, 0, r.err)
    }

    struct ClusterError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }
}
