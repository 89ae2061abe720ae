import Experiments
import Foundation
import Hummingbird
import Store

/// The caps that keep one request, or one careless script, from filling the queue, the database or
/// the server's memory. README's "Limits" table lists them; every refusal names the cap and its
/// value, and is decided before anything is written (or inside the one transaction that writes).
enum Limits {
    /// Bytes of any request body; `POST /api/runs/{id}/metrics` keeps MLflow's 1 MB below it.
    static let bodyBytes = 1 << 20
    /// Runs one experiment may create: variants × seeds.
    static let runsPerExperiment = 1000
    /// Runs waiting in the queue, all experiments together.
    static let queuedRuns = 10_000
    /// Seeds one `POST /api/experiments/{id}/seeds` may add.
    static let seedsPerAddition = 64
    /// Open event streams (`GET /api/runs/{id}/events`) on one run, and on the whole server.
    static let subscribersPerRun = 32
    static let subscribers = 256
    /// Unicode scalars in a name (run, experiment, variant) and in a tag.
    static let nameCharacters = 200
    static let tagCharacters = 100
    static let tagsPerRun = 64
    /// UTF-8 bytes of a run's notes.
    static let notesBytes = 64 << 10
    /// Distinct metric series (key × weight set) of one run.
    static let seriesPerRun = 1000

    /// A name of at most ``nameCharacters``; nil passes.
    static func checkName(_ name: String?, field: String) throws {
        guard let name, name.unicodeScalars.count > nameCharacters else { return }
        throw APIError.badRequest(
            "\(field) is \(name.unicodeScalars.count) characters long; the name cap is \(nameCharacters) characters", field: field
        )
    }

    /// At most ``tagsPerRun`` tags of at most ``tagCharacters`` each.
    static func checkTags(_ tags: [String], field: String = "tags") throws {
        if tags.count > tagsPerRun {
            throw APIError.badRequest("\(field) holds \(tags.count) tags; the cap is \(tagsPerRun) tags per run", field: field)
        }
        for (i, tag) in tags.enumerated() where tag.unicodeScalars.count > tagCharacters {
            throw APIError.badRequest(
                "\(field)[\(i)] is \(tag.unicodeScalars.count) characters long; the tag cap is \(tagCharacters) characters",
                field: "\(field)[\(i)]")
        }
    }

    static func checkNotes(_ notes: String?, field: String = "notes") throws {
        guard let notes, notes.utf8.count > notesBytes else { return }
        throw APIError.badRequest("\(field) are \(notes.utf8.count) bytes; the notes cap is \(notesBytes) bytes", field: field)
    }

    static func checkRunsPerExperiment(variants: Int, seeds: Int) throws {
        let (runs, overflow) = variants.multipliedReportingOverflow(by: seeds)
        guard overflow || runs > runsPerExperiment else { return }
        throw APIError.badRequest(
            "\(variants) variants × \(seeds) seeds make \(overflow ? "too many" : String(runs)) runs; "
                + "the cap is \(runsPerExperiment) runs per experiment",
            field: "seeds")
    }

    /// 413 naming the cap; `length` when the request declared it.
    static func bodyTooLarge(length: Int? = nil) -> APIError {
        APIError(
            .contentTooLarge,
            (length.map { "the body is \($0) bytes" } ?? "the body is larger") + "; the body cap is \(bodyBytes) bytes")
    }
}

extension APIError {
    /// A store-side cap (queued runs, series per run), reached inside the transaction that was to write.
    init(cap e: CapReached) {
        switch e.cap {
        case .queuedRuns: self.init(.tooManyRequests, e.description)
        case .seriesPerRun: self.init(.conflict, e.description, field: "metrics")
        }
    }
}

/// Refuses a body whose `Content-Length` passes ``Limits/bodyBytes`` on every route, before any
/// handler runs; readers that collect a streamed body stop at the same cap.
struct BodyCapMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        if let text = request.headers[.contentLength] {
            guard let length = Int(text), length >= 0 else {
                throw APIError.badRequest("Content-Length must be a byte count, got \(text)")
            }
            if length > Limits.bodyBytes { throw Limits.bodyTooLarge(length: length) }
        }
        return try await next(request, context)
    }
}
