/// Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray, CVPR 2016) for the 3×3 stride-1
/// convolutions, with output tiles of m = 2 or 4 pixels a side: a tile costs (m + 2)² multiply-adds
/// per (input, output) channel pair instead of 9m², so 2.25× (m = 2) or 4× (m = 4) fewer than the
/// direct convolution. The input and output transforms are additions done across channels eight
/// at a time; the (m + 2)² products per tile are as many GEMMs over a block of tiles (libxsmm).
/// Conv2d runs its forward pass, input gradient and weight gradient through it where the shape
/// allows (`supports`, `Conv2d.winogradPasses`) and keeps the direct convolution beside it for
/// every other shape; `ReferenceConv` is the oracle of both.
///
///     V = Bᵀ d B ((m+2)² input patch d),  U = G g Gᵀ (3×3 filter g),  Y = Aᵀ [U ⊙ V summed over cin] A
///     m = 2:  Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]   G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]   Aᵀ = [1 1 1 0; 0 1 −1 −1]
///     m = 4:  the points 0, ±1, ±2, ∞ (`Winograd4x4.swift`)
///
/// Rounding differs from the direct convolution's in the last bits (the transforms add before
/// they multiply; m = 4's larger constants lose a little more); results are deterministic run after run.
final class Winograd3x3: @unchecked Sendable {
    let inChannels: Int
    let outChannels: Int
    /// Output pixels per tile side (2 or 4), the patch side `tile + 2` and its positions (16 or 36).
    let tile: Int
    let positions: Int
    /// The input's shape; the output has the same size with `outChannels`.
    let input: ActivationShape
    let workers: Workers
    private let tilesPerRow: Int
    private let tileRowsPerImage: Int
    private let tileRows: Int
    /// Tile rows per block, and the tiles of a full block (the GEMMs' n).
    private let rowsPerBlock: Int
    private let blockTiles: Int
    /// gemms[r − 1] multiplies a block of r tile rows.
    private let gemms: [BatchReduceGEMM]
    /// weightGEMMs[r − 1]: dU_ξ (+)= dM_ξ · V_ξᵀ over a block of r tile rows (k = the tiles).
    private let weightGEMMs: [BatchReduceGEMM]
    /// Per worker: its tiles' share of dU `[positions][in][out]`, added in worker order (deterministic).
    private lazy var weightPartials = FloatBuffer(count: workers.count * positions * inChannels * outChannels)
    /// Transformed weights `[positions][in][out]`: per position ξ a column-major `out × in` matrix.
    let u: FloatBuffer
    /// Per worker: a block's transformed input `[tiles][positions][in]` and products
    /// `[tiles][positions][out]`, tile-major so each tile's transform reads or writes one contiguous
    /// run; the GEMM of position ξ reads every tile's ξ slice through its leading dimension.
    private let scratch: WinogradScratch

    /// Stride 1, 3×3, channels in multiples of 8 (whole vectors). An odd size ends in half tiles:
    /// their patch's last row or column is the zero border or the slack row past the last image
    /// (`Activation`), and only the valid outputs are written.
    static func supports(_ g: ConvGeometry) -> Bool {
        g.kernel == 3 && g.stride == 1 && g.cin.isMultiple(of: 8) && g.cout.isMultiple(of: 8)
    }

    /// About 56 tiles a block (measured against 14, 28 and 112 with m = 2): the block's V and M
    /// stay in L2 and each GEMM has n ≥ 56 columns.
    init(
        inChannels: Int, outChannels: Int, input: ActivationShape, tile: Int = 2, workers: Workers,
        scratch: WinogradScratch
    ) {
        precondition(input.c == inChannels)
        precondition(inChannels.isMultiple(of: 8) && outChannels.isMultiple(of: 8))
        precondition(tile == 2 || tile == 4, "Winograd tiles of 2 or 4 pixels")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.tile = tile
        let positions = (tile + 2) * (tile + 2)
        self.positions = positions
        self.input = input
        self.workers = workers
        let tiles = (input.w + tile - 1) / tile
        tilesPerRow = tiles
        tileRowsPerImage = (input.h + tile - 1) / tile
        tileRows = input.n * tileRowsPerImage
        rowsPerBlock = max(1, min(tileRows, (56 + tiles - 1) / tiles))
        blockTiles = rowsPerBlock * tiles
        gemms = (1...rowsPerBlock).map { r in
            BatchReduceGEMM(
                m: outChannels, n: r * tiles, k: inChannels, lda: outChannels, ldb: positions * inChannels,
                ldc: positions * outChannels, beta: 0)
        }
        weightGEMMs = (1...rowsPerBlock).map { r in
            BatchReduceGEMM(
                m: outChannels, n: inChannels, k: r * tiles, lda: positions * outChannels,
                ldb: positions * inChannels, ldc: outChannels, beta: 1, transB: true)
        }
        u = FloatBuffer(count: positions * inChannels * outChannels)
        self.scratch = scratch
    }

