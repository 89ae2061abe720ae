import Foundation
import PolyakTestSupport
import XCTest

/// A real single-node Slurm cluster (munged, slurmctld, slurmd from Debian's packages) started by
/// `scripts/slurm-local.sh` for the Slurm tests, once per test process, and stopped when the last
/// of them ends. Without the packages the tests skip, naming them; under CI (`CI=1`, where
/// `.ci/run` installs them) a cluster that cannot start is a failure.
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
    nonisolated(unsafe) private static var users = 0

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/slurm-local.sh").path
    }

    private init(directory: String, port: Int) {
        self.directory = directory
        self.port = port
    }

    /// The cluster, started on first use; pair with ``release()`` in `tearDown`.
    static func acquire() throws -> SlurmCluster {
        try lock.withLock {
            if started == nil { started = Result { try start() } }
            users += 1
            switch started! {
            case .success(let c): return c
            case .failure(let e): throw e
            }
        }
    }

    /// Stops the cluster when no test uses it any more.
    static func release() {
        lock.withLock {
            users -= 1
            guard users == 0, case .success(let c)? = started else { return }
            _ = try? runProcess("/bin/bash", [script, "stop", c.directory])
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
        for attempt in 0..<3 {
            let port = 20000 + Int.random(in: 0..<20000) & ~1
            let r = try runProcess("/bin/bash", [script, "start", directory, "\(port)"], environment: env)
            if r.status == 0 { return SlurmCluster(directory: directory, port: port) }
            if attempt == 2 { throw ClusterError("scripts/slurm-local.sh start failed:\n\(r.err)") }
        }
        throw ClusterError("unreachable")
    }

    /// Job ids Slurm lists now (pending, running or recently ended), all states.
    func jobs() throws -> [String] {
        let r = try runProcess("/usr/bin/squeue", ["-h", "-t", "all", "-o", "%i %T"], environment: environment)
        return r.out.split(separator: "\n").map(String.init)
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
