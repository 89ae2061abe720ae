import Datasets
import Experiments
import Foundation
import PolyakNetwork
import XCTest

@testable import Training

/// Runs small real trainings in temporary folders and reads back their JSON lines.
final class RunHarness {
    var folders: [String] = []

    func cleanUp() {
        for f in folders { try? FileManager.default.removeItem(atPath: f) }
        folders = []
        StopRequest.reset()
    }

    func folder() -> String {
        let f = FileManager.default.temporaryDirectory.appendingPathComponent("polyak-\(UUID().uuidString)").path
        folders.append(f)
        return f
    }

    func smallSpec(epochs: Int = 2, images: Int = 512, testImages: Int = 500, width: Int = 4, extra: String = "") throws
        -> RunSpec
    {
        try RunSpec.decode(
            Data(
                """
                {"seed": 3, "threads": 2,
                 "data": {"train_limit": \(images), "test_limit": \(testImages)},
                 "model": {"width": \(width)},
                 "optim": {"epochs": \(epochs), "batch_size": 64, "lr": 0.1, "warmup_epochs": 0.5}
                 \(extra)}
                """.utf8))
    }

    struct Run {
        let outcome: RunOutcome
        let lines: [[String: Any]]
        func metrics(_ key: String) -> [Double] {
            lines.filter { $0["type"] as? String == "metric" && $0["key"] as? String == key }.map {
                ($0["value"] as! NSNumber).doubleValue
            }
        }
        var summary: [String: Any] { lines.last { $0["type"] as? String == "summary" }! }
    }

    func train(_ spec: RunSpec, in dir: String, resume: Bool = false) throws -> Run {
        let box = LineBox()
        let outcome = try Trainer(spec: spec, directory: dir, events: .collecting(into: box)).run(resume: resume)
        let lines = box.lines.map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        return Run(outcome: outcome, lines: lines)
    }

}
