import Foundation

/// One line of what `polyak train` writes on standard output (`spec/service.md`, "What `polyak
/// train` writes"): the whole vocabulary between the trainer and the server. Its JSON form is
/// written and read in `TrainerEventJSON.swift` and nowhere else.
///
/// A line is a compact JSON object with keys sorted (``JSONValue/text(pretty:)``), a `type`, and
/// the fields of its case. Non-finite numbers travel as the strings `"NaN"`, `"Infinity"` and
/// `"-Infinity"`; whole numbers are written without a fraction. Decoding is strict about the
/// fields a case needs (a missing or mistyped one is a ``TrainerEventError`` naming it) and ignores
/// fields it does not know, so a newer trainer's additions do not stop an older server.
public enum TrainerEvent: Equatable, Sendable {
    /// `{"type":"metric","key":…,"step":…,"epoch":…,"value":…,"time":…,"weights":…}`; the same
    /// ``MetricPoint`` the ingestion API takes and the store keeps.
    case metric(MetricPoint)
    case progress(Progress)
    case warning(Warning)
    case checkpoint(CheckpointSaved)
    case grid(GridEvaluation)
    case summary(Summary)
    case status(StatusChange)
    /// One synthesised EMA length of `polyak posthoc`.
    case posthoc(PostHocEvaluation)

    /// Where training is: at most once a second and at every epoch end.
    public struct Progress: Equatable, Sendable {
        public var epoch: Int
        public var step: Int
        public var totalSteps: Int
        public var imagesPerSecond: Double
        public var etaSeconds: Double
        public var time: Double

        public init(epoch: Int, step: Int, totalSteps: Int, imagesPerSecond: Double, etaSeconds: Double, time: Double) {
            self.epoch = epoch
            self.step = step
            self.totalSteps = totalSteps
            self.imagesPerSecond = imagesPerSecond
            self.etaSeconds = etaSeconds
            self.time = time
        }
    }

    /// A pitfall of the configuration (`averaging.md`), about one weight set or (`weights == nil`) the run.
    public struct Warning: Equatable, Sendable {
        public var code: String
        public var weights: String?
        public var message: String

        public init(code: String, weights: String?, message: String) {
            self.code = code
            self.weights = weights
            self.message = message
        }
    }

    /// A checkpoint written at an epoch's end; `file` is relative to the run folder.
    public struct CheckpointSaved: Equatable, Sendable {
        public var epoch: Int
        public var step: Int
        public var file: String
        public var bytes: Int
        public var sha256: String

        public init(epoch: Int, step: Int, file: String, bytes: Int, sha256: String) {
            self.epoch = epoch
            self.step = step
            self.file = file
            self.bytes = bytes
            self.sha256 = sha256
        }
    }

    /// One cell of a resolution grid: a weight set evaluated at `resize` then center `crop`.
    public struct GridEvaluation: Equatable, Sendable {
        public enum Stage: String, Sendable {
            /// After training.
            case base
            /// After FixRes fine-tuning.
            case finetuned
        }
        public var weights: String
        public var stage: Stage
        /// `null` when unknown (`polyak eval` of a file without a spec).
        public var trainSize: Int?
        public var resize: Int
        public var crop: Int
        public var top1: Double
        public var top5: Double
        public var loss: Double
        /// Test images evaluated; only `polyak eval` writes it.
        public var images: Int?

        public init(
            weights: String, stage: Stage, trainSize: Int?, resize: Int, crop: Int, top1: Double, top5: Double,
            loss: Double, images: Int? = nil
        ) {
            self.weights = weights
            self.stage = stage
            self.trainSize = trainSize
            self.resize = resize
            self.crop = crop
            self.top1 = top1
            self.top5 = top5
            self.loss = loss
            self.images = images
        }
    }

    /// The last line of a run.
    public struct Summary: Equatable, Sendable {
        /// How a run ended; the same words as the server's run status.
        public enum Status: String, Sendable, CaseIterable {
            case completed, failed, cancelled
        }

        /// A weight set's final test evaluation (`test/top1`, `test/top5`, `test/loss`).
        public struct Evaluation: Equatable, Sendable {
            public var top1: Double
            public var top5: Double
            public var loss: Double

            public init(top1: Double, top5: Double, loss: Double) {
                self.top1 = top1
                self.top5 = top5
                self.loss = loss
            }
        }

        /// Where a completed run's time went, in seconds.
        public struct Timing: Equatable, Sendable {
            /// Training steps: batches, forward, backward, optimizer (`train_s`); since `split`,
            /// without teacher forwards and averaging updates.
            public var trainSeconds: Double
            /// Test-set evaluation per weight set (`eval_s`).
            public var evalSeconds: [String: Double]
            /// SWA's `update_bn` (`swa_bn_s`).
            public var batchNormSeconds: Double
            /// The whole split, run-wide and per weight set; nil in an older trainer's line.
            public var split: Split?

            public init(trainSeconds: Double, evalSeconds: [String: Double], batchNormSeconds: Double, split: Split? = nil) {
                self.trainSeconds = trainSeconds
                self.evalSeconds = evalSeconds
                self.batchNormSeconds = batchNormSeconds
                self.split = split
            }

            /// The parts every weight set of the run shares (`shared_s`): setup, training steps,
            /// teacher forwards, checkpoints. Nil without a split.
            public var sharedSeconds: Double? {
                split.map { trainSeconds + $0.setupSeconds + $0.teacherSeconds + $0.checkpointSeconds }
            }

