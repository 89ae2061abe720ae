import Dispatch
import Kernels

/// Runs a `ResNetMini` on batches of one fixed shape: owns the activation buffers, the dispatched
/// conv kernels and the BN scratch, so a training step allocates nothing.
///
/// Training mode keeps every activation for the backward pass and a gradient buffer of each; an
/// inference-only executor keeps a few buffers per block and normalises in place.
public final class ResNetExecutor: @unchecked Sendable {
    public let model: ResNetMini
    public let layout: ParameterLayout
    public let batch: Int
    public let height: Int
    public let width: Int
    public let trainable: Bool
    public let workers: Workers

    /// The input batch (n, h, w, 1), normalised; the caller writes its interior.
    public let input: Activation
    /// Labels of the batch (the caller writes them before `trainingStep`/`evaluate`).
    public let labels: UnsafeMutablePointer<Int32>
    /// Logits `[n × classes]` after a forward pass.
    public let logits: UnsafeMutablePointer<Float>

    private struct ConvUnit {
        let conv: Conv2d
        let weight: TensorEntry
    }

    private struct BNUnit {
        let name: String
        let kernels: BatchNormKernels
        let gamma: TensorEntry
        let beta: TensorEntry
        let mean: TensorEntry
        let variance: TensorEntry
    }

    private struct BlockUnit {
        let conv1: ConvUnit, bn1: BNUnit, conv2: ConvUnit, bn2: BNUnit
        let downsample: (conv: ConvUnit, bn: BNUnit)?
        // forward tensors: c1 = conv1(x), h1 = relu(bn1(c1)), c2 = conv2(h1),
        // cd = downsample conv(x), sd = its BN, out = relu(bn2(c2) + shortcut)
        let c1: Activation, h1: Activation, c2: Activation, out: Activation
        let cd: Activation?, sd: Activation?
        // gradients (training only): of c1, h1, c2, cd, sd
        let dc1: Activation?, dh1: Activation?, dc2: Activation?, dcd: Activation?, dsd: Activation?
        /// Gradient of this block's output (shared with the next block's input gradient).
        let dOut: Activation?
    }

    private let stemConv: ConvUnit
    private let stemBN: BNUnit
    private let c0: Activation, a0: Activation
    private let dc0: Activation?, da0: Activation?
    private let blocks: [BlockUnit]
    private let pooled: UnsafeMutablePointer<Float>
    private let dPooled: UnsafeMutablePointer<Float>
    private let dLogits: UnsafeMutablePointer<Float>
    private let fcWeight: TensorEntry, fcBias: TensorEntry

    /// Momentum of the running statistics in training-mode BN (PyTorch's 0.1). SWA's `update_bn`
    /// sets 1/(k+1) for batch k, an equal-weight cumulative average.
    public var batchNormMomentum: Float = 0.1

    /// When set, every kernel call's wall time is added here by name (`polyak bench engine --profile`).
    public var profile: OperationProfile?

    /// Which BatchNorm layers (by name, e.g. `layer3.0.bn2`) run in training mode during a
    /// `forward(state, training: false)`: FixRes fine-tuning re-estimates only the last ones
    /// (batch statistics need the batch-wide pass: an executor made with `lanes: false`).
    public var trainModeBatchNorms: Set<String> = []

    /// Inference only: one small executor per worker that carries a few images at a time through
    /// the whole network, so their activations stay in that core's cache instead of a batch of
    /// 512 streaming every layer through memory (BN uses fixed statistics there, so no layer waits
    /// for the whole batch). Each image's logits are bit for bit those of the batch-wide pass, and
    /// an executor with lanes keeps no batch-wide activations (at width 32 and batch 512, 270 MB).
    private let lanes: [ResNetExecutor]

    /// Whether inference runs in lanes (tests).
    var usesLanes: Bool { !lanes.isEmpty }

    /// Images per lane pass: about 128 KiB of the largest activation (the first stage's), so a
    /// pass's working set stays in a core's L2.
    static func laneImages(model: ResNetMini, height: Int, width: Int) -> Int {
        max(1, 131_072 / ((height + 2) * (width + 2) * model.width * 4))
    }

