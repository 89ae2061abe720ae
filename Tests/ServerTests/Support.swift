import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// A temporary folder holding a database and a data directory.
final class TempFolder {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("polyak-server-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    var db: String { url.appendingPathComponent("polyak.sqlite").path }
    var data: String { url.appendingPathComponent("data").path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A `polyak serve` child on `port` over `folder`'s database and data directory, left running (for
/// killing, stopping or a second one beside it); its stdout is dropped, its stderr goes to `stderr`
/// when given.
func startServe(_ exe: String, _ folder: TempFolder, port: Int, logLevel: String = "warning", stderr: Pipe? = nil) throws
    -> Process
{
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = ["serve", "--port", "\(port)", "--db", folder.db, "--data-dir", folder.data, "--log-level", logLevel]
    p.standardOutput = FileHandle.nullDevice
    if let stderr { p.standardError = stderr }
    try p.run()
    return p
}

/// The presets as `polyak serve` gives them.
let realPresets: [PresetEntry] = Presets.all.map { p in
    PresetEntry(name: p.name, summary: p.summary, overlay: { p.overlay(for: $0) })
}

func options(_ folder: TempFolder, executable: String = "/bin/false", maxConcurrent: Int = 1) -> ServerOptions {
    ServerOptions(
        host: "127.0.0.1", port: 0, databasePath: folder.db, dataDirectory: folder.data, maxConcurrent: maxConcurrent,
        executable: executable, presets: realPresets, cancelGrace: 5, version: "test", logLevel: .warning)
}

extension TestClientProtocol {
    @discardableResult
    /// A request; a body goes as JSON unless `headers` name another type (the API refuses others).
    func call(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, headers: HTTPFields = [:]) async throws
        -> TestResponse
    {
        var headers = headers
        if body != nil && headers[.contentType] == nil { headers[.contentType] = "application/json" }
        return try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }

    func json(
        _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, expect: HTTPResponse.Status = .ok,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> JSONValue {
        let r = try await call(method, uri, body)
        let text = String(buffer: r.body)
        XCTAssertEqual(r.status, expect, "\(method) \(uri): \(text)", file: file, line: line)
        return text.isEmpty ? .null : try JSONValue.parse(text)
    }
}

extension JSONValue {
    subscript(index: Int) -> JSONValue? {
        if case .array(let items) = self, index < items.count { return items[index] }
        return nil
    }
    var count: Int {
        if case .array(let items) = self { return items.count }
        return 0
    }
    var intValue: Int? { doubleValue.map { Int($0) } }
}

/// Checks an API error body: `{"error": {"status", "message", "field"}}`.
func assertError(
    _ r: TestResponse, _ status: HTTPResponse.Status, field: String?, contains: String? = nil,
    file: StaticString = #filePath, line: UInt = #line
) throws {
    let text = String(buffer: r.body)
    XCTAssertEqual(r.status, status, text, file: file, line: line)
    let body = try JSONValue.parse(text)
    XCTAssertEqual(body["error"]?["status"]?.intValue, Int(status.code), text, file: file, line: line)
    XCTAssertEqual(body["error"]?["field"]?.stringValue, field, text, file: file, line: line)
    if let contains {
        XCTAssertTrue(
            body["error"]?["message"]?.stringValue?.contains(contains) == true, "\(text) lacks \(contains)", file: file,
            line: line)
    }
}
