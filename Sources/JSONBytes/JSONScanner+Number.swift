#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension JSONScanner {
    /// Reads a number (after whitespace) by RFC 8259's grammar,
    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, correctly rounded to a `Double`.
    /// A number beyond Double's range (`1e400`) is refused rather than read as an infinity.
    ///
    /// Most numbers a tracker sees (`0.9012`, `1404`, `1764000000.25`) have at most 15 significant
    /// digits and a small exponent: their digits are an exact integer and the power of ten is exact,
    /// so one IEEE multiplication or division gives the correctly rounded value (Clinger's fast
    /// path). The rest go through `strtod`, which rounds correctly too.
    @inlinable
    public mutating func readNumber() throws -> Double {
        skipWhitespace()
        let start = offset
        var i = offset
        let count = bytes.count
        @inline(__always) func isDigit(_ k: Int) -> Bool { k < count && bytes[k] &- UInt8(ascii: "0") < 10 }

        var mantissa: UInt64 = 0
        var exact = true  // every digit fits in `mantissa` (≤ 2^53); otherwise strtod reads the text
        var scale = 0  // the power of ten `mantissa` is to be multiplied by
        @inline(__always) func accumulate(_ b: UInt8) {
            if mantissa < 900_719_925_474_099 {  // (2^53 - 9) / 10: one more digit stays ≤ 2^53
                mantissa = mantissa &* 10 &+ UInt64(b &- UInt8(ascii: "0"))
            } else {
                exact = false
            }
        }

        let negative = i < count && bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        guard isDigit(i) else { throw error("malformed number", at: i) }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if isDigit(i) { throw error("a number with a leading zero", at: start) }
        } else {
            while isDigit(i) {
                accumulate(bytes[i])
                i += 1
            }
        }
        if i < count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard isDigit(i) else { throw error("malformed number (no digits after '.')", at: i) }
            while isDigit(i) {
                accumulate(bytes[i])
                if exact { scale -= 1 }
                i += 1
            }
        }
        if i < count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            var exponentNegative = false
            if i < count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
                exponentNegative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            guard isDigit(i) else { throw error("malformed number (no digits in the exponent)", at: i) }
            var exponent = 0
            while isDigit(i) {
                if exponent < 100_000 { exponent = exponent * 10 + Int(bytes[i] &- UInt8(ascii: "0")) }
                i += 1
            }
            scale += exponentNegative ? -exponent : exponent
        }
        offset = i

        let magnitude: Double
        if exact, scale >= -22, scale <= 22 {
            magnitude = scale < 0 ? Double(mantissa) / Self.powersOfTen[-scale] : Double(mantissa) * Self.powersOfTen[scale]
        } else {
            magnitude = Self.strtod(UnsafeBufferPointer(rebasing: bytes[(negative ? start + 1 : start)..<i]))
        }
        guard magnitude.isFinite else {
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<min(i, start + 40)]), as: UTF8.self)
            throw error("the number \(text) is too large for a Double (out of its range, about ±1.8e308)", at: start)
        }
        return negative ? -magnitude : magnitude
    }

    /// 10^0 … 10^22, every one exact in a `Double`.
    @usableFromInline
    static let powersOfTen: [Double] = (0...22).map { k in (0..<k).reduce(1.0) { x, _ in x * 10 } }

    /// `strtod` over grammar-checked digits, copied with the terminator it needs (the buffer has none).
    @usableFromInline
    static func strtod(_ digits: UnsafeBufferPointer<UInt8>) -> Double {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: digits.count + 1) { text in
            for (k, b) in digits.enumerated() { text[k] = CChar(bitPattern: b) }
            text[digits.count] = 0
            #if canImport(Glibc)
                return Glibc.strtod(text.baseAddress!, nil)
            #else
                return Darwin.strtod(text.baseAddress!, nil)
            #endif
        }
    }
}
