import Experiments
import Foundation
import Server
import Training

/// `polyak train` for a person at a terminal. It reads the same ``TrainerEvent``s the JSON lines
/// carry and shows them as a live progress line on stderr (redrawn in place, only when stderr is
/// a terminal), a table row per epoch, warnings as sentences, and at the end the final evaluation
/// of every weight set (the best marked), the resolution grids and the exported files.
final class TrainConsole: @unchecked Sendable {
    private let out: TerminalStream
    private let err: TerminalStream
    private let epochs: Int
    private let weightSets: [String]
    private let directory: String
    private let lock = NSLock()

    /// The epoch whose row is being gathered, with what is known of it so far.
    private var pending: (epoch: Int, top1: [String: Double])?
    private var trainLoss: Double?
    private var learningRate: Double?
    private var epochStarted = Date()
    private var epochTable: TextTable
    private var epochWidths: [Int]
    private var headerShown = false
    /// The live line as last drawn ("" when none is on the screen).
    private var liveLine = ""
    private var grids: [String: [GridTable.Cell]] = [:]
    private var gridOrder: [String] = []

    init(spec: RunSpec, directory: String, out: TerminalStream = .standardOutput, err: TerminalStream = .standardError) {
        (self.out, self.err, self.directory) = (out, err, directory)
        epochs = spec.optim.epochs
        weightSets = spec.weightSetNames
        epochTable = TextTable(
            [TextTable.Column("epoch", minimumWidth: 5), TextTable.Column("train loss", minimumWidth: 10)]
                + weightSets.map { TextTable.Column("top-1 \($0)", minimumWidth: 7) }
                + [TextTable.Column("lr", minimumWidth: 8), TextTable.Column("time", minimumWidth: 8)])
        epochWidths = epochTable.widths
    }

    /// An event sink that shows each line here instead of printing it.
    func sink() -> EventSink {
        EventSink { [self] line in
            if let event = try? TrainerEvent.decode(line: line) { show(event) }
        }
    }

