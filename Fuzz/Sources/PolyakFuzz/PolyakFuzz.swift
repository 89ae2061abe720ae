import CFuzzer
import Datasets
import Experiments
import Foundation
import PolyakNetwork
import Store

/// libFuzzer entry points for the four readers that take bytes from outside: IDX files,
/// safetensors files, run specs and metric batches. `POLYAK_FUZZ_TARGET` picks one per process
/// (`make fuzz` runs each in turn). A refusal of another error type than the reader's own, or
/// one without a message, stops the fuzzer as a crash does.
let fuzzTarget = ProcessInfo.processInfo.environment["POLYAK_FUZZ_TARGET"] ?? ""

@main
enum PolyakFuzz {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
    }
}

/// The entry point libFuzzer's runtime expects to exist (its own `main`, unused here, calls it).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    switch fuzzTarget {
    case "idx": expectOwnRefusal(DatasetError.self, \.message) { _ = try IDXArray.decode(bytes) }
    case "safetensors": expectOwnRefusal(SafetensorsError.self, \.problem) { _ = try SafetensorsFile.decode(Data(bytes)) }
    case "spec": expectOwnRefusal(SpecError.self, \.message) { _ = try RunSpec.decode(Data(bytes)) }
    case "metrics": expectOwnRefusal(APIError.self, \.message) { _ = try MetricBatchReader.parse(bytes, now: 1_764_000_000) }
    default: fatalError("POLYAK_FUZZ_TARGET must be idx, safetensors, spec or metrics, got \(fuzzTarget)")
    }
    return 0
}

func expectOwnRefusal<E: Error>(_ errorType: E.Type, _ message: KeyPath<E, String>, _ body: () throws -> Void) {
    do {
        try body()
    } catch let e as E {
        if e[keyPath: message].trimmingCharacters(in: .whitespaces).isEmpty {
            fatalError("\(fuzzTarget): a refusal without a message")
        }
    } catch {
        fatalError("\(fuzzTarget): a refusal that is not the reader's own error: \(type(of: error)) \(error)")
    }
}
