import Foundation

/// Why a line is not a trainer event; `description` names the field and what was wrong.
public struct TrainerEventError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}

// MARK: Encoding

extension TrainerEvent {
    /// The `type` field.
    public var type: String {
        switch self {
        case .metric: "metric"
        case .progress: "progress"
        case .warning: "warning"
        case .checkpoint: "checkpoint"
        case .grid: "grid"
        case .summary: "summary"
        case .status: "status"
        case .posthoc: "posthoc"
        }
    }

    /// The line as a JSON object, `type` included.
    public var json: JSONValue {
        var fields: [String: JSONValue]
        switch self {
        case .metric(let m):
            fields = [
                "key": .string(m.key), "step": .number(Double(m.step)), "value": JSONValue(m.value), "time": JSONValue(m.time),
                "weights": .string(m.weights),
            ]
            if let epoch = m.epoch { fields["epoch"] = .number(Double(epoch)) }
        case .progress(let p):
            fields = [
                "epoch": Self.int(p.epoch), "step": Self.int(p.step), "total_steps": Self.int(p.totalSteps),
                "images_per_sec": JSONValue(p.imagesPerSecond), "eta_s": JSONValue(p.etaSeconds), "time": JSONValue(p.time),
            ]
        case .warning(let w):
            fields = ["code": .string(w.code), "weights": Self.text(w.weights), "message": .string(w.message)]
        case .checkpoint(let c):
            fields = [
                "epoch": Self.int(c.epoch), "step": Self.int(c.step), "file": .string(c.file), "bytes": Self.int(c.bytes),
                "sha256": .string(c.sha256),
            ]
        case .grid(let g):
            fields = [
                "weights": .string(g.weights), "stage": .string(g.stage.rawValue),
                "train_size": g.trainSize.map(Self.int) ?? .null,
                "resize": Self.int(g.resize), "crop": Self.int(g.crop),
                "top1": JSONValue(g.top1), "top5": JSONValue(g.top5), "loss": JSONValue(g.loss),
            ]
            if let images = g.images { fields["images"] = Self.int(images) }
        case .summary(let s):
            let timing = s.timing?.json ?? .object([:])
            fields = [
                "status": .string(s.status.rawValue), "reason": Self.text(s.reason), "steps": Self.int(s.steps),
                "wall_s": JSONValue(s.wallSeconds), "images_per_sec": JSONValue(s.imagesPerSecond),
                "final": .object(
                    s.final.mapValues { e in
                        ["test/top1": JSONValue(e.top1), "test/top5": JSONValue(e.top5), "test/loss": JSONValue(e.loss)]
                    }),
                "exports": .object(s.exports.mapValues(JSONValue.string)), "timing": timing,
            ]
        case .status(let s):
            fields = ["status": .string(s.status.rawValue), "error": Self.text(s.error)]
        case .posthoc(let p):
            fields = [
                "sigma_rel": JSONValue(p.sigmaRel), "decay": JSONValue(p.decay), "weights": .string(p.weights),
                "step": Self.int(p.step), "bn": .string(p.batchNorm.rawValue), "top1": JSONValue(p.top1),
                "top5": JSONValue(p.top5), "loss": JSONValue(p.loss),
            ]
            if let seconds = p.seconds { fields["seconds"] = JSONValue(seconds) }
        }
        fields["type"] = .string(type)
        return .object(fields)
    }

    /// The line as `polyak train` writes it, without the newline.
    public var line: String { json.text() }

    private static func int(_ x: Int) -> JSONValue { .number(Double(x)) }
    private static func text(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
}

// MARK: Decoding

extension TrainerEvent {
    /// Decodes one stdout line (without its newline).
    public static func decode(line: [UInt8]) throws -> TrainerEvent { try decode(line: Data(line)) }

    /// Decodes one stdout line (without its newline).
    public static func decode(line: some StringProtocol) throws -> TrainerEvent { try decode(line: Data(line.utf8)) }

    /// Decodes one stdout line (without its newline).
    public static func decode(line: Data) throws -> TrainerEvent {
        let value: JSONValue
        do {
            value = try JSONValue.parse(line)
        } catch {
            throw TrainerEventError(message: "not JSON: \(error)")
        }
        return try TrainerEvent(json: value)
    }

