import CZlib

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A problem with a data file (or with a restored RNG state). `description` starts with the file's
/// path when there is one, then says what is wrong, e.g.
/// `/x/train-images-idx3-ubyte.gz: truncated: expected 47040000 bytes of data, found 1000`.
public struct DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file concerned, or `nil` when the error is not about a file.
    public let path: String?
    /// What is wrong, without the path.
    public let message: String

    public init(path: String?, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String {
        if let path { return "\(path): \(message)" }
        return message
    }
}

/// The contents of an IDX file of unsigned bytes (type code 0x08): its dimensions, outermost first,
/// and the row-major payload (`dims.reduce(1, *)` bytes).
public struct IDXArray: Sendable {
    public let dims: [Int]
    public let bytes: [UInt8]

    public init(dims: [Int], bytes: [UInt8]) {
        precondition(bytes.count == dims.reduce(1, *), "IDXArray: \(bytes.count) bytes for dims \(dims)")
        self.dims = dims
        self.bytes = bytes
    }

    /// The largest payload `read` accepts (2³¹ bytes); bigger headers are refused before allocating.
    public static let maxPayloadBytes = 1 << 31

    /// Reads an IDX file, plain or gzip-compressed. Gzip is recognised by its magic bytes `1f 8b`,
    /// not by the file name, and decompressed as a stream (concatenated gzip members are accepted).
    /// Only the size the header's dimensions declare is ever allocated.
    ///
    /// Checks: the magic `00 00 08 NN` (other type codes are refused, naming the type), rank 1…4,
    /// every dimension > 0, a payload of at most `maxPayloadBytes`, and exactly that many bytes of
    /// data after the header (fewer → "truncated: …", more → "trailing data …").
    /// - Throws: `DatasetError` naming `path`.
    public static func read(path: String) throws -> IDXArray {
        let source = try ByteSource.open(path: path)
        return try parse(source, path: path)
    }

    /// Reads IDX bytes held in memory (plain or gzip) with the checks of ``read(path:)``; `name`
    /// stands for the path in errors. The fuzzer and the property tests come here.
    public static func decode(_ data: [UInt8], name: String = "<memory>") throws -> IDXArray {
        // fmemopen refuses an empty buffer; one spare byte it never reads keeps the pointer valid.
        var copy = data
        copy.append(0)
        return try copy.withUnsafeMutableBytes { raw in
            guard let f = fmemopen(raw.baseAddress, data.count, "rb") else {
                throw DatasetError(path: name, "cannot be read from memory: \(String(cString: strerror(errno)))")
            }
            return try parse(try ByteSource.open(file: f, path: name), path: name)
        }
    }