    /// `lanes: false` keeps an inference executor batch-wide (train-mode BatchNorms need it).
    public convenience init(
        model: ResNetMini, batch: Int, height: Int, width: Int, trainable: Bool, workers: Workers, lanes: Bool = true
    ) {
        let laneBatch = Self.laneImages(model: model, height: height, width: width)
        self.init(
            model: model, batch: batch, height: height, width: width, trainable: trainable, workers: workers,
            lanes: lanes && !trainable && batch > laneBatch ? laneBatch : nil)
    }

    private init(
        model: ResNetMini, batch: Int, height: Int, width: Int, trainable: Bool, workers: Workers, lanes laneBatch: Int?
    ) {
        precondition(height >= 8 && width >= 8, "resnet-mini needs images of at least 8×8")
        self.model = model
        layout = model.layout
        self.batch = batch
        self.height = height
        self.width = width
        self.trainable = trainable
        self.workers = workers
        let l = layout
        func entry(_ name: String) -> TensorEntry { l.entry(named: name)! }
        let winogradScratch = WinogradScratch()
        func convUnit(_ name: String, _ cin: Int, _ cout: Int, _ k: Int, _ s: Int, _ input: ActivationShape) -> ConvUnit {
            ConvUnit(
                conv: Conv2d(
                    ConvGeometry(cin: cin, cout: cout, kernel: k, stride: s, input: input), workers: workers,
                    winogradScratch: winogradScratch),
                weight: entry("\(name).weight"))
        }
        func bnUnit(_ name: String, _ c: Int) -> BNUnit {
            BNUnit(
                name: name, kernels: BatchNormKernels(channels: c, workers: workers), gamma: entry("\(name).weight"),
                beta: entry("\(name).bias"), mean: entry("\(name).running_mean"), variance: entry("\(name).running_var"))
        }
        func grad(_ s: ActivationShape) -> Activation? { trainable ? Activation(s) : nil }

        input = Activation(ActivationShape(n: batch, h: height, w: width, c: 1))
        labels = .allocate(capacity: batch)
        labels.initialize(repeating: 0, count: batch)
        logits = .allocate(capacity: batch * model.classes)
        dLogits = .allocate(capacity: batch * model.classes)
        pooled = .allocate(capacity: batch * model.features)
        dPooled = .allocate(capacity: batch * model.features)

        // With lanes, the layers here never run: one image's worth of buffers stands in for them.
        stemConv = convUnit("conv1", 1, model.width, 3, 1, laneBatch == nil ? input.shape : input.shape.resized(n: 1))
        stemBN = bnUnit("bn1", model.width)
        c0 = Activation(stemConv.conv.geometry.output)
        a0 = trainable ? Activation(c0.shape) : c0  // inference normalises in place
        dc0 = grad(c0.shape)
        da0 = grad(c0.shape)

        var units: [BlockUnit] = []
        var x = a0.shape
        for b in model.blocks {
            let conv1 = convUnit("\(b.prefix).conv1", b.cin, b.cout, 3, b.stride, x)
            let s = conv1.conv.geometry.output
            let conv2 = convUnit("\(b.prefix).conv2", b.cout, b.cout, 3, 1, s)
            let ds =
                b.hasDownsample
                ? (
                    convUnit("\(b.prefix).downsample.0", b.cin, b.cout, 1, b.stride, x),
                    bnUnit("\(b.prefix).downsample.1", b.cout)
                )
                : nil
            let c1 = Activation(s), c2 = Activation(s)
            let h1 = trainable ? Activation(s) : c1
            let out = trainable ? Activation(s) : c2
            let cd = ds.map { _ in Activation(s) }
            let sd = trainable ? cd.map { _ in Activation(s) } : cd
            // Gradient buffers are reused as soon as they are dead. BN's backward may write dx over
            // its dOut (element by element, each read before it is written): dc2 over dOut once the
            // shortcut's share is out, dc1 over dc2 once conv2's gradients are taken, dcd over dsd.
            let dOut = grad(s)
            let dsd = ds == nil ? nil : grad(s)
            units.append(
                BlockUnit(
                    conv1: conv1, bn1: bnUnit("\(b.prefix).bn1", b.cout), conv2: conv2, bn2: bnUnit("\(b.prefix).bn2", b.cout),
                    downsample: ds, c1: c1, h1: h1, c2: c2, out: out, cd: cd, sd: sd,
                    dc1: dOut, dh1: grad(s), dc2: dOut, dcd: dsd, dsd: dsd,
                    dOut: dOut))
            x = s
        }
        blocks = units
        fcWeight = entry("fc.weight")
        fcBias = entry("fc.bias")
        lanes =
            laneBatch.map { n in
                (0..<workers.count).map { _ in
                    ResNetExecutor(
                        model: model, batch: n, height: height, width: width, trainable: false, workers: Workers(1), lanes: nil)
                }
            } ?? []
    }