    /// Decodes a parsed line.
    public init(json: JSONValue) throws {
        guard case .object(let members) = json else { throw TrainerEventError(message: "not a JSON object") }
        guard let type = members["type"]?.stringValue else { throw TrainerEventError(message: "no \"type\" string") }
        let f = Fields(type: type, members: members)
        switch type {
        case "metric":
            self = .metric(
                MetricPoint(
                    key: try f.string("key"), weights: try f.string("weights"), step: Int64(try f.int("step")),
                    epoch: try f.optionalInt("epoch").map(Int64.init), value: try f.double("value"), time: try f.double("time")))
        case "progress":
            self = .progress(
                Progress(
                    epoch: try f.int("epoch"), step: try f.int("step"), totalSteps: try f.int("total_steps"),
                    imagesPerSecond: try f.double("images_per_sec"), etaSeconds: try f.double("eta_s"),
                    time: try f.double("time")))
        case "warning":
            self = .warning(
                Warning(code: try f.string("code"), weights: try f.optionalString("weights"), message: try f.string("message")))
        case "checkpoint":
            self = .checkpoint(
                CheckpointSaved(
                    epoch: try f.int("epoch"), step: try f.int("step"), file: try f.string("file"),
                    bytes: try f.int("bytes"), sha256: try f.string("sha256")))
        case "grid":
            guard let stage = GridEvaluation.Stage(rawValue: try f.string("stage")) else {
                throw f.error("stage", "must be base or finetuned")
            }
            self = .grid(
                GridEvaluation(
                    weights: try f.string("weights"), stage: stage, trainSize: try f.optionalInt("train_size"),
                    resize: try f.int("resize"),
                    crop: try f.int("crop"), top1: try f.double("top1"), top5: try f.double("top5"), loss: try f.double("loss"),
                    images: try f.optionalInt("images")))
        case "summary":
            self = .summary(try Self.summary(f))
        case "status":
            guard let status = RunStatus(rawValue: try f.string("status")) else {
                throw f.error("status", "must be one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self = .status(StatusChange(status: status, error: try f.optionalString("error")))
        case "posthoc":
            guard let bn = PostHocEvaluation.BatchNorm(rawValue: try f.string("bn")) else {
                throw f.error("bn", "must be synthesized or precise")
            }
            self = .posthoc(
                PostHocEvaluation(
                    sigmaRel: try f.double("sigma_rel"), decay: try f.double("decay"), weights: try f.string("weights"),
                    step: try f.int("step"), batchNorm: bn, top1: try f.double("top1"), top5: try f.double("top5"),
                    loss: try f.double("loss"), seconds: try f.optionalDouble("seconds")))
        default:
            throw TrainerEventError(message: "unknown event type \"\(type)\"")
        }
    }

    private static func summary(_ f: Fields) throws -> Summary {
        guard let status = Summary.Status(rawValue: try f.string("status")) else {
            throw f.error("status", "must be one of \(Summary.Status.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var final: [String: Summary.Evaluation] = [:]
        for (name, value) in try f.object("final") {
            guard case .object(let members) = value else { throw f.error("final.\(name)", "must be an object") }
            let e = f.nested("final.\(name)", members)
            final[name] = Summary.Evaluation(
                top1: try e.double("test/top1"), top5: try e.double("test/top5"),
                loss: try e.double("test/loss"))
        }
        var exports: [String: String] = [:]
        for (name, value) in try f.object("exports") {
            guard let file = value.stringValue else { throw f.error("exports.\(name)", "must be a file name") }
            exports[name] = file
        }
        let timingMembers = try f.object("timing")
        let timing = timingMembers.isEmpty ? nil : try Summary.Timing(f.nested("timing", timingMembers))
        return Summary(
            status: status, reason: try f.optionalString("reason"), steps: try f.int("steps"),
            wallSeconds: try f.double("wall_s"), imagesPerSecond: try f.double("images_per_sec"),
            final: final, exports: exports, timing: timing)
    }

    /// The members of one event object, read with errors that name the event type and the field.
    fileprivate struct Fields {
        let type: String
        let members: [String: JSONValue]
        var prefix = ""

        init(type: String, members: [String: JSONValue], prefix: String = "") {
            self.type = type
            self.members = members
            self.prefix = prefix
        }

        func nested(_ path: String, _ members: [String: JSONValue]) -> Fields {
            Fields(type: type, members: members, prefix: path + ".")
        }

        func error(_ key: String, _ problem: String) -> TrainerEventError {
            TrainerEventError(message: "\(type) event: \(prefix)\(key) \(problem)")
        }

        private func value(_ key: String) throws -> JSONValue {
            guard let v = members[key] else { throw error(key, "is missing") }
            return v
        }

        func string(_ key: String) throws -> String {
            guard let s = try value(key).stringValue else { throw error(key, "must be a string") }
            return s
        }

        /// A string or `null`; a missing key reads as `null`.
        func optionalString(_ key: String) throws -> String? {
            switch members[key] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            default: throw error(key, "must be a string or null")
            }
        }

        /// A number, or one of the strings that stand for a non-finite one.
        func double(_ key: String) throws -> Double {
            switch try value(key) {
            case .number(let x): return x
            case .string("NaN"): return .nan
            case .string("Infinity"): return .infinity
            case .string("-Infinity"): return -.infinity
            default: throw error(key, "must be a number")
            }
        }

        func int(_ key: String) throws -> Int {
            guard case .number(let x) = try value(key), x == x.rounded(), abs(x) < 0x1p53 else {
                throw error(key, "must be a whole number")
            }
            return Int(x)
        }

        /// A number or `null`; a missing key reads as `null`.
        func optionalDouble(_ key: String) throws -> Double? {
            if members[key] == nil || members[key] == .null { return nil }
            return try double(key)
        }

        /// A whole number or `null`; a missing key reads as `null`.
        func optionalInt(_ key: String) throws -> Int? {
            if members[key] == nil || members[key] == .null { return nil }
            return try int(key)
        }

        func object(_ key: String) throws -> [String: JSONValue] {
            guard case .object(let o) = try value(key) else { throw error(key, "must be an object") }
            return o
        }
    }
}

// MARK: Timing

extension TrainerEvent.Summary.Timing {
    /// The `timing` object of a summary line. The split's top-level totals (`shared_s`,
    /// `averaging_s`, …) and each set's `total_s` are written for readers and recomputed on reading.
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "train_s": JSONValue(trainSeconds), "eval_s": .object(evalSeconds.mapValues { JSONValue($0) }),
            "swa_bn_s": JSONValue(batchNormSeconds),
        ]
        guard let split else { return .object(o) }
        o["wall_s"] = JSONValue(split.wallSeconds)
        o["setup_s"] = JSONValue(split.setupSeconds)
        o["teacher_s"] = JSONValue(split.teacherSeconds)
        o["checkpoint_s"] = JSONValue(split.checkpointSeconds)
        o["shared_s"] = JSONValue(sharedSeconds ?? 0)
        // `eval_s` stays the per-set map older readers know.
        for (key, part) in Self.parts where key != "eval_s" { o[key] = JSONValue(split.total(part)) }
        o["per_weights"] = .object(
            split.perWeights.mapValues { w in
                var p = Dictionary(uniqueKeysWithValues: Self.parts.map { ($0.key, JSONValue(w[keyPath: $0.part])) })
                p["total_s"] = JSONValue(w.totalSeconds)
                return .object(p)
            })
        return .object(o)
    }

    /// A weight set's parts by their JSON names.
    static var parts: [(key: String, part: WritableKeyPath<WeightSet, Double>)] {
        [
            ("eval_s", \.evalSeconds), ("grid_s", \.gridSeconds), ("averaging_s", \.averagingSeconds),
            ("bn_s", \.batchNormSeconds), ("fixres_s", \.fixResSeconds), ("export_s", \.exportSeconds),
            ("posthoc_s", \.postHocSeconds),
        ]
    }

    /// Reads a `timing` object on its own (a checkpoint's copy); errors name the field.
    public init(json: JSONValue) throws {
        guard case .object(let members) = json else { throw TrainerEventError(message: "timing: not a JSON object") }
        try self.init(TrainerEvent.Fields(type: "summary", members: members, prefix: "timing."))
    }

    fileprivate init(_ t: TrainerEvent.Fields) throws {
        var eval: [String: Double] = [:]
        let e = t.nested(t.prefix + "eval_s", try t.object("eval_s"))
        for name in e.members.keys { eval[name] = try e.double(name) }
        self.init(trainSeconds: try t.double("train_s"), evalSeconds: eval, batchNormSeconds: try t.double("swa_bn_s"))
        guard t.members["per_weights"] != nil else { return }
        var perWeights: [String: WeightSet] = [:]
        for (name, value) in try t.object("per_weights") {
            guard case .object(let m) = value else { throw t.error("per_weights.\(name)", "must be an object") }
            let w = t.nested(t.prefix + "per_weights.\(name)", m)
            var set = WeightSet()
            // `posthoc_s` came later: a summary or checkpoint written before it reads as zero.
            for (key, part) in Self.parts where key != "posthoc_s" || w.members[key] != nil {
                set[keyPath: part] = try w.double(key)
            }
            perWeights[name] = set
        }
        split = Split(
            wallSeconds: try t.double("wall_s"), setupSeconds: try t.double("setup_s"), teacherSeconds: try t.double("teacher_s"),
            checkpointSeconds: try t.double("checkpoint_s"), perWeights: perWeights)
    }
}
