// swift-tools-version: 6.0
import PackageDescription

#if canImport(Glibc)
import Glibc
#endif

// The Linux fast path (UDPKit's own descriptors, sendmmsg/recvmmsg, UDP GSO/GRO, the Unix-socket reader thread,
// kernel drop counts) is compiled where `UDPKIT_LINUX_FAST_PATH` is defined: on Linux, unless the environment
// says `UDPKIT_PORTABLE=1`. Then the Linux build compiles exactly the code every other system uses (SwiftNIO's
// path), which is how that code is built and tested here (README, "Portable build"). This is the only place
// that decides it; sources test `#if UDPKIT_LINUX_FAST_PATH`.
let portable = Context.environment["UDPKIT_PORTABLE"] == "1"
let fastPath: [SwiftSetting] =
    portable
    ? [.define("UDPKIT_PORTABLE")]
    : [.define("UDPKIT_LINUX_FAST_PATH", .when(platforms: [.linux]))]

// Start-up: a release `udp` on Linux carries the Swift runtime and FoundationEssentials in the binary rather than
// loading them as shared libraries. Loading and relocating shared libraries was most of a one-shot command's time (a
// `udp send` spent more time in the dynamic loader than in main); the cost is a larger binary. Debug builds (tests,
// `swift run`) link dynamically as before. The same as `swift build -c release --static-swift-stdlib`, for the
// package's two executables only. `udp` needs FoundationEssentials only (no module it links imports Foundation);
// `udp-studio` has the web server, which needs Foundation and ICU too.
// The objects were compiled for the shared libraries, so they name only Foundation's own libraries: the ones those
// need in a static link are listed here (what `swiftc -static-stdlib` adds for each import).
func staticStandardLibrary(foundation: Bool) -> [LinkerSetting] {
    // Each library before the ones it needs (a static link resolves left to right).
    let essentials = ["-lFoundationEssentials", "-l_FoundationCollections", "-l_FoundationCShims"]
    let libraries =
        foundation
        ? ["-lFoundation", "-lFoundationInternationalization", "-lCoreFoundation"] + essentials + [
            "-l_FoundationICU", "-lutil",
        ]
        : essentials
    return [.unsafeFlags(["-static-stdlib"] + libraries, .when(platforms: [.linux], configuration: .release))]
}

// Start-up, continued: the functions `udp` runs while it starts sit side by side in a release build (the linker places
// them in the order of Sources/udp/startup.order, which scripts/startup-order writes), so start-up touches fewer
// pages of the binary: each page fault maps 64 KiB around it, and scattered start-up code made most of a server's
// peak RSS. Relative relocations are packed (DT_RELR) where the C library reads them (glibc 2.36 and later): the
// loader then reads a few KiB instead of 1.4 MB of relocation records. Both need lld, which the toolchain carries.
let startupLayout: [LinkerSetting] = {
    var flags = [
        "-use-ld=lld", "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/udp/startup.order",
        "-Xlinker", "--no-warn-symbol-ordering",
        // The toolchain's static-stdlib link exports every symbol of the package's own modules (16,000) to the
        // dynamic symbol table: the loader then searches that table first for every symbol the C libraries bind,
        // which touched ~1.2 MiB of it at each start. Nothing loads `udp`'s symbols dynamically.
        "-Xlinker", "--no-export-dynamic",
    ]
    if glibcReadsPackedRelocations { flags += ["-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"] }
    return [.unsafeFlags(flags, .when(platforms: [.linux], configuration: .release))]
}()

/// Whether the C library building (and so running) this package reads DT_RELR relocations: glibc 2.36 or later.
var glibcReadsPackedRelocations: Bool {
    #if canImport(Glibc)
    var buffer = [CChar](repeating: 0, count: 64)
    guard confstr(Int32(_CS_GNU_LIBC_VERSION), &buffer, buffer.count) > 0 else { return false }
    let version = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    // "glibc 2.36"
    let numbers = version.split(separator: " ").last?.split(separator: ".").compactMap { Int($0) } ?? []
    guard numbers.count >= 2 else { return false }
    return (numbers[0], numbers[1]) >= (2, 36)
    #else
    return false
    #endif
}

