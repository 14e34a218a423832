import Foundation
import NIOCore
import UDPKit
import XCTest

/// Broadcast addresses, packet information, multicast options and memberships.
///
/// Outside a namespace these tests only use loopback and never join a group: a join sends a membership report
/// on the interface, and the host's real interfaces must stay quiet. Joining, leaving and sending to groups and
/// broadcast addresses happens in `testInsideNamespace`, in a network namespace of the test's own.
final class BroadcastMulticastTests: XCTestCase {
    private static let probeVariable = "UDPKIT_TESTS_MULTICAST_PROBE"

    private func assertNothing(
        _ socket: UDPSocket, _ message: String, file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        if let datagram = try await socket.receive(timeout: .milliseconds(300)) {
            XCTFail("\(message): got '\(String(decoding: datagram.bytes, as: UTF8.self))'", file: file, line: line)
        }
    }

    // MARK: - Loopback and no sending

    func testPacketInfoOnLoopbackSaysUnicastAndInterface() async throws {
        var options = UDPSocketOptions()
        options.receivePacketInfo = true
        for (bind, target) in [("127.0.0.1", "127.0.0.1"), ("::", "127.0.0.1"), ("::1", "::1")] {
            let receiver = try await UDPSocket.bind(to: UDPAddress(ip: bind, port: 0), options: options)
            let destination = try UDPAddress(ip: target, port: receiver.localAddress.port!)
            let sender = try await UDPSocket.client(for: destination)
            try await sender.send(bytes: [1], to: destination)
            let datagram = try await receive(receiver)
            let arrival = try XCTUnwrap(datagram.arrival, "bound to \(bind)")
            XCTAssertEqual(arrival.kind, .unicast)
            XCTAssertEqual(arrival.destination, destination, "an IPv4 datagram on a dual-stack socket shows as IPv4")
            XCTAssertEqual(
                arrival.interfaceName, try NetworkInterface.all().first { $0.flags.contains(.loopback) }?.name)
            await sender.close()
            await receiver.close()
        }
        let plain = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 0))
        let sender = try await UDPSocket.client(for: plain.localAddress)
        try await sender.send(bytes: [2], to: plain.localAddress)
        let datagram = try await receive(plain)
        XCTAssertNil(datagram.arrival, "packet information is opt-in")
        await sender.close()
        await plain.close()
    }

    func testMulticastOptionsAreApplied() async throws {
        var options = UDPSocketOptions()
        options.multicastTimeToLive = 5
        options.multicastLoop = false
        options.multicastInterface = try NetworkInterface.all().first { $0.flags.contains(.loopback) }
        let socket = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 0), options: options)
        let provider = try XCTUnwrap(socket.channel as? any SocketOptionProvider)
        let ttl = try await provider.getIPMulticastTTL().get()
        let loop = try await provider.getIPMulticastLoop().get()
        let interface = try await provider.getIPMulticastIF().get()
        XCTAssertEqual(ttl, 5)
        XCTAssertEqual(loop, 0)
        XCTAssertEqual(interface.s_addr, UInt32(0x7F00_0001).bigEndian)
        await socket.close()

        var six = UDPSocketOptions()
        six.multicastTimeToLive = 0
        six.multicastLoop = true
        let socket6 = try await UDPSocket.bind(to: UDPAddress(ip: "::1", port: 0), options: six)
        let provider6 = try XCTUnwrap(socket6.channel as? any SocketOptionProvider)
        let hops = try await provider6.getIPv6MulticastHops().get()
        XCTAssertEqual(hops, 0)
        await socket6.close()

        var bad = UDPSocketOptions()
        bad.multicastTimeToLive = 256
        XCTAssertThrowsError(try bad.validate()) {
            XCTAssertEqual("\($0)", "multicast TTL 256 is out of range (0-255)")
        }
    }

    func testMembershipRequestsAreCheckedBeforeTheSystemSeesThem() async throws {
        let socket = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 0))
        let cases: [(group: String, source: String?, reason: String)] = [
            ("127.0.0.1", nil, "not a multicast group"),
            ("ff02::1", nil, "needs a socket bound to ::"),
            ("232.1.1.1", "::1", "a source must be of the group's address family"),
        ]
        for test in cases {
            do {
                try await socket.join(
                    group: UDPAddress(ip: test.group, port: 0),
                    source: test.source.map { try UDPAddress(ip: $0, port: 0) })
                XCTFail("joined \(test.group)")
            } catch let error as UDPError {
                guard case .invalidAddress(_, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(reason.contains(test.reason), "\(test.group): \(reason)")
            }
        }
        await socket.close()
    }

    func testBroadcastAddressesComeFromTheInterfaces() async throws {
        let expected = NetworkInterface.directedBroadcastAddresses(from: try NetworkInterface.all()).map {
            "\($0.address):2425"
        }
        do {
            let resolved = try await UDPEndpoint.parse("<broadcast>:2425").resolve()
            XCTAssertEqual(resolved.map(\.description), expected)
        } catch {
            XCTAssertTrue(expected.isEmpty, "\(error)")
            guard case .interfaceUnavailable = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try UDPAddress.broadcastAddresses(port: 1, interface: "no-such-interface")) {
            XCTAssertEqual(
                "\($0)", "interface 'no-such-interface': no such interface on this host (see 'udp interfaces')")
        }
        let loopback = try XCTUnwrap(try NetworkInterface.all().first { $0.flags.contains(.loopback) })
        XCTAssertThrowsError(try UDPAddress.broadcastAddresses(port: 1, interface: loopback.name)) {
            XCTAssertTrue("\($0)".contains("no IPv4 broadcast address"), "\($0)")
        }
    }

    func testInterfaceAddressesBecomeSocketAddresses() throws {
        let linkLocal = InterfaceAddress(
            family: .ipv6, address: "fe80::1", prefixLength: 64, scopeID: 1,
            rawAddress: [0xFE, 0x80] + [UInt8](repeating: 0, count: 13) + [1])
        let address = try UDPAddress(linkLocal, port: 5353)
        XCTAssertEqual(address.ip, "fe80::1")
        XCTAssertEqual(address.port, 5353)
        guard case .v6(let six) = address.socketAddress else { return XCTFail("not IPv6") }
        XCTAssertEqual(six.address.sin6_scope_id, 1, "a link-local address keeps its interface")
        let four = InterfaceAddress(
            family: .ipv4, address: "10.1.1.7", prefixLength: 24, broadcast: "10.1.1.255", rawAddress: [10, 1, 1, 7])
        XCTAssertEqual(try UDPAddress(four, port: 9).description, "10.1.1.7:9")
        XCTAssertThrowsError(try UDPAddress(four, port: 70_000))
        let interface = NetworkInterface(name: "eth9", index: 9, flags: [.up], mtu: nil, addresses: [linkLocal, four])
        XCTAssertEqual(interface.firstAddress(.ipv4, port: 1)?.description, "10.1.1.7:1")
        XCTAssertNil(interface.firstAddress(.unix))
    }

    // MARK: - Inside a namespace of the test's own

    #if os(Linux)
    /// Builds a namespace with a veth pair (m0 with 10.77.9.1/24 and 10.77.9.2/24, its peer m1 without
    /// addresses) and runs `testProbeInsideNamespace` there.
    func testInsideNamespace() throws {
        if ProcessInfo.processInfo.environment[Self.probeVariable] != nil { return }
        let namespace = try TestNamespace(purpose: "mc")
        defer { namespace.remove() }
        let n = namespace.name
        for step in [
            [
                "netns", "exec", n, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
            ["-n", n, "link", "add", "m0", "type", "veth", "peer", "name", "m1"],
            ["-n", n, "address", "add", "10.77.9.1/24", "broadcast", "+", "dev", "m0"],
            ["-n", n, "address", "add", "10.77.9.2/24", "dev", "m0"],
            ["-n", n, "link", "set", "m0", "up"],
            ["-n", n, "link", "set", "m1", "up"],
        ] {
            try TestNamespace.ip(step)
        }
        try namespace.runTest("BroadcastMulticastTests/testProbeInsideNamespace", variable: Self.probeVariable)
    }
    #endif

    /// Runs inside the namespace prepared by `testInsideNamespace`; elsewhere it has nothing to check and passes
    /// at once (a skip here would read as a skipped namespace test on CI).
    func testProbeInsideNamespace() async throws {
        guard ProcessInfo.processInfo.environment[Self.probeVariable] != nil else { return }
        let m0 = try NetworkInterface.lookup("m0")
        let resolved = try await UDPEndpoint.parse("<broadcast>:7").resolve()
        XCTAssertEqual(resolved.map(\.description), ["10.77.9.255:7"])

        var receiving = UDPSocketOptions()
        receiving.receivePacketInfo = true
        receiving.reuseAddress = true
        receiving.reusePort = true
        let receiver = try await UDPSocket.bind(to: UDPAddress(ip: "0.0.0.0", port: 0), options: receiving)
        let second = try await UDPSocket.bind(to: receiver.localAddress, options: receiving)
        let port = receiver.localAddress.port!

        // A directed broadcast from a socket that did not ask for broadcast: permission comes by itself.
        let subnet = try UDPAddress(ip: "10.77.9.255", port: port)
        let plain = try await UDPSocket.client(for: subnet)
        try await plain.send(bytes: Array("directed".utf8), to: subnet)
        for socket in [receiver, second] {
            let datagram = try await receive(socket)
            XCTAssertEqual(datagram.bytes, Array("directed".utf8))
            XCTAssertEqual(
                datagram.arrival,
                Datagram.Arrival(destination: subnet, interfaceIndex: m0.index, interfaceName: "m0", kind: .broadcast))
        }
        await plain.close()

        // Any-source multicast: both members receive; after one leaves, only the other does.
        let group = try UDPAddress(ip: "239.77.9.9", port: port)
        var sending = UDPSocketOptions()
        sending.multicastInterface = m0
        sending.multicastTimeToLive = 1
        let sender = try await UDPSocket.client(for: group, options: sending)
        try await receiver.join(group: group, interface: m0)
        try await second.join(group: group, interface: m0)
        try await sender.send(bytes: Array("one".utf8), to: group)
        for socket in [receiver, second] {
            let datagram = try await receive(socket)
            XCTAssertEqual(datagram.bytes, Array("one".utf8))
            XCTAssertEqual(datagram.arrival?.kind, .multicast)
            XCTAssertEqual(datagram.arrival?.destination, group)
            XCTAssertEqual(datagram.arrival?.interfaceName, "m0")
        }
        try await receiver.leave(group: group, interface: m0)
        try await sender.send(bytes: Array("two".utf8), to: group)
        let stillMember = try await receive(second)
        XCTAssertEqual(stillMember.bytes, Array("two".utf8))
        try await assertNothing(receiver, "a socket that left the group still received")
        do {
            try await receiver.leave(group: group, interface: m0)
            XCTFail("left a group twice")
        } catch UDPError.invalidAddress(_, let reason) {
            XCTAssertTrue(reason.contains("not a member"), reason)
        }
        do {
            try await receiver.join(group: group)
            XCTFail("joined without an interface on a host without a default route")
        } catch UDPError.interfaceUnavailable(let name, let reason) {
            XCTAssertEqual(name, "")
            XCTAssertTrue(reason.contains("name the interface"), reason)
        }
        await sender.close()

        // Loop off: this host's members do not hear the sender.
        sending.multicastLoop = false
        let quiet = try await UDPSocket.client(for: group, options: sending)
        try await quiet.send(bytes: Array("looped?".utf8), to: group)
        try await assertNothing(second, "a datagram came back with multicast loop off")
        await quiet.close()

        // Source-specific: only the chosen source gets through.
        let ssm = try UDPAddress(ip: "232.77.9.9", port: port)
        try await receiver.join(group: ssm, interface: m0, source: UDPAddress(ip: "10.77.9.1", port: 0))
        for from in ["10.77.9.2", "10.77.9.1"] {
            let source = try await UDPSocket.client(
                for: ssm, from: UDPAddress(ip: from, port: 0), options: sending.with(loop: true))
            try await source.send(bytes: Array(from.utf8), to: ssm)
            await source.close()
        }
        let chosen = try await receive(receiver)
        XCTAssertEqual(String(decoding: chosen.bytes, as: UTF8.self), "10.77.9.1")
        try await assertNothing(receiver, "a datagram from another source got through")

        // IPv6, a link-local group on the namespace's link.
        let receiver6 = try await UDPSocket.bind(to: UDPAddress(ip: "::", port: 0), options: receiving)
        let group6 = try UDPAddress(ip: "ff02::77:9", port: receiver6.localAddress.port!)
        try await receiver6.join(group: group6, interface: m0)
        let sender6 = try await UDPSocket.client(for: group6, options: sending.with(loop: true))
        try await sender6.send(bytes: Array("six".utf8), to: group6)
        let six = try await receive(receiver6)
        XCTAssertEqual(six.bytes, Array("six".utf8))
        XCTAssertEqual(six.arrival?.kind, .multicast)
        XCTAssertEqual(six.arrival?.destination, group6)
        XCTAssertEqual(six.arrival?.interfaceName, "m0")
        for socket in [sender6, receiver6, receiver, second] { await socket.close() }
    }
}

extension UDPSocketOptions {
    fileprivate func with(loop: Bool) -> UDPSocketOptions {
        var copy = self
        copy.multicastLoop = loop
        return copy
    }
}
