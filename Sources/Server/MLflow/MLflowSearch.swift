import Foundation
import Store

/// `runs/search` and `experiments/search` over records: the parsed filter (``MLflowFilter``)
/// evaluated, `order_by` applied, and pages cut at an offset carried in an opaque token (MLflow's
/// own: base64 of `{"offset": N}`).
enum MLflowSearch {
    /// Parses a filter, answering MLflow's 400 with the position on a refusal.
    static func parse(_ filter: String, experiments: Bool = false) throws -> [MLflowFilter.Clause] {
        let clauses: [MLflowFilter.Clause]
        do {
            clauses = try MLflowFilter.parse(filter)
        } catch let e as MLflowFilter.ParseError {
            throw MLflowError.invalid("Invalid filter '\(filter)' \(e.description)")
        }
        if experiments {
            // Experiments have names and tags; the run attributes and metrics mean nothing there.
            for c in clauses where !(c.entity == .tag || (c.entity == .attribute && c.key == "run_name")) {
                throw MLflowError.invalid(
                    "Invalid filter '\(filter)': experiments are searched by name (attributes.name) and tags only")
            }
        }
        return clauses
    }

    static func token(_ offset: Int) -> String { Data(#"{"offset": \#(offset)}"#.utf8).base64EncodedString() }

    static func offset(_ token: String?) throws -> Int {
        guard let token, !token.isEmpty else { return 0 }
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let offset = json["offset"] as? Int, offset >= 0
        else { throw MLflowError.invalid("Invalid page token, could not base64-decode it as {\"offset\": N}: '\(token)'") }
        return offset
    }

    // MARK: Experiments

    /// `name` reads as the attribute `run_name` (the parser's one name attribute).
    static func matches(_ e: MLflowExperimentRecord, _ clauses: [MLflowFilter.Clause]) -> Bool {
        clauses.allSatisfy { c in
            let text = c.entity == .tag ? e.tags.first(where: { $0.key == c.key })?.value : e.name
            return compare(text: text, c)
        }
    }

    // MARK: Runs

    static func runs(
        _ all: [MLflowRunRecord], filter: [MLflowFilter.Clause], order: [MLflowFilter.OrderItem],
        view: MLflowService.ViewType
    ) -> [MLflowRunRecord] {
        let kept = all.filter { r in view.keeps(deleted: r.deleted) && filter.allSatisfy { matches(r, $0) } }
        // MLflow's default order: newest start first, then run id; missing values sort last either way.
        let items = order + [.init(entity: .attribute, key: "start_time", ascending: false)]
        // Each run's sort values once, not once per comparison (a metric's is a key split and a scan).
        let values = kept.map { r in items.map { sortValue(r, $0) } }
        let sorted = kept.indices.sorted { a, b in
            for (k, item) in items.enumerated() {
                let (x, y) = (values[a][k], values[b][k])
                switch (x, y) {
                case (nil, nil): continue
                case (nil, _): return false
                case (_, nil): return true
                case (let x?, let y?):
                    if x == y { continue }
                    return item.ascending ? x < y : y < x
                }
            }
            return kept[a].run.id < kept[b].run.id
        }
        return sorted.map { kept[$0] }
    }

    static func matches(_ r: MLflowRunRecord, _ c: MLflowFilter.Clause) -> Bool {
        switch c.entity {
        case .metric:
            let value = metric(r, c.key)
            switch c.op {
            case .isNull: return value == nil
            case .isNotNull: return value != nil
            default: break
            }
            guard let value, case .number(let x) = c.value else { return false }
            return compare(number: value, c.op, x)
        case .param: return compare(text: r.params.first(where: { $0.key == c.key })?.value, c)
        case .tag: return compare(text: r.tags.first(where: { $0.key == c.key })?.value, c)
        case .attribute:
            if MLflowFilter.numericAttributes.contains(c.key) {
                guard let v = c.key == "start_time" ? r.startTime : r.endTime, case .number(let x) = c.value else { return false }
                return compare(number: Double(v), c.op, x)
            }
            return compare(text: attribute(r, c.key), c)
        }
    }

    static func metric(_ r: MLflowRunRecord, _ mlflowKey: String) -> Double? {
        let (key, weights) = MLflowMetricKey.split(mlflowKey)
        return r.latest.first(where: { $0.key == key && $0.weights == weights })?.value
    }

    static func attribute(_ r: MLflowRunRecord, _ key: String) -> String? {
        switch key {
        case "run_id": String(r.run.id)
        case "run_name": r.run.name ?? ""
        case "status": MLflowStatus.name(r.run.status)
        case "user_id": r.userID
        case "artifact_uri": MLflowArtifacts.uri(run: r.run.id)
        case "lifecycle_stage": r.deleted ? "deleted" : "active"
        default: nil
        }
    }

    static func compare(number v: Double, _ op: MLflowFilter.Op, _ x: Double) -> Bool {
        switch op {
        case .eq: v == x
        case .ne: v != x
        case .lt: v < x
        case .le: v <= x
        case .gt: v > x
        case .ge: v >= x
        default: false
        }
    }

    /// A text comparison; a missing value matches only `IS NULL` (SQL's rule, as MLflow's store).
    static func compare(text: String?, _ c: MLflowFilter.Clause) -> Bool {
        if c.op == .isNull { return text == nil }
        if c.op == .isNotNull { return text != nil }
        guard let text else { return false }
        switch (c.op, c.value) {
        case (.eq, .string(let s)): return text == s
        case (.ne, .string(let s)): return text != s
        case (.like, .string(let s)): return MLflowFilter.like(text, s, ignoringCase: false)
        case (.ilike, .string(let s)): return MLflowFilter.like(text, s, ignoringCase: true)
        case (.isIn, .list(let items)): return items.contains(text)
        case (.notIn, .list(let items)): return !items.contains(text)
        default: return false
        }
    }

    enum SortValue: Comparable {
        case number(Double)
        case text(String)

        static func < (a: SortValue, b: SortValue) -> Bool {
            switch (a, b) {
            case (.number(let x), .number(let y)): x < y || (!x.isNaN && y.isNaN)  // NaN after every number
            case (.text(let x), .text(let y)): x < y
            case (.number, .text): true
            case (.text, .number): false
            }
        }

        static func == (a: SortValue, b: SortValue) -> Bool {
            switch (a, b) {
            case (.number(let x), .number(let y)): x == y || (x.isNaN && y.isNaN)
            case (.text(let x), .text(let y)): x == y
            default: false
            }
        }
    }

    static func sortValue(_ r: MLflowRunRecord, _ item: MLflowFilter.OrderItem) -> SortValue? {
        switch item.entity {
        case .metric: return metric(r, item.key).map { .number($0) }
        case .param: return r.params.first(where: { $0.key == item.key }).map { .text($0.value) }
        case .tag: return r.tags.first(where: { $0.key == item.key }).map { .text($0.value) }
        case .attribute:
            switch item.key {
            case "start_time": return .number(Double(r.startTime))
            case "end_time": return r.endTime.map { .number(Double($0)) }
            case "run_id": return .number(Double(r.run.id))
            default: return attribute(r, item.key).map { .text($0) }
            }
        }
    }
}

extension MLflowService {
    func searchRuns(_ a: MLflowArgs) async throws -> MLflowJSON {
        let view = try Self.viewType(a, "run_view_type")
        let limit = try Self.maxResults(a, default: 1000)
        let offset = try MLflowSearch.offset(try a.string("page_token"))
        let filter = try MLflowSearch.parse(try a.string("filter") ?? "")
        let order = try a.strings("order_by").map { text in
            do { return try MLflowFilter.parseOrder(text) } catch let e as MLflowFilter.ParseError {
                throw MLflowError.invalid("Invalid order_by clause '\(text)' \(e.description)")
            }
        }
        let texts = try a.strings("experiment_ids")
        let all = try await Blocking.run {
            let ids = try texts.map { try experimentID($0) }
            return try store.mlflowRuns(experiments: ids).map { $0.withPlacementTags() }
        }
        let found = MLflowSearch.runs(all, filter: filter, order: order, view: view)
        let page = Array(found.dropFirst(offset).prefix(limit))
        return MLflowJSON(
            bytes: MLflowRunsJSON.page(
                page.map(MLflowRunView.init),
                nextPageToken: offset + page.count < found.count ? MLflowSearch.token(offset + page.count) : nil))
    }
}
