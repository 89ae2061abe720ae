import Experiments
import Store

/// MLflow's response bodies (its `service.proto` messages as its server writes them in JSON): string
/// ids, millisecond times as numbers, NaN and ±Inf as the strings protobuf's JSON uses. Fields that
/// are unset are left out, as protobuf leaves them out.
struct MLflowKeyValue: Encodable {
    var key: String
    var value: String
}

struct MLflowExperimentView: Encodable {
    var experimentID: String
    var name: String
    var artifactLocation: String
    var lifecycleStage: String
    var lastUpdateTime: Int64
    var creationTime: Int64
    var tags: [MLflowKeyValue]

    enum CodingKeys: String, CodingKey {
        case experimentID = "experiment_id", name, artifactLocation = "artifact_location", lifecycleStage = "lifecycle_stage"
        case lastUpdateTime = "last_update_time", creationTime = "creation_time", tags
    }

    init(_ e: MLflowExperimentRecord) {
        experimentID = String(e.id)
        name = e.name
        artifactLocation = "mlflow-artifacts:/experiments/\(e.id)"
        lifecycleStage = e.deleted ? "deleted" : "active"
        lastUpdateTime = e.lastUpdateTime
        creationTime = e.creationTime
        tags = e.tags.map { MLflowKeyValue(key: $0.key, value: $0.value) }
    }
}

struct MLflowMetricView: Encodable {
    var key: String
    var value: Double
    var timestamp: Int64
    var step: Int64

    init(_ p: MetricPoint) {
        key = MLflowMetricKey.mlflowKey(p.key, weights: p.weights)
        value = p.value
        timestamp = MLflowMetricKey.milliseconds(p.time)
        step = p.step
    }
}

struct MLflowRunInfoView: Encodable {
    var runID: String
    var runName: String
    var experimentID: String
    var userID: String
    var status: String
    var startTime: Int64
    var endTime: Int64?
    var artifactURI: String
    var lifecycleStage: String

    enum CodingKeys: String, CodingKey {
        case runID = "run_id", runUUID = "run_uuid", runName = "run_name", experimentID = "experiment_id"
        case userID = "user_id", status, startTime = "start_time", endTime = "end_time", artifactURI = "artifact_uri"
        case lifecycleStage = "lifecycle_stage"
    }

    init(_ r: MLflowRunRecord) {
        runID = String(r.run.id)
        runName = r.run.name ?? ""
        experimentID = r.run.experimentID.map { String($0) } ?? ""
        userID = r.userID
        status = MLflowStatus.name(r.run.status)
        startTime = r.startTime
        endTime = r.endTime
        artifactURI = MLflowArtifacts.uri(run: r.run.id)
        lifecycleStage = r.deleted ? "deleted" : "active"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(runID, forKey: .runID)
        try c.encode(runID, forKey: .runUUID)
        try c.encode(runName, forKey: .runName)
        try c.encode(experimentID, forKey: .experimentID)
        try c.encode(userID, forKey: .userID)
        try c.encode(status, forKey: .status)
        try c.encode(startTime, forKey: .startTime)
        if let endTime { try c.encode(endTime, forKey: .endTime) }
        try c.encode(artifactURI, forKey: .artifactURI)
        try c.encode(lifecycleStage, forKey: .lifecycleStage)
    }
}

struct MLflowRunView: Encodable {
    struct Data: Encodable {
        var metrics: [MLflowMetricView]
        var params: [MLflowKeyValue]
        var tags: [MLflowKeyValue]
    }
    struct Inputs: Encodable {}

    var info: MLflowRunInfoView
    var data: Data
    var inputs = Inputs()

    init(_ r: MLflowRunRecord) {
        info = MLflowRunInfoView(r)
        data = Data(
            metrics: r.latest.map(MLflowMetricView.init), params: r.params.map { MLflowKeyValue(key: $0.key, value: $0.value) },
            tags: r.tags.map { MLflowKeyValue(key: $0.key, value: $0.value) })
    }
}

/// `{}`: what MLflow answers a write that returns nothing.
struct MLflowEmpty: Encodable {}

struct MLflowExperimentIDView: Encodable {
    var experimentID: String
    enum CodingKeys: String, CodingKey { case experimentID = "experiment_id" }
}

struct MLflowExperimentReply: Encodable { var experiment: MLflowExperimentView }
struct MLflowRunReply: Encodable { var run: MLflowRunView }

struct MLflowRunInfoReply: Encodable {
    var runInfo: MLflowRunInfoView
    enum CodingKeys: String, CodingKey { case runInfo = "run_info" }
}

/// A page of a list; the token only when more follow.
struct MLflowPage<Item: Encodable>: Encodable {
    var name: String
    var items: [Item]
    var nextPageToken: String?

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(items, forKey: Key(stringValue: name))
        if let nextPageToken { try c.encode(nextPageToken, forKey: Key(stringValue: "next_page_token")) }
    }
}

/// MLflow's run statuses and Polyak's.
enum MLflowStatus {
    static func name(_ s: RunStatus) -> String {
        switch s {
        case .queued: "SCHEDULED"
        case .running: "RUNNING"
        case .completed: "FINISHED"
        case .failed, .interrupted: "FAILED"
        case .cancelled: "KILLED"
        }
    }

    static func status(_ name: String) -> RunStatus? {
        switch name {
        case "RUNNING", "SCHEDULED": .running  // an external run is never queued: no scheduler starts it
        case "FINISHED": .completed
        case "FAILED": .failed
        case "KILLED": .cancelled
        default: nil
        }
    }
}

/// MLflow metric keys and Polyak's (key, weight set): `test/top1:ema@0.998` is the key `test/top1` of
/// the weight set `ema@0.998`; a key without a colon is of the set `raw` (and `KEY:raw` is `KEY`).
enum MLflowMetricKey {
    static func split(_ mlflowKey: String) -> (key: String, weights: String) {
        guard let colon = mlflowKey.lastIndex(of: ":") else { return (mlflowKey, "raw") }
        let key = String(mlflowKey[..<colon])
        let weights = String(mlflowKey[mlflowKey.index(after: colon)...])
        return key.isEmpty || weights.isEmpty ? (mlflowKey, "raw") : (key, weights)
    }

    static func mlflowKey(_ key: String, weights: String) -> String { weights == "raw" ? key : key + ":" + weights }

    static func milliseconds(_ seconds: Double) -> Int64 {
        let ms = (seconds * 1000).rounded()
        return ms.isFinite && abs(ms) < 9e18 ? Int64(ms) : 0
    }
}

extension MLflowRunRecord {
    /// The run with the tags a user filters on where it sits: a run Polyak trains has no MLflow tags
    /// (it takes no writes), so its placement is shown as `polyak.variant` and `polyak.seed`, made up
    /// on every read and never stored. A shared run answers for several variants: its `polyak.variant`
    /// names them all joined by `+` (`none+ema`), as the client commands do.
    func withPlacementTags() -> MLflowRunRecord {
        guard !run.external else { return self }
        var placement: [(key: String, value: String)] = [(TrackingStore.seedTag, String(run.seed))]
        if !run.variants.isEmpty { placement.append((TrackingStore.variantTag, run.variants.joined(separator: "+"))) }
        var r = self
        r.tags = (tags.filter { t in !placement.contains { $0.key == t.key } } + placement).sorted { $0.key < $1.key }
        return r
    }
}
