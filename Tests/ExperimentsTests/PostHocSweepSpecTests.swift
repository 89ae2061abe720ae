import Experiments
import Foundation
import XCTest

/// The post-hoc entry's sweep fields: `sweep` (the widths evaluated after training) and `sweep_bn`.
final class PostHocSweepSpecTests: XCTestCase {
    func assertRefused(_ json: String, field: String, _ description: String, line: UInt = #line) {
        XCTAssertThrowsError(try RunSpec.decode(Data(json.utf8)), json, line: line) { error in
            guard let e = error as? SpecError else { return XCTFail("\(error) is not a SpecError", line: line) }
            XCTAssertEqual(e.field, field, json, line: line)
            XCTAssertEqual(e.description, description, json, line: line)
        }
    }

    func testBadSweepsAreRefusedNamingTheWidth() {
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sweep": [0.05, 0.3]}}"#, field: "averaging.sweep[1]",
            "averaging.sweep[1] must be in (0, 0.25], got 0.3")
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sweep": [0]}}"#, field: "averaging.sweep[0]",
            "averaging.sweep[0] must be in (0, 0.25], got 0")
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sweep": [0.05, 0.1, 0.05]}}"#, field: "averaging.sweep[2]",
            "averaging.sweep[2] repeats the width 0.05")
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sweep": 0.05}}"#, field: "averaging.sweep",
            "averaging.sweep must be a list, got 0.05")
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sweep": ["0.05"]}}"#, field: "averaging.sweep[0]",
            #"averaging.sweep[0] must be a number, got "0.05""#)
        let many = (1...101).map { String(Double($0) / 1000) }.joined(separator: ", ")
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sweep": [\#(many)]}}"#, field: "averaging.sweep",
            "averaging.sweep lists 101 widths; at most 100 (each costs a test-set evaluation)")
        assertRefused(
            #"{"averaging": {"kind": "posthoc", "sweep_bn": "fresh"}}"#, field: "averaging.sweep_bn",
            #"averaging.sweep_bn must be one of synthesized, precise, got "fresh""#)
    }

    func testDefaultsListedAndNoSweepRoundTrip() throws {
        let plain = try RunSpec.decode(Data(#"{"averaging": {"kind": "posthoc"}}"#.utf8))
        XCTAssertNil(plain.postHocSpec?.sweep)
        XCTAssertEqual(plain.postHocSpec?.sweepBatchNorm, .precise)
        let listed = try RunSpec.decode(
            Data(#"{"averaging": {"kind": "posthoc", "sweep": [0.2, 0.03], "sweep_bn": "synthesized"}}"#.utf8))
        XCTAssertEqual(listed.postHocSpec?.sweep, [0.2, 0.03])
        XCTAssertEqual(listed.postHocSpec?.sweepBatchNorm, .synthesized)
        let none = try RunSpec.decode(Data(#"{"averaging": {"kind": "posthoc", "sweep": []}}"#.utf8))
        XCTAssertEqual(none.postHocSpec?.sweep, [])
        for spec in [plain, listed, none] { XCTAssertEqual(try RunSpec.decode(spec.json()), spec) }
    }

    func testTheDefaultGridIsSixteenReadableLogSpacedWidths() {
        XCTAssertEqual(
            PostHocSpec.defaultSweepWidths,
            [0.01, 0.012, 0.015, 0.019, 0.024, 0.029, 0.036, 0.045, 0.056, 0.069, 0.085, 0.11, 0.13, 0.16, 0.2, 0.25])
    }

    func testAnEMADecayAsAWidth() {
        // √0.999 / 0.001 / 10 000 = 0.099950 (0.999 ↔ 0.10 at 10 000 steps); every 4 steps: 4 times wider.
        XCTAssertEqual(PostHocSpec.sigmaRel(emaDecay: 0.999, steps: 10_000), 0.0999500, accuracy: 1e-7)
        XCTAssertEqual(PostHocSpec.sigmaRel(emaDecay: 0.999, every: 4, steps: 10_000), 0.3998, accuracy: 1e-6)
    }
}
