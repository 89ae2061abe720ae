import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`, then the
/// raw little-endian tensor bytes. PyTorch loads it with `safetensors.torch.load_file`.
public struct SafetensorsFile: Sendable {
    public enum DType: String, Sendable {
        case f32 = "F32"
        case i64 = "I64"

        var size: Int { self == .f32 ? 4 : 8 }
    }

    public struct Tensor: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Little-endian element bytes.
        public let data: Data

        public init(name: String, floats: [Float], shape: [Int]) {
            precondition(floats.count == shape.reduce(1, *))
            self.name = name
            dtype = .f32
            self.shape = shape
            data = floats.withUnsafeBufferPointer { Data(buffer: $0) }  // x86-64 and arm64 are little-endian
        }

        public init(name: String, int64s: [Int64], shape: [Int]) {
            precondition(int64s.count == shape.reduce(1, *))
            self.name = name
            dtype = .i64
            self.shape = shape
            data = int64s.withUnsafeBufferPointer { Data(buffer: $0) }
        }

        init(name: String, dtype: DType, shape: [Int], data: Data) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.data = data
        }

        public var floats: [Float]? {
            guard dtype == .f32 else { return nil }
            return data.withUnsafeBytes { raw in Array(raw.bindMemory(to: Float.self)) }
        }

        public var int64s: [Int64]? {
            guard dtype == .i64 else { return nil }
            return data.withUnsafeBytes { raw in Array(raw.bindMemory(to: Int64.self)) }
        }
    }

    public var tensors: [Tensor]
    public var metadata: [String: String]

    public init(tensors: [Tensor] = [], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public subscript(name: String) -> Tensor? { tensors.first { $0.name == name } }

    /// Name → shape of every tensor.
    public var shapes: [String: [Int]] { Dictionary(tensors.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a }) }

    // MARK: encoding

    public func encoded() -> Data {
        var offset = 0
        var entries: [SafetensorsHeader.Entry] = []
        for t in tensors {
            entries.append(
                .init(name: t.name, dtype: t.dtype.rawValue, shape: t.shape, begin: offset, end: offset + t.data.count))
            offset += t.data.count
        }
        var headerBytes = Data(SafetensorsHeader.encode(metadata: metadata, entries: entries))
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }  // pad with spaces: data stays 8-aligned
        var out = Data(capacity: 8 + headerBytes.count + offset)
        var length = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(headerBytes)
        for t in tensors { out.append(t.data) }
        return out
    }

    /// Writes atomically: a temporary file in the same folder, flushed, then renamed over `path`,
    /// so a crash never leaves a half-written file under the real name.
    public func write(to path: String) throws {
        try AtomicFile.write(encoded(), to: path)
    }

    // MARK: decoding

    public static func read(from path: String) throws -> SafetensorsFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafetensorsError(path: path, problem: "cannot be read (missing or not a file)")
        }
        return try decode(data, path: path)
    }

    public static func decode(_ data: Data, path: String = "<memory>") throws -> SafetensorsFile {
        func fail(_ problem: String) -> SafetensorsError { SafetensorsError(path: path, problem: problem) }
        guard data.count >= 8 else { throw fail("too short to be safetensors (\(data.count) bytes)") }
        let headerLength = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8), headerLength < 100_000_000 else {
            throw fail("header length \(headerLength) exceeds the file size \(data.count)")
        }
        let header: SafetensorsHeader
        do {
            header = try data[8..<(8 + Int(headerLength))].withUnsafeBytes { try SafetensorsHeader.decode($0) }
        } catch let e as HeaderProblem {
            throw fail(e.problem)
        }
        let body = data.subdata(in: (8 + Int(headerLength))..<data.count)
        var file = SafetensorsFile()
        file.metadata = header.metadata
        var entries: [(begin: Int, tensor: Tensor)] = []
        for e in header.entries {
            let name = e.name
            guard let dtype = DType(rawValue: e.dtype) else {
                throw fail("tensor \(name): dtype \(e.dtype) is not supported (F32, I64)")
            }
            guard e.shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor \(name): negative dimension") }
            let (begin, end) = (e.begin, e.end)
            guard begin >= 0, end >= begin, end <= body.count else {
                throw fail("tensor \(name): data_offsets [\(begin), \(end)] outside the \(body.count) data bytes")
            }
            // Overflow-checked: a header may declare any shape, and the product must not trap.
            var bytes: Int? = dtype.size
            for d in e.shape {
                bytes = bytes.flatMap {
                    let (p, o) = $0.multipliedReportingOverflow(by: d); return o ? nil : p
                }
            }
            guard let bytes, end - begin == bytes else {
                throw fail("tensor \(name): \(end - begin) bytes for shape \(e.shape) of \(e.dtype)")
            }
            entries.append((begin, Tensor(name: name, dtype: dtype, shape: e.shape, data: body.subdata(in: begin..<end))))
        }
        file.tensors = entries.sorted { $0.begin < $1.begin }.map(\.tensor)
        return file
    }
}

public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }
    public var description: String { "\(path): \(problem)" }
}

/// Writes a file so that readers see the old content or the new, never a torn one. A failure
/// (a full disk, a read-only folder) names the system's reason and leaves the old file as it was.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
        func failure(_ what: String) -> SafetensorsError {
            SafetensorsError(path: path, problem: "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create \(tmp)") }
        let written: Bool = data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        guard written, fsync(fd) == 0 else {
            let error = failure("cannot write \(tmp)")
            close(fd)
            unlink(tmp)
            throw error
        }
        guard close(fd) == 0 else {
            let error = failure("cannot close \(tmp)")
            unlink(tmp)
            throw error
        }
        guard rename(tmp, url.path) == 0 else {
            let error = failure("rename failed")
            unlink(tmp)
            throw error
        }
    }
}

extension ModelState {
    /// The state dict exactly as PyTorch names and lays it out (conv weights converted to OIHW).
    public func stateDict(metadata: [String: String] = [:]) -> SafetensorsFile {
        var tensors: [SafetensorsFile.Tensor] = []
        var counters = layout.counterNames.makeIterator()
        for e in layout.entries {
            tensors.append(.init(name: e.name, floats: pytorchValues(e), shape: e.shape))
            // PyTorch orders each BN's num_batches_tracked right after its running_var
            if e.name.hasSuffix(".running_var"), let counter = counters.next() {
                tensors.append(.init(name: counter, int64s: [batchesTracked], shape: []))
            }
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }

    /// Loads a PyTorch-layout state dict; every tensor must be there with its shape.
    public func load(stateDict file: SafetensorsFile) throws {
        for e in layout.entries {
            guard let t = file[e.name] else { throw ModelFileError.missing(e.name) }
            guard t.shape == e.shape else { throw ModelFileError.shape(e.name, expected: e.shape, found: t.shape) }
            guard let values = t.floats else { throw ModelFileError.notResNetMini("\(e.name) is not F32") }
            setPytorchValues(e, values)
        }
        if let first = layout.counterNames.first, let counter = file[first]?.int64s?.first {
            batchesTracked = counter
        }
    }
}
