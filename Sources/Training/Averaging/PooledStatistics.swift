/// Precise BN's pooled statistics (fvcore `update_bn_stats`): the mean and the biased population
/// variance over every sample of every batch, from each batch's mean, biased variance and size —
/// not the mean of per-batch variances.
struct PooledStatistics {
    private var count = 0.0
    private var sums: [Double]
    private var squares: [Double]

    init(channels: Int) {
        sums = [Double](repeating: 0, count: channels)
        squares = sums
    }

    /// Adds one batch: per channel its mean and biased variance over `count` samples.
    mutating func add(mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, count n: Int) {
        let w = Double(n)
        for c in 0..<sums.count {
            let m = Double(mean[c])
            sums[c] += w * m
            squares[c] += w * (Double(variance[c]) + m * m)  // Σx² of the batch
        }
        count += w
    }

    func result(channel c: Int) -> (mean: Double, variance: Double) {
        let m = sums[c] / count
        return (m, max(0, squares[c] / count - m * m))
    }
}
