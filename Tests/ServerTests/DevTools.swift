import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A headless chromium driven over the DevTools protocol: just enough (open a page, evaluate an
/// expression) to watch a page change while it is open, which `--dump-dom` cannot show.
/// The protocol runs over a WebSocket; this speaks the few parts of RFC 6455 it needs.
final class DevToolsBrowser {
    private let process: Process
    private let profile: String
    private var socket: WebSocket?
    private var nextID = 0

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Starts chromium on `url` and connects to that page.
    init(chromium: String, url: String) throws {
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("polyak-cdp-\(UUID().uuidString)").path
        process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--remote-debugging-port=0", "--user-data-dir=" + profile, url,
        ]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…" names the port.
        var seen = ""
        var port: Int?
        let deadline = Date().addingTimeInterval(30)
        while port == nil && Date() < deadline {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
            if let r = seen.range(of: #"ws://127\.0\.0\.1:(\d+)/"#, options: .regularExpression) {
                port = Int(seen[r].dropFirst("ws://127.0.0.1:".count).dropLast())
            }
        }
        guard let port else { throw Failure("chromium did not open its DevTools port: \(seen.suffix(500))") }
        DispatchQueue.global().async { _ = err.fileHandleForReading.readDataToEndOfFile() }
        // The page's own endpoint, from the list of targets.
        var path: String?
        for _ in 0..<100 where path == nil {
            if let list = try? WebSocket.httpGet(port: port, path: "/json/list"),
                let targets = try? JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]],
                let page = targets.first(where: { $0["type"] as? String == "page" }),
                let ws = page["webSocketDebuggerUrl"] as? String, let r = ws.range(of: "/devtools/")
            {
                path = String(ws[r.lowerBound...])
            } else {
                usleep(100_000)
            }
        }
        guard let path else { throw Failure("chromium lists no page") }
        socket = try WebSocket(port: port, path: path)
    }

    deinit {
        socket = nil
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: profile)
    }

    /// The value of a JavaScript expression in the page (a string, number or bool), or nil while
    /// the page is between documents (it reloads itself when a run ends).
    func evaluate(_ expression: String) throws -> Any? {
        nextID += 1
        let id = nextID
        let message: [String: Any] = [
            "id": id, "method": "Runtime.evaluate", "params": ["expression": expression, "returnByValue": true],
        ]
        try socket!.send(String(decoding: try JSONSerialization.data(withJSONObject: message), as: UTF8.self))
        while true {
            let text = try socket!.receive()
            guard let reply = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], reply["id"] as? Int == id
            else {
                continue  // an event, or the answer to an earlier call
            }
            let result = (reply["result"] as? [String: Any])?["result"] as? [String: Any]
            return result?["value"]
        }
    }
}

/// A blocking WebSocket client (RFC 6455) over loopback: text frames, masked as a client must.
final class WebSocket {
    private let fd: Int32
    private var buffer: [UInt8] = []

    static func connect(port: Int) throws -> Int32 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw DevToolsBrowser.Failure("connect to port \(port): \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// A one-shot HTTP GET (chromium's /json endpoints).
    static func httpGet(port: Int, path: String) throws -> String {
        let fd = try connect(port: port)
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        // Read the head, then Content-Length bytes (chromium keeps the connection open).
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let end = out.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: out[..<end.lowerBound], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
                if let length, out.count - end.upperBound >= length {
                    return String(decoding: out[end.upperBound..<end.upperBound + length], as: UTF8.self)
                }
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        let text = String(decoding: out, as: UTF8.self)
        guard let body = text.range(of: "\r\n\r\n") else { throw DevToolsBrowser.Failure("no HTTP answer from chromium") }
        return String(text[body.upperBound...])
    }

    init(port: Int, path: String) throws {
        fd = try Self.connect(port: port)
        let handshake =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try write(Array(handshake.utf8))
        while !buffer.containsSequence(Array("\r\n\r\n".utf8)) { try fill() }
        let end = buffer.firstRange(of: Array("\r\n\r\n".utf8))!
        let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
        buffer.removeSubrange(..<end.upperBound)
        guard head.hasPrefix("HTTP/1.1 101") else { throw DevToolsBrowser.Failure("WebSocket upgrade refused: \(head)") }
    }

    deinit { close(fd) }

    private func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw DevToolsBrowser.Failure("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { throw DevToolsBrowser.Failure("the DevTools connection closed") }
        buffer += chunk[0..<n]
    }

    private func take(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { try fill() }
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }

    func send(_ text: String) throws {
        let payload = Array(text.utf8)
        var frame: [UInt8] = [0x81]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count < 65536 {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) {
                frame.append(UInt8((UInt64(payload.count) >> UInt64(shift)) & 0xFF))
            }
        }
        let mask: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
        frame += mask
        frame += payload.enumerated().map { $1 ^ mask[$0 % 4] }
        try write(frame)
    }

    /// The next text message (continuation frames joined; pings answered).
    func receive() throws -> String {
        var message: [UInt8] = []
        while true {
            let head = try take(2)
            let fin = head[0] & 0x80 != 0
            let opcode = head[0] & 0x0F
            var length = Int(head[1] & 0x7F)
            if length == 126 {
                let b = try take(2)
                length = Int(b[0]) << 8 | Int(b[1])
            } else if length == 127 {
                length = try take(8).reduce(0) { $0 << 8 | Int($1) }
            }
            let payload = try take(length)
            switch opcode {
            case 0x8: throw DevToolsBrowser.Failure("chromium closed the DevTools connection")
            case 0x9:  // ping → pong
                var pong: [UInt8] = [0x8A, 0x80 | UInt8(payload.count), 0, 0, 0, 0]
                pong += payload
                try write(pong)
                continue
            default:
                message += payload
                if fin { return String(decoding: message, as: UTF8.self) }
            }
        }
    }
}

extension Array where Element == UInt8 {
    func containsSequence(_ needle: [UInt8]) -> Bool { firstRange(of: needle) != nil }
}
