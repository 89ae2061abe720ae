import Experiments
import Foundation
import Kernels
import PolyakNetwork

/// Knowledge distillation (`distillation` in the spec): a frozen teacher network whose softened
/// logits the student learns from, mixed with the labels by `alpha`.
final class Distillation {
    let spec: DistillationSpec
    private let exec: ResNetExecutor
    private let state: ModelState

    /// Loads the teacher: a safetensors state dict that must be the declared model. Any mismatch
    /// is bad input, found before the first step.
    init(_ spec: DistillationSpec, batch: Int, size: Int, workers: Workers) throws {
        guard let teacher = spec.teacher else {
            throw TrainingError.badInput("distillation.teacher: give {path, model} (the server fills it in from teacher_run)")
        }
        do {
            let file = try SafetensorsFile.read(from: teacher.path)
            let declared = ResNetMini(width: teacher.model.width, depth: teacher.model.depth)
            try declared.check(shapes: file.shapes)
            let state = ModelState(layout: declared.layout)
            try state.load(stateDict: file)
            self.state = state
            exec = ResNetExecutor(model: declared, batch: batch, height: size, width: size, trainable: false, workers: workers)
        } catch {
            throw TrainingError.badInput(
                "distillation.teacher: \(teacher.path) does not hold the declared resnet-mini width \(teacher.model.width) depth \(teacher.model.depth): \(error)"
            )
        }
        self.spec = spec
    }

    /// One forward + backward of the student on the batch already in `student`'s input, against
    /// the teacher's logits on the same images. Returns the loss summed over the batch and the
    /// student's correct predictions, like `ResNetExecutor.trainingStep`. The teacher's forward
    /// is timed on `teacherClock` (the run's `teacher_s`).
    func trainingStep(
        _ student: ResNetExecutor, _ state: ModelState, classes: Int,
        labelSmoothing: Float, teacherClock: inout CostClock
    ) -> (lossSum: Double, correct: Int) {
        let clock = CostClock.now()
        exec.copyInput(from: student)
        exec.forward(self.state, training: false)
        teacherClock.add(since: clock)
        student.forward(state, training: true)
        let n = student.batch
        let correct = SoftmaxCrossEntropy.forward(logits: student.logits, labels: student.labels, n: n, classes: classes).correct
        var total = 0.0
        student.setLogitGradient { d in
            total =
                AveragingMath.distillation(
                    student: student.logits, teacher: exec.logits, labels: student.labels, n: n, classes: classes,
                    temperature: spec.temperature, alpha: spec.alpha, labelSmoothing: Double(labelSmoothing), dStudent: d
                ).total
        }
        student.backward(state)
        return (total * Double(n), correct)
    }
}