            /// The run-wide parts and the per-weight-set parts; they never overlap, so their sum is
            /// at most `wallSeconds`.
            public struct Split: Equatable, Sendable {
                /// The run's wall time over every process that trained it, resumes included (`wall_s`).
                public var wallSeconds: Double
                /// Loading data and teacher, resuming, writing the spec (`setup_s`).
                public var setupSeconds: Double
                /// Distillation's teacher forwards (`teacher_s`).
                public var teacherSeconds: Double
                /// Epoch checkpoints (`checkpoint_s`).
                public var checkpointSeconds: Double
                /// What each weight set costs on top of the shared parts (`per_weights`).
                public var perWeights: [String: WeightSet]

                public init(
                    wallSeconds: Double, setupSeconds: Double, teacherSeconds: Double, checkpointSeconds: Double,
                    perWeights: [String: WeightSet]
                ) {
                    self.wallSeconds = wallSeconds
                    self.setupSeconds = setupSeconds
                    self.teacherSeconds = teacherSeconds
                    self.checkpointSeconds = checkpointSeconds
                    self.perWeights = perWeights
                }

                /// A part summed over the weight sets (the top-level `averaging_s`, `bn_s`, …).
                public func total(_ part: KeyPath<WeightSet, Double>) -> Double {
                    perWeights.keys.sorted().reduce(0) { $0 + perWeights[$1]![keyPath: part] }
                }
            }

            /// One weight set's own parts. A strategy's update and BN recomputation are shared
            /// equally by the sets it produces (one EMA pass updates all its decays).
            public struct WeightSet: Equatable, Sendable {
                /// Test-set evaluations at `test_size` (`eval_s`).
                public var evalSeconds: Double
                /// Resolution-grid evaluations (`grid_s`).
                public var gridSeconds: Double
                /// Averaging updates, post-hoc snapshots included (`averaging_s`).
                public var averagingSeconds: Double
                /// BN recomputation: SWA's update_bn, precise BN (`bn_s`).
                public var batchNormSeconds: Double
                /// FixRes fine-tuning with its evaluation, grid and export (`fixres_s`).
                public var fixResSeconds: Double
                /// Writing the exported weights (`export_s`).
                public var exportSeconds: Double
                /// The EMA-length sweep: synthesis and evaluation of every width from the post-hoc
                /// snapshots, shared by the tracked profiles' sets (`posthoc_s`; absent before it existed).
                public var postHocSeconds: Double

                public init(
                    evalSeconds: Double = 0, gridSeconds: Double = 0, averagingSeconds: Double = 0, batchNormSeconds: Double = 0,
                    fixResSeconds: Double = 0, exportSeconds: Double = 0, postHocSeconds: Double = 0
                ) {
                    self.evalSeconds = evalSeconds
                    self.gridSeconds = gridSeconds
                    self.averagingSeconds = averagingSeconds
                    self.batchNormSeconds = batchNormSeconds
                    self.fixResSeconds = fixResSeconds
                    self.exportSeconds = exportSeconds
                    self.postHocSeconds = postHocSeconds
                }

                /// `total_s`.
                public var totalSeconds: Double {
                    evalSeconds + gridSeconds + averagingSeconds + batchNormSeconds + fixResSeconds + exportSeconds
                        + postHocSeconds
                }
            }
        }

        public var status: Status
        /// Why a run failed or stopped; `null` when it completed.
        public var reason: String?
        public var steps: Int
        public var wallSeconds: Double
        public var imagesPerSecond: Double
        /// Keyed by weight set, and `<set>/finetuned` after FixRes.
        public var final: [String: Evaluation]
        /// File names in the run folder, keyed like `final`.
        public var exports: [String: String]
        /// `nil` (written `{}`) when the run did not complete.
        public var timing: Timing?

        public init(
            status: Status, reason: String?, steps: Int, wallSeconds: Double, imagesPerSecond: Double,
            final: [String: Evaluation] = [:], exports: [String: String] = [:], timing: Timing? = nil
        ) {
            self.status = status
            self.reason = reason
            self.steps = steps
            self.wallSeconds = wallSeconds
            self.imagesPerSecond = imagesPerSecond
            self.final = final
            self.exports = exports
            self.timing = timing
        }
    }

    /// A run's status changed (the server's live `status` event). `status` is a run status word
    /// (`queued`, `running`, … as the store's `RunStatus` spells them), kept as text because
    /// `RunStatus` lives in `Store`, which this module cannot see.
    public struct StatusChange: Equatable, Sendable {
        public var status: RunStatus
        public var error: String?

        public init(status: RunStatus, error: String?) {
            self.status = status
            self.error = error
        }
    }

    /// `{"type":"posthoc","sigma_rel":…,"decay":…,"top1":…,"top5":…,"loss":…,"weights":…,"step":…,
    /// "bn":…}`: the test-set evaluation of the weights synthesised for one relative width.
    /// `decay` is the classical EMA decay of the same width at `step` (the run's end).
    public struct PostHocEvaluation: Equatable, Sendable {
        /// How the synthesised set got its BN statistics.
        public enum BatchNorm: String, CaseIterable, Sendable {
            /// The snapshots' running statistics combined like the weights.
            case synthesized
            /// Re-measured over training batches (precise BN).
            case precise
        }
        public var sigmaRel: Double
        public var decay: Double
        public var weights: String
        public var step: Int
        public var batchNorm: BatchNorm
        public var top1: Double
        public var top5: Double
        public var loss: Double
        /// Seconds to synthesise, prepare and evaluate this width (its share of the joint solve
        /// included); nil in an older line.
        public var seconds: Double?

        public init(
            sigmaRel: Double, decay: Double, weights: String, step: Int, batchNorm: BatchNorm, top1: Double, top5: Double,
            loss: Double, seconds: Double? = nil
        ) {
            self.seconds = seconds
            self.sigmaRel = sigmaRel
            self.decay = decay
            self.weights = weights
            self.step = step
            self.batchNorm = batchNorm
            self.top1 = top1
            self.top5 = top5
            self.loss = loss
        }
    }
}
