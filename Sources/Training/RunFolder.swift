import Experiments
import Foundation
import PolyakNetwork

/// A run's folder (`spec/service.md`, "The run folder"): `spec.json`, `checkpoints/`, the exported
/// weight files and `train.lock`. Everything the trainer writes there goes through here, whole
/// files at a time, so a reader (the server, a resuming trainer) never sees a torn one.
final class RunFolder {
    let directory: String
    /// `train.lock`, held (flock) for the folder's lifetime: two trainers never write one folder.
    private var lockDescriptor: Int32 = -1

    static let checkpoints = "checkpoints"

    init(_ directory: String) { self.directory = directory }

    deinit { if lockDescriptor >= 0 { close(lockDescriptor) } }

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// Creates the folder and takes `train.lock`.
    func prepare() throws {
        do {
            try FileManager.default.createDirectory(atPath: path(Self.checkpoints), withIntermediateDirectories: true)
        } catch {
            throw TrainingError.badInput("cannot create run folder \(directory): \(error.localizedDescription)")
        }
        let lock = path("train.lock")
        let fd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError.badInput("cannot open \(lock): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw TrainingError.badInput("another trainer holds \(lock): one run folder, one trainer")
        }
        lockDescriptor = fd
    }

    /// The newest epoch checkpoint, read and checked, or nil when there is none.
    func newestCheckpoint() throws -> Checkpoint? {
        guard let newest = Checkpoint.newest(in: directory) else { return nil }
        do {
            return try Checkpoint(path: newest)
        } catch {
            throw TrainingError.badInput("cannot resume from \(newest): \(error)")
        }
    }

    /// Empties `checkpoints/` and removes post-hoc snapshots: a fresh start owns the folder, and
    /// old checkpoints would confuse a later `--resume`, old snapshots a later `polyak posthoc`.
    func removeCheckpoints() {
        let dir = path(Self.checkpoints)
        for old in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(old))
        }
        try? FileManager.default.removeItem(atPath: path(PostHocSynthesis.folder))
    }

    /// Writes a strategy's snapshot (`posthoc/phema@0.05/step-0000470.safetensors`), creating its
    /// folder. A resumed run writes the snapshots after its checkpoint again, identically.
    func writeSnapshot(_ file: SafetensorsFile, at relativePath: String) throws {
        let target = path(relativePath)
        do {
            try FileManager.default.createDirectory(
                atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try file.write(to: target)
        } catch {
            throw TrainingError.failed("cannot write \(target): \(error)")
        }
    }

    func writeSpec(_ spec: RunSpec) throws {
        do {
            try AtomicFile.write(spec.jsonData(pretty: true), to: path("spec.json"))
        } catch {
            throw TrainingError.badInput("cannot write \(path("spec.json")): \(error)")
        }
    }

    /// Writes `checkpoints/epoch-NNN.safetensors` and says what was written.
    func write(_ checkpoint: Checkpoint) throws -> TrainerEvent.CheckpointSaved {
        let name = Self.checkpoints + "/" + Checkpoint.fileName(epoch: checkpoint.epoch)
        let data = checkpoint.file.encoded()
        do {
            try AtomicFile.write(data, to: path(name))
        } catch {
            throw TrainingError.failed("cannot write \(path(name)): \(error)")
        }
        return .init(epoch: checkpoint.epoch, step: checkpoint.step, file: name, bytes: data.count, sha256: SHA256.hex(data))
    }

    /// Writes an exported weight file (`final.safetensors`, `swa.safetensors`, …).
    func export(_ file: SafetensorsFile, name: String) throws {
        do {
            try file.write(to: path(name))
        } catch {
            throw TrainingError.failed("cannot write \(path(name)): \(error)")
        }
    }

    /// Keeps the `keep` newest epoch checkpoints (file names sort by epoch).
    func pruneCheckpoints(keep: Int) {
        let dir = path(Self.checkpoints)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("epoch-") && $0.hasSuffix(".safetensors") }.sorted()
        for name in names.dropLast(keep) {
            try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(name))
        }
    }
}
