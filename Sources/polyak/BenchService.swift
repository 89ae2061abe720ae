import ArgumentParser
import Experiments
import Foundation
import Hummingbird
import Server
import Store

extension Bench {
    /// The tracking service against the bars of performance.md, over loopback HTTP.
    struct Service: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "service",
            abstract:
                "Metric ingestion (1 and 8 clients), a 100 000-point history, compare and the experiment page over 1 000 runs, MLflow's log-batch and runs/search, 64 jobs reporting at once, a Slurm poll over 1 000 jobs; one JSON object each."
        )

        @Option(help: "Repetitions after a warm-up (the median is reported).") var reps: Int = 3
        @Option(help: "1000-point batches per ingestion repetition (split over the clients).") var batches: Int = 200
        @Option(help: "Folder for the benchmark's database (a temporary one by default).") var dir: String?
        @Option(help: "1000-metric MLflow log-batch requests per repetition (split over the clients).") var mlflowBatches: Int =
            80
        @Option(
            help:
                "Only these benchmarks (comma-separated: ingest, history, compare, page, mlflow, report, slurm-poll); all by default."
        )
        var only: String?

        func wants(_ name: String) -> Bool { only.map { $0.split(separator: ",").contains(Substring(name)) } ?? true }

        func run() async throws {
            let folder = dir ?? NSTemporaryDirectory() + "polyak-bench-\(getpid())"
            try? FileManager.default.removeItem(atPath: folder)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { if dir == nil { try? FileManager.default.removeItem(atPath: folder) } }
            let port = try Self.freePort()
            let options = ServerOptions(
                host: "127.0.0.1", port: port, databasePath: folder + "/bench.sqlite", dataDirectory: folder + "/data",
                executable: Serve.ownExecutable(), presets: Serve.presets, version: PolyakVersion.current, logLevel: .error)
            let app = try buildApplication(options)
            let server = Task { try await app.runService(gracefulShutdownSignals: []) }
            defer { server.cancel() }
            let store = try TrackingStore(path: options.databasePath)
            let client = try await Self.connect(port: port)
            let idleRSS = Self.residentMB()

            if let unknown = only?.split(separator: ",").first(where: { !Self.names.contains(String($0)) }) {
                throw ValidationError("unknown benchmark '\(unknown)'; choose from \(Self.names.joined(separator: ", "))")
            }
            for clients in [1, 8] where wants("ingest") {
                try ingestion(clients: clients, port: port, client: client, store: store)
            }
            if wants("history") { try history(client: client, store: store) }
            if wants("compare") || wants("page") {
                let experiment = try compare(client: client, store: store)
                if wants("page") { try experimentPage(experiment, client: client, store: store) }
            }
            if wants("mlflow") { try mlflow(port: port, client: client, store: store) }
            if wants("report") { try report(port: port, client: client, store: store) }
            if wants("slurm-poll") { try slurmPoll(folder: folder) }
            Self.emit([
                "benchmark": "resident_memory", "idle_mb": .number(idleRSS), "after_mb": .number(Self.residentMB()),
                "bar_idle_mb": 64, "pass": .bool(idleRSS <= 64),
                "note": "whole bench process (server + clients + setup data), not a lone `polyak serve`",
            ])
        }

        static let names = ["ingest", "history", "compare", "page", "mlflow", "report", "slurm-poll"]

        // MARK: Benchmarks

        func ingestion(clients: Int, port: Int, client: RawHTTP, store: TrackingStore) throws {
            let perClient = max(1, batches / clients)
            var rates: [Double] = []
            var exact = true
            for rep in 0...reps {  // rep 0 is the warm-up
                let runs = try (0..<clients).map { _ -> Int64 in
                    let (status, body) = try client.request("POST", "/api/runs?launch=false", Array(#"{"name": "bench"}"#.utf8))
                    guard status == 201, let id = (try? JSONValue.parse(Data(body)))?["id"]?.doubleValue else {
                        throw ValidationError("cannot create a run: \(status) \(String(decoding: body, as: UTF8.self))")
                    }
                    return Int64(id)
                }
                // Bodies are made before the clock starts: the figure is the server's.
                let bodies: [[[UInt8]]] = (0..<clients).map { _ in (0..<perClient).map { Self.batch(index: $0) } }
                let start = DispatchTime.now()
                var failures = [String?](repeating: nil, count: clients)
                DispatchQueue.concurrentPerform(iterations: clients) { c in
                    do {
                        let conn = try RawHTTP(port: port)
                        for body in bodies[c] {
                            let (status, answer) = try conn.request("POST", "/api/runs/\(runs[c])/metrics", body)
                            if status != 200 { throw ValidationError("\(status) \(String(decoding: answer, as: UTF8.self))") }
                        }
                    } catch {
                        failures[c] = "\(error)"
                    }
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
                if let f = failures.compactMap({ $0 }).first { throw ValidationError("ingestion failed: \(f)") }
                for r in runs where try store.pointCount(run: r) != perClient * 1000 { exact = false }
                if rep > 0 { rates.append(Double(clients * perClient * 1000) / seconds) }
            }
            let rate = Self.median(rates)
            Self.emit([
                "benchmark": "ingest", "clients": .number(Double(clients)), "batch_points": 1000,
                "points": .number(Double(clients * perClient * 1000)), "points_per_s": .number(rate.rounded()),
                "reps_points_per_s": .array(rates.map { .number($0.rounded()) }), "stored_exactly_once": .bool(exact),
                "bar_points_per_s": clients == 8 ? 200_000 : .null,
                "pass": clients == 8 ? .bool(rate >= 200_000 && exact) : .bool(exact),
            ])
        }

        func history(client: RawHTTP, store: TrackingStore) throws {
            let run = try store.createRun(NewRun(external: true, status: .completed, specJSON: "{}", codeVersion: "bench")).id
            for b in 0..<100 {
                let points = (0..<1000).map { i -> MetricPoint in
                    let step = Int64(b * 1000 + i)
                    return MetricPoint(
                        key: "train/loss", step: step, epoch: step / 1000,
                        value: 2.3 * exp(-Double(step) / 30_000) + 0.001 * Double(i % 7),
                        time: 1_764_000_000 + Double(step) * 0.05)
                }
                try store.logBatch(run: run, points, policy: .refuse)
            }
            var times: [Double] = []
            var bytes = 0
            for rep in 0...max(reps, 5) {
                let start = DispatchTime.now()
                let (status, body) = try client.request("GET", "/api/runs/\(run)/metrics?key=train/loss", [])
                let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
                guard status == 200 else { throw ValidationError("history: \(status)") }
                bytes = body.count
                if rep > 0 { times.append(ms) }
            }
            let ms = Self.median(times)
            Self.emit([
                "benchmark": "metric_history", "points": 100_000, "bytes": .number(Double(bytes)), "ms": .number(Self.round(ms)),
                "reps_ms": .array(times.map { .number(Self.round($0)) }), "bar_ms": 100, "pass": .bool(ms <= 100),
            ])
        }

        /// Builds the 1 000-run experiment (10 variants × 100 seeds) and times its comparison; returns its id.
        func compare(client: RawHTTP, store: TrackingStore) throws -> Int64 {
            let variants = (0..<10).map { "v\($0)" }
            let runs = variants.flatMap { v in
                (0..<100).map { s in
                    NewRun(
                        experiment: "bench", variant: v, seed: Int64(s), status: .completed, specJSON: "{}", codeVersion: "bench")
                }
            }
            let (experiment, created) = try store.createExperiment(
                name: "bench", baseJSON: "{}", variantsJSON: JSONValue.array(variants.map { ["name": .string($0)] }).text(),
                seedsJSON: "[]", baseline: "v0", runs: runs)
            let keys = ["test/top1", "test/top5", "test/loss", "train/loss", "train/top1"]
            for (i, r) in created.enumerated() {
                var points: [MetricPoint] = []
                for k in keys {
                    for e in 1...100 {
                        points.append(
                            MetricPoint(
                                key: k, step: Int64(e * 468), epoch: Int64(e),
                                value: 0.8 + 0.001 * Double(e) + 0.0001 * Double(i % 97),
                                time: 1_764_000_000 + Double(e)))
                    }
                }
                try store.logBatch(run: r.id, points, policy: .refuse)
            }
            var times: [Double] = []
            var rows = 0
            for rep in 0...max(reps, 5) {
                let start = DispatchTime.now()
                let (status, body) = try client.request("GET", "/api/experiments/\(experiment.id)/compare", [])
                let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
                guard status == 200 else { throw ValidationError("compare: \(status)") }
                rows =
                    (try? JSONValue.parse(Data(body)))?["rows"].map {
                        if case .array(let a) = $0 { return a.count } else { return 0 }
                    } ?? 0
                if rep > 0 { times.append(ms) }
            }
            let ms = Self.median(times)
            Self.emit([
                "benchmark": "compare", "runs": 1000, "variants": 10, "seeds": 100, "points": 500_000,
                "rows": .number(Double(rows)),
                "ms": .number(Self.round(ms)), "reps_ms": .array(times.map { .number(Self.round($0)) }), "bar_ms": 200,
                "pass": .bool(ms <= 200),
            ])
            return experiment.id
        }

        /// The experiment page of those 1 000 runs, once they also have an averaged weight set and a
        /// resize × crop grid (4 × 3, raw and averaged): the whole HTML, timed and weighed.
        func experimentPage(_ experiment: Int64, client: RawHTTP, store: TrackingStore) throws {
            let runs = try store.runs(RunFilter(experimentID: experiment, limit: 1_000_000))
            for (i, r) in runs.enumerated() {
                let ema = (1...100).map { e -> MetricPoint in
                    let value: Double = 0.802 + 0.001 * Double(e) + 0.0001 * Double(i % 89)
                    return MetricPoint(
                        key: "test/top1", weights: "ema@0.999", step: Int64(e * 468), epoch: Int64(e), value: value,
                        time: 1_764_000_000 + Double(e))
                }
                try store.logBatch(run: r.id, ema, policy: .refuse)
                var cells: [GridCell] = []
                for weights in ["raw", "ema@0.999"] {
                    for resize in [24, 28, 32, 36] {
                        for crop in [24, 28, 32] where crop <= resize {
                            let top1: Double = 0.9 - 0.002 * Double(abs(crop - 28)) + 0.0001 * Double(i % 13)
                            cells.append(
                                GridCell(
                                    weights: weights, stage: "base", trainSize: 28, resize: Int64(resize), crop: Int64(crop),
                                    top1: top1, top5: 0.99, loss: 0.3))
                        }
                    }
                }
                try store.saveGrid(run: r.id, cells)
            }
            var times: [Double] = []
            var cached: [Double] = []
            var bytes = 0
            for rep in 0...max(reps, 5) {
                // A write through the server first, as a training run makes them: the page is rendered,
                // not served from the server's page cache.
                let note = Array("{\"notes\": \"rep \(rep)\"}".utf8)
                guard try client.request("PATCH", "/api/runs/\(runs[rep % runs.count].id)", note).0 == 200 else {
                    throw ValidationError("experiment page: cannot annotate a run")
                }
                let start = DispatchTime.now()
                let (status, body) = try client.request("GET", "/experiments/\(experiment)", [])
                let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
                guard status == 200 else {
                    throw ValidationError("experiment page: \(status) \(String(decoding: body.prefix(300), as: UTF8.self))")
                }
                bytes = body.count
                if rep > 0 { times.append(ms) }
                let again = DispatchTime.now()
                _ = try client.request("GET", "/experiments/\(experiment)", [])
                cached.append(Double(DispatchTime.now().uptimeNanoseconds - again.uptimeNanoseconds) / 1e6)
            }
            let ms = Self.median(times)
            Self.emit([
                "benchmark": "experiment_page", "cached_ms": .number(Self.round(Self.median(cached))),
                "runs": .number(Double(runs.count)), "variants": 10, "seeds": 100,
                "bytes": .number(Double(bytes)), "ms": .number(Self.round(ms)),
                "reps_ms": .array(times.map { .number(Self.round($0)) }),
                "bar_ms": 300, "bar_bytes": 2_000_000, "pass": .bool(ms <= 300 && bytes <= 2_000_000),
            ])
        }

        // MARK: Helpers

        static func batch(index: Int) -> [UInt8] {
            var s = "{\"metrics\":["
            for i in 0..<1000 {
                if i > 0 { s += "," }
                let step = index * 1000 + i
                s +=
                    "{\"key\":\"train/loss\",\"step\":\(step),\"epoch\":\(step / 468),\"value\":\(Double.random(in: 0..<3)),\"time\":\(1_764_000_000 + Double(step) * 0.05)}"
            }
            return Array((s + "]}").utf8)
        }

        static func emit(_ value: JSONValue) { print(value.text()) }
        static func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.isEmpty ? .nan : s[s.count / 2] }
        static func round(_ x: Double) -> Double { (x * 100).rounded() / 100 }

        static func residentMB() -> Double {
            guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
            else { return .nan }
            return round(kb / 1024)
        }

        static func freePort() throws -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
            _ = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            return Int(UInt16(bigEndian: addr.sin_port))
        }

        static func connect(port: Int) async throws -> RawHTTP {
            for _ in 0..<200 {
                if let c = try? RawHTTP(port: port), let (status, _) = try? c.request("GET", "/api/health", []), status == 200 {
                    return c
                }
                try await Task.sleep(nanoseconds: 25_000_000)
            }
            throw ValidationError("the server did not start on port \(port)")
        }
    }
}