    deinit {
        labels.deallocate()
        logits.deallocate()
        dLogits.deallocate()
        pooled.deallocate()
        dPooled.deallocate()
    }

    /// Forward FLOPs of the convolutions for one batch (the backward passes cost twice this).
    public var convolutionFLOPs: Double {
        ([stemConv] + blocks.flatMap { [$0.conv1, $0.conv2] + ($0.downsample.map { [$0.conv] } ?? []) })
            .map(\.conv.geometry.forwardFLOPs).reduce(0, +)
    }

    /// Whether libxsmm kernels run every convolution.
    public var allConvolutionsJIT: Bool {
        ([stemConv] + blocks.flatMap { [$0.conv1, $0.conv2] + ($0.downsample.map { [$0.conv] } ?? []) })
            .allSatisfy(\.conv.isJIT)
    }

    // MARK: forward

    @inline(__always)
    private func timed(_ unit: ConvUnit, _ pass: String, _ body: () -> Void) {
        guard let profile else { return body() }
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        let g = unit.conv.geometry
        profile.add(
            "conv\(g.kernel)x\(g.kernel)/\(g.stride) \(g.cin)->\(g.cout) @\(g.input.h) \(pass)",
            DispatchTime.now().uptimeNanoseconds - start)
    }

    private func bn(
        _ u: BNUnit, _ state: ModelState, _ x: Activation, residual: Activation?, relu: Bool,
        out: Activation, training: Bool
    ) {
        let clock = profile.map { _ in DispatchTime.now().uptimeNanoseconds }
        defer { if let clock { profile!.add("bn fwd", DispatchTime.now().uptimeNanoseconds - clock) } }
        if training || trainModeBatchNorms.contains(u.name) {
            u.kernels.forwardTraining(
                x, gamma: state.pointer(u.gamma), beta: state.pointer(u.beta),
                runningMean: state.pointer(u.mean), runningVar: state.pointer(u.variance), momentum: batchNormMomentum,
                residual: residual, relu: relu, out: out)
        } else {
            u.kernels.forwardInference(
                x, gamma: state.pointer(u.gamma), beta: state.pointer(u.beta),
                runningMean: state.pointer(u.mean), runningVar: state.pointer(u.variance),
                residual: residual, relu: relu, out: out)
        }
    }

    /// Runs the network on `input`, leaving logits in `logits`. `training` uses batch statistics
    /// and updates the running ones (BN train mode); otherwise the running statistics are used.
    public func forward(_ state: ModelState, training: Bool) {
        precondition(state.layout == layout)
        precondition(!training || trainable, "an inference executor cannot train")
        if !training && !lanes.isEmpty {
            precondition(trainModeBatchNorms.isEmpty, "train-mode BatchNorms need an executor made with lanes: false")
            return forwardByLanes(state)
        }
        forward(state, training: training, sameWeights: false)
    }

