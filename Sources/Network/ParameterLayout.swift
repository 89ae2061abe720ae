import Kernels

/// One named tensor of a model's state, a view into one of the flat buffers.
public struct TensorEntry: Sendable, Equatable {
    public enum Role: Sendable, Equatable {
        /// Trained: lives in `parameters`, with a gradient at the same offset in `gradients`.
        case parameter
        /// Float state that is not trained (BatchNorm running mean/var): lives in `buffers`.
        case buffer
    }

    /// How the floats are ordered inside the flat buffer.
    public enum Storage: Sendable, Equatable {
        /// Exactly PyTorch's contiguous layout of `shape`.
        case pytorch
        /// A conv weight of PyTorch shape `[O, I, KH, KW]` kept as `[KH][KW][I][O]` (what the conv kernels read).
        case hwio
    }

    /// PyTorch's name (`layer2.0.downsample.0.weight`).
    public let name: String
    /// PyTorch's shape.
    public let shape: [Int]
    public let role: Role
    public let storage: Storage
    /// Offset in floats inside its buffer.
    public let offset: Int
    /// Whether weight decay applies (conv and linear weights; not BN or biases).
    public let decays: Bool

    public var count: Int { shape.reduce(1, *) }
}

/// The table of named, shaped views over a model's flat buffers, in PyTorch's `state_dict` order.
/// Averaging is a pass over the flat buffers; names only matter at import and export.
public struct ParameterLayout: Sendable, Equatable {
    public private(set) var entries: [TensorEntry] = []
    public private(set) var parameterCount = 0
    public private(set) var bufferCount = 0
    /// Names of the integer `num_batches_tracked` counters (one per BatchNorm, all equal).
    public private(set) var counterNames: [String] = []

    public init() {}

    @discardableResult
    mutating func add(
        _ name: String, _ shape: [Int], _ role: TensorEntry.Role,
        storage: TensorEntry.Storage = .pytorch, decays: Bool = false
    ) -> Int {
        let count = shape.reduce(1, *)
        let offset: Int
        switch role {
        case .parameter:
            offset = parameterCount
            parameterCount += count
        case .buffer:
            offset = bufferCount
            bufferCount += count
        }
        entries.append(TensorEntry(name: name, shape: shape, role: role, storage: storage, offset: offset, decays: decays))
        return offset
    }

    mutating func addCounter(_ name: String) { counterNames.append(name) }

    public func entry(named name: String) -> TensorEntry? { entries.first { $0.name == name } }
}
