/// Knowledge distillation from a teacher (`distillation`):
/// `loss = α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(s, y)` (Hinton 2015).
///
/// Over REST the teacher is an earlier run (`teacher_run` + `teacher_weights`); the server
/// resolves it into `teacher` (a weights file and its model) before it starts `polyak train`,
/// which reads only `teacher`. At least one of the two must be given.
public struct DistillationSpec: Equatable, Sendable {
    /// `teacher_run`: id (≥ 1) of a completed run whose weights teach.
    public var teacherRun: Int?
    /// `teacher_weights`: which weight set of that run: `raw`, `swa`, `ema@<decay>` or `ema@<decay>~<label>`
    /// (stored in canonical form, so `ema@0.9980` becomes `ema@0.998`).
    public var teacherWeights: String
    /// `temperature` > 0 (T).
    public var temperature: Double
    /// `alpha` in [0, 1]: weight of the distillation term.
    public var alpha: Double
    /// `teacher`: the resolved weights file and the model it fits.
    public var teacher: TeacherSpec?

    public init(
        teacherRun: Int? = nil, teacherWeights: String = "raw", temperature: Double = 4, alpha: Double = 0.5,
        teacher: TeacherSpec? = nil
    ) {
        self.teacherRun = teacherRun
        self.teacherWeights = teacherWeights
        self.temperature = temperature
        self.alpha = alpha
        self.teacher = teacher
    }

    static func read(_ r: SpecReader) throws -> DistillationSpec {
        let spec = DistillationSpec(
            teacherRun: try r.optionalInt("teacher_run", .atLeast(1)),
            teacherWeights: try canonicalWeightSet(try r.string("teacher_weights", default: "raw"), r.path("teacher_weights")),
            temperature: try r.double("temperature", default: 4, .greaterThan(0)),
            alpha: try r.double("alpha", default: 0.5, .closed(0, 1)),
            teacher: try r.object("teacher", TeacherSpec.read))
        if spec.teacherRun == nil && spec.teacher == nil {
            throw SpecError(field: r.path, message: "needs a teacher: give teacher_run (a run id) or teacher ({path, model})")
        }
        return spec
    }

    /// `raw`, `swa`, or `ema@<d>` with `d` in (0, 1) written the shortest way, and a labelled
    /// entry's `ema@<d>~<label>` (a run that several variants share names its sets so).
    static func canonicalWeightSet(_ name: String, _ path: String) throws -> String {
        if name == "raw" || name == "swa" { return name }
        let parts = name.split(separator: "~", maxSplits: 1, omittingEmptySubsequences: false)
        let label = parts.count == 2 ? String(parts[1]) : nil
        if name.hasPrefix("ema@"), let d = Double(parts[0].dropFirst(4)), d > 0, d < 1,
            label.map(EMASpec.isValidLabel) ?? true
        {
            return EMASpec.weightSetName(decay: d, label: label)
        }
        throw SpecError(
            field: path,
            message: "must be a weight set name: raw, swa or ema@<decay> with the decay in (0, 1), got \(JSONValue.string(name))")
    }

    /// The full `distillation` object.
    public func json() -> JSONValue {
        [
            "teacher_run": teacherRun.map { .number(Double($0)) } ?? .null,
            "teacher_weights": .string(teacherWeights), "temperature": .number(temperature),
            "alpha": .number(alpha), "teacher": teacher?.json() ?? .null,
        ]
    }
}

/// A teacher as `polyak train` reads it: a safetensors file and the model it was exported from.
public struct TeacherSpec: Equatable, Sendable {
    /// `path`: the weights file (safetensors, PyTorch names and layouts).
    public var path: String
    /// `model`: the teacher's architecture (defaults as for `model`).
    public var model: ModelSpec

    public init(path: String, model: ModelSpec = ModelSpec()) {
        self.path = path
        self.model = model
    }

    static func read(_ r: SpecReader) throws -> TeacherSpec {
        guard let path = try r.optionalString("path") else {
            throw SpecError(field: r.path("path"), message: "is required (the teacher's weights file)")
        }
        if path.isEmpty { throw SpecError(field: r.path("path"), message: "must not be empty") }
        return TeacherSpec(path: path, model: try r.object("model", ModelSpec.read) ?? ModelSpec())
    }

    /// The full `teacher` object.
    public func json() -> JSONValue { ["path": .string(path), "model": model.json()] }
}
