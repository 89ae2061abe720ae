import Kernels

/// Everything a model is, in three flat buffers: parameters, their gradients (same layout), and
/// float buffers (BN running statistics); plus the integer `num_batches_tracked` counter.
public final class ModelState: @unchecked Sendable {
    public let layout: ParameterLayout
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    public let buffers: FloatBuffer
    /// `num_batches_tracked` of every BatchNorm (they all see every training batch).
    public var batchesTracked: Int64 = 0

    public init(layout: ParameterLayout) {
        self.layout = layout
        parameters = FloatBuffer(count: layout.parameterCount)
        gradients = FloatBuffer(count: layout.parameterCount)
        buffers = FloatBuffer(count: layout.bufferCount)
    }

    /// A deep copy of parameters, buffers and counter (gradients are not copied).
    public func copy() -> ModelState {
        let other = ModelState(layout: layout)
        other.copyWeights(from: self)
        return other
    }

    /// Overwrites parameters, buffers and counter with another state's of the same layout.
    public func copyWeights(from other: ModelState) {
        precondition(other.layout == layout, "layouts differ")
        parameters.pointer.update(from: other.parameters.pointer, count: parameters.count)
        buffers.pointer.update(from: other.buffers.pointer, count: buffers.count)
        batchesTracked = other.batchesTracked
    }

    /// Base pointer of an entry's floats.
    public func pointer(_ entry: TensorEntry) -> UnsafeMutablePointer<Float> {
        (entry.role == .parameter ? parameters.pointer : buffers.pointer) + entry.offset
    }

    public func gradient(_ entry: TensorEntry) -> UnsafeMutablePointer<Float> {
        precondition(entry.role == .parameter)
        return gradients.pointer + entry.offset
    }

    /// The entry's values in PyTorch's layout.
    public func pytorchValues(_ entry: TensorEntry) -> [Float] {
        let src = pointer(entry)
        switch entry.storage {
        case .pytorch:
            return Array(UnsafeBufferPointer(start: src, count: entry.count))
        case .hwio:
            let (o, i, kh, kw) = (entry.shape[0], entry.shape[1], entry.shape[2], entry.shape[3])
            var out = [Float](repeating: 0, count: entry.count)
            for a in 0..<o {
                for b in 0..<i {
                    for y in 0..<kh {
                        for x in 0..<kw {
                            out[((a * i + b) * kh + y) * kw + x] = src[((y * kw + x) * i + b) * o + a]
                        }
                    }
                }
            }
            return out
        }
    }

    /// Sets the entry from values in PyTorch's layout.
    public func setPytorchValues(_ entry: TensorEntry, _ values: [Float]) {
        precondition(values.count == entry.count)
        let dst = pointer(entry)
        switch entry.storage {
        case .pytorch:
            values.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: entry.count) }
        case .hwio:
            let (o, i, kh, kw) = (entry.shape[0], entry.shape[1], entry.shape[2], entry.shape[3])
            for a in 0..<o {
                for b in 0..<i {
                    for y in 0..<kh {
                        for x in 0..<kw {
                            dst[((y * kw + x) * i + b) * o + a] = values[((a * i + b) * kh + y) * kw + x]
                        }
                    }
                }
            }
        }
    }
}
