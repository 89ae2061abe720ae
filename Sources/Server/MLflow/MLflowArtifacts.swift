import Foundation
import Hummingbird
import Store

/// MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/…`), so `mlflow.log_artifact` and
/// `mlflow.artifacts.download_artifacts` work against Polyak. A run's artifact URI is
/// `mlflow-artifacts:/<run id>/artifacts`, which the client turns into paths under that prefix; the
/// files live in the run's folder under `artifacts/`. A path with `..`, `.`, an empty part, a NUL or
/// a backslash is refused, and so is one whose real location (symlinks followed) leaves the folder.
struct MLflowArtifacts: Sendable {
    let context: ServiceContext

    static let prefix = "/api/2.0/mlflow-artifacts/artifacts"

    static func uri(run: Int64) -> String { "mlflow-artifacts:/\(run)/artifacts" }

    /// The run and the file path inside its `artifacts/` folder that `path` (`<run>/artifacts/<file>`) names.
    func locate(_ path: String, allowRoot: Bool) throws -> (run: MLflowRunRecord, folder: String, relative: [String]) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for (i, p) in parts.enumerated()
        where p == ".." || p == "." || p.contains("\0") || p.contains("\\") || (p.isEmpty && i < parts.count - 1) {
            throw MLflowError.invalid("Invalid artifact path: '\(path)' (no '.', '..', empty, NUL or backslash parts)")
        }
        let trimmed = parts.last == "" ? Array(parts.dropLast()) : parts
        guard trimmed.count >= 2, trimmed[1] == "artifacts", !trimmed.contains(""), let id = Int64(trimmed[0]), id > 0 else {
            throw MLflowError(.resourceDoesNotExist, "No artifact location '\(path)': paths are <run id>/artifacts/<file>")
        }
        let relative = Array(trimmed.dropFirst(2))
        if relative.isEmpty && !allowRoot { throw MLflowError.invalid("Invalid artifact path: '\(path)' names no file") }
        guard let run = try context.store.mlflowRun(id) else { throw MLflowError.noRun(String(id)) }
        return (run, context.runner.runDirectory(id) + "/artifacts", relative)
    }

    /// The real path of `relative` under `folder`, refused when it leaves the folder.
    func inside(_ folder: String, _ relative: [String]) throws -> String {
        let path = ([folder] + relative).joined(separator: "/")
        guard let base = SpecPaths.resolved(folder), let real = SpecPaths.resolved(path),
            real == base || real.hasPrefix(base + "/")
        else {
            throw MLflowError.invalid("Invalid artifact path: '\(relative.joined(separator: "/"))' leaves the run's folder")
        }
        return real
    }

    func upload(_ path: String, body: ByteBuffer) async throws -> MLflowEmpty {
        try await Blocking.run {
            let (run, folder, relative) = try locate(path, allowRoot: false)
            if !run.run.external {
                throw MLflowError.invalid("run \(run.run.id) is trained by Polyak itself; its folder takes no uploads")
            }
            let fm = FileManager.default
            let directory = ([folder] + relative.dropLast()).joined(separator: "/")
            do {
                try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                // A name too long, or a file where a folder belongs: the path asked for cannot be.
                throw MLflowError.invalid("Invalid artifact path: '\(path)' cannot be created (\(error.localizedDescription))")
            }
            // A symlinked directory on the way out of the folder is refused; rename replaces a link, never follows it.
            _ = try inside(folder, Array(relative.dropLast()))
            let target = directory + "/" + relative.last!
            // Written beside the target and renamed over it: a reader never sees half a file.
            let temporary = directory + "/.upload-\(UUID().uuidString)"
            guard fm.createFile(atPath: temporary, contents: Data(body.readableBytesView)) else {
                throw MLflowError.invalid("Invalid artifact path: '\(path)': the file cannot be written there")
            }
            if rename(temporary, target) != 0 {
                let reason = String(cString: strerror(errno))
                try? fm.removeItem(atPath: temporary)
                throw MLflowError.invalid("Invalid artifact path: '\(path)': the file cannot be stored there (\(reason))")
            }
            return MLflowEmpty()
        }
    }

    func download(_ path: String) async throws -> [UInt8] {
        try await Blocking.run {
            let (_, folder, relative) = try locate(path, allowRoot: false)
            guard FileManager.default.fileExists(atPath: ([folder] + relative).joined(separator: "/")) else {
                throw MLflowError(.resourceDoesNotExist, "No artifact at '\(path)'")
            }
            let real = try inside(folder, relative)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: real, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: real)
            else { throw MLflowError(.resourceDoesNotExist, "No artifact at '\(path)'") }
            return Array(data)
        }
    }

    struct FileView: Encodable {
        var path: String
        var isDir: Bool
        var fileSize: Int64?
        enum CodingKeys: String, CodingKey { case path, isDir = "is_dir", fileSize = "file_size" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(path, forKey: .path)
            try c.encode(isDir, forKey: .isDir)
            if let fileSize { try c.encode(fileSize, forKey: .fileSize) }
        }
    }

    struct ListView: Encodable { var files: [FileView] }

    /// The entries of one folder (names relative to it, as MLflow's server lists them); none for a missing folder.
    func list(_ path: String) async throws -> ListView {
        try await Blocking.run {
            let (_, folder, relative) = try locate(path, allowRoot: true)
            guard FileManager.default.fileExists(atPath: ([folder] + relative).joined(separator: "/")) else {
                return ListView(files: [])
            }
            let real = try inside(folder, relative)
            return ListView(files: Self.entries(real))
        }
    }

    static func entries(_ directory: String) -> [FileView] {
        let fm = FileManager.default
        let names = ((try? fm.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasPrefix(".upload-") }.sorted()
        return names.map { name in
            var isDirectory: ObjCBool = false
            _ = fm.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory)
            let size = (try? fm.attributesOfItem(atPath: directory + "/" + name)[.size] as? NSNumber)?.int64Value
            return FileView(path: name, isDir: isDirectory.boolValue, fileSize: isDirectory.boolValue ? nil : size)
        }
    }

    /// Every file a run uploaded, depth first, as (path under `artifacts/`, bytes): the run page lists them.
    static func files(runFolder: String) -> [(path: String, bytes: Int64?)] {
        let root = runFolder + "/artifacts"
        var out: [(String, Int64?)] = []
        func walk(_ relative: String) {
            for e in entries(relative.isEmpty ? root : root + "/" + relative) {
                let path = relative.isEmpty ? e.path : relative + "/" + e.path
                if e.isDir { walk(path) } else { out.append((path, e.fileSize)) }
            }
        }
        walk("")
        return out
    }

    /// The run page's links to the files a run uploaded through MLflow.
    static func pageLinks(run: Int64, folder: String) -> [RunPage.Artifact] {
        files(runFolder: folder).map { f in
            let url =
                prefix + "/\(run)/artifacts/" + (f.path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? f.path)
            return RunPage.Artifact(name: f.path, url: url, size: Format.bytes(f.bytes), sha: nil, shortSha: nil)
        }
    }
}
