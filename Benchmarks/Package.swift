// swift-tools-version: 6.1
import PackageDescription

// In-process benchmarks of UDPKit and the room codec on package-benchmark (`swift package benchmark`), with
// malloc-count and throughput thresholds checked in under Thresholds/. A package of its own, so that neither the
// benchmark framework nor its malloc interposer is a dependency of swift-udp. The cross-process comparisons
// (C, Python, SwiftNIO servers; iperf3) are benchmarks/run's. How to run: benchmarks/README.md.
let package = Package(
    name: "swift-udp-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "swift-udp", path: ".."),
        // The malloc counts come from the interposer trait; naming it leaves the others (a runtime interposer
        // for ARC counts) off.
        .package(
            url: "https://github.com/ordo-one/package-benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "UDPKitBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "UDPKit", package: "swift-udp"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Benchmarks/UDPKitBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "RoomCodecBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "UDPRoom", package: "swift-udp"),
            ],
            path: "Benchmarks/RoomCodecBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
