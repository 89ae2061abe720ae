import Experiments
import Store

/// `POST /api/experiments`'s body (`{name, base, variants, seeds, baseline?}`) checked field by
/// field, and its expansion into variants × seeds run specs: base, then the preset, then the
/// variant's own spec, merged in that order. Every error names the field it came from.
struct ExperimentRequest: Sendable {
    /// A variant as stored: its name, the preset it starts from, its own spec fragment.
    struct Variant: Sendable {
        var name: String
        var preset: String?
        var spec: JSONValue

        var json: JSONValue { ["name": .string(name), "preset": preset.map { .string($0) } ?? .null, "spec": spec] }
    }

    var name: String
    var base: JSONValue
    var variants: [Variant]
    var seeds: [UInt64]
    var baseline: String

    /// The seed list as the experiment stores it: `[0,1,2]`.
    var seedsJSON: String { JSONValue.array(seeds.map { .number(Double($0)) }).text() }

    init(_ document: JSONValue, presets: [PresetEntry]) throws {
        guard case .object(let body) = document else {
            throw APIError.badRequest("the body must be an object {name, base, variants, seeds, baseline?}")
        }
        for key in body.keys where !["name", "base", "variants", "seeds", "baseline"].contains(key) {
            throw APIError.badRequest(
                "\(key) is not a field of an experiment (name, base, variants, seeds, baseline)", field: key)
        }
        guard let name = body["name"]?.stringValue, !name.isEmpty else {
            throw APIError.badRequest("name is required: a non-empty string", field: "name")
        }
        try Limits.checkName(name, field: "name")
        let base = body["base"] ?? [:]
        guard case .object = base else { throw APIError.badRequest("base must be a run spec object", field: "base") }
        let variants = try Self.parseVariants(body["variants"], presets: presets)
        let seeds = try Self.parseSeeds(body["seeds"])
        try Limits.checkRunsPerExperiment(variants: variants.count, seeds: seeds.count)
        if body["baseline"] != nil && body["baseline"]?.stringValue == nil {
            throw APIError.badRequest("baseline must be a variant name", field: "baseline")
        }
        let baseline = body["baseline"]?.stringValue ?? variants[0].name
        guard variants.contains(where: { $0.name == baseline }) else {
            throw APIError.badRequest(
                "baseline \(baseline) is not one of the variants (\(variants.map(\.name).joined(separator: ", ")))",
                field: "baseline")
        }
        (self.name, self.base, self.variants, self.seeds, self.baseline) = (name, base, variants, seeds, baseline)
    }

    /// One checked run spec per variant × seed. `check` runs the server's own checks on each (paths,
    /// the teacher run) and its errors are renamed to the part of the body that set the field.
    func runSpecs(presets: [PresetEntry], check: (RunSpec) throws -> Void) throws -> [(variant: Variant, spec: RunSpec)] {
        var out: [(Variant, RunSpec)] = []
        for (vi, v) in variants.enumerated() {
            var spec = base
            if let preset = v.preset, let p = presets.first(where: { $0.name == preset }) {
                spec = spec.merged(with: p.overlay(base))
            }
            spec = spec.merged(with: v.spec)
            // Name where a field came from: the variant's own spec if it sets it, else the base.
            func prefix(_ path: String) -> String { Self.sets(v.spec, path: path) ? "variants[\(vi)].spec." : "base." }
            for seed in seeds {
                let full = spec.merged(with: [
                    "experiment": .string(name), "seed": .number(Double(seed)), "name": .string("\(v.name)-seed\(seed)"),
                ])
                let runSpec: RunSpec
                do {
                    runSpec = try RunSpec.decode(full)
                } catch let e as SpecError {
                    var err = APIError(spec: e, prefix: prefix(e.field))
                    err.message = "variant \(v.name): " + err.message
                    throw err
                }
                do {
                    try check(runSpec)
                } catch var e as APIError where e.field?.hasPrefix("base.") != true {
                    let path = e.field ?? ""
                    e.field = prefix(path) + path
                    e.message = "variant \(v.name): " + prefix(path) + e.message
                    throw e
                }
                out.append((v, runSpec))
            }
        }
        return out
    }

