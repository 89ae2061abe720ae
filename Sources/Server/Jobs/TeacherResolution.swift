import Experiments
import Foundation
import Store

/// A spec's `distillation.teacher_run` (a run id, as HTTP clients name a teacher) resolved into the
/// `distillation.teacher {path, model}` the trainer reads: the teacher's exported weight set
/// (`teacher_weights`, default `raw`) in its run folder, and its model.
enum TeacherResolution {
    /// The run's spec, resolved; a spec without `teacher_run` comes back as it is.
    static func resolvedSpec(_ run: RunRecord, store: TrackingStore, dataDirectory: String) throws -> JSONValue {
        var spec = try JSONValue.parse(run.specJSON)
        guard case .object(var fields) = spec, case .object(var distillation)? = fields["distillation"],
            let teacherRun = distillation["teacher_run"]?.doubleValue
        else { return spec }
        let weights = distillation["teacher_weights"]?.stringValue ?? "raw"
        guard teacherRun == teacherRun.rounded(), teacherRun >= 1, teacherRun < 9.0e18 else {
            throw ResolveError("distillation.teacher_run \(teacherRun) is not a run id")
        }
        let id = Int64(teacherRun)
        guard let teacher = try store.run(id), teacher.status == .completed else {
            throw ResolveError("distillation.teacher_run \(id) is not a completed run")
        }
        guard let file = try store.artifacts(run: id).first(where: { $0.kind == .export && $0.name == weights }) else {
            throw ResolveError("distillation.teacher_run \(id) has no exported weight set \(weights)")
        }
        let model = (try? JSONValue.parse(teacher.specJSON))?["model"] ?? .null
        distillation["teacher"] = [
            "path": .string(RunFolderSetup.directory(of: id, in: dataDirectory) + "/" + file.path), "model": model,
        ]
        fields["distillation"] = .object(distillation)
        spec = .object(fields)
        _ = try RunSpec.decode(spec)
        return spec
    }

    struct ResolveError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }
}
