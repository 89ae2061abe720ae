import Experiments
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Store
import XCTest

@testable import Server

/// `Public/openapi.json` against the router: every `/api` route described, nothing described that
/// the router lacks, every reference resolving, and the document served at `/api/openapi.json`.
final class OpenAPITests: XCTestCase {
    /// The router's `/api` routes as `METHOD /path/{param}`.
    func routerRoutes(_ folder: TempFolder) throws -> Set<String> {
        let opts = options(folder)
        try FileManager.default.createDirectory(atPath: opts.dataDirectory + "/runs", withIntermediateDirectories: true)
        let store = try TrackingStore(path: opts.databasePath)
        let hub = EventHub()
        let runner = JobRunner(
            store: store, hub: hub, options: .init(executable: opts.executable, dataDirectory: opts.dataDirectory),
            logger: Logger(label: "test"))
        let context = ServiceContext(
            store: store, runner: runner, hub: hub, options: opts,
            databaseLock: try DatabaseLock(database: opts.databasePath))
        let routes = buildRouter(context, listening: ListeningPort(0)).routes.filter { $0.path.description.hasPrefix("/api") }
        XCTAssertGreaterThan(routes.count, 20)
        return Set(routes.map { "\($0.method.rawValue) \($0.path.description)" })
    }

    /// The document's operations as `METHOD /path/{param}`.
    func documentedRoutes(_ doc: JSONValue) throws -> Set<String> {
        guard case .object(let paths)? = doc["paths"] else { throw XCTSkip("no paths") }
        var out = Set<String>()
        for (path, item) in paths {
            guard case .object(let operations) = item else { continue }
            for method in operations.keys where ["get", "post", "put", "patch", "delete"].contains(method) {
                out.insert("\(method.uppercased()) \(path)")
            }
        }
        return out
    }

    static func document() throws -> JSONValue {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try JSONValue.parse(try Data(contentsOf: root.appendingPathComponent("Public/openapi.json")))
    }

    func testEveryRouteIsDescribedAndNothingElse() throws {
        let folder = try TempFolder()
        let served = try routerRoutes(folder)
        let documented = try documentedRoutes(try Self.document())
        XCTAssertEqual(served.subtracting(documented).sorted(), [], "routes missing from Public/openapi.json")
        XCTAssertEqual(documented.subtracting(served).sorted(), [], "described routes the router does not have")
    }

    /// Every operation answers a success and the error shape; every `$ref` points at something.
    func testOperationsAndReferencesAreComplete() throws {
        let doc = try Self.document()
        XCTAssertEqual(doc["openapi"]?.stringValue, "3.1.0")
        guard case .object(let paths)? = doc["paths"] else { return XCTFail("no paths") }
        var operationIDs = Set<String>()
        for (path, item) in paths {
            guard case .object(let operations) = item else { continue }
            for (method, op) in operations {
                guard case .object(let responses)? = op["responses"] else { XCTFail("\(method) \(path): no responses"); continue }
                XCTAssertTrue(responses.keys.contains { $0.hasPrefix("2") }, "\(method) \(path): no success answer")
                if path != "/api/openapi.json" {
                    XCTAssertNotNil(responses["4XX"], "\(method) \(path): no 4XX error shape")
                }
                for (i, p) in path.split(separator: "/").enumerated() where p.hasPrefix("{") {
                    let name = String(p.dropFirst().dropLast())
                    let declared = (0..<(op["parameters"]?.count ?? 0)).contains { k in
                        let param = op["parameters"]![k]!
                        let ref = param["$ref"]?.stringValue
                        return param["name"]?.stringValue == name || ref == "#/components/parameters/\(name)"
                    }
                    XCTAssertTrue(declared, "\(method) \(path): path parameter \(name) (segment \(i)) is not declared")
                }
                let id = op["operationId"]?.stringValue ?? ""
                XCTAssertFalse(id.isEmpty, "\(method) \(path): no operationId")
                XCTAssertTrue(operationIDs.insert(id).inserted, "operationId \(id) is used twice")
            }
        }
        var refs: [String] = []
        func walk(_ v: JSONValue) {
            switch v {
            case .object(let o):
                if let r = o["$ref"]?.stringValue { refs.append(r) }
                o.values.forEach(walk)
            case .array(let a): a.forEach(walk)
            default: break
            }
        }
        walk(doc)
        XCTAssertGreaterThan(refs.count, 50)
        for r in Set(refs) {
            XCTAssertTrue(r.hasPrefix("#/"), r)
            var node: JSONValue? = doc
            for part in r.dropFirst(2).split(separator: "/") { node = node?[String(part)] }
            XCTAssertNotNil(node, "\(r) does not resolve")
        }
        // The error shape of service.md.
        let error = doc["components"]?["schemas"]?["Error"]?["properties"]?["error"]
        XCTAssertEqual(error?["required"], ["status", "message", "field"])
    }

    func testTheServerPublishesIt() async throws {
        let folder = try TempFolder()
        let app = try buildApplication(options(folder))
        try await app.test(.live) { client in
            let r = try await client.call(.get, "/api/openapi.json")
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.headers[.contentType], "application/json")
            XCTAssertEqual(try JSONValue.parse(String(buffer: r.body)), try Self.document())
        }
    }
}
