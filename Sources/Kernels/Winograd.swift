/// Winograd's minimal filtering F(4×4, 3×3) (Lavin & Gray, CVPR 2016) for the 3×3 stride-1
/// convolutions: each 4×4 output tile costs 36 multiply-adds per (input, output) channel pair
/// instead of 144, so 4× fewer than the direct convolution. The input and output transforms are
/// additions and small multiples done across channels eight at a time (`WinogradTransforms.swift`);
/// the 36 products per tile are 36 GEMMs over a block of tiles (libxsmm). Conv2d runs its forward
/// pass, input gradient and weight gradient through it where the shape allows (`supports`,
/// `Conv2d.winogradPlan`) and keeps the direct convolution beside it for every other shape;
/// `ReferenceConv` is the oracle of both.
///
///     V = Bᵀ d B (6×6 input patch d),  U = G g Gᵀ (3×3 filter g),  Y = Aᵀ [U ⊙ V summed over cin] A
///
/// F(2×2, 3×3) (16 products per 2×2 tile, 2.25× fewer) was here before: F(4×4) beat it on every
/// pass of every resnet-mini shape, 7×7 and 14×14 included, whose last tiles lie partly past the
/// image (its transforms load and store 2.25 floats per output pixel and channel, F(2×2)'s 4).
/// Rounding differs from the direct convolution's at about 10⁻⁵ relative (the transforms scale by
/// up to 8 and 1/24 before they add; ten times F(2×2)'s); results are deterministic run after run.
final class Winograd3x3: @unchecked Sendable {
    let inChannels: Int
    let outChannels: Int
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
    /// Per worker: its tiles' share of dU `[36][in][out]`, added in worker order (deterministic).
    private lazy var weightPartials = FloatBuffer(count: workers.count * 36 * inChannels * outChannels)
    /// Transformed weights `[36][in][out]`: per position ξ a column-major `out × in` matrix.
    let u: FloatBuffer
    /// Per worker: a block's transformed input `[tiles][36][in]` and products `[tiles][36][out]`,
    /// tile-major so each tile's transform reads or writes one contiguous run; the GEMM of
    /// position ξ reads every tile's ξ slice through its leading dimension (36 × channels).
    private let scratch: WinogradScratch

    /// Stride 1, 3×3, channels in multiples of 8 (whole vectors). A size that is no multiple of 4
    /// ends in tiles partly past the image: their patch reads zeros there (`transformInput`), and
    /// only the outputs inside the image are written.
    static func supports(_ g: ConvGeometry) -> Bool {
        g.kernel == 3 && g.stride == 1 && g.cin.isMultiple(of: 8) && g.cout.isMultiple(of: 8)
    }

    /// About 56 tiles a block, so each GEMM has n ≥ 56 columns (measured against 14, 28 and 112
    /// with F(2×2)). A worker's V and M then take 258 KB at 16 channels, 516 KB at 32 and 1 MB at
    /// 64 + 64: blocks cut to 384 KiB measured 4 % faster forward and input-gradient passes at 128
    /// channels but up to 12 % slower weight gradients, so the size stays.
    init(inChannels: Int, outChannels: Int, input: ActivationShape, workers: Workers, scratch: WinogradScratch) {
        precondition(input.c == inChannels)
        precondition(inChannels.isMultiple(of: 8) && outChannels.isMultiple(of: 8))
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.input = input
        self.workers = workers
        let tiles = (input.w + 3) / 4
        tilesPerRow = tiles
        tileRowsPerImage = (input.h + 3) / 4
        tileRows = input.n * tileRowsPerImage
        rowsPerBlock = max(1, min(tileRows, (56 + tiles - 1) / tiles))
        blockTiles = rowsPerBlock * tiles
        gemms = (1...rowsPerBlock).map { r in
            BatchReduceGEMM(
                m: outChannels, n: r * tiles, k: inChannels, lda: outChannels, ldb: 36 * inChannels,
                ldc: 36 * outChannels, beta: 0)
        }
        weightGEMMs = (1...rowsPerBlock).map { r in
            BatchReduceGEMM(
                m: outChannels, n: inChannels, k: r * tiles, lda: 36 * outChannels,
                ldb: 36 * inChannels, ldc: outChannels, beta: 1, transB: true)
        }
        u = FloatBuffer(count: 36 * inChannels * outChannels)
        self.scratch = scratch
    }

