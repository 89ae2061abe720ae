import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One server per database: `<db>.lock` beside it, held with `flock` for the server's life, holds
/// the holder's pid. Two servers on one database would both schedule its queue and both resume its
/// interrupted runs: two trainers for one run folder.
final class DatabaseLock: @unchecked Sendable {
    let path: String
    private let fd: Int32

    /// Takes the lock or throws, naming the process that has it.
    init(database: String) throws {
        path = database + ".lock"
        fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DatabaseLockError.cannotOpen(path, String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = Self.holder(fd)
            close(fd)
            throw DatabaseLockError.held(database: database, lockFile: path, pid: holder)
        }
        // The lock is ours: say who holds it, for the next server that tries.
        let text = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        // The file stays (a reader may be opening it); its flock goes with the descriptor.
        close(fd)
    }

    /// The pid written in the lock file, if any.
    private static func holder(_ fd: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &bytes, bytes.count, 0)
        guard n > 0 else { return nil }
        return Int32(String(decoding: bytes[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

public enum DatabaseLockError: Error, CustomStringConvertible {
    case held(database: String, lockFile: String, pid: Int32?)
    case cannotOpen(String, String)

    public var description: String {
        switch self {
        case .held(let database, let lockFile, let pid):
            let who = pid.map { "another polyak serve (pid \($0))" } ?? "another polyak serve"
            return "\(database) is in use by \(who), which holds \(lockFile); stop it first or give another --db"
        case .cannotOpen(let path, let reason):
            return "cannot open the lock file \(path): \(reason)"
        }
    }
}
