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

    @Option(
        help: ArgumentHelp(
            "Also post the events to this run on a Polyak server (http://host:8080/api/runs/ID); unsent ones wait in "
                + "the run folder's report/ spool.", valueName: "url"))
    var report: String?

    @Option(help: "With --report: a file holding the server's token (else POLYAK_TOKEN).")
    var tokenFile: String?

    @Option(help: "With --report: seconds to wait at the end for an unreachable server before leaving the rest in the spool.")
    var reportWait: Double = 120

    @Flag(help: "JSON lines on stdout even on a terminal (piped, they always are).")
    var json = false

    func validate() throws {
        if resume == nil && (spec == nil || out == nil) {
            throw ValidationError("give --spec FILE and --out DIR, or --resume DIR")
        }
        if resume != nil && spec != nil { throw ValidationError("--resume uses the folder's spec.json; drop --spec") }
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads must be in 1...64") }
        if let report {
            guard let url = URL(string: report), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ValidationError("--report \(report): give the run's URL, e.g. http://host:8080/api/runs/42")
            }
        }
        if tokenFile != nil && report == nil { throw ValidationError("--token-file goes with --report") }
        if !(reportWait >= 0) { throw ValidationError("--report-wait must be ≥ 0 seconds") }
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
        let reporter = startReport(directory)
        // A person at a terminal gets progress and tables; a program reading stdout, the JSON lines.
        let console = !json && TerminalStream.standardOutput.isTerminal ? TrainConsole(spec: runSpec, directory: directory) : nil
        do {
            let show: (String) -> Void =
                console.map { c in { line in if let e = try? TrainerEvent.decode(line: line) { c.show(e) } } }
                ?? { line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
            let events = EventSink { line in
                show(line)
                reporter?.record(line)
            }
            let trainer = try Trainer(spec: runSpec, directory: directory, events: events)
            let outcome = try trainer.run(resume: resume != nil)
            console?.close()
            finishReport(reporter)
            if let reason = outcome.reason, console == nil { FileHandle.standardError.write(Data("polyak: \(reason)\n".utf8)) }
            throw ExitCode(outcome.exitCode)
        } catch let e as TrainingError {
            console?.close()
            finishReport(reporter)
            switch e {
            case .badInput(let m): fail(m)
            case .failed(let m): fail(m, code: 1)
            }
        }
    }
}

extension Train {
    /// The `--report` sender, started before training so an earlier trainer's unsent lines go first.
    func startReport(_ directory: String) -> TrainReport? {
        guard let report else { return nil }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            return try TrainReport(url: report, token: try TrainReport.token(file: tokenFile), runDirectory: directory)
        } catch {
            fail("\(error)")
        }
    }

    func finishReport(_ reporter: TrainReport?) {
        guard let reporter else { return }
        let unsent = reporter.finish(timeout: reportWait)
        if unsent > 0 {
            FileHandle.standardError.write(
                Data("polyak: \(unsent) event(s) not acknowledged by the server stay in \(reporter.spool.spoolPath)\n".utf8))
        }
    }
}

/// Prints `polyak: message` on stderr and exits (2: bad input, by default).
func fail(_ message: String, code: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data("polyak: \(message)\n".utf8))
    exit(code)
}
