/// MetricBatch.swift is compiled into this harness as it is (a symlink). Its refusals are the
/// server's `APIError`, whose module brings SwiftNIO along; this local type of the same name keeps
/// what the reader records (message, field) so the fuzzer builds without NIO. The server's own
/// type is exercised by the property test in Tests/ParserTests.
struct APIError: Error, CustomStringConvertible {
    var message: String
    var field: String?

    static func badRequest(_ message: String, field: String? = nil) -> APIError { APIError(message: message, field: field) }

    var description: String { message }
}
