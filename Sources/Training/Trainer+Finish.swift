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
        for (name, state) in sets {
            let e = run.lastEvaluation[name] ?? timedEvaluation(run, name: name, state: state)
            final[name] = .init(top1: e.top1, top5: e.top5, loss: e.loss)
            reportGrid(run, name: name, state: state, stage: .base)
            let file = name == "raw" ? "final.safetensors" : "\(name).safetensors"
            try folder.export(
                state.stateDict(metadata: ["weights": name, "step": String(run.step), "spec": spec.json().text()]),
                name: file)
            exports[name] = file
        }
        if let ft = spec.resolution.finetune {
            let fixRes = FixRes(spec: spec, model: model, workers: workers, images: run.data.original)
            for (name, state) in sets {
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
        let timing = TrainerEvent.Summary.Timing(
            trainSeconds: round2(run.trainingSeconds), evalSeconds: run.evalSeconds.mapValues(round2),
            batchNormSeconds: round2(run.batchNormSeconds))
        reportSummary(
            run, status: .completed, reason: nil, imagesPerSecond: imagesPerSecond, final: final, exports: exports,
            timing: timing)
        return RunOutcome(status: .completed, reason: nil)
    }
}
