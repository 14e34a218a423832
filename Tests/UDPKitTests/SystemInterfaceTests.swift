import Foundation
import UDPKit
import XCTest

final class LoopbackTests: XCTestCase {
    func testLoopbackInterfaceIsListed() throws {
        let interfaces = try NetworkInterface.all()
        #if canImport(Darwin)
        let loopbackName = "lo0"
        #else
        let loopbackName = "lo"
        #endif
        let loopback = try XCTUnwrap(
            interfaces.first { $0.name == loopbackName },
            "no interface named \(loopbackName) in \(interfaces.map(\.name))")
        XCTAssertTrue(loopback.flags.contains([.up, .loopback]), "\(loopback.flags.names)")
        XCTAssertGreaterThan(loopback.index, 0)
        XCTAssertNotNil(loopback.mtu)

        let v4 = try XCTUnwrap(loopback.addresses.first { $0.family == .ipv4 && $0.address == "127.0.0.1" })
        XCTAssertEqual(v4.prefixLength, 8)
        XCTAssertEqual(v4.rawAddress, [127, 0, 0, 1])
        XCTAssertEqual(v4.scopeID, 0)
        XCTAssertNil(v4.broadcast, "loopback has no broadcast flag, so no broadcast address")

        if Self.kernelListsIPv6Loopback(named: loopbackName) {
            let v6 = try XCTUnwrap(loopback.addresses.first { $0.family == .ipv6 && $0.address == "::1" })
            XCTAssertEqual(v6.prefixLength, 128)
            XCTAssertEqual(v6.rawAddress, [UInt8](repeating: 0, count: 15) + [1])
            XCTAssertEqual(v6.scopeID, 0)
            XCTAssertNil(v6.broadcast)
        } else {
            XCTAssertFalse(loopback.addresses.contains { $0.family == .ipv6 && $0.address == "::1" })
        }

        XCTAssertEqual(try NetworkInterface.named(loopbackName), loopback)
        XCTAssertNil(try NetworkInterface.named("no-such-interface-\(getpid())"))
        XCTAssertFalse(try NetworkInterface.directedBroadcastAddresses().contains { $0.interface == loopbackName })
    }

    func testInterfacesAreOrderedByIndex() throws {
        let indices = try NetworkInterface.all().map(\.index)
        XCTAssertFalse(indices.isEmpty)
        XCTAssertFalse(indices.contains(0))
        XCTAssertEqual(indices, indices.sorted())
        XCTAssertEqual(Set(indices).count, indices.count)
    }

    /// On Linux the file exists even when IPv6 is disabled, so its contents
    /// decide. Darwin has no such table and always configures ::1 on lo0.
    private static func kernelListsIPv6Loopback(named name: String) -> Bool {
        #if canImport(Darwin)
        return true
        #else
        guard let table = try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8) else { return false }
        return table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.first == "00000000000000000000000000000001" && fields.last.map(String.init) == name
        }
        #endif
    }
}

final class IPCommandCrossCheckTests: XCTestCase {
    func testMatchesIPCommand() throws {
        guard let ip = Command.ipTool else {
            throw XCTSkip("iproute2's `ip` is not installed; nothing to cross-check against")
        }
        try IPCommandCrossCheck.verify(ip: ip)
    }
}

/// Compares ``NetworkInterface/all()`` with `ip -j addr`; also used inside the
/// network namespace test.
enum IPCommandCrossCheck {
    static func verify(ip: String, file: StaticString = #filePath, line: UInt = #line) throws {
        // Interfaces can change between the two reads; a stable pair of our
        // own snapshots around the `ip` call shows nothing changed in between.
        for _ in 0..<3 {
            let before = try NetworkInterface.all()
            let links = try IPLink.current(ip: ip)
            let after = try NetworkInterface.all()
            if before == after {
                compare(before, with: links, file: file, line: line)
                return
            }
        }
        XCTFail("interfaces kept changing while being compared", file: file, line: line)
    }

    private static func compare(_ interfaces: [NetworkInterface], with links: [IPLink], file: StaticString, line: UInt)
    {
        XCTAssertEqual(
            interfaces.map(\.name), links.sorted { $0.ifindex < $1.ifindex }.map(\.ifname),
            "interface names in index order", file: file, line: line)
        for link in links {
            guard let interface = interfaces.first(where: { $0.name == link.ifname }) else { continue }
            let context = "interface \(link.ifname)"
            XCTAssertEqual(interface.index, link.ifindex, context, file: file, line: line)
            XCTAssertEqual(interface.mtu, link.mtu, context, file: file, line: line)

            let flagPairs: [(NetworkInterface.Flags, String)] = [
                (.up, "UP"), (.loopback, "LOOPBACK"), (.broadcast, "BROADCAST"),
                (.multicast, "MULTICAST"), (.pointToPoint, "POINTOPOINT"),
            ]
            for (flag, ipName) in flagPairs {
                XCTAssertEqual(
                    interface.flags.contains(flag), link.flags.contains(ipName),
                    "\(context) flag \(ipName)", file: file, line: line)
            }

            let expected = link.addressInfo.compactMap { expectedAddress($0, on: interface) }.sorted()
            let actual = interface.addresses.map(describe).sorted()
            XCTAssertEqual(actual, expected, "\(context) addresses", file: file, line: line)
            for address in interface.addresses {
                XCTAssertEqual(
                    address.rawAddress, presentationToBytes(address.address, family: address.family),
                    "\(context) raw bytes of \(address.address)", file: file, line: line)
            }
        }
    }

    /// `ip` only shows a broadcast address the kernel was given; for the rest
    /// the library computes the subnet broadcast, which is also the broadcast
    /// route Linux installs for such an address.
    private static func expectedAddress(_ info: IPLink.IPAddress, on interface: NetworkInterface) -> String? {
        guard let local = info.local, let prefix = info.prefixlen else { return nil }
        switch info.family {
        case "inet":
            var broadcast: String?
            if interface.flags.contains(.broadcast), !interface.flags.contains(.pointToPoint) {
                broadcast = info.broadcast ?? InterfaceAddress.directedBroadcast(address: local, prefixLength: prefix)
            }
            return "ipv4 \(local)/\(prefix) brd \(broadcast ?? "-") scope 0"
        case "inet6":
            let scopeID = info.scope == "link" ? interface.index : 0
            return "ipv6 \(local)/\(prefix) brd - scope \(scopeID)"
        default:
            return nil
        }
    }

    private static func presentationToBytes(_ text: String, family: InterfaceAddress.Family) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: family.byteCount)
        let status = bytes.withUnsafeMutableBytes {
            inet_pton(family == .ipv4 ? AF_INET : AF_INET6, text, $0.baseAddress)
        }
        return status == 1 ? bytes : nil
    }

    private static func describe(_ address: InterfaceAddress) -> String {
        "\(address.family) \(address.address)/\(address.prefixLength) brd \(address.broadcast ?? "-") scope \(address.scopeID)"
    }
}
