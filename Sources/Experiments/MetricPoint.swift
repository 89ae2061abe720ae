/// One metric point: what the trainer reports (`TrainerEvent.metric`), what the ingestion API takes
/// and what the store keeps. `value` may be NaN or ±Infinity and comes back exactly as given;
/// `epoch` is absent for external runs that do not count epochs.
public struct MetricPoint: Sendable, Equatable {
    public var key: String
    public var weights: String
    public var step: Int64
    public var epoch: Int64?
    public var value: Double
    public var time: Double

    public init(key: String, weights: String = "raw", step: Int64, epoch: Int64? = nil, value: Double, time: Double) {
        self.key = key
        self.weights = weights
        self.step = step
        self.epoch = epoch
        self.value = value
        self.time = time
    }

    public static func == (a: MetricPoint, b: MetricPoint) -> Bool {
        a.key == b.key && a.weights == b.weights && a.step == b.step && a.epoch == b.epoch
            && a.value.sameValue(as: b.value) && a.time == b.time
    }
}

extension Double {
    /// Equality where NaN equals NaN: what "the same value again" means for idempotent batches.
    public func sameValue(as other: Double) -> Bool {
        (isNaN && other.isNaN) || self == other
    }
}
