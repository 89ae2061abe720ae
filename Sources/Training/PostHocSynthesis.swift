import Datasets
import Experiments
import Foundation
import Kernels
import PolyakNetwork

/// Post-hoc EMA after training: the snapshots a run's `posthoc` strategy saved, and the weights
/// of any other EMA length synthesised from them as a least-squares combination of the
/// snapshots' power-function profiles (Karras et al. 2024, Algorithm 3; ``PowerFunctionEMA``).
public struct PostHocSynthesis {
    /// The run folder's subfolder of snapshots, one folder per tracked profile.
    public static let folder = "posthoc"

    public struct Snapshot: Sendable, Equatable {
        public let path: String
        public let weights: String
        public let step: Int
        public let sigmaRel: Double
        public let gamma: Double
        public let bytes: Int
    }

    public let directory: String
    /// Every snapshot, by step then width.
    public let snapshots: [Snapshot]

    /// The last step a snapshot was taken at: the end of training for a completed run.
    public var lastStep: Int { snapshots.map(\.step).max() ?? 0 }
    public var totalBytes: Int { snapshots.reduce(0) { $0 + $1.bytes } }
    /// The tracked widths.
    public var sigmaRels: [Double] { Array(Set(snapshots.map(\.sigmaRel))).sorted() }

    /// Finds the snapshots of the run in `directory` (`posthoc/phema@<σ_rel>/step-<step>.safetensors`),
    /// of every tracked profile or only of the widths in `profiles`.
    public init(runDirectory directory: String, profiles: Set<Double>? = nil) throws {
        self.directory = directory
        let root = (directory as NSString).appendingPathComponent(Self.folder)
        let fm = FileManager.default
        guard let profileFolders = try? fm.contentsOfDirectory(atPath: root) else {
            throw PostHocSynthesisError.noSnapshots(root)
        }
        var found: [Snapshot] = []
        for profile in profileFolders.sorted() {
            guard profile.hasPrefix("phema@"), let sigma = Double(profile.dropFirst("phema@".count)),
                sigma > 0, sigma <= PowerFunctionEMA.widestSigmaRel, profiles?.contains(sigma) ?? true
            else { continue }
            let gamma = PowerFunctionEMA.gamma(sigmaRel: sigma)
            let folder = (root as NSString).appendingPathComponent(profile)
            for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] {
                guard name.hasPrefix("step-"), name.hasSuffix(".safetensors"),
                    let step = Int(name.dropFirst("step-".count).dropLast(".safetensors".count)), step > 0
                else { continue }
                let path = (folder as NSString).appendingPathComponent(name)
                let bytes = (try? fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                found.append(Snapshot(path: path, weights: profile, step: step, sigmaRel: sigma, gamma: gamma, bytes: bytes))
            }
        }
        guard !found.isEmpty else { throw PostHocSynthesisError.noSnapshots(root) }
        snapshots = found.sorted { ($0.step, $0.sigmaRel) < ($1.step, $1.sigmaRel) }
    }

    /// Each snapshot's weight in the profile of width `sigmaRel` ending at `step`.
    public func coefficients(sigmaRel: Double, at step: Int) throws -> [Double] {
        try PowerFunctionEMA.coefficients(
            snapshots: snapshots.map { (Double($0.step), $0.gamma) },
            target: (Double(step), PowerFunctionEMA.gamma(sigmaRel: sigmaRel)))
    }

    /// The weights (parameters and BN buffers) of each width in `sigmaRels` at `step` (default: the
    /// last snapshot's), reading every snapshot once and summing in Double.
    public func synthesize(_ sigmaRels: [Double], layout: ParameterLayout, at step: Int? = nil) throws -> [ModelState] {
        let end = step ?? lastStep
        let weights = try sigmaRels.map { try coefficients(sigmaRel: $0, at: end) }
        let probe = ModelState(layout: layout)
        let parameterCount = probe.parameters.count, bufferCount = probe.buffers.count
        var sums = sigmaRels.map { _ in [Double](repeating: 0, count: parameterCount + bufferCount) }
        var batchesTracked: Int64 = 0
        for (i, snapshot) in snapshots.enumerated() {
            do {
                try probe.load(stateDict: try SafetensorsFile.read(from: snapshot.path))
            } catch {
                throw PostHocSynthesisError.badSnapshot(snapshot.path, "\(error)")
            }
            if snapshot.step == lastStep { batchesTracked = probe.batchesTracked }
            let p = probe.parameters.pointer, b = probe.buffers.pointer
            for k in 0..<sigmaRels.count {
                let c = weights[k][i]
                sums[k].withUnsafeMutableBufferPointer { s in
                    for j in 0..<parameterCount { s[j] += c * Double(p[j]) }
                    for j in 0..<bufferCount { s[parameterCount + j] += c * Double(b[j]) }
                }
            }
        }
        return sums.map { sum in
            let state = ModelState(layout: layout)
            for j in 0..<parameterCount { state.parameters.pointer[j] = Float(sum[j]) }
            for j in 0..<bufferCount { state.buffers.pointer[j] = Float(sum[parameterCount + j]) }
            // A least-squares combination may undershoot a variance; a negative one is not a variance.
            for e in layout.entries where e.name.hasSuffix("running_var") {
                let v = state.pointer(e)
                for c in 0..<e.count { v[c] = max(v[c], 0) }
            }
            state.batchesTracked = batchesTracked
            return state
        }
    }
}

public enum PostHocSynthesisError: Error, CustomStringConvertible {
    case noSnapshots(String)
    case badSnapshot(String, String)

    public var description: String {
        switch self {
        case .noSnapshots(let folder):
            return
                "no post-hoc snapshots in \(folder): train with {\"kind\": \"posthoc\"} in averaging to save them"
        case .badSnapshot(let path, let problem): return "\(path): \(problem)"
        }
    }
}
