import Experiments
import Foundation
import Server

/// Follows runs through their event streams (`/api/runs/{id}/events`) until each has ended: a
/// live line on stderr when it is a terminal, and one line per run as it ends.
struct RunWatcher {
    struct Target {
        var id: Int
        var label: String
        /// "run 7 (ema, seed 1)".
        var name: String { label.isEmpty ? "run \(id)" : "run \(id) \(label)" }
    }

    let client: APIClient
    let out = TerminalStream.standardOutput
    let err = TerminalStream.standardError

    /// Follows `targets` in order; returns how many ended in each status.
    func follow(_ targets: [Target]) async throws -> [String: Int] {
        var ended: [String: Int] = [:]
        for (index, target) in targets.enumerated() {
            let prefix = targets.count > 1 ? "[\(index + 1)/\(targets.count)] " : ""
            let status = try await follow(target, prefix: prefix)
            ended[status, default: 0] += 1
        }
        return ended
    }

    /// One run to its end; its final status.
    func follow(_ target: Target, prefix: String) async throws -> String {
        var reconnects = 0
        while true {
            var lastStatus = ""
            for try await event in client.events("/api/runs/\(target.id)/events") {
                let data = (try? JSONValue.parse(event.data)) ?? .null
                switch event.name {
                case "status":
                    lastStatus = data["status"]?.stringValue ?? lastStatus
                    if lastStatus == "queued" { live("\(prefix)\(target.name): queued") }
                case "progress":
                    live(prefix + progressLine(target, data))
                case "warning":
                    say(
                        out,
                        err.paint("warning:", .yellow)
                            + " run \(target.id) \(data["weights"]?.stringValue.map { "\($0): " } ?? "")"
                            + (data["message"]?.stringValue ?? ""))
                default: break
                }
            }
            let run = try await client.json("/api/runs/\(target.id)")
            let status = run["status"]?.stringValue ?? lastStatus
            if ["completed", "failed", "cancelled"].contains(status) {
                say(out, endLine(target, run, status: status))
                return status
            }
            // The stream ended without an end (the server restarted): listen again.
            reconnects += 1
            if reconnects > 30 { throw ClientError("run \(target.id)'s event stream keeps closing while the run is \(status)") }
            try await Task.sleep(nanoseconds: 2_000_000_000)
        }
    }

    private func progressLine(_ target: Target, _ p: JSONValue) -> String {
        let step = p["step"]?.int ?? 0
        let total = max(1, p["total_steps"]?.int ?? 1)
        let fraction = min(1, Double(step) / Double(total))
        let filled = Int(fraction * 20)
        var parts = [
            target.name, "epoch \(p["epoch"]?.int ?? 0)",
            err.paint(String(repeating: "█", count: filled) + String(repeating: "░", count: 20 - filled), .cyan),
            "\(step)/\(total)",
        ]
        if let ips = p["images_per_sec"]?.doubleValue { parts.append(String(format: "%.0f img/s", ips)) }
        if step < total, let eta = Format.duration(p["eta_s"]?.doubleValue) { parts.append("ETA \(eta)") }
        return parts.joined(separator: "  ")
    }

    private func endLine(_ target: Target, _ run: JSONValue, status: String) -> String {
        var text = "\(target.name): "
        text += status == "completed" ? out.paint(status, .green) : out.paint(status, .red)
        let final = run["summary"]?["final"]?.fields ?? [:]
        let sets = final.keys.sorted(by: Comparison.weightOrder)
        if !sets.isEmpty {
            text +=
                ", top-1 "
                + sets.map { "\($0) \(Format.metric(final[$0]?["test/top1"]?.doubleValue, key: "test/top1"))" }.joined(
                    separator: ", ")
        }
        if let error = run["error"]?.stringValue, status != "completed" { text += " (\(error))" }
        return text
    }

    /// The live line, redrawn in place; nothing when stderr is not a terminal.
    private func live(_ line: String) {
        guard err.isTerminal else { return }
        err.write(TerminalStream.clearLine + line)
    }

    private func say(_ stream: TerminalStream, _ text: String) {
        if err.isTerminal { err.write(TerminalStream.clearLine) }
        stream.line(text)
    }
}
