/// SGD and its learning-rate schedule (`optim` in a run spec).
public struct OptimSpec: Equatable, Sendable {
    /// `schedule`: `cosine` (per step to 0, after the linear warmup), `step` (× `gamma` at each
    /// milestone epoch) or `constant`.
    public enum Schedule: String, CaseIterable, Sendable {
        case cosine, step, constant
    }

    /// `epochs` ≥ 1.
    public var epochs: Int
    /// `batch_size` ≥ 1; the last incomplete batch of an epoch is dropped.
    public var batchSize: Int
    /// `lr` > 0: peak learning rate.
    public var lr: Double
    /// `momentum` in [0, 1).
    public var momentum: Double
    /// `nesterov`.
    public var nesterov: Bool
    /// `weight_decay` ≥ 0, on conv and linear weights only.
    public var weightDecay: Double
    /// `schedule`.
    public var schedule: Schedule
    /// `warmup_epochs` in [0, epochs]: linear per-step warmup from 0 to `lr` (may be fractional).
    public var warmupEpochs: Double
    /// `milestones`: epochs (1 ≤ m < epochs, strictly increasing) where `step` multiplies the
    /// learning rate by `gamma`; required and non-empty for `step`, ignored otherwise.
    public var milestones: [Int]
    /// `gamma` > 0: the `step` schedule's factor.
    public var gamma: Double
    /// `label_smoothing` in [0, 1).
    public var labelSmoothing: Double

    public init(
        epochs: Int = 10, batchSize: Int = 128, lr: Double = 0.1, momentum: Double = 0.9,
        nesterov: Bool = true, weightDecay: Double = 5e-4, schedule: Schedule = .cosine,
        warmupEpochs: Double = 1, milestones: [Int] = [], gamma: Double = 0.1, labelSmoothing: Double = 0
    ) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.schedule = schedule
        self.warmupEpochs = warmupEpochs
        self.milestones = milestones
        self.gamma = gamma
        self.labelSmoothing = labelSmoothing
    }

    /// Reads `optim`; a missing field takes the default `init` declares (the one place it is written).
    static func read(_ r: SpecReader) throws -> OptimSpec {
        let defaults = OptimSpec()
        let epochs = try r.int("epochs", default: defaults.epochs, .atLeast(1))
        let schedule = try r.choice("schedule", default: defaults.schedule)
        let milestones =
            try r.list("milestones") { v, path in
                try SpecReader.int(v, path, .closedOpen(1, Double(epochs)))
            } ?? defaults.milestones
        for i in milestones.indices.dropFirst() where milestones[i] <= milestones[i - 1] {
            throw SpecError(
                field: SpecReader.path(r.path("milestones"), index: i),
                message: "must be greater than the milestone before it (\(milestones[i - 1])), got \(milestones[i])")
        }
        if schedule == .step && milestones.isEmpty {
            throw SpecError(field: r.path("milestones"), message: "must list at least one epoch for the step schedule")
        }
        return OptimSpec(
            epochs: epochs,
            batchSize: try r.int("batch_size", default: defaults.batchSize, .atLeast(1)),
            lr: try r.double("lr", default: defaults.lr, .greaterThan(0)),
            momentum: try r.double("momentum", default: defaults.momentum, .closedOpen(0, 1)),
            nesterov: try r.bool("nesterov", default: defaults.nesterov),
            weightDecay: try r.double("weight_decay", default: defaults.weightDecay, .atLeast(0)),
            schedule: schedule,
            warmupEpochs: try r.double("warmup_epochs", default: defaults.warmupEpochs, .closed(0, Double(epochs))),
            milestones: milestones,
            gamma: try r.double("gamma", default: defaults.gamma, .greaterThan(0)),
            labelSmoothing: try r.double("label_smoothing", default: defaults.labelSmoothing, .closedOpen(0, 1)))
    }

    /// The full `optim` object.
    public func json() -> JSONValue {
        [
            "epochs": .number(Double(epochs)), "batch_size": .number(Double(batchSize)), "lr": .number(lr),
            "momentum": .number(momentum), "nesterov": .bool(nesterov), "weight_decay": .number(weightDecay),
            "schedule": .string(schedule.rawValue), "warmup_epochs": .number(warmupEpochs),
            "milestones": .array(milestones.map { .number(Double($0)) }), "gamma": .number(gamma),
            "label_smoothing": .number(labelSmoothing),
        ]
    }
}
