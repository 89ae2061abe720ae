extension Artifact: RowDecodable {
    static let table = "artifacts"

    init(row: Row) throws {
        self.init(
            name: try row.text("name"), kind: try row.value("kind", as: Artifact.Kind.self), path: try row.text("path"),
            bytes: try row.optionalInt("bytes"), sha256: try row.optionalText("sha256"))
    }
}

/// The `artifacts` table: a run's exported weight files and checkpoints.
extension TrackingStore {
    public func saveArtifact(run: Int64, _ a: Artifact) throws {
        try write {
            try $0.execute(
                """
                INSERT INTO artifacts (run_id, name, kind, path, bytes, sha256) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id, name) DO UPDATE SET kind = excluded.kind, path = excluded.path,
                    bytes = excluded.bytes, sha256 = excluded.sha256
                """, [.int(run), .text(a.name), .text(a.kind.rawValue), .text(a.path), a.bytes.sql, a.sha256.sql])
        }
    }

    /// Forgets checkpoint rows whose files the trainer has rotated away.
    public func removeArtifact(run: Int64, name: String) throws {
        try write { try $0.execute("DELETE FROM artifacts WHERE run_id = ? AND name = ?", [.int(run), .text(name)]) }
    }

    /// Exports first, then checkpoints, each by name.
    public func artifacts(run: Int64) throws -> [Artifact] {
        try read {
            try $0.fetchAll(Artifact.self, "SELECT * FROM artifacts WHERE run_id = ? ORDER BY kind DESC, name", [.int(run)])
        }
    }
}
