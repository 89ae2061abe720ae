import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A standard stream as a person sees it: whether it is a terminal (so a line may be redrawn in
/// place) and whether it may be coloured (a terminal, `NO_COLOR` unset or empty, `TERM` not
/// `dumb`; https://no-color.org). Nothing written through it carries an escape code otherwise.
struct TerminalStream: Sendable {
    let descriptor: Int32
    let isTerminal: Bool
    let colour: Bool

    init(descriptor: Int32, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.descriptor = descriptor
        isTerminal = isatty(descriptor) == 1
        let noColour = !(environment["NO_COLOR"] ?? "").isEmpty
        colour = isTerminal && !noColour && environment["TERM"] != "dumb"
    }

    static var standardOutput: TerminalStream { TerminalStream(descriptor: STDOUT_FILENO) }
    static var standardError: TerminalStream { TerminalStream(descriptor: STDERR_FILENO) }

    /// Writes all of `text` (unbuffered, so stdout and stderr stay in the order they were written).
    func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return  // a closed terminal: nothing left to tell
            }
            bytes = bytes.dropFirst(n)
        }
    }

    func line(_ text: String) { write(text + "\n") }

    enum Paint: String {
        case bold = "1", dim = "2", red = "31", green = "32", yellow = "33", cyan = "36"
    }

    /// `text` in `paint` when this stream takes colour, else unchanged.
    func paint(_ text: String, _ paint: Paint) -> String {
        colour && !text.isEmpty ? "\u{1B}[\(paint.rawValue)m\(text)\u{1B}[0m" : text
    }

    /// Back to the start of the line and clear it (only meaningful on a terminal).
    static let clearLine = "\r\u{1B}[K"
}
