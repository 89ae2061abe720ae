import Experiments

/// Where a run's time goes, for the cost columns: the parts every weight set shares (setup,
/// training steps, teacher forwards, checkpoints) and each weight set's own (evaluation, grid,
/// averaging updates, BN recomputation, FixRes, export), each on a ``CostClock``. A checkpoint
/// carries them (its `timing` metadata), so a resumed run reports the time of every process;
/// the work of an epoch cut short by a crash is not in any checkpoint and is not counted.
final class RunCosts {
    struct SetClocks {
        var eval = CostClock(), grid = CostClock(), averaging = CostClock(), batchNorm = CostClock()
        var fixRes = CostClock(), export = CostClock(), postHoc = CostClock()
    }

    var setup = CostClock(), train = CostClock(), teacher = CostClock(), checkpoint = CostClock()
    /// SWA's update_bn alone, for the summary's older `swa_bn_s`.
    var updateBN = CostClock()
    var sets: [String: SetClocks] = [:]
    /// The wall time of the processes that trained this run before this one.
    var earlierWallSeconds = 0.0
    /// When this process began the run.
    let processStart: UInt64

    init(processStart: UInt64) {
        self.processStart = processStart
    }

    /// Adds the time since `start` to `part` of one weight set; returns now.
    @discardableResult
    func add(since start: UInt64, _ part: WritableKeyPath<SetClocks, CostClock>, to name: String) -> UInt64 {
        sets[name, default: SetClocks()][keyPath: part].add(since: start)
    }

    /// Adds the time since `start` to `part` of each of `names` in equal shares (one EMA pass
    /// updates all its decays; nobody can say which decay took which nanosecond); returns now.
    @discardableResult
    func share(since start: UInt64, _ part: WritableKeyPath<SetClocks, CostClock>, among names: [String]) -> UInt64 {
        let end = CostClock.now()
        guard !names.isEmpty else { return end }
        let each = (end &- start) / UInt64(names.count)
        for name in names { sets[name, default: SetClocks()][keyPath: part].add(nanoseconds: each) }
        return end
    }

    var wallSeconds: Double { earlierWallSeconds + Double(CostClock.now() &- processStart) / 1e9 }

    /// The summary's `timing`. Parts are rounded down to the microsecond and the wall time up,
    /// so the parts never add up to more than the wall time.
    func timing() -> TrainerEvent.Summary.Timing {
        func down(_ c: CostClock) -> Double { Double(c.nanoseconds / 1000) / 1e6 }
        let perWeights = sets.mapValues { s in
            TrainerEvent.Summary.Timing.WeightSet(
                evalSeconds: down(s.eval), gridSeconds: down(s.grid), averagingSeconds: down(s.averaging),
                batchNormSeconds: down(s.batchNorm), fixResSeconds: down(s.fixRes), exportSeconds: down(s.export),
                postHocSeconds: down(s.postHoc))
        }
        return .init(
            trainSeconds: down(train), evalSeconds: perWeights.mapValues(\.evalSeconds), batchNormSeconds: down(updateBN),
            split: .init(
                wallSeconds: (wallSeconds * 1e6).rounded(.up) / 1e6, setupSeconds: down(setup), teacherSeconds: down(teacher),
                checkpointSeconds: down(checkpoint), perWeights: perWeights))
    }

    /// Continues from a checkpoint's `timing`; one without a split (none is written) leaves zeros.
    func restore(_ t: TrainerEvent.Summary.Timing) {
        guard let split = t.split else { return }
        train = CostClock(seconds: t.trainSeconds)
        updateBN = CostClock(seconds: t.batchNormSeconds)
        setup = CostClock(seconds: split.setupSeconds)
        teacher = CostClock(seconds: split.teacherSeconds)
        checkpoint = CostClock(seconds: split.checkpointSeconds)
        earlierWallSeconds = split.wallSeconds
        sets = split.perWeights.mapValues { w in
            SetClocks(
                eval: CostClock(seconds: w.evalSeconds), grid: CostClock(seconds: w.gridSeconds),
                averaging: CostClock(seconds: w.averagingSeconds), batchNorm: CostClock(seconds: w.batchNormSeconds),
                fixRes: CostClock(seconds: w.fixResSeconds), export: CostClock(seconds: w.exportSeconds),
                postHoc: CostClock(seconds: w.postHocSeconds))
        }
    }

    /// The checkpoint metadata key that carries the costs so far.
    static let metadataKey = "timing"
}
