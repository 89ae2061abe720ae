/// MLflow's search grammar, parsed without evaluating anything: `runs/search`'s `filter` (an AND of
/// comparisons on `metrics.`, `params.`, `tags.` and `attributes.`) and its `order_by` items.
///
///     metrics.`test/top1` > 0.9 AND params.lr = '0.1' AND tags.polyak.variant IN ('ema', 'swa')
///     attributes.run_name ILIKE '%seed%' AND attributes.start_time >= 1700000000000
///
/// A name is bare (letters, digits and `_ . / - : @`), or quoted with backticks or double quotes; an
/// identifier without an entity is an attribute. Every refusal names the character position (0-based).
enum MLflowFilter {
    enum Entity: String, Sendable { case metric = "metrics", param = "params", tag = "tags", attribute = "attributes" }

    enum Op: String, Sendable {
        case eq = "=", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
        case like = "LIKE", ilike = "ILIKE", isIn = "IN", notIn = "NOT IN", isNull = "IS NULL", isNotNull = "IS NOT NULL"
    }

    enum Value: Equatable, Sendable {
        case number(Double)
        case string(String)
        case list([String])
        case none
    }

    struct Clause: Equatable, Sendable {
        var entity: Entity
        var key: String
        var op: Op
        var value: Value
    }

    struct OrderItem: Equatable, Sendable {
        var entity: Entity
        var key: String
        var ascending: Bool
    }

    struct ParseError: Error, Equatable, CustomStringConvertible {
        var position: Int
        var message: String
        var description: String { "at position \(position): \(message)" }
    }

    /// Attributes a filter may name; the numeric ones compare as numbers (milliseconds).
    static let stringAttributes: Set<String> = ["run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"]
    static let numericAttributes: Set<String> = ["start_time", "end_time"]

    /// The clauses of `text`; an empty or blank filter matches every run.
    static func parse(_ text: String) throws -> [Clause] {
        var p = Parser(text)
        p.skipSpace()
        if p.atEnd { return [] }
        var clauses: [Clause] = []
        repeat {
            p.skipSpace()
            clauses.append(try p.clause())
            p.skipSpace()
        } while p.keyword("AND")
        p.skipSpace()
        if !p.atEnd { throw p.error("expected AND or the end of the filter, got \(p.rest(12))") }
        return clauses
    }

    /// One `order_by` item: `metrics.loss`, `attributes.start_time DESC`, `params.lr ASC`.
    static func parseOrder(_ text: String) throws -> OrderItem {
        var p = Parser(text)
        p.skipSpace()
        let (entity, key, _) = try p.identifier()
        p.skipSpace()
        var ascending = true
        if p.keyword("DESC") {
            ascending = false
        } else {
            _ = p.keyword("ASC")
        }
        p.skipSpace()
        if !p.atEnd { throw p.error("expected ASC, DESC or the end of the order_by item, got \(p.rest(12))") }
        return OrderItem(entity: entity, key: key, ascending: ascending)
    }

    /// SQL's LIKE: `%` any run of characters, `_` one character; `ignoringCase` for ILIKE.
    static func like(_ text: String, _ pattern: String, ignoringCase: Bool) -> Bool {
        let t = Array((ignoringCase ? text.lowercased() : text).unicodeScalars)
        let p = Array((ignoringCase ? pattern.lowercased() : pattern).unicodeScalars)
        // Greedy matcher with one backtrack point (the last %): linear in practice, never exponential.
        var (i, j, star, mark) = (0, 0, -1, 0)
        while i < t.count {
            if j < p.count && (p[j] == "_" || (p[j] != "%" && p[j] == t[i])) {
                i += 1
                j += 1
            } else if j < p.count && p[j] == "%" {
                star = j
                mark = i
                j += 1
            } else if star >= 0 {
                j = star + 1
                mark += 1
                i = mark
            } else {
                return false
            }
        }
        while j < p.count && p[j] == "%" { j += 1 }
        return j == p.count
    }
}

/// The scanner under ``MLflowFilter``: positions are offsets in Unicode scalars of the text.
private struct Parser {
    let s: [Unicode.Scalar]
    var i = 0

    init(_ text: String) { s = Array(text.unicodeScalars) }

