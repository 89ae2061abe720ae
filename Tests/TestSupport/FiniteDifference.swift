/// Central finite difference of a scalar function in Double: the oracle for every backward pass.
/// Nudges `p` by ±h, calls `f` each time, and leaves `p` as it found it.
public func finiteDifference(_ f: () -> Double, at p: UnsafeMutablePointer<Float>, h: Float = 1e-2) -> Double {
    let saved = p.pointee
    p.pointee = saved + h
    let up = f()
    p.pointee = saved - h
    let down = f()
    p.pointee = saved
    return (up - down) / Double(2 * h)
}