    /// U = G g Gᵀ for every (in, out) pair. `flipped`: the weights are those of the convolution
    /// whose input gradient this computes (`[t][out][in]`, taps rotated by 180°), else `[t][in][out]`.
    func transformWeights(_ w: UnsafePointer<Float>, flipped: Bool) {
        if tile == 4 { return transformWeights4(w, flipped: flipped) }
        let ci = inChannels, co = outChannels, up = u.pointer
        for i in 0..<ci {
            for o in 0..<co {
                @inline(__always) func g(_ kh: Int, _ kw: Int) -> Float {
                    let t = kh * 3 + kw
                    return flipped ? w[(8 - t) * ci * co + o * ci + i] : w[t * ci * co + i * co + o]
                }
                // rows of G g (4×3), then each row times Gᵀ (4 values)
                for row in 0..<4 {
                    var r = (Float(0), Float(0), Float(0))
                    for kw in 0..<3 {
                        let a = g(0, kw), b = g(1, kw), c = g(2, kw)
                        let value: Float =
                            row == 0 ? a : row == 1 ? 0.5 * (a + b + c) : row == 2 ? 0.5 * (a - b + c) : c
                        if kw == 0 { r.0 = value } else if kw == 1 { r.1 = value } else { r.2 = value }
                    }
                    let cols = (r.0, 0.5 * (r.0 + r.1 + r.2), 0.5 * (r.0 - r.1 + r.2), r.2)
                    let base = (row * 4) * ci * co + i * co + o
                    up[base] = cols.0
                    up[base + ci * co] = cols.1
                    up[base + 2 * ci * co] = cols.2
                    up[base + 3 * ci * co] = cols.3
                }
            }
        }
    }

    /// y (+)= conv(x) with the weights last given to `transformWeights`. With `statistics`, each
    /// finished output row is added to the BatchNorm's sums while in cache (as `Conv2d.forward`).
    func run(_ x: Activation, _ y: Activation, accumulate: Bool, statistics: BatchNormKernels?) {
        precondition(x.shape == input)
        precondition(y.shape == ActivationShape(n: input.n, h: input.h, w: input.w, c: outChannels))
        let ci = inChannels, co = outChannels, tilesPerRow = tilesPerRow
        let ys = y.shape, tileRowsPerImage = tileRowsPerImage
        let oddColumn = !input.w.isMultiple(of: 2)
        let yp = y.pointer, up = UnsafePointer(u.pointer)
        let rowLength = ys.w * co, m = tile, positions = positions
        forEachBlock { block in
            transformInputs(x, block)
            let gemm = gemms[block.count - 1]
            for xi in 0..<positions {
                block.aList[0] = up + xi * ci * co
                block.bList[0] = UnsafePointer(block.v + xi * ci)
                gemm(block.aList, block.bList, block.m + xi * co, count: 1)
            }
            for k in 0..<block.count {
                let tileRow = block.start + k
                let img = tileRow / tileRowsPerImage, th = tileRow % tileRowsPerImage
                let rows = min(m, ys.h - m * th)
                for b in 0..<tilesPerRow {
                    let products = UnsafePointer(block.m + (k * tilesPerRow + b) * positions * co)
                    let out = yp + ys.offset(img, m * th, m * b)
                    if m == 4 {
                        Self.transformOutput4(
                            products, channels: co, into: out, rowStride: ys.rowStride, accumulate: accumulate,
                            rows: rows, columns: min(4, ys.w - 4 * b))
                    } else {
                        Self.transformOutput(
                            products, channels: co, into: out, rowStride: ys.rowStride, accumulate: accumulate,
                            rows: rows, columns: oddColumn && b == tilesPerRow - 1 ? 1 : 2)
                    }
                }
                if let statistics {
                    for r in 0..<rows {
                        statistics.addRow(worker: block.worker, yp + ys.offset(img, m * th + r, 0), length: rowLength)
                    }
                    if th == tileRowsPerImage - 1 || tileRow == block.rows.upperBound - 1 {
                        statistics.endImage(worker: block.worker, length: rowLength)
                    }
                }
            }
        }
    }