/// A minimal keep-alive HTTP/1.1 client over a blocking socket: the load generator must cost
/// little next to the server it measures (both share two cores).
final class RawHTTP {
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var pending: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw ValidationError("connect: \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    func request(_ method: String, _ path: String, _ body: [UInt8]) throws -> (Int, [UInt8]) {
        var out = Array(
            "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
                .utf8)
        out += body
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { send(fd, $0.baseAddress! + sent, out.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ValidationError("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        // Headers.
        var headerEnd: Int?
        while headerEnd == nil {
            if let r = find(pending, Array("\r\n\r\n".utf8)) { headerEnd = r; break }
            try fill()
        }
        let head = String(decoding: pending[0..<headerEnd!], as: UTF8.self)
        pending.removeFirst(headerEnd! + 4)
        let lines = head.split(separator: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        let length =
            lines.dropFirst().compactMap { line -> Int? in
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                return Int(parts[1].trimmingCharacters(in: .whitespaces))
            }.first ?? 0
        while pending.count < length { try fill() }
        let answer = Array(pending[0..<length])
        pending.removeFirst(length)
        return (status, answer)
    }

    private func fill() throws {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { throw ValidationError("recv: connection closed") }
        pending.append(contentsOf: buffer[0..<n])
    }

    private func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<i + needle.count]) == needle {
            return i
        }
        return nil
    }
}
