import Datasets
import Experiments
import Foundation
import PolyakNetwork

/// Everything needed to continue a run exactly where an epoch ended: the model (PyTorch names),
/// the optimizer's momentum, the RNG state, the step and epoch counters, and extra named tensors
/// and metadata from the averaging strategies.
public struct Checkpoint {
    public static let format = "polyak-checkpoint-1"

    public var epoch: Int
    public var step: Int
    public var rngState: [UInt64]
    public var sgdStarted: Bool
    public var file: SafetensorsFile

    /// Builds the file: the model's state dict, then `optimizer.velocity` and any `extra` tensors.
    public init(
        state: ModelState, sgd: SGD, epoch: Int, step: Int, rng: Xoshiro256, spec: RunSpec,
        extraTensors: [SafetensorsFile.Tensor] = [], extraMetadata: [String: String] = [:]
    ) {
        self.epoch = epoch
        self.step = step
        rngState = rng.state
        sgdStarted = sgd.started
        var meta = extraMetadata
        meta["format"] = Self.format
        meta["epoch"] = String(epoch)
        meta["step"] = String(step)
        meta["rng"] = rng.state.map(String.init).joined(separator: ",")
        meta["sgd_started"] = sgd.started ? "true" : "false"
        meta["spec"] = spec.json().text()
        file = state.stateDict(metadata: meta)
        file.tensors.append(.init(name: "optimizer.velocity", floats: sgd.velocity.array, shape: [sgd.velocity.count]))
        file.tensors.append(contentsOf: extraTensors)
    }

    /// Reads and checks a checkpoint file written by `init`.
    public init(path: String) throws {
        file = try SafetensorsFile.read(from: path)
        let meta = file.metadata
        func fail(_ why: String) -> SafetensorsError { SafetensorsError(path: path, problem: why) }
        guard meta["format"] == Self.format else { throw fail("not a Polyak checkpoint (format \(meta["format"] ?? "missing"))") }
        guard let epoch = meta["epoch"].flatMap(Int.init), let step = meta["step"].flatMap(Int.init) else {
            throw fail("epoch/step metadata missing")
        }
        let words = (meta["rng"] ?? "").split(separator: ",").compactMap { UInt64($0) }
        guard words.count == 4 else { throw fail("rng state metadata malformed") }
        self.epoch = epoch
        self.step = step
        rngState = words
        sgdStarted = meta["sgd_started"] == "true"
    }

    /// Restores model weights and the optimizer's momentum from this checkpoint.
    public func restore(into state: ModelState, sgd: SGD) throws {
        try state.load(stateDict: file)
        guard let v = file["optimizer.velocity"]?.floats, v.count == sgd.velocity.count else {
            throw ModelFileError.missing("optimizer.velocity")
        }
        v.withUnsafeBufferPointer { sgd.velocity.pointer.update(from: $0.baseAddress!, count: v.count) }
        sgd.started = sgdStarted
    }

    public var spec: RunSpec? { file.metadata["spec"].flatMap { try? RunSpec.decode(Data($0.utf8)) } }

    /// `checkpoints/epoch-003.safetensors`.
    public static func fileName(epoch: Int) -> String { String(format: "epoch-%03d.safetensors", epoch) }

    /// The newest epoch checkpoint in a run folder, if any.
    public static func newest(in runDirectory: String) -> String? {
        let dir = (runDirectory as NSString).appendingPathComponent("checkpoints")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasPrefix("epoch-") && $0.hasSuffix(".safetensors") }.sorted().last
            .map { (dir as NSString).appendingPathComponent($0) }
    }
}
