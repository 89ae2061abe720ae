import ArgumentParser
import Experiments
import Foundation
import Store

/// The MLflow REST routes against MLflow's own server: the same requests as
/// `scripts/bench_mlflow.py` sends to `mlflow server` (SQLite), so the two JSON lines compare.
extension Bench.Service {
    static let mlflowPrefix = "/api/2.0/mlflow/"

    func mlflow(port: Int, client: RawHTTP, store: TrackingStore) throws {
        let experiment = try Self.mlflowCall(client, "experiments/create", ["name": "bench-log-batch"])["experiment_id"]
        guard let experiment = experiment?.stringValue else { throw ValidationError("mlflow bench: no experiment id") }
        for clients in [1, 8] {
            try mlflowLogBatch(clients: clients, experiment: experiment, port: port, client: client, store: store)
        }
        try mlflowSearch(client: client)
    }

    /// `runs/log-batch`, 1 000 metrics a request, `clients` connections each logging to a run of its own.
    func mlflowLogBatch(clients: Int, experiment: String, port: Int, client: RawHTTP, store: TrackingStore) throws {
        let perClient = max(1, mlflowBatches / clients)
        var rates: [Double] = []
        var exact = true
        for rep in 0...reps {  // rep 0 is the warm-up
            let runs = try (0..<clients).map { _ in try Self.mlflowRun(client, experiment: experiment) }
            // Bodies are made before the clock starts: the figure is the server's.
            let bodies = runs.map { run in (0..<perClient).map { Self.mlflowBatch(run: run, index: $0) } }
            let start = DispatchTime.now()
            var failures = [String?](repeating: nil, count: clients)
            DispatchQueue.concurrentPerform(iterations: clients) { c in
                do {
                    let conn = try RawHTTP(port: port)
                    for body in bodies[c] {
                        let (status, answer) = try conn.request("POST", Self.mlflowPrefix + "runs/log-batch", body)
                        if status != 200 { throw ValidationError("\(status) \(String(decoding: answer, as: UTF8.self))") }
                    }
                } catch {
                    failures[c] = "\(error)"
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            if let f = failures.compactMap({ $0 }).first { throw ValidationError("log-batch failed: \(f)") }
            for r in runs where try store.pointCount(run: Int64(r)!) != perClient * 1000 { exact = false }
            if rep > 0 { rates.append(Double(clients * perClient * 1000) / seconds) }
        }
        let rate = Self.median(rates)
        Self.emit([
            "benchmark": "mlflow_log_batch", "clients": .number(Double(clients)), "batch_points": 1000,
            "requests": .number(Double(clients * perClient)), "points_per_s": .number(rate.rounded()),
            "reps_points_per_s": .array(rates.map { .number($0.rounded()) }), "stored_exactly_once": .bool(exact),
            "note": "bar: >= 20x mlflow server's figure from scripts/bench_mlflow.py, same machine, alternated",
            "pass": .bool(exact),
        ])
    }

    /// `runs/search` over 1 000 runs made through the routes (each with 3 params, 5 metrics of 20 steps),
    /// a metric filter keeping about half and an order on that metric, all matches in one page.
    func mlflowSearch(client: RawHTTP) throws {
        let experiment = try Self.mlflowCall(client, "experiments/create", ["name": "bench-search"])["experiment_id"]
        guard let experiment = experiment?.stringValue else { throw ValidationError("mlflow bench: no experiment id") }
        for i in 0..<1000 {
            let run = try Self.mlflowRun(client, experiment: experiment)
            let (status, answer) = try client.request(
                "POST", Self.mlflowPrefix + "runs/log-batch", Self.mlflowSearchRunBody(run: run, index: i))
            guard status == 200 else {
                throw ValidationError("mlflow bench: log-batch \(status) \(String(decoding: answer, as: UTF8.self))")
            }
        }
        let query = Self.mlflowSearchQuery(experiment: experiment)
        var times: [Double] = []
        var found = 0
        for rep in 0...max(reps, 5) {
            let start = DispatchTime.now()
            let (status, body) = try client.request("POST", Self.mlflowPrefix + "runs/search", query)
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
            guard status == 200, case .array(let runs)? = (try? JSONValue.parse(Data(body)))?["runs"] else {
                throw ValidationError("mlflow bench: runs/search \(status) \(String(decoding: body.prefix(300), as: UTF8.self))")
            }
            found = runs.count
            if rep > 0 { times.append(ms) }
        }
        let ms = Self.median(times)
        Self.emit([
            "benchmark": "mlflow_search_runs", "runs": 1000, "found": .number(Double(found)),
            "filter": .string(Self.mlflowSearchFilter), "order_by": .string(Self.mlflowSearchOrder),
            "ms": .number(Self.round(ms)), "reps_ms": .array(times.map { .number(Self.round($0)) }), "bar_ms": 50,
            "pass": .bool(ms <= 50 && found == 500),
        ])
    }

    // MARK: Requests (scripts/bench_mlflow.py builds the same ones)

    static let mlflowSearchFilter = "metrics.accuracy > 0.5"
    static let mlflowSearchOrder = "metrics.accuracy DESC"

    static func mlflowSearchQuery(experiment: String) -> [UInt8] {
        let query: JSONValue = [
            "experiment_ids": [.string(experiment)], "filter": .string(mlflowSearchFilter),
            "order_by": [.string(mlflowSearchOrder)], "max_results": 1000,
        ]
        return Array(query.text().utf8)
    }

    /// Run `index` of the search set: `accuracy` ends at (index % 100) / 100 + 0.005, so half the runs pass the filter.
    static func mlflowSearchRunBody(run: String, index: Int) -> [UInt8] {
        var metrics: [JSONValue] = []
        for key in ["accuracy", "loss", "val_accuracy", "val_loss", "lr"] {
            for step in 0..<20 {
                let last = Double(index % 100) / 100 + 0.005
                let value = key == "accuracy" ? last * Double(step + 1) / 20 : Double(index * 20 + step) / 1e4
                metrics.append([
                    "key": .string(key), "value": .number(value), "timestamp": .number(1_764_000_000_000 + Double(step)),
                    "step": .number(Double(step)),
                ])
            }
        }
        let params: [JSONValue] = [
            ["key": "lr", "value": .string("0.\(index % 7 + 1)")], ["key": "width", "value": .string("\(16 << (index % 3))")],
            ["key": "seed", "value": .string("\(index)")],
        ]
        let body: JSONValue = ["run_id": .string(run), "metrics": .array(metrics), "params": .array(params)]
        return Array(body.text().utf8)
    }

    static func mlflowBatch(run: String, index: Int) -> [UInt8] {
        var s = "{\"run_id\":\"\(run)\",\"metrics\":["
        for i in 0..<1000 {
            if i > 0 { s += "," }
            let step = index * 1000 + i
            s +=
                "{\"key\":\"train/loss\",\"value\":\(Double.random(in: 0..<3)),\"timestamp\":\(1_764_000_000_000 + step),\"step\":\(step)}"
        }
        return Array((s + "]}").utf8)
    }

    static func mlflowRun(_ client: RawHTTP, experiment: String) throws -> String {
        let reply = try mlflowCall(client, "runs/create", ["experiment_id": .string(experiment)])
        guard let id = reply["run"]?["info"]?["run_id"]?.stringValue else { throw ValidationError("mlflow bench: no run id") }
        return id
    }

    static func mlflowCall(_ client: RawHTTP, _ path: String, _ body: JSONValue) throws -> JSONValue {
        let (status, answer) = try client.request("POST", mlflowPrefix + path, Array(body.text().utf8))
        guard status == 200, let value = try? JSONValue.parse(Data(answer)) else {
            throw ValidationError("mlflow bench: \(path) \(status) \(String(decoding: answer, as: UTF8.self))")
        }
        return value
    }
}
