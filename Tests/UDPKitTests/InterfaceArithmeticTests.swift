import XCTest

@testable import UDPKit

final class AddressArithmeticTests: XCTestCase {
    func testPrefixLengthOfContiguousMasks() {
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: [255, 255, 255, 0]), 24)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: [0, 0, 0, 0]), 0)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: [255, 255, 255, 255]), 32)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: [255, 255, 254, 0]), 23)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: [255, 255, 255, 254]), 31)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: [128, 0, 0, 0]), 1)
        XCTAssertEqual(
            InterfaceAddress.prefixLength(
                netmask: [UInt8](repeating: 0xFF, count: 8) + [UInt8](repeating: 0, count: 8)), 64)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: [UInt8](repeating: 0xFF, count: 16)), 128)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: []), 0)
    }

    func testPrefixLengthOfTextMasks() {
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: "255.255.255.0"), 24)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: "0.0.0.0"), 0)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: "ffff:ffff:ffff:ffff::"), 64)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 128)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: "::"), 0)
        XCTAssertNil(InterfaceAddress.prefixLength(netmask: "not a mask"))
        XCTAssertNil(InterfaceAddress.prefixLength(netmask: "255.255.255"))
        XCTAssertNil(InterfaceAddress.prefixLength(netmask: "ffff::%lo"))
    }

    func testNonContiguousMaskCountsLeadingOnes() {
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: "255.0.255.0"), 8)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: [255, 255, 0b1011_0000, 0]), 17)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: [0, 255, 255, 255]), 0)
        XCTAssertEqual(InterfaceAddress.prefixLength(netmask: "ffff:0:ffff::"), 16)
    }

    func testDirectedBroadcastOfTypicalSubnets() {
        XCTAssertEqual(InterfaceAddress.directedBroadcast(address: "10.1.1.7", prefixLength: 24), "10.1.1.255")
        XCTAssertEqual(InterfaceAddress.directedBroadcast(address: "192.168.10.77", prefixLength: 20), "192.168.15.255")
        XCTAssertEqual(InterfaceAddress.directedBroadcast(address: "172.16.0.1", prefixLength: 12), "172.31.255.255")
        XCTAssertEqual(InterfaceAddress.directedBroadcast(address: "10.0.0.1", prefixLength: 8), "10.255.255.255")
        XCTAssertEqual(InterfaceAddress.directedBroadcast(address: "10.1.1.4", prefixLength: 30), "10.1.1.7")
        XCTAssertEqual(InterfaceAddress.directedBroadcast(address: "10.1.1.7", prefixLength: 0), "255.255.255.255")
        XCTAssertEqual(InterfaceAddress.directedBroadcast(address: [10, 1, 1, 7], prefixLength: 24), [10, 1, 1, 255])
    }

    func testNoDirectedBroadcastForHostAndPointToPointPrefixes() {
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: "10.1.1.7", prefixLength: 32))
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: "10.1.1.6", prefixLength: 31))
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: [10, 1, 1, 7], prefixLength: 32))
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: [10, 1, 1, 6], prefixLength: 31))
    }

    func testNoDirectedBroadcastForInvalidInput() {
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: "10.1.1.7", prefixLength: -1))
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: "10.1.1.7", prefixLength: 33))
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: "fd00::1", prefixLength: 64))
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: "example.com", prefixLength: 24))
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: [10, 1, 1], prefixLength: 24))
        XCTAssertNil(InterfaceAddress.directedBroadcast(address: [UInt8](repeating: 0, count: 16), prefixLength: 24))
    }

    func testEmbeddedScopeIsMovedOutOfLinkScopedAddresses() {
        let embedded: [UInt8] = [0xFE, 0x80, 0x00, 0x04] + [UInt8](repeating: 0, count: 11) + [1]
        let clean: [UInt8] = [0xFE, 0x80, 0x00, 0x00] + [UInt8](repeating: 0, count: 11) + [1]
        XCTAssertTrue(InterfaceAddress.separatingEmbeddedScope(embedded, scopeID: 0) == (clean, 4))
        // A scope ID the system already provided wins over the embedded one.
        XCTAssertTrue(InterfaceAddress.separatingEmbeddedScope(embedded, scopeID: 7) == (clean, 7))
        XCTAssertTrue(InterfaceAddress.separatingEmbeddedScope(clean, scopeID: 4) == (clean, 4))

        let multicast: [UInt8] = [0xFF, 0x02, 0x00, 0x05] + [UInt8](repeating: 0, count: 11) + [1]
        let multicastClean: [UInt8] = [0xFF, 0x02, 0x00, 0x00] + [UInt8](repeating: 0, count: 11) + [1]
        XCTAssertTrue(InterfaceAddress.separatingEmbeddedScope(multicast, scopeID: 0) == (multicastClean, 5))

        // Global addresses legitimately use bytes 2 and 3.
        let global: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1]
        XCTAssertTrue(InterfaceAddress.separatingEmbeddedScope(global, scopeID: 0) == (global, 0))
        let siteMulticast: [UInt8] = [0xFF, 0x05, 0x00, 0x05] + [UInt8](repeating: 0, count: 11) + [1]
        XCTAssertTrue(InterfaceAddress.separatingEmbeddedScope(siteMulticast, scopeID: 0) == (siteMulticast, 0))
    }

    func testNumericTextRoundTrip() throws {
        for text in [
            "0.0.0.0", "192.0.2.1", "255.255.255.255", "::", "::1", "fe80::1", "2001:db8::ff00:42:8329",
            "::ffff:192.0.2.1",
        ] {
            let (family, bytes) = try XCTUnwrap(InterfaceAddress.parseNumericAddress(text), text)
            XCTAssertEqual(bytes.count, family.byteCount, text)
            XCTAssertEqual(InterfaceAddress.numericText(bytes, family: family), text)
        }
    }
}

