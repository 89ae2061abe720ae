/// One learning curve of the experiment page over seeds: per x (epoch or step), the sum, count,
/// min and max of the runs' finite values, and whether one was NaN or infinite.
///
/// The x values are kept sorted in an array and found with a cursor: every run's series repeats
/// mostly the same xs in the same order, so the next x is where the last one ended and the
/// 200 000 points of a 1 000-run page are added without hashing (a dictionary per curve cost a
/// third of the page's time). Values are added in the order given, so sums are those of the
/// points in row order.
struct SeedCurve {
    struct Accumulator {
        var sum = 0.0
        var count = 0
        var low = Double.infinity
        var high = -Double.infinity
        var nonFinite = false

        mutating func add(_ value: Double) {
            if value.isFinite {
                sum += value
                count += 1
                low = min(low, value)
                high = max(high, value)
            } else {
                nonFinite = true
            }
        }
    }

    /// Ascending, unique.
    private(set) var xs: [Int64] = []
    private(set) var values: [Accumulator] = []
    /// Where the next x of the series being added is expected.
    private var cursor = 0

    /// A new series (another run) starts from the first x again.
    mutating func startSeries() { cursor = 0 }

    mutating func add(x: Int64, _ value: Double) {
        let i: Int
        if cursor < xs.count && xs[cursor] == x {
            i = cursor
        } else if cursor > 0 && xs[cursor - 1] == x {
            i = cursor - 1  // several points at one x (steps within an epoch)
        } else {
            var (low, high) = (0, xs.count)
            while low < high {
                let mid = (low + high) / 2
                if xs[mid] < x { low = mid + 1 } else { high = mid }
            }
            if low == xs.count || xs[low] != x {
                xs.insert(x, at: low)
                values.insert(Accumulator(), at: low)
            }
            i = low
        }
        values[i].add(value)
        cursor = i + 1
    }
}
