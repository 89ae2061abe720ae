import ArgumentParser
import Experiments
import Foundation
import Store

/// Many Slurm jobs reporting to one server at once (`polyak train --report`): each job's lines are a
/// training's (`train/*` every step, a progress line a second, `test/*` of two weight sets every
/// epoch), batched exactly as the reporter batches them (`TrainReport.nextBatch`, then one request
/// per run of metric or other lines), and posted to the same routes with the same bodies. A real
/// trainer per job would measure the trainers, not the server: 64 of them on two cores crawl.
///
/// Two phases over the same runs: **live**, every job sending its last second's lines once a second
/// (what the server sees while the jobs train), then **backlog**, every job sending the rest of its
/// spool at once, as fast as acknowledged (a server back after a restart, 64 spools waiting).
extension Bench.Service {
    static let reportJobs = 64
    static let reportLiveSeconds = 10
    /// Seconds of training each job's lines stand for (the rest after the live phase is the backlog).
    static let reportTrainingSeconds = 60
    /// Steps a second at `log_every` 1: three `train/*` points each.
    static let reportStepsPerSecond = 20

    func report(port: Int, client: RawHTTP, store: TrackingStore) throws {
        let jobs = Self.reportJobs
        let runs = try (0..<jobs).map { j -> Int64 in
            let body = Array(#"{"name": "report-\#(j)"}"#.utf8)
            let (status, answer) = try client.request("POST", "/api/runs?launch=false", body)
            guard status == 201, let id = (try? JSONValue.parse(Data(answer)))?["id"]?.doubleValue else {
                throw ValidationError("cannot create a run: \(status) \(String(decoding: answer, as: UTF8.self))")
            }
            return Int64(id)
        }
        // Requests made before the clock starts: the figure is the server's.
        let lines = (0..<jobs).map { j in (0..<Self.reportTrainingSeconds).map { Self.reportLines(job: j, second: $0) } }
        let sent = lines.map { $0.joined().filter(\.isMetric).count }
        let liveRequests = lines.map { job in job.prefix(Self.reportLiveSeconds).map(ReportLoad.requests) }
        let backlogRequests = lines.map { ReportLoad.requests(Array($0[Self.reportLiveSeconds...].joined())) }

        let live = ReportLoad(jobs: jobs)
        let liveStart = DispatchTime.now()
        Self.concurrently(jobs) { j in
            guard let conn = live.connect(port: port) else { return }
            for (s, requests) in liveRequests[j].enumerated() {
                let due = liveStart.uptimeNanoseconds + UInt64(s) * 1_000_000_000
                let now = DispatchTime.now().uptimeNanoseconds
                if due > now { usleep(UInt32((due - now) / 1000)) }
                live.send(requests, run: runs[j], job: j, over: conn)
            }
        }
        let backlog = ReportLoad(jobs: jobs)
        let backlogStart = DispatchTime.now()
        Self.concurrently(jobs) { j in
            guard let conn = backlog.connect(port: port) else { return }
            backlog.send(backlogRequests[j], run: runs[j], job: j, over: conn)
        }
        let backlogSeconds = Double(DispatchTime.now().uptimeNanoseconds - backlogStart.uptimeNanoseconds) / 1e9

        var stored = 0
        var exact = true
        for (j, run) in runs.enumerated() {
            let n = try store.pointCount(run: run)
            stored += n
            if n != sent[j] { exact = false }
        }
        let errors = live.errors + backlog.errors
        let backlogPoints = backlog.points
        Self.emit([
            "benchmark": "report", "jobs": .number(Double(jobs)),
            "job_lines": "train/loss,top1,lr every step (20 steps/s), progress every second, test/* x 2 weight sets every 10 s",
            "errors": .number(Double(errors)),
            "first_error": (live.firstError ?? backlog.firstError).map { .string($0) } ?? .null,
            "points_sent": .number(Double(sent.reduce(0, +))), "points_stored": .number(Double(stored)),
            "stored_exactly_once": .bool(exact),
            "live_seconds": .number(Double(Self.reportLiveSeconds)), "live_requests": .number(Double(live.latencies.count)),
            "live_p50_ms": .number(Self.round(live.percentile(0.5))), "live_p99_ms": .number(Self.round(live.percentile(0.99))),
            "backlog_requests": .number(Double(backlog.latencies.count)), "backlog_points": .number(Double(backlogPoints)),
            "backlog_s": .number(Self.round(backlogSeconds)),
            "backlog_points_per_s": .number((Double(backlogPoints) / backlogSeconds).rounded()),
            "backlog_p50_ms": .number(Self.round(backlog.percentile(0.5))),
            "backlog_p99_ms": .number(Self.round(backlog.percentile(0.99))),
            "pass": .bool(errors == 0 && exact),
        ])
    }

    /// One second of job `job`'s training as its trainer prints it: `train/*` at every step, a
    /// progress line, and at every tenth second the `test/*` of `raw` and `ema@0.999`.
    static func reportLines(job: Int, second: Int) -> [TrainReport.Line] {
        var lines: [String] = []
        let time = 1_764_000_000 + Double(second)
        let stepsPerEpoch = reportStepsPerSecond * 10
        for k in 1...reportStepsPerSecond {
            let step = Int64(second * reportStepsPerSecond + k)
            let epoch = step / Int64(stepsPerEpoch) + 1
            let loss = 2.3 * exp(-Double(step) / 400) + 0.001 * Double(job % 7)
            for (key, value) in [("train/loss", loss), ("train/top1", 1 - loss / 2.5), ("train/lr", 0.1)] {
                lines.append(TrainerEvent.metric(MetricPoint(key: key, step: step, epoch: epoch, value: value, time: time)).line)
            }
        }
        let step = (second + 1) * reportStepsPerSecond
        if step % stepsPerEpoch == 0 {
            for weights in ["raw", "ema@0.999"] {
                for key in ["test/loss", "test/top1", "test/top5"] {
                    let point = MetricPoint(
                        key: key, weights: weights, step: Int64(step), epoch: Int64(step / stepsPerEpoch), value: 0.5,
                        time: time)
                    lines.append(TrainerEvent.metric(point).line)
                }
            }
        }
        let total = reportTrainingSeconds * reportStepsPerSecond
        let progress = TrainerEvent.Progress(
            epoch: step / stepsPerEpoch + 1, step: step, totalSteps: total, imagesPerSecond: 1280,
            etaSeconds: Double(total - step) / Double(reportStepsPerSecond), time: time)
        lines.append(TrainerEvent.progress(progress).line)
        return lines.map { TrainReport.Line(text: $0, end: 0, isMetric: TrainReport.isMetric($0)) }
    }

    /// Runs `body(0..<count)` on `count` threads at once (Dispatch's pool would run only as many as
    /// there are cores) and returns when all have ended.
    static func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let done = DispatchGroup()
        for i in 0..<count {
            done.enter()
            let thread = Thread {
                body(i)
                done.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        done.wait()
    }
}

/// What the reporters of one phase saw: every request's latency, the points acknowledged, errors.
final class ReportLoad: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var latencies: [Double] = []
    private(set) var points = 0
    private(set) var errors = 0
    private(set) var firstError: String?

    init(jobs: Int) { latencies.reserveCapacity(jobs * 200) }

    func connect(port: Int) -> RawHTTP? {
        do { return try RawHTTP(port: port) } catch {
            failed("connect: \(error)")
            return nil
        }
    }

    /// One request of a reporter: its route, its body and how many points it carries.
    struct Request {
        var path: String
        var body: [UInt8]
        var points: Int
    }

    /// `lines` as the reporter sends them: its next batch, then one request per run of metric or
    /// other lines; points without their `type` to `/metrics`, other events as they are to `/events`
    /// (as `TrainReport.post` builds them).
    static func requests(_ lines: [TrainReport.Line]) -> [Request] {
        var out: [Request] = []
        var pending = ArraySlice(lines)
        while !pending.isEmpty {
            let batch = TrainReport.nextBatch(Array(pending))
            for group in TrainReport.groups(batch) {
                if group[0].isMetric {
                    let points = group.map { line -> String in
                        guard case .object(var fields) = (try? JSONValue.parse(line.text)) ?? .null else { return line.text }
                        fields["type"] = nil
                        return JSONValue.object(fields).text()
                    }
                    let body = "{\"metrics\":[" + points.joined(separator: ",") + "]}"
                    out.append(Request(path: "/metrics", body: Array(body.utf8), points: group.count))
                } else {
                    let body = "{\"events\":[" + group.map(\.text).joined(separator: ",") + "]}"
                    out.append(Request(path: "/events", body: Array(body.utf8), points: 0))
                }
            }
            pending = pending.dropFirst(batch.count)
        }
        return out
    }

    /// Posts `requests` in order, timing each; a failed one is counted and the rest still sent.
    func send(_ requests: [Request], run: Int64, job: Int, over conn: RawHTTP) {
        for r in requests {
            let start = DispatchTime.now()
            do {
                let (status, answer) = try conn.request("POST", "/api/runs/\(run)" + r.path, r.body)
                let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
                guard (200..<300).contains(status) else {
                    failed("job \(job): POST \(r.path) \(status) \(String(decoding: answer.prefix(200), as: UTF8.self))")
                    continue
                }
                lock.withLock {
                    latencies.append(ms)
                    points += r.points
                }
            } catch {
                failed("job \(job): POST \(r.path): \(error)")
                return
            }
        }
    }

    func percentile(_ p: Double) -> Double {
        let sorted = lock.withLock { latencies.sorted() }
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }

    private func failed(_ message: String) {
        lock.withLock {
            errors += 1
            if firstError == nil { firstError = message }
        }
    }
}