final class FlagsTests: XCTestCase {
    func testNamesFollowDeclarationOrder() {
        let flags: NetworkInterface.Flags = [.multicast, .broadcast, .running, .up]
        XCTAssertEqual(flags.names, ["up", "running", "broadcast", "multicast"])
        XCTAssertEqual(NetworkInterface.Flags([.loopback, .up]).names, ["up", "loopback"])
        XCTAssertEqual(NetworkInterface.Flags.pointToPoint.names, ["pointToPoint"])
        XCTAssertEqual(NetworkInterface.Flags().names, [])
        XCTAssertEqual(NetworkInterface.Flags(rawValue: 1 << 31).names, [])
    }

    func testSystemFlagsMapping() {
        let system = UInt32(IFF_UP | IFF_RUNNING | IFF_BROADCAST | IFF_MULTICAST)
        XCTAssertEqual(NetworkInterface.Flags(systemFlags: system), [.up, .running, .broadcast, .multicast])
        XCTAssertEqual(NetworkInterface.Flags(systemFlags: UInt32(IFF_LOOPBACK)), .loopback)
        XCTAssertEqual(NetworkInterface.Flags(systemFlags: UInt32(IFF_POINTOPOINT)), .pointToPoint)
        XCTAssertEqual(NetworkInterface.Flags(systemFlags: 0), [])
    }

    func testErrorDescriptionIsOneLine() {
        let error = InterfaceError(operation: "getifaddrs", code: ENOMEM)
        XCTAssertTrue(error.description.hasPrefix("getifaddrs failed: "), error.description)
        XCTAssertTrue(error.description.hasSuffix("(errno \(ENOMEM))"), error.description)
        XCTAssertFalse(error.description.contains("\n"))
        XCTAssertEqual("\(error)", error.description)
    }
}

final class DirectedBroadcastSelectionTests: XCTestCase {
    private func ipv4(_ text: String, _ prefix: Int, broadcast: String?) -> InterfaceAddress {
        let (_, bytes) = InterfaceAddress.parseNumericAddress(text)!
        return InterfaceAddress(
            family: .ipv4, address: text, prefixLength: prefix, broadcast: broadcast, rawAddress: bytes)
    }

    func testSelectsUpBroadcastNonLoopbackInterfaces() {
        let v6 = InterfaceAddress(
            family: .ipv6, address: "fd00::2", prefixLength: 64,
            rawAddress: [0xFD] + [UInt8](repeating: 0, count: 14) + [2])
        let interfaces = [
            NetworkInterface(
                name: "lo", index: 1, flags: [.up, .running, .loopback, .broadcast], mtu: 65536,
                addresses: [ipv4("127.0.0.1", 8, broadcast: "127.255.255.255")]),
            NetworkInterface(
                name: "eth0", index: 2, flags: [.up, .running, .broadcast, .multicast], mtu: 1500,
                addresses: [
                    ipv4("192.0.2.2", 24, broadcast: "192.0.2.255"), v6,
                    ipv4("192.0.2.9", 24, broadcast: "192.0.2.255"),
                    ipv4("198.51.100.1", 32, broadcast: nil),
                    ipv4("203.0.113.5", 25, broadcast: "203.0.113.127"),
                ]),
            NetworkInterface(
                name: "eth1", index: 3, flags: [.broadcast, .multicast], mtu: 1500,
                addresses: [ipv4("10.0.0.1", 8, broadcast: "10.255.255.255")]),
            NetworkInterface(
                name: "tun0", index: 4, flags: [.up, .running, .pointToPoint], mtu: 1400,
                addresses: [ipv4("10.8.0.2", 24, broadcast: nil)]),
            NetworkInterface(
                name: "eth2", index: 5, flags: [.up, .broadcast], mtu: nil,
                addresses: [ipv4("10.1.1.7", 24, broadcast: "10.1.1.255")]),
        ]
        let selected = NetworkInterface.directedBroadcastAddresses(from: interfaces)
        XCTAssertEqual(
            selected.map { "\($0.interface) \($0.address)" },
            ["eth0 192.0.2.255", "eth0 203.0.113.127", "eth2 10.1.1.255"])
        XCTAssertTrue(NetworkInterface.directedBroadcastAddresses(from: []).isEmpty)
    }
}
