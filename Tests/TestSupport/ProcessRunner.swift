import Foundation
import XCTest

/// What a finished child process left: its exit status and everything it printed.
public struct ProcessOutput: Sendable {
    public let status: Int32
    public let out: String
    public let err: String
}

/// Runs `executable` with `arguments` to its end: `stdin` written to it (then closed), in
/// `directory` when given, with `environment` when given (else this process's). Both output pipes
/// are drained at once, so a child that fills one while we read the other cannot hang the test.
public func runProcess(
    _ executable: String, _ arguments: [String], stdin: String? = nil, in directory: URL? = nil,
    environment: [String: String]? = nil
) throws -> ProcessOutput {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let directory { p.currentDirectoryURL = directory }
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    let errText = ErrorText()
    let errDrained = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        errText.data = err.fileHandleForReading.readDataToEndOfFile()
        errDrained.signal()
    }
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    errDrained.wait()
    p.waitUntilExit()
    return ProcessOutput(
        status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: errText.data, as: UTF8.self))
}

/// Standard error read on another thread; the semaphore orders the write before the read.
private final class ErrorText: @unchecked Sendable {
    var data = Data()
}

/// The `polyak` executable built beside this test bundle (`swift build --build-tests` builds it);
/// the test is skipped, naming the path, when it is not there.
public func polyakExecutable() throws -> String {
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: me).deletingLastPathComponent()
    // The test binary sits in polyakPackageTests.xctest (a file on Linux) inside the build folder.
    if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
    let path = dir.appendingPathComponent("polyak").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw XCTSkip("no polyak executable at \(path): run `swift build` (make test does) before the tests that run it")
    }
    return path
}