    /// One block of the tile rows a worker owns: its V and M scratch and a pair of GEMM pointer
    /// lists (refilled before every call).
    private struct Block {
        let worker: Int
        /// All the worker's tile rows, and this block's.
        let rows: Range<Int>
        let start: Int
        let count: Int
        let v: UnsafeMutablePointer<Float>
        let m: UnsafeMutablePointer<Float>
        let aList: MatrixList
        let bList: MatrixList
    }

    /// Runs `body` on each block of tile rows, every worker over its own share in order, after
    /// `prepare(worker)` (which runs even for a worker with no tile rows).
    private func forEachBlock(prepare: (Int) -> Void = { _ in }, _ body: (Block) -> Void) {
        let perWorker = positions * blockTiles * (inChannels + outChannels)
        let vSize = positions * blockTiles * inChannels
        let base = scratch.reserve(workers.count * perWorker)
        workers.run { worker in
            prepare(worker)
            let rows = workers.range(worker, of: tileRows)
            let v = base + worker * perWorker
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 2) { lists in
                let aList = lists.baseAddress!
                var start = rows.lowerBound
                while start < rows.upperBound {
                    let count = min(rowsPerBlock, rows.upperBound - start)
                    body(
                        Block(
                            worker: worker, rows: rows, start: start, count: count, v: v, m: v + vSize, aList: aList,
                            bList: aList + 1))
                    start += count
                }
            }
        }
    }

    /// V for every tile of a block: the (m+2)² patch of tile (th, b) has its top-left at padded
    /// (m·th, m·b), logical (m·th − 1, m·b − 1).
    private func transformInputs(_ x: Activation, _ block: Block) {
        let xs = input, xp = UnsafePointer(x.pointer), ci = inChannels, m = tile, positions = positions
        for k in 0..<block.count {
            let tileRow = block.start + k
            let img = tileRow / tileRowsPerImage, th = tileRow % tileRowsPerImage
            for b in 0..<tilesPerRow {
                let patch = xp + xs.paddedOffset(img, m * th, m * b)
                let out = block.v + (k * tilesPerRow + b) * positions * ci
                if m == 4 {
                    // patch rows and columns inside the padded image; one more reads a zero border
                    Self.transformInput4(
                        patch, rowStride: xs.rowStride, channels: ci, rows: min(6, xs.paddedH - 4 * th),
                        columns: min(6, xs.paddedW - 4 * b), into: out)
                } else {
                    Self.transformInput(patch, rowStride: xs.rowStride, channels: ci, into: out)
                }
            }
        }
    }

    /// dw = ∂L/∂w (HWIO, overwritten) from the layer's input x and output gradient dy:
    /// dU_ξ = Σ over tiles (A dY Aᵀ)_ξ ⊗ V_ξ (the forward's products read backwards), then
    /// dw = Gᵀ dU G per (in, out) pair. Each worker sums its tiles into its own dU, added in worker
    /// order. A half tile's missing dy pixels are the zero border, so they add nothing.
    func weightGradient(x: Activation, dy: Activation, _ dw: UnsafeMutablePointer<Float>) {
        precondition(x.shape == input)
        precondition(dy.shape == ActivationShape(n: input.n, h: input.h, w: input.w, c: outChannels))
        let ci = inChannels, co = outChannels, tilesPerRow = tilesPerRow, tileRowsPerImage = tileRowsPerImage
        let ys = dy.shape, dyp = UnsafePointer(dy.pointer)
        let m = tile, positions = positions
        let plane = positions * ci * co
        let partials = weightPartials.pointer
        forEachBlock(prepare: { worker in (partials + worker * plane).update(repeating: 0, count: plane) }) { block in
            let part = partials + block.worker * plane
            transformInputs(x, block)
            for k in 0..<block.count {
                let tileRow = block.start + k
                let img = tileRow / tileRowsPerImage, th = tileRow % tileRowsPerImage
                for b in 0..<tilesPerRow {
                    let tileGradient = dyp + ys.offset(img, m * th, m * b)
                    let out = block.m + (k * tilesPerRow + b) * positions * co
                    if m == 4 {
                        Self.transformOutputGradient4(
                            tileGradient, rowStride: ys.rowStride, channels: co, rows: min(4, ys.h - 4 * th),
                            columns: min(4, ys.w - 4 * b), into: out)
                    } else {
                        Self.transformOutputGradient(tileGradient, rowStride: ys.rowStride, channels: co, into: out)
                    }
                }
            }
            let gemm = weightGEMMs[block.count - 1]
            for xi in 0..<positions {
                block.aList[0] = UnsafePointer(block.m + xi * co)
                block.bList[0] = UnsafePointer(block.v + xi * ci)
                gemm(block.aList, block.bList, part + xi * ci * co, count: 1)
            }
        }
        for worker in 1..<workers.count {
            let part = partials + worker * plane
            for j in 0..<plane { partials[j] += part[j] }
        }
        if m == 4 { return Self.weightsFromProducts4(UnsafePointer(partials), inChannels: ci, outChannels: co, dw) }
        // dw = Gᵀ dU G: rows of Gᵀ dU (3×4), then each times G (3 values)
        for i in 0..<ci {
            for o in 0..<co {
                @inline(__always) func du(_ r: Int, _ c: Int) -> Float { partials[(4 * r + c) * ci * co + i * co + o] }
                for kh in 0..<3 {
                    @inline(__always) func q(_ c: Int) -> Float {
                        kh == 0
                            ? du(0, c) + 0.5 * (du(1, c) + du(2, c))
                            : kh == 1 ? 0.5 * (du(1, c) - du(2, c)) : 0.5 * (du(1, c) + du(2, c)) + du(3, c)
                    }
                    let q0 = q(0), q1 = q(1), q2 = q(2), q3 = q(3)
                    let row = dw + (kh * 3) * ci * co + i * co + o
                    row[0] = q0 + 0.5 * (q1 + q2)
                    row[ci * co] = 0.5 * (q1 - q2)
                    row[2 * ci * co] = 0.5 * (q1 + q2) + q3
                }
            }
        }
    }

    /// dM = A dY Aᵀ for one tile's 2×2 output gradient (4×4, position ξ = 4·i + j at
    /// `out + ξ·channels`), eight channels at a time; pixels past an odd edge read the zero border.
    @inline(__always)
    private static func transformOutputGradient(
        _ dy: UnsafePointer<Float>, rowStride: Int, channels: Int, into out: UnsafeMutablePointer<Float>
    ) {
        var c = 0
        while c < channels {
            let p = dy + c
            let a0 = load(p), b0 = load(p + channels), a1 = load(p + rowStride), b1 = load(p + rowStride + channels)
            // rows of A dY: (a0, b0), (a0 + a1, b0 + b1), (a0 − a1, b0 − b1), (−a1, −b1); each times Aᵀ
            @inline(__always) func put(_ r: Int, _ a: Vec, _ b: Vec) {
                let o = out + 4 * r * channels + c
                store(a, o)
                store(a + b, o + channels)
                store(a - b, o + 2 * channels)
                store(-b, o + 3 * channels)
            }
            put(0, a0, b0)
            put(1, a0 + a1, b0 + b1)
            put(2, a0 - a1, b0 - b1)
            put(3, -a1, -b1)
            c += 8
        }
    }

    /// V = Bᵀ d B for one tile, eight channels at a time; position ξ = 4·i + j goes to
    /// `out + ξ·channels`.
    @inline(__always)
    private static func transformInput(
        _ d: UnsafePointer<Float>, rowStride: Int, channels: Int, into out: UnsafeMutablePointer<Float>
    ) {
        var c = 0
        while c < channels {
            // r = d B row by row, then V = Bᵀ r column by column
            @inline(__always) func row(_ i: Int) -> (Vec, Vec, Vec, Vec) {
                let p = d + i * rowStride + c
                let d0 = load(p), d1 = load(p + channels), d2 = load(p + 2 * channels), d3 = load(p + 3 * channels)
                return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
            }
            let r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3)
            let o = out + c, s = channels
            store(r0.0 - r2.0, o)
            store(r0.1 - r2.1, o + s)
            store(r0.2 - r2.2, o + 2 * s)
            store(r0.3 - r2.3, o + 3 * s)
            store(r1.0 + r2.0, o + 4 * s)
            store(r1.1 + r2.1, o + 5 * s)
            store(r1.2 + r2.2, o + 6 * s)
            store(r1.3 + r2.3, o + 7 * s)
            store(r2.0 - r1.0, o + 8 * s)
            store(r2.1 - r1.1, o + 9 * s)
            store(r2.2 - r1.2, o + 10 * s)
            store(r2.3 - r1.3, o + 11 * s)
            store(r1.0 - r3.0, o + 12 * s)
            store(r1.1 - r3.1, o + 13 * s)
            store(r1.2 - r3.2, o + 14 * s)
            store(r1.3 - r3.3, o + 15 * s)
            c += 8
        }
    }

    /// Y = Aᵀ M A for one tile: writes (or adds) its 2×2 output pixels at `y`.
    @inline(__always)
    private static func transformOutput(
        _ mp: UnsafePointer<Float>, channels: Int, into y: UnsafeMutablePointer<Float>, rowStride: Int, accumulate: Bool,
        rows: Int, columns: Int
    ) {
        var c = 0
        while c < channels {
            @inline(__always) func at(_ i: Int, _ j: Int) -> Vec { load(mp + (4 * i + j) * channels + c) }
            var s0 = (Vec(), Vec(), Vec(), Vec()), s1 = (Vec(), Vec(), Vec(), Vec())
            // s = Aᵀ M (2×4)
            s0.0 = at(0, 0) + at(1, 0) + at(2, 0)
            s0.1 = at(0, 1) + at(1, 1) + at(2, 1)
            s0.2 = at(0, 2) + at(1, 2) + at(2, 2)
            s0.3 = at(0, 3) + at(1, 3) + at(2, 3)
            s1.0 = at(1, 0) - at(2, 0) - at(3, 0)
            s1.1 = at(1, 1) - at(2, 1) - at(3, 1)
            s1.2 = at(1, 2) - at(2, 2) - at(3, 2)
            s1.3 = at(1, 3) - at(2, 3) - at(3, 3)
            let y00 = s0.0 + s0.1 + s0.2, y01 = s0.1 - s0.2 - s0.3
            let y10 = s1.0 + s1.1 + s1.2, y11 = s1.1 - s1.2 - s1.3
            let p00 = y + c, p01 = p00 + channels, p10 = p00 + rowStride, p11 = p10 + channels
            @inline(__always) func put(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { store(accumulate ? load(p) + v : v, p) }
            put(y00, p00)
            if columns == 2 { put(y01, p01) }
            if rows == 2 {
                put(y10, p10)
                if columns == 2 { put(y11, p11) }
            }
            c += 8
        }
    }
}

/// Scratch that the Winograd convolutions of one executor share, since they run one at a time:
/// each worker's transformed block and products, grown to the largest convolution's need on the
/// first step (so a step allocates nothing after it).
public final class WinogradScratch: @unchecked Sendable {
    private var pointer: UnsafeMutablePointer<Float>?
    private var capacity = 0

    public init() {}

    deinit { pointer?.deallocate() }

    /// At least `count` floats; call before the workers start.
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer?.deallocate()
            pointer = .allocate(capacity: count)
            capacity = count
        }
        return pointer!
    }
}