    /// `sameWeights`: the state's weights are those of the previous call (a lane's later images).
    private func forward(_ state: ModelState, training: Bool, sameWeights: Bool) {
        // In training the convs hand their output rows to the BN that follows while they are in cache.
        func stats(_ u: BNUnit) -> BatchNormKernels? { training ? u.kernels : nil }
        func conv(_ unit: ConvUnit, _ x: Activation, _ y: Activation, _ norm: BNUnit) {
            timed(unit, "fwd") {
                unit.conv.forward(x, state.pointer(unit.weight), y, statistics: stats(norm), sameWeights: sameWeights)
            }
        }
        conv(stemConv, input, c0, stemBN)
        bn(stemBN, state, c0, residual: nil, relu: true, out: a0, training: training)
        var x = a0
        for u in blocks {
            conv(u.conv1, x, u.c1, u.bn1)
            bn(u.bn1, state, u.c1, residual: nil, relu: true, out: u.h1, training: training)
            conv(u.conv2, u.h1, u.c2, u.bn2)
            var shortcut = x
            if let (unit, norm) = u.downsample, let cd = u.cd, let sd = u.sd {
                conv(unit, x, cd, norm)
                bn(norm, state, cd, residual: nil, relu: false, out: sd, training: training)
                shortcut = sd
            }
            bn(u.bn2, state, u.c2, residual: shortcut, relu: true, out: u.out, training: training)
            x = u.out
        }
        GlobalAveragePool.forward(x, pooled)
        Linear.forward(
            pooled, state.pointer(fcWeight), state.pointer(fcBias), logits,
            n: batch, inputs: model.features, outputs: model.classes)
        if training { state.batchesTracked += 1 }
    }

    /// Inference through the lanes: each worker takes its share of the batch a lane's worth of
    /// images at a time; logits and pooled features are copied back into this executor's.
    private func forwardByLanes(_ state: ModelState) {
        let imageStride = input.shape.imageStride
        let classes = model.classes, features = model.features
        let input = UnsafePointer(input.pointer), logits = logits, pooled = pooled
        workers.run { worker in
            let lane = lanes[worker]
            let mine = workers.range(worker, of: batch)
            var start = mine.lowerBound
            while start < mine.upperBound {
                let n = min(lane.batch, mine.upperBound - start)
                lane.input.pointer.update(from: input + start * imageStride, count: n * imageStride)
                lane.forward(state, training: false, sameWeights: start > mine.lowerBound)
                (logits + start * classes).update(from: lane.logits, count: n * classes)
                (pooled + start * features).update(from: lane.pooled, count: n * features)
                start += n
            }
        }
    }

    // MARK: backward

    private func bnBackward(
        _ u: BNUnit, _ state: ModelState, dOut: Activation, out: Activation?, x: Activation,
        relu: Bool, dx: Activation, dResidual: Activation?
    ) {
        let clock = profile.map { _ in DispatchTime.now().uptimeNanoseconds }
        defer { if let clock { profile!.add("bn bwd", DispatchTime.now().uptimeNanoseconds - clock) } }
        u.kernels.backward(
            dOut, out: out, x: x, gamma: state.pointer(u.gamma), relu: relu, dx: dx,
            dGamma: state.gradient(u.gamma), dBeta: state.gradient(u.beta), dResidual: dResidual)
    }

    /// One training forward + backward: returns the batch's summed loss and top-1 hits; the
    /// gradients of every parameter are in `state.gradients` (overwritten, not accumulated).
    @discardableResult
    public func trainingStep(_ state: ModelState, labelSmoothing: Float = 0) -> (lossSum: Double, correct: Int) {
        forward(state, training: true)
        let result = SoftmaxCrossEntropy.forward(
            logits: logits, labels: labels, n: batch, classes: model.classes, labelSmoothing: labelSmoothing,
            dLogits: dLogits)
        backward(state)
        return result
    }

