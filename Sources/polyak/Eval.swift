import ArgumentParser
import Datasets
import Experiments
import Foundation
import Kernels
import PolyakNetwork
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a weights file on the test set: a table on a terminal, one grid JSON line per cell otherwise.",
        discussion: """
            Examples:
              polyak eval --weights runs/r1/final.safetensors                    # resize 28, crop 28
              polyak eval --weights runs/r1/final.safetensors --resize 32 --crop 28
              polyak eval --weights runs/r1/final.safetensors --grid 24,28,32:24,28
            """)

    @Option(help: "A safetensors state dict of a resnet-mini (final.safetensors, ema@….safetensors, …).")
    var weights: String

    @Option(help: "Resize the test images to this size first.")
    var resize: Int = 28

    @Option(help: "Then center-crop to this size (≤ resize).")
    var crop: Int = 28

    @Option(help: "A grid RESIZES:CROPS, e.g. 24,28,32:24,28; every cell with crop ≤ resize.")
    var grid: String?

    @Option(help: "Folder of the Fashion-MNIST IDX files.")
    var root: String = FashionMNIST.defaultRoot

    @Option(help: "Evaluate the first N test images only.")
    var testLimit: Int?

    @Option(help: "Images per forward pass.")
    var batch: Int = 512

    @Option(help: "Worker threads.")
    var threads: Int = 2

    @Flag(help: "JSON lines on stdout even on a terminal (piped, they always are).")
    var json = false

    func parseGrid() throws -> [(resize: Int, crop: Int)] {
        guard let grid else { return [(resize, crop)] }
        let parts = grid.split(separator: ":", omittingEmptySubsequences: false)
        func sizes(_ s: Substring) -> [Int]? {
            let v = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            return v.contains(nil) || v.isEmpty ? nil : v.map { $0! }
        }
        guard parts.count == 2, let r = sizes(parts[0]), let c = sizes(parts[1]) else {
            throw ValidationError("--grid must look like 24,28,32:24,28 (resizes:crops), got \(grid)")
        }
        let cells = r.flatMap { rr in c.filter { $0 <= rr }.map { (rr, $0) } }
        guard !cells.isEmpty else { throw ValidationError("--grid has no cell with crop ≤ resize") }
        return cells
    }

    func validate() throws {
        if resize < 8 || crop < 8 { throw ValidationError("--resize and --crop must be at least 8") }
        if crop > resize { throw ValidationError("--crop (\(crop)) must not exceed --resize (\(resize))") }
        if !(1...64).contains(threads) { throw ValidationError("--threads must be in 1...64") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if let testLimit, testLimit < 1 { throw ValidationError("--test-limit must be at least 1") }
        for cell in try parseGrid() where cell.crop < 8 { throw ValidationError("--grid sizes must be at least 8") }
    }

    func run() throws {
        let cells = try parseGrid()
        let file: SafetensorsFile
        let model: ResNetMini
        let state: ModelState
        do {
            file = try SafetensorsFile.read(from: weights)
            model = try ResNetMini.infer(fromShapes: file.shapes)
            state = ModelState(layout: model.layout)
            try state.load(stateDict: file)
        } catch {
            fail("\(weights): \(error)")
        }
        let test: ImageSet
        do {
            test = try FashionMNIST.load(root: root, split: .test, limit: testLimit)
        } catch {
            fail("\(error)")
        }
        let evaluator = Evaluator(images: test, model: model, batch: batch, workers: Workers(threads))
        // A person at a terminal gets a sentence or a table; a program reading stdout, the JSON lines.
        let console = !json && TerminalStream.standardOutput.isTerminal ? EvalConsole() : nil
        let events = EventSink.standardOutput()
        let trainSize = file.metadata["spec"].flatMap { try? RunSpec.decode(Data($0.utf8)) }?.resolution.trainSize
        for (index, cell) in cells.enumerated() {
            console?.starting(resize: cell.resize, crop: cell.crop, index: index, count: cells.count)
            let e = evaluator.evaluate(state, resize: cell.resize, crop: cell.crop, keep: false)
            let event = TrainerEvent.GridEvaluation(
                weights: file.metadata["weights"] ?? "raw", stage: .base, trainSize: trainSize, resize: cell.resize,
                crop: cell.crop,
                top1: e.top1, top5: e.top5, loss: e.loss, images: e.count)
            if let console { console.show(event) } else { events.emit(.grid(event)) }
        }
        console?.finish(weights: weights)
    }
}