    static func parse(_ source: ByteSource, path: String) throws -> IDXArray {
        func fail(_ message: String) -> DatasetError { DatasetError(path: path, message) }

        var magic = [UInt8](repeating: 0, count: 4)
        let gotMagic = try source.readFully(&magic, path: path)
        guard gotMagic == 4 else {
            throw fail("truncated: file too short for an IDX header (\(gotMagic) bytes)")
        }
        guard magic[0] == 0, magic[1] == 0 else {
            let hex = magic.map { hex2($0) }.joined(separator: " ")
            throw fail("not an IDX file: bad magic \(hex) (expected 00 00 08 <rank>)")
        }
        guard magic[2] == 0x08 else {
            throw fail(
                "unsupported IDX data type 0x\(hex2(magic[2])) (\(typeName(magic[2]))); "
                    + "only 0x08 (unsigned byte) is supported")
        }
        let rank = Int(magic[3])
        guard (1...4).contains(rank) else {
            throw fail("unsupported IDX rank \(rank) (expected 1 to 4 dimensions)")
        }
        var header = [UInt8](repeating: 0, count: 4 * rank)
        let gotHeader = try source.readFully(&header, path: path)
        guard gotHeader == header.count else {
            throw fail("truncated: IDX header declares \(rank) dimensions but the file ends inside them")
        }
        var dims: [Int] = []
        var total = 1
        for i in 0..<rank {
            let d =
                Int(header[4 * i]) << 24 | Int(header[4 * i + 1]) << 16
                | Int(header[4 * i + 2]) << 8 | Int(header[4 * i + 3])
            guard d > 0 else { throw fail("IDX dimension \(i) is 0") }
            dims.append(d)
            total = total.multipliedReportingOverflow(by: d).partialValue
            guard total <= maxPayloadBytes else {
                throw fail(
                    "IDX dimensions \(dims.map(String.init).joined(separator: "×"))… exceed "
                        + "the \(maxPayloadBytes)-byte limit")
            }
        }
        // Grown as data arrives, not allocated from the header: a 12-byte file declaring 2 GiB
        // must not make us allocate (and zero) 2 GiB before finding it is truncated.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(min(total, 1 << 24))
        var chunk = [UInt8](repeating: 0, count: min(total, 1 << 20))
        while bytes.count < total {
            let want = min(chunk.count, total - bytes.count)
            let n = try chunk.withUnsafeMutableBytes { try source.readFully(.init(rebasing: $0[0..<want]), path: path) }
            bytes.append(contentsOf: chunk[0..<n])
            if n < want { break }
        }
        let found = bytes.count
        guard found == total else {
            var message = "truncated: expected \(total) bytes of data, found \(found)"
            if source.endedEarly { message += " (the gzip stream is cut off)" }
            throw fail(message)
        }
        // Nothing may follow the payload. Count the extra bytes, up to a bound (a gzip bomb
        // should not keep us busy).
        var extra = 0
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        let bound = 1 << 26
        while extra < bound {
            let n = try source.read(into: &scratch, path: path)
            if n == 0 { break }
            extra += n
        }
        if extra > 0 {
            let amount = extra >= bound ? "at least \(extra)" : "\(extra)"
            throw fail("trailing data: \(amount) bytes after the \(total) bytes of data the header declares")
        }
        if source.endedEarly {
            throw fail("not valid gzip: the compressed stream ends before its end marker (file cut off?)")
        }
        return IDXArray(dims: dims, bytes: bytes)
    }

    static func typeName(_ code: UInt8) -> String {
        switch code {
        case 0x09: return "signed byte"
        case 0x0B: return "int16"
        case 0x0C: return "int32"
        case 0x0D: return "float32"
        case 0x0E: return "float64"
        default: return "unknown type"
        }
    }
}

@inline(__always) func hex2(_ b: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}

/// A file read sequentially, decompressing gzip on the fly when the file starts with `1f 8b`.
final class ByteSource {
    private let file: UnsafeMutablePointer<FILE>
    private let gzip: Bool
    private var stream: UnsafeMutablePointer<z_stream>?
    private var input: UnsafeMutablePointer<UInt8>
    private let inputCapacity = 1 << 16
    private var inputEOF = false
    private var memberEnded = false
    private var startedNewMember = false
    /// True when the compressed input ended before a gzip member's end marker.
    private(set) var endedEarly = false
    let path: String

    private init(file: UnsafeMutablePointer<FILE>, path: String) {
        self.file = file
        self.path = path
        input = .allocate(capacity: inputCapacity)
        // Peek at the first two bytes, then rewind.
        let a = getc(file), b = getc(file)
        gzip = a == 0x1F && b == 0x8B
        rewind(file)
    }

