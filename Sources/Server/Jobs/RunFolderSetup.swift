import Experiments
import Foundation
import Store

#if canImport(Glibc)
    import Glibc
#endif

/// Readies a run's folder for its trainer and says how to call `polyak train` on it: `--resume`
/// where an interrupted trainer left its state, else a fresh `--spec` (teacher resolved) in an
/// emptied folder.
enum RunFolderSetup {
    /// `<data-dir>/runs/<id>`.
    static func directory(of runID: Int64, in dataDirectory: String) -> String { dataDirectory + "/runs/\(runID)" }

    /// The `polyak train` arguments for `launch`, after waiting for the folder's lock (a trainer of
    /// a killed server may take a step to stop) and, for a fresh start, storing the resolved spec.
    static func trainArguments(_ launch: RunLaunch, store: TrackingStore, dataDirectory: String) throws -> [String] {
        let dir = launch.directory
        guard let run = try store.run(launch.runID) else { throw SetupError("the run vanished from the database") }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard waitForFolderLock(dir + "/train.lock", seconds: 30) else {
            throw SetupError("another trainer still holds \(dir)/train.lock after 30 s")
        }
        if launch.resume && FileManager.default.fileExists(atPath: dir + "/spec.json") {
            // A trainer worked here (its spec.json is written): continue from its newest checkpoint.
            return ["train", "--resume", dir]
        }
        // A fresh start owns the folder: files of an older database's run with this id must not mix in.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name != "train.lock" {
            try? FileManager.default.removeItem(atPath: dir + "/" + name)
        }
        let spec = try TeacherResolution.resolvedSpec(run, store: store, dataDirectory: dataDirectory)
        try store.setSpec(launch.runID, specJSON: spec.text(pretty: false))
        let input = dir + "/spec.input.json"
        try spec.data(pretty: true).write(to: URL(fileURLWithPath: input), options: .atomic)
        return ["train", "--spec", input, "--out", dir]
    }

    struct SetupError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Waits until no other process holds the folder's flock.
    private static func waitForFolderLock(_ path: String, seconds: Double) -> Bool {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return true }  // the trainer reports the real problem
        defer { close(fd) }
        let deadline = Date().addingTimeInterval(seconds)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if Date() > deadline { return false }
            usleep(100_000)
        }
        flock(fd, LOCK_UN)
        return true
    }
}
