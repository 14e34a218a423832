import Foundation
import UDPKit
import XCTest

#if os(Linux)

/// Exercises non-loopback interfaces inside a private network namespace.
///
/// The outer test builds the namespace and re-runs this test binary inside it,
/// selecting only ``testProbeInsideNamespace``, which holds the assertions.
/// The namespace uses `ifb` devices, which discard anything queued to them,
/// and has IPv6 disabled so that no neighbour discovery or multicast listener
/// messages are generated; nothing in the test sends a packet.
final class InterfaceNamespaceTests: XCTestCase {
    private static let probeVariable = "UDPKIT_TESTS_INTERFACE_PROBE"

    func testInterfacesInsidePrivateNamespace() throws {
        if ProcessInfo.processInfo.environment[Self.probeVariable] != nil { return }
        let namespace = try TestNamespace(purpose: "if")
        defer { namespace.remove() }

        let setup: [[String]] = [
            [
                "netns", "exec", namespace.name, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
            ["-n", namespace.name, "link", "add", "tst0", "type", "ifb"],
            ["-n", namespace.name, "link", "add", "tst1", "type", "ifb"],
            ["-n", namespace.name, "link", "add", "tst2", "type", "ifb"],
            ["-n", namespace.name, "link", "add", "tst3", "type", "ifb"],
            ["-n", namespace.name, "link", "add", "tst4", "type", "ifb"],
            ["-n", namespace.name, "address", "add", "10.9.8.7/24", "broadcast", "+", "dev", "tst0"],
            ["-n", namespace.name, "address", "add", "10.9.7.1/32", "dev", "tst0"],
            [
                "-n", namespace.name, "address", "add", "10.9.8.20/24", "broadcast", "+", "label", "tst0:1", "dev",
                "tst0",
            ],
            ["-n", namespace.name, "address", "add", "10.9.4.1/24", "broadcast", "+", "dev", "tst1"],
            ["-n", namespace.name, "address", "add", "10.9.6.0/31", "broadcast", "+", "dev", "tst2"],
            ["-n", namespace.name, "address", "add", "10.9.5.7/24", "dev", "tst3"],
            ["-n", namespace.name, "link", "set", "tst4", "mtu", "1234"],
            ["-n", namespace.name, "link", "set", "tst0", "up"],
            ["-n", namespace.name, "link", "set", "tst2", "up"],
            ["-n", namespace.name, "link", "set", "tst3", "up"],
        ]
        for arguments in setup {
            try TestNamespace.ip(arguments)
        }

        try namespace.runTest("InterfaceNamespaceTests/testProbeInsideNamespace", variable: Self.probeVariable)
    }

    /// Runs inside the namespace prepared by ``testInterfacesInsidePrivateNamespace``; elsewhere it has nothing
    /// to check and passes at once (a skip here would read as a skipped namespace test on CI).
    func testProbeInsideNamespace() throws {
        guard ProcessInfo.processInfo.environment[Self.probeVariable] != nil else { return }
        let interfaces = try NetworkInterface.all()
        XCTAssertEqual(interfaces.map(\.name), ["lo", "tst0", "tst1", "tst2", "tst3", "tst4"])
        XCTAssertEqual(interfaces.map(\.index), interfaces.map(\.index).sorted())
        XCTAssertFalse(interfaces.flatMap(\.addresses).contains { $0.family == .ipv6 })

        let loopback = try XCTUnwrap(interfaces.first { $0.name == "lo" })
        XCTAssertEqual(loopback.flags, [.up, .running, .loopback])
        XCTAssertEqual(loopback.addresses.map(Self.summary), ["127.0.0.1/8 brd -"])

        let tst0 = try XCTUnwrap(try NetworkInterface.named("tst0"))
        XCTAssertTrue(tst0.flags.contains([.up, .running, .broadcast]), "\(tst0.flags.names)")
        XCTAssertFalse(tst0.flags.contains(.loopback))
        XCTAssertEqual(tst0.mtu, 1500)
        XCTAssertEqual(
            tst0.addresses.map(Self.summary),
            [
                "10.9.8.7/24 brd 10.9.8.255",
                "10.9.7.1/32 brd -",
                "10.9.8.20/24 brd 10.9.8.255",
            ])
        XCTAssertNil(try NetworkInterface.named("tst0:1"), "alias labels are folded into their device")

        let tst1 = try XCTUnwrap(interfaces.first { $0.name == "tst1" })
        XCTAssertFalse(tst1.flags.contains(.up))
        XCTAssertEqual(tst1.addresses.map(Self.summary), ["10.9.4.1/24 brd 10.9.4.255"])

        let tst2 = try XCTUnwrap(interfaces.first { $0.name == "tst2" })
        XCTAssertEqual(tst2.addresses.map(Self.summary), ["10.9.6.0/31 brd -"])

        let tst3 = try XCTUnwrap(interfaces.first { $0.name == "tst3" })
        XCTAssertEqual(
            tst3.addresses.map(Self.summary), ["10.9.5.7/24 brd 10.9.5.255"],
            "without a configured broadcast address the subnet broadcast is computed")

        let tst4 = try XCTUnwrap(interfaces.first { $0.name == "tst4" })
        XCTAssertEqual(tst4.addresses, [])
        XCTAssertEqual(tst4.mtu, 1234)
        XCTAssertEqual(tst4.flags, .broadcast)

        let targets = try NetworkInterface.directedBroadcastAddresses()
        XCTAssertEqual(targets.map { "\($0.interface) \($0.address)" }, ["tst0 10.9.8.255", "tst3 10.9.5.255"])

        if let ip = Command.ipTool {
            try IPCommandCrossCheck.verify(ip: ip)
        }
    }

    private static func summary(_ address: InterfaceAddress) -> String {
        "\(address.address)/\(address.prefixLength) brd \(address.broadcast ?? "-")"
    }
}
#endif
