import Experiments
import XCTest

@testable import Server

/// The Slurm executor's decision when a job ends (`SlurmJobEnd`), case by case: no cluster needed.
final class SlurmJobEndTests: XCTestCase {
    func facts(
        _ state: String, reason: String = "None", summary: String? = nil, trainerReason: String? = nil, cancel: Bool = false,
        interruptions: Int = 0, max: Int = 3, tail: String = ""
    ) -> SlurmJobEnd.Facts {
        .init(
            jobID: 42, state: state, reason: reason, summaryStatus: summary, trainerReason: trainerReason,
            cancelRequested: cancel, interruptions: interruptions, maxResubmissions: max, stderrTail: tail)
    }

    func testAnInterruptedJobIsSubmittedAgainUpToTheCapThenTheRunFailsNamingTheCount() {
        for state in ["PREEMPTED", "NODE_FAIL", "BOOT_FAIL"] {
            for before in 0..<3 {
                let end = SlurmJobEnd.decide(facts(state, reason: "NodeDown", interruptions: before))
                XCTAssertEqual(end.status, .interrupted, "\(state) after \(before)")
                XCTAssertTrue(end.countsAsInterruption)
                XCTAssertEqual(
                    end.reason,
                    "Slurm job 42 ended \(state) (NodeDown); submitted again (\(before + 1) of at most 3), "
                        + "resuming from its last checkpoint")
            }
            let fourth = SlurmJobEnd.decide(facts(state, interruptions: 3, tail: "\nkilled"))
            XCTAssertEqual(fourth.status, .failed)
            XCTAssertTrue(fourth.countsAsInterruption)
            XCTAssertEqual(
                fourth.reason,
                "Slurm job 42 ended \(state); interrupted 4 times, more than the 3 resubmission(s) allowed "
                    + "(--slurm-max-resubmissions): not submitted again\nkilled")
        }
        // A cap of 0: the first interruption fails the run.
        XCTAssertEqual(SlurmJobEnd.decide(facts("PREEMPTED", max: 0)).status, .failed)
        // A larger cap allows more.
        XCTAssertEqual(SlurmJobEnd.decide(facts("PREEMPTED", interruptions: 5, max: 10)).status, .interrupted)
    }

    func testCompletedCancelledAndFailedJobs() {
        XCTAssertEqual(SlurmJobEnd.decide(facts("COMPLETED", summary: "completed")), SlurmJobEnd(status: .completed, reason: nil))
        // Slurm forgot the job, but its summary arrived: completed.
        XCTAssertEqual(SlurmJobEnd.decide(facts("UNKNOWN", summary: "completed")).status, .completed)
        // A cancel from Polyak wins over whatever Slurm says, an interruption included, and is not counted.
        for state in ["CANCELLED", "NODE_FAIL", "FAILED"] {
            let end = SlurmJobEnd.decide(facts(state, cancel: true))
            XCTAssertEqual(end, SlurmJobEnd(status: .cancelled, reason: "cancelled"), state)
        }
        XCTAssertEqual(
            SlurmJobEnd.decide(facts("CANCELLED", tail: "\nbye")).reason,
            "Slurm job 42 ended CANCELLED: cancelled outside Polyak (scancel or an administrator)\nbye")
        // Exit 0 without a completed summary is no success.
        let noSummary = SlurmJobEnd.decide(facts("COMPLETED"))
        XCTAssertEqual(noSummary.status, .failed)
        XCTAssertEqual(noSummary.reason, "Slurm job 42 ended COMPLETED; no summary arrived")
        let timeout = SlurmJobEnd.decide(facts("TIMEOUT", reason: "TimeLimit", summary: "failed", trainerReason: "stopped"))
        XCTAssertEqual(
            timeout, SlurmJobEnd(status: .failed, reason: "Slurm job 42 ended TIMEOUT (TimeLimit); the trainer said: stopped"))
        XCTAssertFalse(SlurmJobEnd.decide(facts("OUT_OF_MEMORY")).countsAsInterruption)
    }
}
