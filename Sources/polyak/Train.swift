import ArgumentParser
import CProcess
import Experiments
import Foundation
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one run spec: progress and tables on a terminal; JSON lines when piped or with --json.",
        discussion: """
            Exit status: 0 completed, 1 failed or stopped while running, 2 bad spec or bad input files.
            Examples:
              polyak train --spec examples/quick.json --out runs/quick
              polyak train --resume runs/quick
            """)

    @Option(help: "Run spec (JSON file, or - for standard input).")
    var spec: String?

    @Option(help: "Run folder: spec.json, checkpoints/, final.safetensors.")
    var out: String?

    @Option(help: "Continue the run in this folder from its newest checkpoint (its spec.json is used).")
    var resume: String?

    @Option(help: "Override the spec's thread count.")
    var threads: Int?

    @Flag(help: "JSON lines on stdout even on a terminal (piped, they always are).")
    var json = false

    func validate() throws {
        if resume == nil && (spec == nil || out == nil) {
            throw ValidationError("give --spec FILE and --out DIR, or --resume DIR")
        }
        if resume != nil && spec != nil { throw ValidationError("--resume uses the folder's spec.json; drop --spec") }
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads must be in 1...64") }
    }

    func run() throws {
        // A trainer never outlives the server that started it: the kernel signals it when the
        // server dies, and a server that died before that request was made is noticed here.
        let parent = ProcessInfo.processInfo.environment["POLYAK_PARENT_PID"].flatMap { Int32($0) } ?? 0
        if cprocess_set_parent_death_signal(SIGTERM, parent) == 1 {
            fail("the server that started this trainer (pid \(parent)) is gone; not training", code: 1)
        }
        StopRequest.installSignalHandlers()
        let directory = resume ?? out!
        var runSpec: RunSpec
        do {
            let source = resume.map { ($0 as NSString).appendingPathComponent("spec.json") } ?? spec!
            let data: Data
            if source == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else if let d = FileManager.default.contents(atPath: source)
                ?? FileHandle(forReadingAtPath: source).flatMap({ try? $0.readToEnd() })
            {
                data = d  // the second form reads pipes such as /dev/stdin
            } else {
                fail("cannot read \(source)")
            }
            runSpec = try RunSpec.decode(data)
        } catch let e as SpecError {
            fail("bad spec: \(e)")
        }
        if let threads { runSpec.threads = threads }
        // A person at a terminal gets progress and tables; a program reading stdout, the JSON lines.
        let console = !json && TerminalStream.standardOutput.isTerminal ? TrainConsole(spec: runSpec, directory: directory) : nil
        do {
            let trainer = try Trainer(spec: runSpec, directory: directory, events: console?.sink() ?? .standardOutput())
            let outcome = try trainer.run(resume: resume != nil)
            console?.close()
            if let reason = outcome.reason, console == nil { FileHandle.standardError.write(Data("polyak: \(reason)\n".utf8)) }
            throw ExitCode(outcome.exitCode)
        } catch let e as TrainingError {
            console?.close()
            switch e {
            case .badInput(let m): fail(m)
            case .failed(let m): fail(m, code: 1)
            }
        }
    }
}

/// Prints `polyak: message` on stderr and exits (2: bad input, by default).
func fail(_ message: String, code: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data("polyak: \(message)\n".utf8))
    exit(code)
}