    /// Whether `spec` holds a value at `path` (`optim.lr`, `averaging[0].decays[1]`, or a prefix of it).
    static func sets(_ spec: JSONValue, path: String) -> Bool {
        guard !path.isEmpty else { return false }
        var value = spec
        var matched = false
        for part in path.split(separator: ".") {
            let pieces = part.split(separator: "[")
            guard let name = pieces.first, let next = value[String(name)] else { return matched }
            value = next
            matched = true
            for index in pieces.dropFirst() {
                guard case .array(let items) = value, let i = Int(index.dropLast()), i < items.count else { return matched }
                value = items[i]
            }
        }
        return matched
    }

    static func parseVariants(_ value: JSONValue?, presets: [PresetEntry]) throws -> [Variant] {
        guard case .array(let items)? = value, !items.isEmpty else {
            throw APIError.badRequest(
                "variants is required: a non-empty list of preset names or {name, preset, spec}", field: "variants")
        }
        func unknown(_ name: String, field: String) -> APIError {
            APIError.badRequest(
                "\(field): unknown preset \(name) (known: \(presets.map(\.name).joined(separator: ", ")))", field: field)
        }
        func known(_ name: String) -> Bool { presets.contains { $0.name == name } }
        var out: [Variant] = []
        for (i, item) in items.enumerated() {
            let field = "variants[\(i)]"
            var v: Variant
            switch item {
            case .string(let preset):
                guard known(preset) else { throw unknown(preset, field: field) }
                v = Variant(name: preset, preset: preset, spec: [:])
            case .object(let o):
                for key in o.keys where !["name", "preset", "spec"].contains(key) {
                    throw APIError.badRequest(
                        "\(field).\(key) is not a field of a variant (name, preset, spec)", field: "\(field).\(key)")
                }
                let preset = o["preset"]?.stringValue
                if o["preset"] != nil, o["preset"] != .null, preset == nil {
                    throw APIError.badRequest("\(field).preset must be a preset name", field: "\(field).preset")
                }
                if let preset, !known(preset) { throw unknown(preset, field: "\(field).preset") }
                guard let name = o["name"]?.stringValue ?? preset, !name.isEmpty else {
                    throw APIError.badRequest("\(field).name is required (or a preset to name it after)", field: "\(field).name")
                }
                try Limits.checkName(name, field: "\(field).name")
                let spec = o["spec"] ?? [:]
                guard case .object = spec else {
                    throw APIError.badRequest("\(field).spec must be an object", field: "\(field).spec")
                }
                v = Variant(name: name, preset: preset, spec: spec)
            default:
                throw APIError.badRequest("\(field) must be a preset name or {name, preset, spec}", field: field)
            }
            if out.contains(where: { $0.name == v.name }) {
                throw APIError.badRequest("\(field): the variant name \(v.name) is used twice", field: field)
            }
            out.append(v)
        }
        return out
    }

    static func parseSeeds(_ value: JSONValue?) throws -> [UInt64] {
        guard let value else { return [0] }
        guard case .array(let items) = value, !items.isEmpty else {
            throw APIError.badRequest("seeds must be a non-empty list of integers", field: "seeds")
        }
        var out: [UInt64] = []
        for (i, s) in items.enumerated() {
            guard let x = s.doubleValue, x >= 0, x == x.rounded(), x <= Double(RunSpec.maxSeed) else {
                throw APIError.badRequest("seeds[\(i)] must be an integer in [0, 2^53]", field: "seeds[\(i)]")
            }
            if out.contains(UInt64(x)) {
                throw APIError.badRequest("seeds[\(i)]: seed \(Int(x)) appears twice", field: "seeds[\(i)]")
            }
            out.append(UInt64(x))
        }
        return out
    }
}
