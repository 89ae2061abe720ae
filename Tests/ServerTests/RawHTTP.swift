import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP connection to the test server that sends bytes exactly as written: no client between
/// the test and the server normalises `..`, `%2f` or a NUL in the path, and many can stay open at
/// once (event streams) without a client's per-host connection limit.
final class RawConnection {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw POSIXError(.init(rawValue: errno) ?? .ECONNREFUSED)
        }
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(.EPIPE) }
            sent += n
        }
    }

    /// Ends the sending side: the server sees the end of a body cut short of its Content-Length.
    func closeWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads until the end of the response head; returns the status code and the head.
    func readHead() throws -> (status: Int, head: String) {
        while true {
            if let end = find([13, 10, 13, 10]) {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                let parts = head.split(separator: " ", maxSplits: 2)
                return (parts.count > 1 ? Int(parts[1]) ?? 0 : 0, head)
            }
            guard try fill() else { throw POSIXError(.ECONNRESET) }
        }
    }

    /// Everything after the head until the server closes the connection.
    func readToEnd() throws -> [UInt8] {
        while try fill() {}
        defer { buffer.removeAll() }
        return buffer
    }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        buffer += chunk[..<n]
        return n > 0
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for i in 0...(buffer.count - needle.count) where buffer[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }

    /// One request with `Connection: close`: its status and its whole body (chunked framing left in).
    /// Status 0: the server closed the connection without answering (its HTTP parser refused the
    /// request line), which serves nothing either.
    /// A request written byte for byte (any `Host`, any path; say `Connection: close`) and the whole
    /// answer as text, head included, with its status.
    static func exchange(port: Int, _ request: String) throws -> (status: Int, text: String) {
        let c = try RawConnection(port: port)
        try c.send(request)
        let answer = String(decoding: try c.readToEnd(), as: UTF8.self)
        let status = answer.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        return (status, answer)
    }

    static func get(port: Int, _ rawPath: String) throws -> (status: Int, body: String) {
        let c = try RawConnection(port: port)
        try c.send("GET \(rawPath) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")
        let status: Int
        do { (status, _) = try c.readHead() } catch POSIXError.ECONNRESET { return (0, "") }
        return (status, String(decoding: try c.readToEnd(), as: UTF8.self))
    }
}
