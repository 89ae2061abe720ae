import Experiments
import Foundation
import Store

/// `/`: experiments, recent runs, the queue, and the form that launches a comparison.
struct HomePage {
    struct ExperimentRow {
        var id: Int64
        var name: String
        var variants: String
        var seeds: Int
        var total: Int
        var finished: Int
        var fraction: Double
        var statuses: [ExperimentPage.StatusCount]
        var createdAt: Double
        var created: String
        var createdISO: String
    }

    struct Progress {
        var value: Int64
        var max: Int64
        var percent: String
    }

    struct RunRow {
        var id: Int64
        var name: String
        var experiment: String?
        var experimentID: Int64?
        var variant: String
        var seed: Int64
        var status: String
        var progress: Progress?
        var fraction: Double
        var eta: String
        var top1: String
        var top1Value: String
    }

    var experiments: [ExperimentRow]
    var runs: [RunRow]
    var form: LaunchForm
}

/// The launch form's fields as the user typed them, and what is wrong with them.
struct LaunchForm {
    struct PresetChoice {
        var name: String
        var summary: String
        var checked: Bool
        var isBaseline: Bool
    }

    struct TeacherOption {
        var id: Int64
        var label: String
        var selected: Bool
    }

    /// One message per field, shown next to it.
    struct FieldErrors {
        var name: String?
        var presets: String?
        var baseline: String?
        var teacher: String?
        var seeds: String?
        var epochs: String?
        var width: String?
        var trainLimit: String?
        var threads: String?

        var isEmpty: Bool {
            [name, presets, baseline, teacher, seeds, epochs, width, trainLimit, threads].allSatisfy { $0 == nil }
        }
    }

    var name = "fmnist-averaging"
    var seeds = "0, 1, 2"
    var epochs = "10"
    var width = "16"
    var trainLimit = ""
    /// Threads per run: the server's proposal (its cores shared by the runs it trains at once).
    var threads = "2"
    var teacherRun = ""
    var baseline = "none"
    var ticked: [String] = ["none", "ema", "swa"]
    var presets: [PresetChoice] = []
    var teachers: [TeacherOption] = []
    var errors = FieldErrors()
    var generalError: String?

    /// The fields as posted (nothing the user typed is lost when the form comes back with errors).
    init(posted form: FormBody) {
        name = form.first("name") ?? ""
        seeds = form.first("seeds") ?? ""
        epochs = form.first("epochs") ?? ""
        width = form.first("width") ?? ""
        trainLimit = form.first("train_limit") ?? ""
        threads = form.first("threads") ?? ""
        teacherRun = form.first("teacher_run") ?? ""
        ticked = form.all("presets")
        baseline = form.first("baseline") ?? ticked.first ?? ""
    }

    init(threads: Int) { self.threads = String(threads) }

    /// Fills the choices for rendering: the server's presets and the completed runs that can teach.
    mutating func prepare(presets: [PresetEntry], teachers runs: [RunRecord], top1: [Int64: Double]) {
        self.presets = presets.map {
            PresetChoice(name: $0.name, summary: $0.summary, checked: ticked.contains($0.name), isBaseline: $0.name == baseline)
        }
        teachers = runs.map { r in
            var label = "#\(r.id) " + (r.name ?? "run \(r.id)")
            if let e = r.experiment { label += " (\(e))" }
            if let t = top1[r.id] { label += " · " + Format.metric(t, key: "test/top1") }
            return TeacherOption(id: r.id, label: label, selected: String(r.id) == teacherRun)
        }
    }