    func show(_ event: TrainerEvent) {
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case .metric(let m): metric(m)
        case .progress(let p): progress(p)
        case .warning(let w):
            let subject = w.weights.map { "\($0): " } ?? ""
            say(err, err.paint("warning:", .yellow) + " \(subject)\(sentence(w.message))")
        case .checkpoint(let c): finishEpoch(c.epoch)
        case .grid(let g):
            let key = g.stage == .base ? g.weights : "\(g.weights) after FixRes fine-tuning"
            if grids[key] == nil { gridOrder.append(key) }
            grids[key, default: []].append(GridTable.Cell(resize: g.resize, crop: g.crop, top1: g.top1))
        case .summary(let s): summary(s)
        case .status, .posthoc: break
        }
    }

    private func metric(_ m: MetricPoint) {
        switch m.key {
        case "train/loss": trainLoss = m.value
        case "train/lr": learningRate = m.value
        case "test/top1":
            let epoch = Int(m.epoch ?? 0)
            if let p = pending, p.epoch != epoch { finishEpoch(p.epoch) }
            if pending == nil { pending = (epoch, [:]) }
            pending!.top1[m.weights] = m.value
        default: break
        }
    }

    private func progress(_ p: TrainerEvent.Progress) {
        guard err.isTerminal else { return }
        let fraction = p.totalSteps > 0 ? min(1, Double(p.step) / Double(p.totalSteps)) : 0
        let width = 20
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        var parts = ["epoch \(p.epoch)/\(epochs)", err.paint(bar, .cyan), "\(p.step)/\(p.totalSteps)"]
        if let trainLoss { parts.append("loss " + Format.number(trainLoss, significant: 4)) }
        parts.append(String(format: "%.0f img/s", p.imagesPerSecond))
        if p.step < p.totalSteps, let eta = Format.duration(p.etaSeconds) { parts.append("ETA " + eta) }
        liveLine = parts.joined(separator: "  ")
        err.write(TerminalStream.clearLine + liveLine)
    }

    /// The row of `epoch`, once its evaluation is complete (its checkpoint, or a later epoch's numbers).
    private func finishEpoch(_ epoch: Int) {
        guard let p = pending, p.epoch == epoch else { return }
        pending = nil
        var lines: [String] = []
        if !headerShown {
            headerShown = true
            lines.append(epochTable.header(widths: epochWidths, on: out))
        }
        let seconds = Date().timeIntervalSince(epochStarted)
        epochStarted = Date()
        let cells =
            ["\(epoch)/\(epochs)", trainLoss.map { Format.number($0, significant: 4) } ?? "—"]
            + weightSets.map { Format.metric(p.top1[$0], key: "test/top1") }
            + [learningRate.map { Format.number($0, significant: 3) } ?? "—", Format.duration(seconds) ?? "—"]
        lines.append(epochTable.format(cells, widths: epochWidths))
        say(out, lines.joined(separator: "\n"))
    }

    private func summary(_ s: TrainerEvent.Summary) {
        if let p = pending { finishEpoch(p.epoch) }
        var text = ""
        if !s.final.isEmpty {
            let names = s.final.keys.sorted { a, b in
                let (ba, bb) = (base(a), base(b))
                return ba != bb ? Comparison.weightOrder(ba, bb) : a < b
            }
            let best = s.final.values.map(\.top1).filter(\.isFinite).max()
            var table = TextTable([
                TextTable.Column("weights", .left), TextTable.Column("top-1"), TextTable.Column("top-5"),
                TextTable.Column("loss"), TextTable.Column("file", .left),
            ])
            for name in names {
                let e = s.final[name]!
                table.add(
                    [
                        name, Format.metric(e.top1, key: "top1"), Format.metric(e.top5, key: "top5"),
                        Format.metric(e.loss, key: "loss"), s.exports[name] ?? "",
                    ], marked: e.top1 == best)
            }
            text += "\n" + table.render(on: out)
        }
        for key in gridOrder {
            if let grid = GridTable.render(grids[key]!, on: out) {
                text += "\n" + out.paint("Grid of \(key)", .bold) + "\n" + grid
            }
        }
        var closing: String
        switch s.status {
        case .completed:
            closing = out.paint("completed", .green) + ": \(s.steps) steps in \(Format.duration(s.wallSeconds) ?? "?")"
            closing += String(format: ", %.0f images/s", s.imagesPerSecond)
            if !s.exports.isEmpty { closing += "; weights exported to \(directory)/" }
        case .failed, .cancelled:
            let word = s.status == .failed ? "failed" : "stopped"
            closing = out.paint(word, .red) + " after \(s.steps) steps" + (s.reason.map { ": \(sentence($0))" } ?? "")
            if s.status == .cancelled { closing += "\nContinue with: polyak train --resume \(directory)" }
        }
        // The run is over: clear the live line for good before the last words.
        if err.isTerminal && !liveLine.isEmpty { err.write(TerminalStream.clearLine) }
        liveLine = ""
        say(out, text + "\n" + closing)
    }

    /// `ema@0.998/finetuned` sorts with `ema@0.998`.
    private func base(_ name: String) -> String { String(name.split(separator: "/").first ?? "") }

    /// A message as a sentence: first letter up, a full stop at the end.
    private func sentence(_ message: String) -> String {
        guard let first = message.first else { return message }
        let text = first.uppercased() + message.dropFirst()
        return text.hasSuffix(".") || text.hasSuffix("!") || text.hasSuffix("?") ? text : text + "."
    }

    /// Prints `text` on `stream` above the live line: clear it, print, draw it again.
    private func say(_ stream: TerminalStream, _ text: String) {
        let live = err.isTerminal && !liveLine.isEmpty
        if live { err.write(TerminalStream.clearLine) }
        stream.line(text)
        if live { err.write(liveLine) }
    }

    /// Leaves the terminal clean when the trainer stops without a summary (an error).
    func close() {
        lock.lock()
        defer { lock.unlock() }
        if err.isTerminal && !liveLine.isEmpty { err.write(TerminalStream.clearLine) }
        liveLine = ""
    }
}