    var atEnd: Bool { i >= s.count }

    func error(_ message: String, at position: Int? = nil) -> MLflowFilter.ParseError {
        MLflowFilter.ParseError(position: position ?? i, message: message)
    }

    /// Up to `n` characters from here, quoted, for messages.
    func rest(_ n: Int) -> String {
        atEnd ? "the end" : "'" + String(String.UnicodeScalarView(s[i..<min(s.count, i + n)])) + "'"
    }

    mutating func skipSpace() {
        while i < s.count && (s[i] == " " || s[i] == "\t" || s[i] == "\n" || s[i] == "\r") { i += 1 }
    }

    static func isNameCharacter(_ c: Unicode.Scalar) -> Bool {
        c.properties.isAlphabetic || c.properties.numericType != nil || "_./-:@".unicodeScalars.contains(c)
    }

    /// A case-insensitive keyword followed by a non-name character; consumed only when it matches.
    mutating func keyword(_ word: String) -> Bool {
        let w = Array(word.unicodeScalars)
        guard i + w.count <= s.count else { return false }
        for (k, c) in w.enumerated() where s[i + k].properties.uppercaseMapping != String(c) { return false }
        if i + w.count < s.count && Self.isNameCharacter(s[i + w.count]) { return false }
        i += w.count
        return true
    }

    /// A name: bare, or between backticks or double quotes (no escapes inside, as MLflow's).
    mutating func name(what: String) throws -> String {
        let start = i
        if !atEnd && (s[i] == "`" || s[i] == "\"") {
            let quote = s[i]
            i += 1
            let begin = i
            while i < s.count && s[i] != quote { i += 1 }
            if atEnd { throw error("the \(what) opened with \(quote) at position \(start) is never closed", at: start) }
            let text = String(String.UnicodeScalarView(s[begin..<i]))
            i += 1
            if text.isEmpty { throw error("the \(what) is empty", at: start) }
            return text
        }
        while i < s.count && Self.isNameCharacter(s[i]) { i += 1 }
        if i == start { throw error("expected a \(what), got \(rest(12))") }
        return String(String.UnicodeScalarView(s[start..<i]))
    }

    /// `entity.key`, or a bare attribute name.
    mutating func identifier() throws -> (MLflowFilter.Entity, String, Int) {
        let start = i
        let first: String
        if !atEnd && (s[i] == "`" || s[i] == "\"") {
            first = try name(what: "attribute name")
            return (.attribute, try attribute(first, at: start), start)
        }
        // The entity is the bare word up to the first dot; the rest (dots included) is the key.
        while i < s.count && Self.isNameCharacter(s[i]) && s[i] != "." { i += 1 }
        first = String(String.UnicodeScalarView(s[start..<i]))
        if first.isEmpty { throw error("expected metrics., params., tags. or attributes. followed by a name, got \(rest(12))") }
        guard i < s.count && s[i] == "." else { return (.attribute, try attribute(first, at: start), start) }
        let entity: MLflowFilter.Entity
        switch first.lowercased() {
        case "metrics", "metric": entity = .metric
        case "params", "param", "parameters", "parameter": entity = .param
        case "tags", "tag": entity = .tag
        case "attributes", "attribute", "attr", "run": entity = .attribute
        default:
            throw error("'\(first)' is not metrics, params, tags or attributes", at: start)
        }
        i += 1
        let keyStart = i
        let key = try name(what: "\(entity.rawValue) name")
        return (entity, entity == .attribute ? try attribute(key, at: keyStart) : key, start)
    }

    func attribute(_ name: String, at position: Int) throws -> String {
        // `created` is MLflow's alias of start_time; `name` reads as run_name (experiments are searched by it).
        let key = name == "created" || name == "Created" ? "start_time" : name == "name" ? "run_name" : name
        guard MLflowFilter.stringAttributes.contains(key) || MLflowFilter.numericAttributes.contains(key) else {
            let known = (MLflowFilter.stringAttributes.union(MLflowFilter.numericAttributes)).sorted().joined(separator: ", ")
            throw error("'\(name)' is not an attribute runs can be searched by (\(known))", at: position)
        }
        return key
    }

