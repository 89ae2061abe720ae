import Experiments
import Foundation

/// What a run spec that came over HTTP may make the trainer open. A spec typed at the command line
/// (`polyak train --spec`) names any file its user can read; one posted to the server must not turn
/// the trainer into a reader of the server user's files (its errors quote the first bytes of what it
/// opened). So: a teacher's weights file and a dataset folder must lie inside the data directory once
/// symlinks are resolved, except the default dataset folder (the Debian package's); a teacher from
/// elsewhere is named by `distillation.teacher_run`, which the server resolves itself.
struct SpecPaths {
    /// The data directory with its symlinks resolved (nil if it cannot be resolved, which refuses every path).
    let dataDirectory: String?

    init(dataDirectory: String) {
        self.dataDirectory = Self.resolved(dataDirectory)
    }

    /// `path` made absolute (against the current directory, which the trainer inherits) with every
    /// symlink followed; nil when it does not exist.
    static func resolved(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    func isInsideDataDirectory(_ path: String) -> Bool {
        guard let base = dataDirectory, let target = Self.resolved(path) else { return false }
        return target == base || target.hasPrefix(base.hasSuffix("/") ? base : base + "/")
    }

    /// Refuses the paths of `spec` the server will not pass to a trainer; `prefix` leads the field
    /// name (`base.` or `variants[1].spec.` for an experiment's runs).
    func check(_ spec: RunSpec, prefix: String = "") throws {
        if let teacher = spec.distillation?.teacher, !isInsideDataDirectory(teacher.path) {
            let field = prefix + "distillation.teacher.path"
            throw APIError.badRequest(
                "\(field) must name a file inside the server's data directory (symlinks followed), got \(teacher.path); "
                    + "over HTTP a teacher is an earlier run: give distillation.teacher_run", field: field)
        }
        let root = spec.data.root
        if root != DataSpec.defaultRoot, !isInsideDataDirectory(root) {
            let field = prefix + "data.root"
            throw APIError.badRequest(
                "\(field) must be \(DataSpec.defaultRoot) or a folder inside the server's data directory (symlinks followed), "
                    + "got \(root)", field: field)
        }
    }
}

extension ServiceContext {
    /// Resolved per request: the data directory may be created or moved after the server starts.
    var specPaths: SpecPaths { SpecPaths(dataDirectory: options.dataDirectory) }
}
