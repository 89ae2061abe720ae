import Experiments
import Foundation
import PolyakNetwork

extension Trainer {
    /// After the last epoch: each weight set's final evaluation, grid and export, then (with
    /// `resolution.finetune`) the same for its FixRes fine-tuned copy, the post-hoc EMA-length
    /// sweep (`Trainer+PostHocSweep.swift`), and the summary.
    func finish(_ run: TrainingSession) throws -> RunOutcome {
        let imagesPerSecond = run.imagesPerSecond(seconds: run.trainingSeconds)
        // The sets of the last epoch are reused as they are; a resumed run that had nothing left
        // to train prepares them now.
        let sets = run.lastSets ?? weightSets(run)
        var final: [String: TrainerEvent.Summary.Evaluation] = [:]
        var exports: [String: String] = [:]
        let costs = run.costs
        for (name, state) in sets {
            let e = run.lastEvaluation[name] ?? timedEvaluation(run, name: name, state: state)
            final[name] = .init(top1: e.top1, top5: e.top5, loss: e.loss)
            var clock = CostClock.now()
            reportGrid(run, name: name, state: state, stage: .base)
            clock = costs.add(since: clock, \.grid, to: name)
            let file = name == "raw" ? "final.safetensors" : "\(name).safetensors"
            try folder.export(
                state.stateDict(metadata: ["weights": name, "step": String(run.step), "spec": spec.json().text()]),
                name: file)
            costs.add(since: clock, \.export, to: name)
            exports[name] = file
        }
        if let ft = spec.resolution.finetune {
            var clock = CostClock.now()
            let fixRes = FixRes(spec: spec, model: model, workers: workers, images: run.data.original)
            costs.share(since: clock, \.fixRes, among: sets.map(\.name))
            for (name, state) in sets {
                clock = CostClock.now()
                defer { costs.add(since: clock, \.fixRes, to: name) }
                let tuned = fixRes.finetune(state, ft)
                let e = run.evaluator.evaluate(tuned, resize: spec.resolution.testSize, crop: spec.resolution.testSize)
                final[name + "/finetuned"] = .init(top1: e.top1, top5: e.top5, loss: e.loss)
                reportGrid(run, name: name, state: tuned, stage: .finetuned)
                let file = (name == "raw" ? "final" : name) + ".finetuned.safetensors"
                try folder.export(
                    tuned.stateDict(metadata: ["weights": name, "stage": "finetuned", "spec": spec.json().text()]),
                    name: file)
                exports[name + "/finetuned"] = file
            }
        }
        folder.pruneCheckpoints(keep: spec.checkpoints.keep)
        sweepPostHoc(run)
        let timing = costs.timing()
        reportSummary(
            run, status: .completed, reason: nil, imagesPerSecond: imagesPerSecond, final: final, exports: exports,
            timing: timing)
        return RunOutcome(status: .completed, reason: nil)
    }
}
