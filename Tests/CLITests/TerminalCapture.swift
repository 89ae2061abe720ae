import CProcess
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What a program left on a terminal: the bytes it wrote (escape codes included), the screen they
/// draw, and what went to a pipe instead.
struct TerminalCapture {
    var status: Int32
    /// Everything written to the pseudo-terminal, with the line discipline's `\r\n` for `\n`.
    var bytes: String
    /// Standard error, when it was a pipe rather than the terminal.
    var err: String

    /// The lines a terminal shows at the end: `\r` returns to the line's start, `ESC[K` clears to its
    /// end, colour codes draw nothing.
    var screen: String {
        var lines: [[Character]] = [[]]
        var column = 0
        var chars = Array(bytes)[...]
        while let c = chars.popFirst() {
            switch c {
            case "\r\n", "\n":
                lines.append([])
                column = 0
            case "\r": column = 0
            case "\u{1B}":
                var code = ""
                while let d = chars.popFirst() {
                    code.append(d)
                    if d.isLetter { break }
                }
                if code == "[K" { lines[lines.count - 1].removeSubrange(min(column, lines[lines.count - 1].count)...) }
            default:
                var line = lines[lines.count - 1]
                if column < line.count { line[column] = c } else { line.append(c) }
                lines[lines.count - 1] = line
                column += 1
            }
        }
        return lines.map { String($0) }.joined(separator: "\n")
    }
}

/// Runs `executable` with its standard output (and, unless `pipeStandardError`, its standard
/// error) on a fresh pseudo-terminal, as a person at a terminal would, to its end.
func runOnTerminal(
    _ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String],
    pipeStandardError: Bool = false
) throws -> TerminalCapture {
    var master: Int32 = -1
    var slave: Int32 = -1
    guard cprocess_open_pseudo_terminal(&master, &slave) == 0 else {
        throw NSError(domain: "pty", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "no pseudo-terminal"])
    }
    defer { close(master) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.environment = environment
    let terminal = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
    p.standardOutput = terminal
    let errPipe = Pipe()
    p.standardError = pipeStandardError ? errPipe : terminal
    let input = Pipe()
    p.standardInput = input
    try p.run()
    close(slave)  // the child holds the only copy: reading the master ends (EIO) when it exits
    let errText = Box()
    let errDone = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        if pipeStandardError { errText.data = errPipe.fileHandleForReading.readDataToEndOfFile() }
        errDone.signal()
    }
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(master, &buffer, buffer.count)
        if n > 0 {
            data.append(contentsOf: buffer[0..<n])
        } else if n < 0 && errno == EINTR {
            continue
        } else {
            break
        }
    }
    errDone.wait()
    p.waitUntilExit()
    return TerminalCapture(
        status: p.terminationStatus, bytes: String(decoding: data, as: UTF8.self),
        err: String(decoding: errText.data, as: UTF8.self))
}

private final class Box: @unchecked Sendable {
    var data = Data()
}

/// Numbers that vary between runs (accuracies, losses, times, speeds) as `#`, and runs of spaces
/// as one, so a golden text pins the words and the layout's order, not the measurements.
func maskNumbers(_ text: String) -> String {
    var s = text.replacingOccurrences(of: #"[0-9]+([.,][0-9]+)*"#, with: "#", options: .regularExpression)
    s = s.replacingOccurrences(of: #" {2,}"#, with: " ", options: .regularExpression)
    return s.split(separator: "\n", omittingEmptySubsequences: false).map {
        var line = String($0)
        while line.last == " " { line.removeLast() }
        return line
    }.joined(separator: "\n")
}
