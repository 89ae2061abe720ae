// swift-tools-version:6.0
import PackageDescription

// Kernels and the trainer are pointer-heavy numeric code split over two worker threads by hand;
// Swift 5 mode keeps them free of Sendable ceremony around raw pointers.
let swiftSettings: [SwiftSetting] = [.swiftLanguageMode(.v5)]
// Release builds of the numeric modules drop bounds checks (the tests run the same code with them)
// and target AVX2 + FMA, the common set of every machine this project runs on (spec/performance.md).
// Debug builds (the test suite's) compile them with -O and the same CPU: unoptimised, a training step
// is several times slower and the suite trains hundreds; -O keeps the bounds and overflow checks
// (not `assert`), and without FMA each fused multiply-add of the Winograd transforms is a libm call.
#if arch(x86_64)
    let cpuFlags = ["-target-cpu", "haswell"]
#else
    let cpuFlags: [String] = []
#endif
let fastMath: [SwiftSetting] =
    swiftSettings + [
        .unsafeFlags(["-Ounchecked"] + cpuFlags, .when(configuration: .release)),
        .unsafeFlags(["-O"] + cpuFlags, .when(configuration: .debug)),
    ]

let package = Package(
    name: "polyak",
    platforms: [.macOS(.v14)],
    products: [.executable(name: "polyak", targets: ["polyak"])],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        // The binary's one HTTP client: the client commands and `train --report` (already in the graph
        // through HummingbirdTesting). URLSession on Linux spins a core while it holds an event stream
        // open, and would link FoundationNetworking and libcurl for the reporter alone.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // A few lines of C over libxsmm: its JIT kernel pointers are C-variadic, which Swift cannot call.
        .target(
            name: "CXSMM",
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [
                .linkedLibrary("xsmm"), .linkedLibrary("xsmmnoblas"),
                .linkedLibrary("dl"), .linkedLibrary("pthread"), .linkedLibrary("m"),
            ]),
        // prctl(PR_SET_PDEATHSIG) for trainers that must die with their server (C-variadic too), and the
        // pseudo-terminal the CLI tests run `polyak` on (posix_openpt is not in the Glibc module).
        .target(name: "CProcess"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "Kernels", dependencies: ["CXSMM"], swiftSettings: fastMath),
        // Named PolyakNetwork (sources stay in Sources/Network): a module called `Network` makes
        // `#if canImport(Network)` true in SwiftNIO/Hummingbird, which then import it as Apple's
        // Network.framework and fail to build on Linux.
        .target(
            name: "PolyakNetwork", dependencies: ["Kernels", "JSONBytes"], path: "Sources/Network", swiftSettings: fastMath),
        .target(name: "Datasets", dependencies: ["CZlib"], swiftSettings: fastMath),
        // The one JSON tokenizer and number/string writer, with no dependencies: PolyakNetwork (the
        // safetensors header) needs it and must not depend on Experiments. Bounds-checked even in
        // release: it reads bytes from the network.
        .target(name: "JSONBytes", swiftSettings: swiftSettings),
        .target(
            name: "Experiments", dependencies: ["JSONBytes", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings),
        // The tracking service's SQLite, through its C API: prepared statements and bindings are
        // the hot path of metric ingestion, and the C API keeps them in plain sight.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // migrations/*.sql are embedded at build time (EmbeddedMigrations, by EmbedFilesPlugin). The
        // link Sources/Store/migrations → migrations/ is there so that SwiftPM, which watches the
        // targets' folders, notices a file added or removed and runs the plugin again.
        .target(
            name: "Store", dependencies: ["CSQLite", "Experiments"], exclude: ["migrations"], swiftSettings: swiftSettings,
            plugins: ["EmbedFilesPlugin"]),
        // SVG line charts drawn on the server: pure functions from series to markup.
        .target(name: "Charts", swiftSettings: swiftSettings),
        .target(
            name: "Server",
            dependencies: [
                "Store", "Experiments", "Charts", "JSONBytes",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            // Templates/ and Public/ are embedded at build time (EmbeddedAssets, by EmbedFilesPlugin);
            // Sources/Server/Public is a link to Public/, for the reason given at Store.
            exclude: ["Templates", "Public"],
            swiftSettings: swiftSettings,
            plugins: ["EmbedFilesPlugin"]),
        .target(
            name: "Training", dependencies: ["Kernels", "PolyakNetwork", "Datasets", "Experiments"],
            swiftSettings: fastMath),
        .executableTarget(
            name: "polyak",
            dependencies: [
                "Training", "Experiments", "Datasets", "PolyakNetwork", "Kernels", "CProcess", "Store", "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings),
        // Writes EmbeddedAssets / EmbeddedMigrations into the build folder: text files as string
        // literals, so `polyak` serves its pages and applies its schema from any directory.
        .executableTarget(name: "EmbedFiles", swiftSettings: swiftSettings),
        .plugin(name: "EmbedFilesPlugin", capability: .buildTool(), dependencies: ["EmbedFiles"]),
        // Helpers more than one test target uses: finite differences, a seeded generator, running a child process.
        .target(name: "PolyakTestSupport", path: "Tests/TestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "PolyakTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "NetworkTests", dependencies: ["PolyakNetwork", "Kernels", "PolyakTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "CZlib"], swiftSettings: swiftSettings),
        .testTarget(name: "ExperimentsTests", dependencies: ["Experiments"], swiftSettings: swiftSettings),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Experiments"], swiftSettings: swiftSettings),
        .testTarget(name: "CLITests", dependencies: ["PolyakTestSupport", "CProcess"], swiftSettings: swiftSettings),
        .testTarget(name: "ChartsTests", dependencies: ["Charts", "PolyakTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "Store", "Experiments", "CSQLite", "PolyakTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            exclude: ["MLflow/mlflow_client.py"],  // run by MLflowClientTests with the real mlflow client
            swiftSettings: swiftSettings),
        // Mutated and random inputs to the four byte readers (the bounded version of `make fuzz`).
        .testTarget(
            name: "ParserTests",
            dependencies: ["Datasets", "CZlib", "PolyakNetwork", "Experiments", "Server", "JSONBytes", "PolyakTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "TrainingTests", dependencies: ["Training", "PolyakNetwork", "Datasets", "Experiments"],
            swiftSettings: swiftSettings),
    ]
)

// `make fuzz` only (POLYAK_FUZZ=1): the libFuzzer harness of the byte readers, built with
// -sanitize=fuzzer,address into its own scratch folder. The normal build never sees it.
if Context.environment["POLYAK_FUZZ"] != nil {
    package.targets += [
        .target(name: "CFuzzer", path: "Fuzz/Sources/CFuzzer"),
        .executableTarget(
            name: "PolyakFuzz", dependencies: ["CFuzzer", "Datasets", "PolyakNetwork", "Experiments", "Store", "JSONBytes"],
            path: "Fuzz/Sources/PolyakFuzz", swiftSettings: swiftSettings),
    ]
    // SwiftPM applies `-Xswiftc -sanitize=fuzzer,address` to the build plugin's tool as well; linked
    // with libFuzzer it would get libFuzzer's `main` (and miss LLVMFuzzerTestOneInput). It keeps ASan only.
    for target in package.targets where target.name == "EmbedFiles" {
        target.linkerSettings = (target.linkerSettings ?? []) + [.unsafeFlags(["-Xclang-linker", "-fno-sanitize=fuzzer"])]
    }
}