    mutating func op() throws -> MLflowFilter.Op {
        let start = i
        for symbol in ["!=", "<=", ">=", "=", "<", ">"] where matches(symbol) {
            i += symbol.unicodeScalars.count
            return MLflowFilter.Op(rawValue: symbol)!
        }
        if keyword("LIKE") { return .like }
        if keyword("ILIKE") { return .ilike }
        if keyword("IN") { return .isIn }
        if keyword("NOT") {
            skipSpace()
            if keyword("IN") { return .notIn }
            throw error("expected IN after NOT, got \(rest(12))")
        }
        if keyword("IS") {
            skipSpace()
            if keyword("NULL") { return .isNull }
            if keyword("NOT") {
                skipSpace()
                if keyword("NULL") { return .isNotNull }
            }
            throw error("expected NULL or NOT NULL after IS, got \(rest(12))")
        }
        throw error("expected a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL), got \(rest(12))", at: start)
    }

    func matches(_ symbol: String) -> Bool {
        let w = Array(symbol.unicodeScalars)
        return i + w.count <= s.count && Array(s[i..<i + w.count]) == w
    }

    /// A quoted string ('…' or "…", a doubled quote stands for itself).
    mutating func string() throws -> String {
        let start = i
        guard !atEnd, s[i] == "'" || s[i] == "\"" else { throw error("expected a quoted string, got \(rest(12))") }
        let quote = s[i]
        i += 1
        var out = String.UnicodeScalarView()
        while true {
            if atEnd { throw error("the string opened at position \(start) is never closed", at: start) }
            if s[i] == quote {
                if i + 1 < s.count && s[i + 1] == quote {
                    out.append(quote)
                    i += 2
                    continue
                }
                i += 1
                return String(out)
            }
            out.append(s[i])
            i += 1
        }
    }

    mutating func number() throws -> Double {
        let start = i
        while i < s.count && ("0123456789+-.eE".unicodeScalars.contains(s[i])) { i += 1 }
        let text = String(String.UnicodeScalarView(s[start..<i]))
        guard !text.isEmpty, let x = Double(text), x.isFinite else {
            i = start
            throw error("expected a number, got \(rest(12))")
        }
        return x
    }

    mutating func clause() throws -> MLflowFilter.Clause {
        let (entity, key, start) = try identifier()
        skipSpace()
        let opStart = i
        let op = try op()
        skipSpace()
        let numeric = entity == .metric || (entity == .attribute && MLflowFilter.numericAttributes.contains(key))
        let valueStart = i
        func refuse(_ what: String) -> MLflowFilter.ParseError {
            error("\(op.rawValue) does not apply to \(what) (clause at position \(start))", at: opStart)
        }
        switch op {
        case .isNull, .isNotNull:
            guard entity != .attribute else { throw refuse("attributes") }
            return .init(entity: entity, key: key, op: op, value: .none)
        case .isIn, .notIn:
            guard entity == .attribute && !numeric else {
                throw refuse(entity == .attribute ? "the number \(key)" : entity.rawValue)
            }
            guard !atEnd, s[i] == "(" else { throw error("expected ( to open the list of \(op.rawValue)") }
            i += 1
            var items: [String] = []
            repeat {
                skipSpace()
                items.append(try string())
                skipSpace()
            } while consume(",")
            guard consume(")") else { throw error("expected , or ) in the list opened at position \(valueStart)") }
            return .init(entity: entity, key: key, op: op, value: .list(items))
        case .like, .ilike:
            if numeric { throw refuse(entity == .metric ? "metrics" : "the number \(key)") }
            return .init(entity: entity, key: key, op: op, value: .string(try string()))
        case .lt, .le, .gt, .ge:
            if !numeric { throw refuse(entity == .attribute ? "the text \(key)" : entity.rawValue) }
            return .init(entity: entity, key: key, op: op, value: .number(try number()))
        case .eq, .ne:
            return .init(entity: entity, key: key, op: op, value: numeric ? .number(try number()) : .string(try string()))
        }
    }

    mutating func consume(_ c: Unicode.Scalar) -> Bool {
        guard !atEnd, s[i] == c else { return false }
        i += 1
        return true
    }
}
