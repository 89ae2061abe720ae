import ArgumentParser
import Experiments
import Foundation
import Training

struct PostHoc: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "posthoc",
        abstract: "Synthesise the weights of other EMA lengths from a run's post-hoc snapshots and evaluate them.",
        discussion: """
            The run must have trained with {"kind": "posthoc"} in its averaging (Karras et al. 2024's \
            power-function EMA profiles, saved as snapshots under posthoc/). One JSON line per length, \
            where decay is the classical EMA decay of the same relative width at the run's last step:
              {"type":"posthoc","sigma_rel":0.07,"decay":0.99857,"top1":…,"top5":…,"loss":…,…}

            Examples:
              polyak posthoc --run runs/r1
              polyak posthoc --run runs/r1 --sigma-rel 0.02,0.03,0.05,0.07,0.1,0.15 --export
              polyak posthoc --run runs/r1 --precise-bn 200
            """)

    @Option(name: .customLong("run"), help: "Run folder of polyak train (holds spec.json and posthoc/).")
    var runFolder: String

    @Option(help: "Relative widths to synthesise, comma-separated, each in (0, 0.25].")
    var sigmaRel: String = "0.02,0.03,0.04,0.05,0.06,0.07,0.08,0.1,0.12,0.15"

    @Option(help: "Re-measure each set's BN statistics on N training batches (precise BN) instead of combining the snapshots'.")
    var preciseBn: Int?

    @Flag(help: "Also write posthoc/phema@<σ_rel>.safetensors (PyTorch-loadable state dicts).")
    var export = false

    @Option(help: "Evaluate the first N test images only.")
    var testLimit: Int?

    @Option(help: "Worker threads (default: the run's).")
    var threads: Int?

    func widths() throws -> [Double] {
        let parts = sigmaRel.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var out: [Double] = []
        for p in parts {
            guard let x = Double(p), x > 0, x <= PostHocSpec.widestSigmaRel else {
                throw ValidationError(
                    "--sigma-rel: \"\(p)\" is not a width in (0, \(PostHocSpec.widestSigmaRel)]")
            }
            out.append(x)
        }
        if out.isEmpty { throw ValidationError("--sigma-rel lists no width") }
        return out
    }

    func validate() throws {
        _ = try widths()
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads must be in 1...64") }
        if let preciseBn, preciseBn < 1 { throw ValidationError("--precise-bn must be at least 1") }
        if let testLimit, testLimit < 1 { throw ValidationError("--test-limit must be at least 1") }
    }

    func run() throws {
        let events = EventSink.standardOutput()
        do {
            let sweep = try PostHocSweep(runDirectory: runFolder, threads: threads)
            let s = sweep.synthesis
            FileHandle.standardError.write(
                Data(
                    "polyak: \(s.snapshots.count) snapshots of \(s.sigmaRels.map { "\($0)" }.joined(separator: ", ")) up to step \(s.lastStep), \(String(format: "%.1f", Double(s.totalBytes) / 1e6)) MB\n"
                        .utf8))
            try sweep.run(sigmaRels: try widths(), preciseBatches: preciseBn, export: export, testLimit: testLimit) {
                events.emit(.posthoc($0))
            }
        } catch {
            fail("\(error)")
        }
    }
}
