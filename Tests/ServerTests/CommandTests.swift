import CSQLite
import Foundation
import PolyakTestSupport
import XCTest

/// `polyak migrate` and `polyak serve` as a user runs them.
final class CommandTests: XCTestCase {
    func run(_ args: [String], in directory: URL? = nil) throws -> ProcessOutput {
        try runProcess(try polyakExecutable(), args, in: directory)
    }

    func testMigrateThenRefuseADatabaseFromTheFuture() throws {
        let folder = try TempFolder()
        // From another working directory: the schema is inside the binary. (The child's, not
        // this process's: other tests run after this one.)
        var r = try run(["migrate", "--db", folder.db], in: folder.url)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("applied 0001_initial.sql"), r.out)
        r = try run(["migrate", "--db", folder.db])
        XCTAssertTrue(r.out.contains("schema is current"), r.out)

        var db: OpaquePointer?
        XCTAssertEqual(sqlite3_open(folder.db, &db), SQLITE_OK)
        sqlite3_exec(db, "INSERT INTO schema_migrations VALUES (77, '0077_later.sql', 0)", nil, nil, nil)
        sqlite3_close(db)
        r = try run(["migrate", "--db", folder.db])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("schema version 77, newer than this polyak knows"), r.err)
        r = try run(["serve", "--port", "\(try freePort())", "--db", folder.db, "--data-dir", folder.data])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("newer than this polyak knows"), r.err)
    }

    func testServeRefusesBadOptions() throws {
        let r = try run(["serve", "--max-concurrent", "65"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--max-concurrent must be in 0...64"), r.err)
        let stall = try run(["serve", "--stall-timeout", "0"])
        XCTAssertNotEqual(stall.status, 0)
        XCTAssertTrue(stall.err.contains("--stall-timeout must be > 0"), stall.err)
    }
}
