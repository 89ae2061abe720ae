import JSONBytes

/// The JSON header of a safetensors file, `{name: {"dtype", "shape", "data_offsets": [begin, end]},
/// "__metadata__": {string: string}}`, read and written with the project's one JSON scanner.
struct SafetensorsHeader {
    struct Entry {
        var name: String
        var dtype: String
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    var metadata: [String: String] = [:]
    var entries: [Entry] = []

    /// The header's bytes as one line of JSON (metadata first, keys sorted; tensors in order).
    static func encode(metadata: [String: String], entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        if !metadata.isEmpty {
            out.append(contentsOf: #""__metadata__":{"#.utf8)
            for (i, key) in metadata.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONText.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                JSONText.appendString(metadata[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        for (i, e) in entries.enumerated() {
            if i > 0 || !metadata.isEmpty { out.append(UInt8(ascii: ",")) }
            JSONText.appendString(e.name, to: &out)
            out.append(contentsOf: #":{"dtype":"#.utf8)
            JSONText.appendString(e.dtype, to: &out)
            out.append(contentsOf: #","shape":["#.utf8)
            for (k, d) in e.shape.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSONText.appendInteger(Int64(d), to: &out)
            }
            out.append(contentsOf: #"],"data_offsets":["#.utf8)
            JSONText.appendInteger(Int64(e.begin), to: &out)
            out.append(UInt8(ascii: ","))
            JSONText.appendInteger(Int64(e.end), to: &out)
            out.append(contentsOf: "]}".utf8)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Reads the header's JSON. Members other than dtype, shape and data_offsets are skipped (the
    /// format may grow); a tensor named twice, a missing member or a value of the wrong kind is
    /// refused naming the tensor; bytes that are not JSON, naming the byte.
    static func decode(_ raw: UnsafeRawBufferPointer) throws -> SafetensorsHeader {
        var s = JSONScanner(raw)
        var header = SafetensorsHeader()
        var names: Set<String> = []
        do {
            try s.expect(UInt8(ascii: "{"), "'{' (the header is a JSON object)")
            if !s.consume(UInt8(ascii: "}")) {
                repeat {
                    let name = try s.readString()
                    try s.expect(UInt8(ascii: ":"), "':'")
                    guard names.insert(name).inserted else { throw HeaderProblem("\(name) appears twice in the header") }
                    if name == "__metadata__" {
                        header.metadata = try readStringMap(&s)
                    } else {
                        header.entries.append(try readEntry(name, &s))
                    }
                } while try s.nextMember(close: UInt8(ascii: "}"), in: "the header")
            }
            guard s.isAtEnd() else { throw s.error("unexpected text after the header's JSON object") }
        } catch let e as JSONScanError {
            throw HeaderProblem("header is not valid JSON at header byte \(e.offset): \(e.problem)")
        }
        return header
    }

    private static func readStringMap(_ s: inout JSONScanner) throws -> [String: String] {
        let malformed = HeaderProblem("__metadata__ must map strings to strings")
        guard s.consume(UInt8(ascii: "{")) else { throw malformed }
        var map: [String: String] = [:]
        if s.consume(UInt8(ascii: "}")) { return map }
        repeat {
            let key = try s.readString()
            try s.expect(UInt8(ascii: ":"), "':'")
            guard s.peek() == UInt8(ascii: "\""), map[key] == nil else { throw malformed }
            map[key] = try s.readString()
        } while try s.nextMember(close: UInt8(ascii: "}"), in: "__metadata__")
        return map
    }

    private static func readEntry(_ name: String, _ s: inout JSONScanner) throws -> Entry {
        let malformed = HeaderProblem("tensor \(name): malformed entry")
        guard s.consume(UInt8(ascii: "{")) else { throw malformed }
        var dtype: String?, shape: [Int]?, offsets: [Int]?
        if !s.consume(UInt8(ascii: "}")) {
            repeat {
                let member = try s.readString()
                try s.expect(UInt8(ascii: ":"), "':'")
                switch member {
                case "dtype":
                    guard dtype == nil, s.peek() == UInt8(ascii: "\"") else { throw malformed }
                    dtype = try s.readString()
                case "shape":
                    guard shape == nil else { throw malformed }
                    shape = try readIntegers(&s, malformed)
                case "data_offsets":
                    guard offsets == nil else { throw malformed }
                    offsets = try readIntegers(&s, malformed)
                default:
                    try s.skipValue()
                }
            } while try s.nextMember(close: UInt8(ascii: "}"), in: "tensor \(name)")
        }
        guard let dtype, let shape, let offsets, offsets.count == 2 else { throw malformed }
        return Entry(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
    }

    /// A list of whole numbers that fit an `Int` (JSON numbers are read as `Double`s, exact to 2^53).
    private static func readIntegers(_ s: inout JSONScanner, _ malformed: HeaderProblem) throws -> [Int] {
        guard s.consume(UInt8(ascii: "[")) else { throw malformed }
        var out: [Int] = []
        if s.consume(UInt8(ascii: "]")) { return out }
        repeat {
            guard try s.peekValue() == .number else { throw malformed }
            let x = try s.readNumber()
            guard x == x.rounded(), x.magnitude <= 9_007_199_254_740_992 else { throw malformed }
            out.append(Int(x))
        } while try s.nextMember(close: UInt8(ascii: "]"), in: "a list of integers")
        return out
    }
}

/// A header refusal before it is given the file's path.
struct HeaderProblem: Error {
    let problem: String
    init(_ problem: String) { self.problem = problem }
}
