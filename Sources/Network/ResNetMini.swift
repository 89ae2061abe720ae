import Foundation
import Kernels

/// Polyak's model: a CIFAR-style ResNet for 1-channel images of any size ≥ 8.
///
/// `conv1` 3×3 1→w, `bn1`, ReLU; `layer1`…`layer3` of `depth` BasicBlocks with widths w, 2w, 4w and
/// strides 1, 2, 2 (a 1×1 conv + BN `downsample` where the shape changes); global average pool;
/// `fc` 4w→10. Names and shapes are torchvision's, so its state dict loads in PyTorch as is.
public struct ResNetMini: Sendable, Equatable {
    public let width: Int
    public let depth: Int
    public let classes: Int

    /// Input normalisation of Fashion-MNIST (the reference script's).
    public static let inputMean: Float = 0.2860
    public static let inputStd: Float = 0.3530

    public init(width: Int = 16, depth: Int = 1, classes: Int = 10) {
        precondition(width >= 1 && depth >= 1 && classes >= 2)
        self.width = width
        self.depth = depth
        self.classes = classes
    }

    /// One BasicBlock's place in the network.
    public struct Block: Sendable, Equatable {
        public let prefix: String  // "layer2.0"
        public let cin: Int
        public let cout: Int
        public let stride: Int
        public var hasDownsample: Bool { stride != 1 || cin != cout }
    }

    public var blocks: [Block] {
        var out: [Block] = []
        let w = width
        for (stage, (cin, cout, stride)) in [(w, w, 1), (w, 2 * w, 2), (2 * w, 4 * w, 2)].enumerated() {
            for d in 0..<depth {
                out.append(
                    Block(
                        prefix: "layer\(stage + 1).\(d)", cin: d == 0 ? cin : cout, cout: cout,
                        stride: d == 0 ? stride : 1))
            }
        }
        return out
    }

    public var features: Int { 4 * width }

    /// Every convolution of the network on a batch of `batch` images of `height × width`, by
    /// parameter name, in the order the forward pass runs them (the executor's shapes).
    public func convolutions(batch: Int, height: Int, width imageWidth: Int) -> [(name: String, geometry: ConvGeometry)] {
        var x = ActivationShape(n: batch, h: height, w: imageWidth, c: 1)
        let stem = ConvGeometry(cin: 1, cout: width, kernel: 3, stride: 1, input: x)
        var out: [(name: String, geometry: ConvGeometry)] = [("conv1", stem)]
        x = stem.output
        for b in blocks {
            let conv1 = ConvGeometry(cin: b.cin, cout: b.cout, kernel: 3, stride: b.stride, input: x)
            out.append(("\(b.prefix).conv1", conv1))
            out.append(("\(b.prefix).conv2", ConvGeometry(cin: b.cout, cout: b.cout, kernel: 3, stride: 1, input: conv1.output)))
            if b.hasDownsample {
                out.append(
                    ("\(b.prefix).downsample.0", ConvGeometry(cin: b.cin, cout: b.cout, kernel: 1, stride: b.stride, input: x)))
            }
            x = conv1.output
        }
        return out
    }

    public var layout: ParameterLayout {
        var l = ParameterLayout()
        func conv(_ name: String, _ cout: Int, _ cin: Int, _ k: Int) {
            l.add("\(name).weight", [cout, cin, k, k], .parameter, storage: .hwio, decays: true)
        }
        func bn(_ name: String, _ c: Int) {
            l.add("\(name).weight", [c], .parameter)
            l.add("\(name).bias", [c], .parameter)
            l.add("\(name).running_mean", [c], .buffer)
            l.add("\(name).running_var", [c], .buffer)
            l.addCounter("\(name).num_batches_tracked")
        }
        conv("conv1", width, 1, 3)
        bn("bn1", width)
        for b in blocks {
            conv("\(b.prefix).conv1", b.cout, b.cin, 3)
            bn("\(b.prefix).bn1", b.cout)
            conv("\(b.prefix).conv2", b.cout, b.cout, 3)
            bn("\(b.prefix).bn2", b.cout)
            if b.hasDownsample {
                conv("\(b.prefix).downsample.0", b.cout, b.cin, 1)
                bn("\(b.prefix).downsample.1", b.cout)
            }
        }
        l.add("fc.weight", [classes, features], .parameter, decays: true)
        l.add("fc.bias", [classes], .parameter)
        return l
    }