    /// Backpropagates `dLogits` (set by `trainingStep`, or by a caller's own loss through
    /// `setLogitGradient`) into `state.gradients`.
    public func backward(_ state: ModelState) {
        Linear.backward(
            dLogits, pooled, state.pointer(fcWeight), dx: dPooled, dw: state.gradient(fcWeight),
            db: state.gradient(fcBias), n: batch, inputs: model.features, outputs: model.classes)
        GlobalAveragePool.backward(dPooled, blocks.last!.dOut!)
        for (i, u) in blocks.enumerated().reversed() {
            let x = i == 0 ? a0 : blocks[i - 1].out
            let dx = i == 0 ? da0! : blocks[i - 1].dOut!
            // The shortcut's gradient g = dOut ⊙ [out > 0] goes straight into dx (identity) or into
            // the downsample's BN; the main path then accumulates onto dx.
            let identity = u.downsample == nil
            bnBackward(
                u.bn2, state, dOut: u.dOut!, out: u.out, x: u.c2, relu: true, dx: u.dc2!,
                dResidual: identity ? dx : u.dsd!)
            timed(u.conv2, "wgrad") { u.conv2.conv.backwardWeights(u.dc2!, u.h1, state.gradient(u.conv2.weight)) }
            timed(u.conv2, "dgrad") {
                u.conv2.conv.backwardData(u.dc2!, state.pointer(u.conv2.weight), u.dh1!, accumulate: false)
            }
            bnBackward(u.bn1, state, dOut: u.dh1!, out: nil, x: u.c1, relu: true, dx: u.dc1!, dResidual: nil)
            timed(u.conv1, "wgrad") { u.conv1.conv.backwardWeights(u.dc1!, x, state.gradient(u.conv1.weight)) }
            timed(u.conv1, "dgrad") { u.conv1.conv.backwardData(u.dc1!, state.pointer(u.conv1.weight), dx, accumulate: identity) }
            if let (conv, norm) = u.downsample {
                bnBackward(norm, state, dOut: u.dsd!, out: nil, x: u.cd!, relu: false, dx: u.dcd!, dResidual: nil)
                timed(conv, "wgrad") { conv.conv.backwardWeights(u.dcd!, x, state.gradient(conv.weight)) }
                timed(conv, "dgrad") { conv.conv.backwardData(u.dcd!, state.pointer(conv.weight), dx, accumulate: true) }
            }
        }
        bnBackward(stemBN, state, dOut: da0!, out: nil, x: c0, relu: true, dx: dc0!, dResidual: nil)
        timed(stemConv, "wgrad") { stemConv.conv.backwardWeights(dc0!, input, state.gradient(stemConv.weight)) }
    }

    /// Sets the loss gradient w.r.t. the logits (for losses computed outside, e.g. distillation)
    /// before `backward`.
    public func setLogitGradient(_ body: (UnsafeMutablePointer<Float>) -> Void) { body(dLogits) }

    /// Backpropagates `dLogits` into `fc.weight` and `fc.bias` only (FixRes fine-tuning of the classifier).
    public func backwardClassifier(_ state: ModelState) {
        Linear.backward(
            dLogits, pooled, state.pointer(fcWeight), dx: dPooled, dw: state.gradient(fcWeight),
            db: state.gradient(fcBias), n: batch, inputs: model.features, outputs: model.classes)
    }

    /// The batch statistics (mean, biased variance) each BatchNorm computed in the last
    /// training-mode forward pass, with the entries of its running statistics (precise BN).
    public var batchNormStatistics:
        [(mean: TensorEntry, variance: TensorEntry, batchMean: FloatBuffer, batchVariance: FloatBuffer)]
    {
        let units = [stemBN] + blocks.flatMap { [$0.bn1, $0.bn2] + ($0.downsample.map { [$0.bn] } ?? []) }
        return units.map { ($0.mean, $0.variance, $0.kernels.mean, $0.kernels.variance) }
    }

    /// Copies another executor's input batch (same shape) into this one: a teacher sees what its student sees.
    public func copyInput(from other: ResNetExecutor) {
        precondition(other.input.shape == input.shape)
        input.pointer.update(from: other.input.pointer, count: input.shape.storageCount)
        labels.update(from: other.labels, count: batch)
    }

    /// Summed loss, top-1 and top-5 hits of the current logits against `labels`, over the first `count` rows.
    public func score(count: Int) -> (lossSum: Double, top1: Int, top5: Int) {
        let r = SoftmaxCrossEntropy.forward(logits: logits, labels: labels, n: count, classes: model.classes)
        var top5 = 0
        for b in 0..<count
        where SoftmaxCrossEntropy.inTopK(
            logits + b * model.classes, label: Int(labels[b]), classes: model.classes, k: min(5, model.classes))
        {
            top5 += 1
        }
        return (r.lossSum, r.correct, top5)
    }
}

/// Accumulated wall time per named operation.
public final class OperationProfile: @unchecked Sendable {
    public private(set) var nanoseconds: [String: UInt64] = [:]
    public init() {}
    public func add(_ name: String, _ ns: UInt64) { nanoseconds[name, default: 0] += ns }
}
