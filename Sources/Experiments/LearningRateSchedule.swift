import Foundation

/// The learning rate at every optimizer step: linear per-step warmup over `warmup_epochs`, then
/// cosine to 0 (per step), step decay at `milestones` (epochs), or constant — the reference
/// script's recipe: `peak·(s+1)/W` while s < W, then `peak·½(1 + cos(π(s − W)/(T − W)))`.
public struct LearningRateSchedule: Sendable, Equatable {
    public let peak: Double
    public let kind: OptimSpec.Schedule
    public let stepsPerEpoch: Int
    public let totalSteps: Int
    public let warmupSteps: Int
    public let milestones: [Int]
    public let gamma: Double

    public init(optim: OptimSpec, stepsPerEpoch: Int) {
        peak = optim.lr
        kind = optim.schedule
        self.stepsPerEpoch = stepsPerEpoch
        totalSteps = optim.epochs * stepsPerEpoch
        warmupSteps = Int((optim.warmupEpochs * Double(stepsPerEpoch)).rounded())
        milestones = optim.milestones
        gamma = optim.gamma
    }

    /// The rate for optimizer step `step` (0-based: the first step is 0).
    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step + 1) / Double(warmupSteps) }
        switch kind {
        case .constant:
            return peak
        case .cosine:
            let t = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            return peak * 0.5 * (1 + cos(Double.pi * t))
        case .step:
            let epoch = step / max(1, stepsPerEpoch)
            return peak * pow(gamma, Double(milestones.filter { epoch >= $0 }.count))
        }
    }
}
