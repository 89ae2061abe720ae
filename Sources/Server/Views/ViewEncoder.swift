import Experiments
import Hummingbird

/// The API's one encoder for `Codable` views (Hummingbird's `ResponseEncodable`, via ``AppRequestContext``).
///
/// Foundation's `JSONEncoder` on Linux writes an object's keys in hash order, so a view's fields would
/// come out shuffled on every run; this one writes them in the order the view declares them (the
/// spec's order). Numbers and strings go through `JSONValue`'s writer, so a view writes what the
/// hand-built bodies wrote: integral values without a fraction, `-0` as `0`, NaN and ±Inf as the
/// strings `"NaN"`, `"Infinity"`, `"-Infinity"`. A nil optional is written `null`, never left out.
struct ViewEncoder: ResponseEncoder {
    func encode(_ value: some Encodable, from request: Request, context: some RequestContext) throws -> Response {
        Reply.bytes(try Self.bytes(value))
    }

    /// `value` as compact JSON.
    static func bytes(_ value: some Encodable) throws -> [UInt8] {
        let root = Node()
        try value.encode(to: TreeEncoder(node: root, codingPath: []))
        var out = ""
        root.write(to: &out)
        return Array(out.utf8)
    }

    /// A value being encoded: JSON text for a scalar, or the children of an array or object.
    final class Node {
        enum Kind { case empty, text(String), array([Node]), object([(String, Node)]) }
        var kind = Kind.empty

        func append(_ child: Node) {
            if case .array(var items) = kind {
                kind = .empty  // keeps `items` uniquely referenced while it grows
                items.append(child)
                kind = .array(items)
            } else {
                kind = .array([child])
            }
        }

        func set(_ key: String, _ child: Node) {
            if case .object(var members) = kind {
                kind = .empty
                if let i = members.firstIndex(where: { $0.0 == key }) {
                    members[i].1 = child
                } else {
                    members.append((key, child))
                }
                kind = .object(members)
            } else {
                kind = .object([(key, child)])
            }
        }

        func write(to out: inout String) {
            switch kind {
            case .empty: out += "null"
            case .text(let t): out += t
            case .array(let items):
                out += "["
                for (i, item) in items.enumerated() {
                    if i > 0 { out += "," }
                    item.write(to: &out)
                }
                out += "]"
            case .object(let members):
                out += "{"
                for (i, (key, value)) in members.enumerated() {
                    if i > 0 { out += "," }
                    out += JSONValue.string(key).text() + ":"
                    value.write(to: &out)
                }
                out += "}"
            }
        }

        static func text(_ t: String) -> Node {
            let n = Node()
            n.kind = .text(t)
            return n
        }
        static func number(_ x: Double) -> Node { text(JSONValue.number(x).text()) }
        static func string(_ s: String) -> Node { text(JSONValue.string(s).text()) }
    }

    struct TreeEncoder: Encoder {
        let node: Node
        var codingPath: [any CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            if case .object = node.kind {} else { node.kind = .object([]) }
            return KeyedEncodingContainer(Keyed(node: node, codingPath: codingPath))
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            if case .array = node.kind {} else { node.kind = .array([]) }
            return Unkeyed(node: node, codingPath: codingPath)
        }

        func singleValueContainer() -> any SingleValueEncodingContainer { Single(node: node, codingPath: codingPath) }
    }

    /// Encodes any value into a fresh node.
    static func node(_ value: some Encodable, path: [any CodingKey]) throws -> Node {
        switch value {
        case let x as Double: return .number(x)
        case let x as Float: return .number(Double(x))
        case let s as String: return .string(s)
        case let b as Bool: return .text(b ? "true" : "false")
        case let i as any BinaryInteger: return .text(String(describing: i))
        default:
            let n = Node()
            try value.encode(to: TreeEncoder(node: n, codingPath: path))
            return n
        }
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let node: Node
        var codingPath: [any CodingKey]

        mutating func encodeNil(forKey key: Key) throws { node.set(key.stringValue, .text("null")) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            node.set(key.stringValue, try ViewEncoder.node(value, path: codingPath + [key]))
        }
        // Synthesized conformances skip a nil optional; a view writes `null` so every key is always there.
        mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
            if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
        }
        mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try put(value, key) }
        mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try put(value, key) }
        private mutating func put<T: Encodable>(_ value: T?, _ key: Key) throws { try encodeIfPresent(value, forKey: key) }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
            -> KeyedEncodingContainer<NestedKey>
        {
            let child = Node()
            node.set(key.stringValue, child)
            return TreeEncoder(node: child, codingPath: codingPath + [key]).container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let child = Node()
            node.set(key.stringValue, child)
            return TreeEncoder(node: child, codingPath: codingPath + [key]).unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder { superEncoder(forKey: Key(stringValue: "super")!) }
        mutating func superEncoder(forKey key: Key) -> any Encoder {
            let child = Node()
            node.set(key.stringValue, child)
            return TreeEncoder(node: child, codingPath: codingPath + [key])
        }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let node: Node
        var codingPath: [any CodingKey]
        var count: Int {
            if case .array(let items) = node.kind { return items.count }
            return 0
        }

        mutating func encodeNil() throws { node.append(.text("null")) }
        mutating func encode<T: Encodable>(_ value: T) throws { node.append(try ViewEncoder.node(value, path: codingPath)) }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey>
        {
            let child = Node()
            node.append(child)
            return TreeEncoder(node: child, codingPath: codingPath).container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let child = Node()
            node.append(child)
            return TreeEncoder(node: child, codingPath: codingPath).unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder {
            let child = Node()
            node.append(child)
            return TreeEncoder(node: child, codingPath: codingPath)
        }
    }

    struct Single: SingleValueEncodingContainer {
        let node: Node
        var codingPath: [any CodingKey]

        mutating func encodeNil() throws { node.kind = .text("null") }
        mutating func encode<T: Encodable>(_ value: T) throws { node.kind = try ViewEncoder.node(value, path: codingPath).kind }
    }
}

/// The router's request context: `BasicRequestContext` with ``ViewEncoder`` as its response encoder.
struct AppRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    init(source: Source) { coreContext = .init(source: source) }
    var responseEncoder: ViewEncoder { ViewEncoder() }
}

/// A stored or user-given JSON document inside a view (a spec, a summary, preset settings), keys sorted.
struct JSONDocument: Encodable {
    var value: JSONValue
    init(_ value: JSONValue) { self.value = value }
    /// Stored JSON text; text that does not parse is shown as `null` (the store wrote it, so it should).
    init(text: String?) { value = text.flatMap { try? JSONValue.parse($0) } ?? .null }

    func encode(to encoder: any Encoder) throws {
        switch value {
        case .object(let members): try SortedMap(members.mapValues(JSONDocument.init)).encode(to: encoder)
        case .array(let items): try items.map(JSONDocument.init).encode(to: encoder)
        default:
            var c = encoder.singleValueContainer()
            switch value {
            case .null: try c.encodeNil()
            case .bool(let b): try c.encode(b)
            case .number(let x): try c.encode(x)
            case .string(let s): try c.encode(s)
            default: break
            }
        }
    }
}

/// A string-keyed map written with its keys sorted (a Swift dictionary's own order changes from run to run).
struct SortedMap<Value: Encodable>: Encodable {
    var entries: [String: Value]
    init(_ entries: [String: Value]) { self.entries = entries }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        for key in entries.keys.sorted() { try c.encode(entries[key]!, forKey: AnyKey(key)) }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