    /// torchvision's initialisation: convs kaiming-normal (fan_out, ReLU gain), BN γ = 1, β = 0,
    /// running mean 0 / var 1, `fc` as PyTorch's Linear default (U(±1/√fan_in) for weight and bias).
    public func initialize(_ state: ModelState, using rng: inout some RandomNumberGenerator) {
        state.parameters.zero()
        state.buffers.zero()
        state.batchesTracked = 0
        for e in state.layout.entries {
            let p = state.pointer(e)
            if e.name.hasSuffix("running_var") || (e.shape.count == 1 && e.name.hasSuffix(".weight") && !e.name.hasPrefix("fc")) {
                p.update(repeating: 1, count: e.count)
            } else if e.shape.count == 4 {
                let fanOut = Double(e.shape[0] * e.shape[2] * e.shape[3])
                let std = (2 / fanOut).squareRoot()
                for i in 0..<e.count { p[i] = Float(std * Self.gaussian(&rng)) }
            } else if e.name.hasPrefix("fc.") {
                let bound = 1 / Double(features).squareRoot()
                for i in 0..<e.count { p[i] = Float(Double.random(in: -bound..<bound, using: &rng)) }
            }
        }
    }

    /// Box–Muller from two uniforms (no cached second value, so the generator's state alone
    /// determines every draw).
    static func gaussian(_ rng: inout some RandomNumberGenerator) -> Double {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &rng)
        let u2 = Double.random(in: 0..<1, using: &rng)
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// Recognises a resnet-mini in a state dict's names and shapes (width from `conv1.weight`,
    /// depth from the highest `layer1.N`), so any exported file can be evaluated or used as a teacher.
    public static func infer(fromShapes shapes: [String: [Int]]) throws -> ResNetMini {
        guard let stem = shapes["conv1.weight"], stem.count == 4, stem[1] == 1 else {
            throw ModelFileError.notResNetMini("no conv1.weight of shape [w, 1, 3, 3]")
        }
        var depth = 0
        while shapes["layer1.\(depth).conv1.weight"] != nil { depth += 1 }
        let classes = shapes["fc.weight"]?.first ?? 10
        guard depth >= 1 else { throw ModelFileError.notResNetMini("no layer1.0 block") }
        let model = ResNetMini(width: stem[0], depth: depth, classes: classes)
        try model.check(shapes: shapes)
        return model
    }

    /// Every tensor the model needs is there with its shape, and nothing else is.
    public func check(shapes: [String: [Int]]) throws {
        let l = layout
        for e in l.entries {
            guard let s = shapes[e.name] else { throw ModelFileError.missing(e.name) }
            guard s == e.shape else { throw ModelFileError.shape(e.name, expected: e.shape, found: s) }
        }
        let known = Set(l.entries.map(\.name) + l.counterNames)
        if let extra = shapes.keys.sorted().first(where: { !known.contains($0) }) {
            throw ModelFileError.unexpected(extra)
        }
    }
}

/// A weights file that does not fit the model it claims to be.
public enum ModelFileError: Error, CustomStringConvertible, Equatable {
    case notResNetMini(String)
    case missing(String)
    case shape(String, expected: [Int], found: [Int])
    case unexpected(String)

    public var description: String {
        switch self {
        case .notResNetMini(let why): "not a resnet-mini state dict: \(why)"
        case .missing(let name): "tensor \(name) is missing"
        case .shape(let name, let e, let f): "tensor \(name) has shape \(f), expected \(e)"
        case .unexpected(let name): "unexpected tensor \(name)"
        }
    }
}
