import Experiments
import Foundation
import PolyakNetwork

/// The lines a run writes, as ``TrainerEvent``s, with the rounding `spec/service.md` shows.
extension Trainer {
    /// `train/loss`, `train/top1` and `train/lr` over the images of the last epoch or `log_every` window.
    func reportTraining(_ run: TrainingSession, loss: Double, correct: Int, images: Int, epoch: Int) {
        events.metric("train/loss", step: run.step, epoch: epoch, value: loss / Double(images))
        events.metric("train/top1", step: run.step, epoch: epoch, value: Double(correct) / Double(images))
        events.metric("train/lr", step: run.step, epoch: epoch, value: run.learningRate)
    }

    func reportTest(_ e: Evaluation, step: Int, epoch: Int, weights: String) {
        events.metric("test/loss", step: step, epoch: epoch, value: e.loss, weights: weights)
        events.metric("test/top1", step: step, epoch: epoch, value: e.top1, weights: weights)
        events.metric("test/top5", step: step, epoch: epoch, value: e.top5, weights: weights)
    }

    /// Throughput and ETA from the steps this process trained in `seconds` of training time.
    func reportProgress(_ run: TrainingSession, epoch: Int, seconds: Double) {
        let stepsPerSecond = Double(run.step - run.stepsAtStart) / max(seconds, 1e-9)
        let total = run.plan.totalSteps
        events.emit(
            .progress(
                .init(
                    epoch: epoch, step: run.step, totalSteps: total,
                    imagesPerSecond: (stepsPerSecond * Double(run.batch) * 10).rounded() / 10,
                    etaSeconds: stepsPerSecond > 0 ? (Double(total - run.step) / stepsPerSecond * 10).rounded() / 10 : 0,
                    time: EventSink.now)))
    }

    /// One line per cell of `resolution.test_grid`, when the spec has one.
    func reportGrid(_ run: TrainingSession, name: String, state: ModelState, stage: TrainerEvent.GridEvaluation.Stage) {
        guard let grid = spec.resolution.testGrid else { return }
        for cell in grid.cells {
            let e = run.evaluator.evaluate(state, resize: cell.resize, crop: cell.crop, keep: false)
            events.emit(
                .grid(
                    .init(
                        weights: name, stage: stage, trainSize: spec.resolution.trainSize, resize: cell.resize,
                        crop: cell.crop, top1: e.top1, top5: e.top5, loss: e.loss)))
        }
    }

    func reportSummary(
        _ run: TrainingSession, status: TrainerEvent.Summary.Status, reason: String?, imagesPerSecond: Double,
        final: [String: TrainerEvent.Summary.Evaluation] = [:], exports: [String: String] = [:],
        timing: TrainerEvent.Summary.Timing? = nil
    ) {
        events.emit(
            .summary(
                .init(
                    status: status, reason: reason, steps: run.step,
                    wallSeconds: (Date().timeIntervalSince(run.started) * 100).rounded() / 100,
                    imagesPerSecond: (imagesPerSecond * 10).rounded() / 10, final: final, exports: exports, timing: timing)))
    }
}
