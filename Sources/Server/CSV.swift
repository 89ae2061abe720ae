/// RFC 4180 CSV: a header row, CRLF line ends, fields quoted when they hold a comma, a quote or a
/// line break (quotes doubled). Non-finite numbers are written `NaN`, `Inf`, `-Inf`.
///
/// A text cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab
/// or a carriage return: OWASP's rule for CSV injection) is written with a `'` in front, which
/// spreadsheets show as text. Number cells are never touched, so `-0.0012` stays a number.
struct CSVWriter {
    private(set) var bytes: [UInt8] = []

    init(header: [String]) {
        bytes.reserveCapacity(4096)
        row(header.map { .text($0) })
    }

    enum Cell {
        case text(String)
        case int(Int64)
        case number(Double)
        case empty
    }

    mutating func row(_ cells: [Cell]) {
        for (i, c) in cells.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            switch c {
            case .empty: break
            case .int(let x): bytes.append(contentsOf: String(x).utf8)
            case .number(let x): bytes.append(contentsOf: CSVWriter.number(x).utf8)
            case .text(let s): field(s)
            }
        }
        bytes.append(0x0D)
        bytes.append(0x0A)
    }

    static func number(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x < 0 ? "-Inf" : "Inf" }
        return "\(x)"
    }

    /// The first bytes that make a spreadsheet evaluate a cell.
    static let formulaStarts: Set<UInt8> = [
        UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "@"), 0x09, 0x0D,
    ]

    /// `s` as a spreadsheet shows it as text: a leading `'` when it would start a formula.
    static func neutralised(_ s: String) -> String {
        guard let first = s.utf8.first, formulaStarts.contains(first) else { return s }
        return "'" + s
    }

    private mutating func field(_ text: String) {
        let s = Self.neutralised(text)
        let needsQuotes = s.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
        guard needsQuotes else {
            bytes.append(contentsOf: s.utf8)
            return
        }
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            if b == UInt8(ascii: "\"") { bytes.append(b) }
            bytes.append(b)
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension CSVWriter.Cell {
    static func optional(_ x: Double?) -> Self { x.map { .number($0) } ?? .empty }
    static func optional(_ x: Int64?) -> Self { x.map { .int($0) } ?? .empty }
    static func optional(_ s: String?) -> Self { s.map { .text($0) } ?? .empty }
}
