import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import XCTest

@testable import Server

/// What an HTTP client can make the server open: specs' paths, artifact downloads, static files.
final class PathTrustTests: XCTestCase {
    func testSpecPathsOverHTTPStayInsideTheDataDirectory() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        let fm = FileManager.default
        let outside = folder.url.appendingPathComponent("outside")
        try fm.createDirectory(at: outside, withIntermediateDirectories: true)
        try Data("not weights".utf8).write(to: outside.appendingPathComponent("secret.safetensors"))
        try await app.test(.live) { client in
            // The data directory exists once the server is built.
            try Data("weights".utf8).write(to: URL(fileURLWithPath: folder.data + "/teacher.safetensors"))
            try fm.createSymbolicLink(atPath: folder.data + "/leak.safetensors", withDestinationPath: "/etc/passwd")
            try fm.createDirectory(atPath: folder.data + "/fmnist", withIntermediateDirectories: true)
            try fm.createSymbolicLink(atPath: folder.data + "/etc-link", withDestinationPath: "/etc")
            func teacher(_ path: String) -> String { #"{"distillation": {"teacher": {"path": "\#(path)"}}}"# }

            for path in [
                "/etc/passwd", folder.data + "/leak.safetensors", folder.data + "/../outside/secret.safetensors",
                outside.path + "/secret.safetensors", folder.data + "/missing.safetensors",
            ] {
                try assertError(
                    try await client.call(.post, "/api/runs", teacher(path)), .badRequest,
                    field: "distillation.teacher.path", contains: "inside the server's data directory")
            }
            try assertError(
                try await client.call(.post, "/api/runs", #"{"data": {"root": "/etc"}}"#), .badRequest,
                field: "data.root", contains: DataSpec.defaultRoot)
            try assertError(
                try await client.call(.post, "/api/runs", #"{"data": {"root": "\#(folder.data)/etc-link"}}"#),
                .badRequest, field: "data.root")
            // An experiment names where the path came from: its base or a variant's own spec.
            try assertError(
                try await client.call(
                    .post, "/api/experiments",
                    #"{"name": "x", "base": \#(teacher("/etc/passwd")), "variants": ["none"]}"#),
                .badRequest, field: "base.distillation.teacher.path")
            try assertError(
                try await client.call(
                    .post, "/api/experiments",
                    #"{"name": "x", "variants": [{"name": "v", "spec": \#(teacher("/etc/passwd"))}]}"#),
                .badRequest, field: "variants[0].spec.distillation.teacher.path")
            try assertError(
                try await client.call(
                    .post, "/api/experiments",
                    #"{"name": "x", "variants": [{"name": "v", "spec": {"data": {"root": "/"}}}]}"#),
                .badRequest, field: "variants[0].spec.data.root")
            let none = try await client.json(.get, "/api/runs")
            XCTAssertEqual(none["runs"]?.count, 0, "a refused spec stores nothing")

            // Inside the data directory, and the default dataset: accepted.
            _ = try await client.json(.post, "/api/runs", teacher(folder.data + "/teacher.safetensors"), expect: .created)
            _ = try await client.json(.post, "/api/runs", #"{"data": {"root": "\#(folder.data)/fmnist"}}"#, expect: .created)
            _ = try await client.json(.post, "/api/runs", #"{"data": {"root": "\#(DataSpec.defaultRoot)"}}"#, expect: .created)
        }
    }

    /// A run folder with one real export, one symlink out of the folder and one `..` path, and a
    /// secret beside the data directory that no request may read.
    func testArtifactDownloadsRefuseTraversal() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        let marker = "SECRET-\(UUID().uuidString)"
        try Data(marker.utf8).write(to: folder.url.appendingPathComponent("secret.txt"))
        try await app.test(.live) { client in
            let port = try XCTUnwrap(client.port)
            let run = try await client.json(.post, "/api/runs?launch=false", "{}", expect: .created)
            let id = try XCTUnwrap(run["id"]?.intValue)
            let dir = folder.data + "/runs/\(id)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data("weights".utf8).write(to: URL(fileURLWithPath: dir + "/final.safetensors"))
            try FileManager.default.createSymbolicLink(
                atPath: dir + "/link.safetensors", withDestinationPath: folder.url.path + "/secret.txt")
            let store = try TrackingStore(path: folder.db)
            try store.saveArtifact(
                run: Int64(id), Artifact(name: "raw", kind: .export, path: "final.safetensors", bytes: 7, sha256: nil))
            try store.saveArtifact(
                run: Int64(id), Artifact(name: "swa", kind: .export, path: "link.safetensors", bytes: 7, sha256: nil))
            try store.saveArtifact(
                run: Int64(id), Artifact(name: "up", kind: .export, path: "../../../secret.txt", bytes: 7, sha256: nil))

            let good = try RawConnection.get(port: port, "/api/runs/\(id)/artifacts/raw")
            XCTAssertEqual(good.status, 200)
            XCTAssertTrue(good.body.contains("weights"))
            let attempts = [
                "/api/runs/\(id)/artifacts/swa", "/api/runs/\(id)/artifacts/up",
                "/api/runs/\(id)/artifacts/../../../../secret.txt", "/api/runs/\(id)/artifacts/..%2f..%2f..%2f..%2fsecret.txt",
                "/api/runs/\(id)/artifacts/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt", "/api/runs/\(id)/artifacts/%2e%2e",
                "/api/runs/\(id)/artifacts/..%5c..%5c..%5c..%5csecret.txt", #"/api/runs/\#(id)/artifacts/..\..\..\..\secret.txt"#,
                "/api/runs/\(id)/artifacts/raw%00../../../../secret.txt", "/api/runs/\(id)/artifacts/%00",
                "/api/runs/\(id)/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt", "/api/runs/%2e%2e/artifacts/raw",
            ]
            for path in attempts {
                let r = try RawConnection.get(port: port, path)
                XCTAssertTrue([0, 400, 404].contains(r.status), "\(path): \(r.status)")
                XCTAssertFalse(r.body.contains(marker), "\(path) leaked the secret")
            }
        }
    }

    func testStaticFilesRefuseTraversal() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder, maxConcurrent: 0))
        try await app.test(.live) { client in
            let port = try XCTUnwrap(client.port)
            XCTAssertEqual(try RawConnection.get(port: port, "/css/polyak.css").status, 200)
            let attempts = [
                "/css/../../../../../../etc/passwd", "/css/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                "/css/..%2f..%2f..%2f..%2fetc%2fpasswd",
                #"/css/..\..\..\..\etc\passwd"#, "/js/..%5c..%5c..%5cetc%5cpasswd", "/css/polyak.css%00",
                "/css/polyak.css%00.txt",
                "/css/polyak.css/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/../../../../etc/passwd",
                "/js/%2e%2e%2fpolyak.js",
            ]
            for path in attempts {
                let r = try RawConnection.get(port: port, path)
                XCTAssertTrue([0, 400, 404].contains(r.status), "\(path): \(r.status)")
                XCTAssertFalse(r.body.contains("root:x:0:0"), "\(path) served /etc/passwd")
            }
        }
    }
}