    /// y (+)= conv(x) with the weights last given to `transformWeights`. With `statistics`, each
    /// finished output row is added to the BatchNorm's sums while in cache (as `Conv2d.forward`).
    func run(_ x: Activation, _ y: Activation, accumulate: Bool, statistics: BatchNormKernels?) {
        precondition(x.shape == input)
        precondition(y.shape == ActivationShape(n: input.n, h: input.h, w: input.w, c: outChannels))
        let ci = inChannels, co = outChannels, tilesPerRow = tilesPerRow
        let ys = y.shape, tileRowsPerImage = tileRowsPerImage
        let yp = y.pointer, up = UnsafePointer(u.pointer)
        let rowLength = ys.w * co
        forEachBlock { block in
            transformInputs(x, block)
            let gemm = gemms[block.count - 1]
            for xi in 0..<36 {
                block.aList[0] = up + xi * ci * co
                block.bList[0] = UnsafePointer(block.v + xi * ci)
                gemm(block.aList, block.bList, block.m + xi * co, count: 1)
            }
            forEachTileRow(block) { k, img, th in
                let rows = min(4, ys.h - 4 * th)
                for b in 0..<tilesPerRow {
                    Self.transformOutput(
                        UnsafePointer(block.m + (k * tilesPerRow + b) * 36 * co), channels: co,
                        into: yp + ys.offset(img, 4 * th, 4 * b), rowStride: ys.rowStride, accumulate: accumulate,
                        rows: rows, columns: min(4, ys.w - 4 * b), scratch: block.vectors)
                }
                if let statistics {
                    for r in 0..<rows {
                        statistics.addRow(worker: block.worker, yp + ys.offset(img, 4 * th + r, 0), length: rowLength)
                    }
                    if th == tileRowsPerImage - 1 || block.start + k == block.rows.upperBound - 1 {
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
        /// 36 vectors for a transform's intermediate rows (on the worker's stack).
        let vectors: UnsafeMutablePointer<Vec>
    }

    /// Runs `body` on each block of tile rows, every worker over its own share in order, after
    /// `prepare(worker)` (which runs even for a worker with no tile rows).
    private func forEachBlock(prepare: (Int) -> Void = { _ in }, _ body: (Block) -> Void) {
        let perWorker = 36 * blockTiles * (inChannels + outChannels)
        let vSize = 36 * blockTiles * inChannels
        let base = scratch.reserve(workers.count * perWorker)
        workers.run { worker in
            prepare(worker)
            let rows = workers.range(worker, of: tileRows)
            let v = base + worker * perWorker
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 2) { lists in
                withUnsafeTemporaryAllocation(of: Vec.self, capacity: 36) { vectors in
                    let aList = lists.baseAddress!
                    var start = rows.lowerBound
                    while start < rows.upperBound {
                        let count = min(rowsPerBlock, rows.upperBound - start)
                        body(
                            Block(
                                worker: worker, rows: rows, start: start, count: count, v: v, m: v + vSize,
                                aList: aList, bList: aList + 1, vectors: vectors.baseAddress!))
                        start += count
                    }
                }
            }
        }
    }

    /// Runs `body(k, image, th)` for each tile row of a block: its index in the block, its image and
    /// its row of tiles there.
    @inline(__always)
    private func forEachTileRow(_ block: Block, _ body: (_ k: Int, _ image: Int, _ th: Int) -> Void) {
        for k in 0..<block.count {
            let tileRow = block.start + k
            body(k, tileRow / tileRowsPerImage, tileRow % tileRowsPerImage)
        }
    }

    /// V for every tile of a block: the 6×6 patch of tile (th, b) has its top-left at padded
    /// (4·th, 4·b), logical (4·th − 1, 4·b − 1).
    private func transformInputs(_ x: Activation, _ block: Block) {
        let xs = input, xp = UnsafePointer(x.pointer), ci = inChannels
        forEachTileRow(block) { k, img, th in
            for b in 0..<tilesPerRow {
                // the patch's rows and columns inside the padded image
                Self.transformInput(
                    xp + xs.paddedOffset(img, 4 * th, 4 * b), rowStride: xs.rowStride, channels: ci,
                    rows: min(6, xs.paddedH - 4 * th), columns: min(6, xs.paddedW - 4 * b),
                    into: block.v + (k * tilesPerRow + b) * 36 * ci, scratch: block.vectors)
            }
        }
    }

    /// dw = ∂L/∂w (HWIO, overwritten) from the layer's input x and output gradient dy:
    /// dU_ξ = Σ over tiles (A dY Aᵀ)_ξ ⊗ V_ξ (the forward's products read backwards), then
    /// dw = Gᵀ dU G per (in, out) pair. Each worker sums its tiles into its own dU, added in worker
    /// order. The dy pixels of a tile past the image count as zero, so they add nothing.
    func weightGradient(x: Activation, dy: Activation, _ dw: UnsafeMutablePointer<Float>) {
        precondition(x.shape == input)
        precondition(dy.shape == ActivationShape(n: input.n, h: input.h, w: input.w, c: outChannels))
        let ci = inChannels, co = outChannels, tilesPerRow = tilesPerRow
        let ys = dy.shape, dyp = UnsafePointer(dy.pointer)
        let plane = 36 * ci * co
        let partials = weightPartials.pointer
        forEachBlock(prepare: { worker in (partials + worker * plane).update(repeating: 0, count: plane) }) { block in
            let part = partials + block.worker * plane
            transformInputs(x, block)
            forEachTileRow(block) { k, img, th in
                for b in 0..<tilesPerRow {
                    Self.transformOutputGradient(
                        dyp + ys.offset(img, 4 * th, 4 * b), rowStride: ys.rowStride, channels: co,
                        rows: min(4, ys.h - 4 * th), columns: min(4, ys.w - 4 * b),
                        into: block.m + (k * tilesPerRow + b) * 36 * co, scratch: block.vectors)
                }
            }
            let gemm = weightGEMMs[block.count - 1]
            for xi in 0..<36 {
                block.aList[0] = UnsafePointer(block.m + xi * co)
                block.bList[0] = UnsafePointer(block.v + xi * ci)
                gemm(block.aList, block.bList, part + xi * ci * co, count: 1)
            }
        }
        for worker in 1..<workers.count {
            let part = partials + worker * plane
            for j in 0..<plane { partials[j] += part[j] }
        }
        Self.weightsFromProducts(UnsafePointer(partials), inChannels: ci, outChannels: co, dw)
    }
}

/// Which passes of one convolution run Winograd F(4×4, 3×3) rather than the direct convolution.
/// The training forward pass also gathers BN statistics; the inference one does not.
public struct WinogradPlan: Hashable, Sendable {
    public var trainingForward = false
    public var inferenceForward = false
    public var inputGradient = false
    public var weightGradient = false

    public init(
        trainingForward: Bool = false, inferenceForward: Bool = false, inputGradient: Bool = false,
        weightGradient: Bool = false
    ) {
        self.trainingForward = trainingForward
        self.inferenceForward = inferenceForward
        self.inputGradient = inputGradient
        self.weightGradient = weightGradient
    }

    public init(everyPass: Bool) {
        self.init(
            trainingForward: everyPass, inferenceForward: everyPass, inputGradient: everyPass, weightGradient: everyPass)
    }

    /// Whether any pass does.
    public var any: Bool { trainingForward || inferenceForward || inputGradient || weightGradient }
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