    /// The experiment this form asks for, as the API's JSON, or the field errors that stop it.
    func experimentDocument(knownPresets: [String]) -> (JSONValue?, FieldErrors) {
        var errors = FieldErrors()
        if name.isEmpty {
            errors.name = "Give the experiment a name."
        } else if name.count > 200 {
            errors.name = "At most 200 characters."
        }
        if ticked.isEmpty { errors.presets = "Tick at least one strategy." }
        for p in ticked where !knownPresets.contains(p) { errors.presets = "Unknown strategy \(p)." }
        if !ticked.isEmpty && !ticked.contains(baseline) {
            errors.baseline = "The baseline \(baseline) is not among the ticked strategies (\(ticked.joined(separator: ", ")))."
        }
        var teacher: Int64?
        if ticked.contains("kd") {
            if teacherRun.isEmpty {
                errors.teacher = "kd distils from an earlier run: pick a completed run as its teacher."
            } else if let id = Int64(teacherRun), id > 0 {
                teacher = id
            } else {
                errors.teacher = "Not a run id: \(teacherRun)."
            }
        }
        var seedList: [JSONValue] = []
        let parts = seeds.split(whereSeparator: { $0 == "," || $0 == " " || $0 == ";" })
        if parts.isEmpty { errors.seeds = "Give at least one seed, e.g. 0, 1, 2." }
        var seen = Set<UInt64>()
        for p in parts {
            guard let s = UInt64(p), s <= UInt64(RunSpec.maxSeed) else {
                errors.seeds = "\(p) is not a whole number ≥ 0."
                break
            }
            guard seen.insert(s).inserted else {
                errors.seeds = "Seed \(s) appears twice."
                break
            }
            seedList.append(.number(Double(s)))
        }
        func integer(_ text: String, _ range: ClosedRange<Int>, _ what: String) -> (Int?, String?) {
            guard let x = Int(text) else {
                return (nil, text.isEmpty ? "Give the number of \(what)." : "\(text) is not a whole number.")
            }
            guard range.contains(x) else {
                return (nil, "Must be between \(range.lowerBound) and \(range.upperBound), got \(x).")
            }
            return (x, nil)
        }
        let (epochCount, epochError) = integer(epochs, 1...1000, "epochs")
        errors.epochs = epochError
        let (widthValue, widthError) = integer(width, 1...256, "channels")
        errors.width = widthError
        var limit: Int?
        if !trainLimit.isEmpty {
            let (l, e) = integer(trainLimit, 1...60000, "training images")
            limit = l
            errors.trainLimit = e
        }
        var threadCount: Int?
        if !threads.isEmpty {  // empty: the spec's default
            let (t, e) = integer(threads, 1...64, "threads per run")
            threadCount = t
            errors.threads = e
        }
        guard errors.isEmpty, let epochCount, let widthValue else { return (nil, errors) }
        var data: [String: JSONValue] = [:]
        if let limit { data["train_limit"] = .number(Double(limit)) }
        var base: [String: JSONValue] = [
            "optim": ["epochs": .number(Double(epochCount))], "model": ["width": .number(Double(widthValue))],
            "data": .object(data),
        ]
        if let threadCount { base["threads"] = .number(Double(threadCount)) }
        let variants: [JSONValue] = ticked.map { p in
            guard p == "kd", let teacher else { return .string(p) }
            return ["name": "kd", "preset": "kd", "spec": ["distillation": ["teacher_run": .number(Double(teacher))]]]
        }
        let document: JSONValue = [
            "name": .string(name), "base": .object(base), "variants": .array(variants), "seeds": .array(seedList),
            "baseline": .string(baseline),
        ]
        return (document, errors)
    }

    /// Puts an error from the API's validation next to the field it concerns (or above the form).
    mutating func attach(_ error: APIError) {
        let field = error.field ?? ""
        switch true {
        case field == "name": errors.name = error.message
        case field.contains("teacher"): errors.teacher = error.message
        case field.hasPrefix("seeds"): errors.seeds = error.message
        case field == "baseline": errors.baseline = error.message
        case field.hasSuffix("optim.epochs"): errors.epochs = error.message
        case field.hasSuffix("model.width"): errors.width = error.message
        case field.hasSuffix("data.train_limit"): errors.trainLimit = error.message
        case field.hasSuffix("threads"): errors.threads = error.message
        case field.hasPrefix("variants"): errors.presets = error.message
        default: generalError = error.message
        }
    }
}

extension HomePage: TemplateModel {
    func computed(_ name: String) -> Any? {
        switch name {
        case "hasExperiments": return !experiments.isEmpty
        case "hasRuns": return !runs.isEmpty
        default: return nil
        }
    }
}