let package = Package(
    name: "swift-udp",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "UDPKit", targets: ["UDPKit"]),
        .library(name: "UDPText", targets: ["UDPText"]),
        .library(name: "UDPProxy", targets: ["UDPProxy", "Impairment"]),
        .library(name: "UDPRoom", targets: ["UDPRoom", "RoomProtocol"]),
        .executable(name: "udp", targets: ["udp"]),
        .executable(name: "udp-studio", targets: ["udp-studio"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // `swift package generate-documentation --target UDPKit` (Sources/UDPKit/UDPKit.docc): a command plugin,
        // nothing of it is linked into any product.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // recvmmsg/sendmmsg for UDPKit's batched answering loop (Linux).
        .target(name: "CUDPSys"),
        .target(
            name: "UDPKit",
            dependencies: [
                "CUDPSys",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: fastPath
        ),
        // Payloads and how they are shown: encodings, hex, escapes, send templates, checksums, terminal-safe text,
        // JSON and the datagram formatter. The socket layer does not need it.
        .target(
            name: "UDPText",
            dependencies: ["UDPKit", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "UDPServers",
            dependencies: [
                "UDPKit",
                "UDPText",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .target(name: "UDPBench"),
        // pcap/pcapng writing and reading (udp listen --pcap, udp replay): pure value code, no I/O.
        .target(name: "Capture"),
        .target(name: "Impairment"),
        .target(
            name: "UDPProxy",
            dependencies: [
                "UDPKit",
                "CUDPSys",
                "Impairment",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: fastPath
        ),
        // The chat room's wire format and reliability state machines: pure value code, no I/O (docs/room-protocol.md).
        .target(name: "RoomProtocol"),
        .target(
            name: "UDPRoom",
            dependencies: [
                "UDPKit",
                "UDPText",
                "RoomProtocol",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // IP Messenger / FeiQ / iptux: the packet codec (Codec/, pure value code, fuzzed), presence and delivery
        // state machines, and the messenger over UDPKit.
        .target(
            name: "IPMsg",
            dependencies: [
                "UDPKit",
                "UDPText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The debugging assistant's engine: listeners, history, counters, sending, rules, saved packets (no UI).
        .target(
            name: "UDPStudio",
            dependencies: [
                "UDPKit",
                "UDPText",
                "UDPServers",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The studio's web page, JSON API and live stream over UDPStudio; the page's files are compiled in.
        .target(
            name: "UDPStudioWeb",
            dependencies: [
                "UDPStudio",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [
                .embedInCode("Page/index.html"), .embedInCode("Page/style.css"), .embedInCode("Page/app.js"),
                .embedInCode("Page/log.js"), .embedInCode("Page/chart.js"), .embedInCode("Page/bytes.js"),
            ]
        ),
        // The command line: every command, its options, help and messages. Two executables run it: `udp`, and
        // `udp-studio`, which `udp studio` runs and which alone links the studio's web server.
        .target(
            name: "UDPCommandLine",
            dependencies: [
                "UDPKit",
                "UDPText",
                "UDPServers",
                "UDPBench",
                "UDPProxy",
                "Impairment",
                "UDPRoom",
                "RoomProtocol",
                "IPMsg",
                "Capture",
                "UDPStudio",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Not a dependency of `udp`: SwiftPM would link everything `udp-studio` needs into `udp` too. `swift build`
        // (and `swift test`) build both; `swift run udp` builds `udp` only.
        .executableTarget(
            name: "udp",
            dependencies: ["UDPCommandLine"],
            exclude: ["startup.order"],
            linkerSettings: staticStandardLibrary(foundation: false) + startupLayout
        ),
        .executableTarget(
            name: "udp-studio",
            dependencies: ["UDPCommandLine", "UDPStudioWeb"],
            linkerSettings: staticStandardLibrary(foundation: true)
        ),
        // Echo servers for the benchmark harness (benchmarks/run); EchoUDPKit is also the example users copy.
        .executableTarget(name: "EchoUDPKit", dependencies: ["UDPKit"], path: "Examples/EchoUDPKit"),
        .executableTarget(
            name: "EchoNIOHandler",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "benchmarks/servers/EchoNIOHandler"
        ),
        .executableTarget(
            name: "EchoNIOAsyncChannel",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "benchmarks/servers/EchoNIOAsyncChannel"
        ),
        // Built with the same switch as UDPKit, so that its tests of the fast path's parts compile where they exist.
        .testTarget(name: "UDPKitTests", dependencies: ["UDPKit", "CUDPSys"], swiftSettings: fastPath),
        .testTarget(name: "UDPTextTests", dependencies: ["UDPText", "UDPKit"]),
        .testTarget(name: "UDPBenchTests", dependencies: ["UDPBench"]),
        .testTarget(name: "ImpairmentTests", dependencies: ["Impairment"]),
        .testTarget(
            name: "UDPProxyTests",
            dependencies: [
                "UDPProxy", "Impairment", "UDPKit",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(
            name: "UDPServersTests",
            dependencies: [
                "UDPServers", "UDPKit", "UDPText",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(name: "RoomProtocolTests", dependencies: ["RoomProtocol"]),
        .testTarget(name: "CaptureTests", dependencies: ["Capture"]),
        .testTarget(
            name: "UDPRoomTests",
            dependencies: [
                "UDPRoom", "RoomProtocol", "UDPKit", "UDPProxy", "Impairment",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(name: "IPMsgTests", dependencies: ["IPMsg", "UDPKit", "UDPText"]),
        // UDPCommandLine too, for unit tests of what the command line does before it runs anything.
        .testTarget(name: "udpTests", dependencies: ["udp", "UDPCommandLine", "UDPKit"]),
        .testTarget(
            name: "UDPStudioTests",
            dependencies: [
                "UDPStudio", "UDPStudioWeb", "UDPServers", "UDPKit", "UDPText", "udp",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Browser"]
        ),
    ]
)
