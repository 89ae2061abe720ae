import Experiments
import Foundation
import Server

/// `polyak eval` for a person at a terminal: which cell is being evaluated on stderr (redrawn in
/// place), then one sentence for a single cell, or the resize × crop table of a grid.
final class EvalConsole {
    private let out: TerminalStream
    private let err: TerminalStream
    private var cells: [TrainerEvent.GridEvaluation] = []

    init(out: TerminalStream = .standardOutput, err: TerminalStream = .standardError) {
        (self.out, self.err) = (out, err)
    }

    /// Before cell `index` of `count` is evaluated.
    func starting(resize: Int, crop: Int, index: Int, count: Int) {
        guard err.isTerminal else { return }
        err.write(TerminalStream.clearLine + "evaluating resize \(resize), crop \(crop)  (\(index + 1)/\(count))")
    }

    func show(_ cell: TrainerEvent.GridEvaluation) { cells.append(cell) }

    func finish(weights path: String) {
        if err.isTerminal { err.write(TerminalStream.clearLine) }
        guard let first = cells.first else { return }
        let images = first.images.map { "\($0) test images" } ?? "the test set"
        if cells.count == 1 {
            out.line(
                "\(first.weights) (\(path)) at resize \(first.resize), crop \(first.crop) on \(images): top-1 "
                    + out.paint(Format.metric(first.top1, key: "top1"), .bold)
                    + ", top-5 \(Format.metric(first.top5, key: "top5"))"
                    + ", loss \(Format.metric(first.loss, key: "loss"))")
            return
        }
        out.line(out.paint("\(first.weights) (\(path)) on \(images)", .bold))
        let grid = cells.map { GridTable.Cell(resize: $0.resize, crop: $0.crop, top1: $0.top1) }
        out.write(GridTable.render(grid, on: out) ?? "")
    }
}
