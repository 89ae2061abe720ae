import Foundation
import JSONBytes

/// A body already written as JSON bytes; the controller sends it as it is.
struct MLflowJSON: Encodable {
    let bytes: [UInt8]

    func encode(to encoder: any Encoder) throws {
        throw EncodingError.invalidValue(
            bytes, .init(codingPath: encoder.codingPath, debugDescription: "MLflowJSON is sent as bytes by MLflowController"))
    }
}

/// A page of runs (`runs/search`'s answer) written straight to bytes: the tree encoder took most of a
/// 500-run search's time. The same bytes as ``ViewEncoder`` writes for ``MLflowPage`` of
/// ``MLflowRunView`` (MLflowRunsJSONTests compares them).
enum MLflowRunsJSON {
    static func page(_ runs: [MLflowRunView], nextPageToken: String?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(runs.count * 600)
        out += Array(#"{"runs":["#.utf8)
        for (i, r) in runs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            run(r, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        if let nextPageToken {
            out += Array(#","next_page_token":"#.utf8)
            JSONText.appendString(nextPageToken, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func run(_ r: MLflowRunView, to out: inout [UInt8]) {
        let i = r.info
        field("{\"info\":{\"run_id\":", i.runID, &out)
        field(",\"run_uuid\":", i.runID, &out)
        field(",\"run_name\":", i.runName, &out)
        field(",\"experiment_id\":", i.experimentID, &out)
        field(",\"user_id\":", i.userID, &out)
        field(",\"status\":", i.status, &out)
        out += Array(",\"start_time\":".utf8)
        JSONText.appendInteger(i.startTime, to: &out)
        if let end = i.endTime {
            out += Array(",\"end_time\":".utf8)
            JSONText.appendInteger(end, to: &out)
        }
        field(",\"artifact_uri\":", i.artifactURI, &out)
        field(",\"lifecycle_stage\":", i.lifecycleStage, &out)
        out += Array("},\"data\":{\"metrics\":[".utf8)
        for (k, m) in r.data.metrics.enumerated() {
            field(k > 0 ? ",{\"key\":" : "{\"key\":", m.key, &out)
            out += Array(",\"value\":".utf8)
            JSONText.appendNumber(m.value, to: &out)
            out += Array(",\"timestamp\":".utf8)
            JSONText.appendInteger(m.timestamp, to: &out)
            out += Array(",\"step\":".utf8)
            JSONText.appendInteger(m.step, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out += Array("],\"params\":".utf8)
        keyValues(r.data.params, &out)
        out += Array(",\"tags\":".utf8)
        keyValues(r.data.tags, &out)
        out += Array("},\"inputs\":{}}".utf8)
    }

    private static func field(_ prefix: String, _ value: String, _ out: inout [UInt8]) {
        out += Array(prefix.utf8)
        JSONText.appendString(value, to: &out)
    }

    private static func keyValues(_ items: [MLflowKeyValue], _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (k, kv) in items.enumerated() {
            field(k > 0 ? ",{\"key\":" : "{\"key\":", kv.key, &out)
            field(",\"value\":", kv.value, &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
    }
}