    deinit {
        if let stream {
            inflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        input.deallocate()
        fclose(file)
    }

    static func open(path: String) throws -> ByteSource {
        guard let f = fopen(path, "rb") else {
            let code = errno
            let reason = code == ENOENT ? "not found" : String(cString: strerror(code))
            throw DatasetError(path: path, reason)
        }
        return try open(file: f, path: path)
    }

    /// Takes ownership of `f` (closed when the source goes away).
    static func open(file f: UnsafeMutablePointer<FILE>, path: String) throws -> ByteSource {
        let source = ByteSource(file: f, path: path)
        if source.gzip { try source.startInflate() }
        return source
    }

    private func startInflate() throws {
        let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        s.initialize(to: z_stream())
        // 15 + 32: a 32 KiB window, and the zlib/gzip header detected automatically.
        let rc = inflateInit2_(s, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            s.deinitialize(count: 1)
            s.deallocate()
            throw DatasetError(path: path, "cannot start zlib (inflateInit2 returned \(rc))")
        }
        stream = s
    }

    /// Fills the compressed-input buffer when it is empty. Returns false at end of file.
    private func refill() throws -> Bool {
        guard let s = stream else { return false }
        if s.pointee.avail_in > 0 { return true }
        if inputEOF { return false }
        let n = fread(input, 1, inputCapacity, file)
        if n < inputCapacity {
            if ferror(file) != 0 { throw DatasetError(path: path, "read error: \(String(cString: strerror(errno)))") }
            inputEOF = true
        }
        s.pointee.next_in = input
        s.pointee.avail_in = UInt32(n)
        return n > 0
    }

    /// After a gzip member: skips zero bytes. Returns false at the end of the file, true when
    /// another (non-zero) byte follows.
    private func skipZeroPadding() throws -> Bool {
        guard let s = stream else { return false }
        while try refill() {
            while s.pointee.avail_in > 0 {
                if s.pointee.next_in.pointee != 0 { return true }
                s.pointee.next_in += 1
                s.pointee.avail_in -= 1
            }
        }
        return false
    }

    /// Reads up to `buffer.count` bytes; returns 0 only at the end of the data.
    func read(into buffer: UnsafeMutableRawBufferPointer, path: String) throws -> Int {
        guard buffer.count > 0, let base = buffer.baseAddress else { return 0 }
        guard gzip, let s = stream else {
            let n = fread(base, 1, buffer.count, file)
            if n < buffer.count, ferror(file) != 0 {
                throw DatasetError(path: path, "read error: \(String(cString: strerror(errno)))")
            }
            return n
        }
        s.pointee.next_out = base.assumingMemoryBound(to: UInt8.self)
        s.pointee.avail_out = UInt32(min(buffer.count, Int(UInt32.max)))
        let wanted = Int(s.pointee.avail_out)
        while s.pointee.avail_out > 0 {
            if memberEnded {
                // Another gzip member may follow (as `cat a.gz b.gz` makes). Zero padding after the
                // last member is skipped, as Python's gzip module does; anything else is an error.
                guard try skipZeroPadding() else { break }
                inflateReset(s)
                memberEnded = false
                startedNewMember = true
            }
            if s.pointee.avail_in == 0 {
                guard try refill() else {
                    endedEarly = true
                    break
                }
            }
            let rc = inflate(s, Z_NO_FLUSH)
            switch rc {
            case Z_OK:
                startedNewMember = false
                continue
            case Z_STREAM_END:
                memberEnded = true
            case Z_BUF_ERROR:
                // No progress possible: needs more input, loop refills (or ends early).
                if s.pointee.avail_in > 0 { continue }
            case Z_MEM_ERROR:
                throw DatasetError(path: path, "out of memory while decompressing")
            default:
                let detail = s.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                if startedNewMember {
                    throw DatasetError(
                        path: path, "not valid gzip: unexpected bytes after the end of the gzip stream (\(detail))")
                }
                throw DatasetError(path: path, "not valid gzip: \(detail)")
            }
        }
        return wanted - Int(s.pointee.avail_out)
    }

    /// Reads until `buffer` is full or the data ends; returns how many bytes were read.
    func readFully(_ buffer: UnsafeMutableRawBufferPointer, path: String) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), path: path)
            if n == 0 { break }
            done += n
        }
        return done
    }

    func readFully(_ array: inout [UInt8], path: String) throws -> Int {
        try array.withUnsafeMutableBytes { try readFully($0, path: path) }
    }

    func read(into array: inout [UInt8], path: String) throws -> Int {
        try array.withUnsafeMutableBytes { try read(into: $0, path: path) }
    }
}
