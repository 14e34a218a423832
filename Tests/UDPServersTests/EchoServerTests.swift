import Foundation
import NIOCore
import ServiceLifecycle
import UDPKit
import UDPServers
import XCTest

final class EchoServerTests: XCTestCase {
    private func start(_ configuration: EchoServer.Configuration = .init()) async throws -> (
        EchoServer, Task<Void, any Error>
    ) {
        let socket = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 0))
        let server = EchoServer(socket: socket, configuration: configuration)
        return (server, Task { try await server.run() })
    }

    func testEchoIsByteExactAtEverySize() async throws {
        let (server, task) = try await start()
        let client = try await UDPSocket.connect(to: server.socket.localAddress)
        for size in [0, 1, 1_472, 65_507] {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 ^ size) }
            let reply = try await client.request(
                ByteBuffer(bytes: bytes), policy: RequestPolicy(timeout: .seconds(1), retries: 1))
            XCTAssertEqual(reply.datagram.bytes, bytes, "size \(size)")
        }
        // The server counts a batch once its send completed, which can be just after the reply arrived here.
        let deadline = Date().addingTimeInterval(2)
        while server.counters.replied < 4 && Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertEqual(server.counters.replied, 4)
        task.cancel()
        await client.close()
        await server.socket.close()
    }

    /// `run()` closes the server's socket before it returns, after a graceful shutdown or a cancellation: its port is
    /// free again at once, and the kernel's drop count stays readable.
    func testRunClosesItsSocketBeforeReturning() async throws {
        for graceful in [true, false] {
            let server = try await EchoServer.bind(to: UDPAddress(ip: "127.0.0.1", port: 0))
            let group = ServiceGroup(services: [server])
            let task = Task { try await group.run() }
            let client = try await UDPSocket.connect(to: server.localAddress)
            let reply = try await client.request(
                ByteBuffer(string: "ping"), policy: RequestPolicy(timeout: .seconds(1), retries: 2))
            XCTAssertEqual(reply.datagram.bytes, Array("ping".utf8))
            let drops = server.kernelDrops

            if graceful { await group.triggerGracefulShutdown() } else { task.cancel() }
            try? await task.value
            do {
                let again = try await UDPSocket.bind(to: server.localAddress)
                await again.close()
            } catch {
                XCTFail("graceful \(graceful): \(server.localAddress) is still bound after run() returned: \(error)")
            }
            XCTAssertEqual(server.kernelDrops, drops)
            XCTAssertEqual(server.counters.replied, 1)
            await client.close()
        }
    }

    func testGreetingTemplate() async throws {
        var config = EchoServer.Configuration()
        config.template = try ReplyTemplate("Hello, {text}! #{count} {{x}} len={length}")
        let (server, task) = try await start(config)
        let client = try await UDPSocket.connect(to: server.socket.localAddress)
        for name in ["Tom", "Jerry"] {
            let reply = try await client.request(ByteBuffer(string: name))
            XCTAssertTrue(String(buffer: reply.datagram.payload).hasPrefix("Hello, \(name)! #"))
            XCTAssertTrue(String(buffer: reply.datagram.payload).hasSuffix("{x} len=\(name.utf8.count)"))
        }
        task.cancel()
        await client.close()
        await server.socket.close()
    }

    func testTemplateRendering() throws {
        let sender = try UDPAddress(ip: "10.0.0.5", port: 4242)
        let datagram = Datagram(
            payload: ByteBuffer(bytes: [0xC4, 0xE3]), sender: sender, receivedAt: Date(timeIntervalSince1970: 0))
        let template = try ReplyTemplate("你{text}|{hex}|{from}:{port}|{time}|{count}", encoding: .gbk)
        XCTAssertEqual(
            template.render(datagram, count: 3),
            [0xC4, 0xE3, 0xC4, 0xE3] + Array("|c4e3|10.0.0.5:4242|1970-01-01T00:00:00.000Z|3".utf8))
        XCTAssertThrowsError(try ReplyTemplate("Hello {name}")) {
            XCTAssertTrue("\($0)".contains("unknown placeholder {name}"))
        }
        XCTAssertThrowsError(try ReplyTemplate("Hello {text")) { XCTAssertTrue("\($0)".contains("unclosed")) }
        XCTAssertThrowsError(try ReplyTemplate("a } b")) { XCTAssertTrue("\($0)".contains("unmatched")) }
    }

    func testNoReplyToLoopPortsOrPortZeroAndCounted() async throws {
        let (server, task) = try await start()
        // A sender bound to port 7 (echo) would loop with us forever: it gets nothing.
        let loopPeer: UDPSocket
        do {
            loopPeer = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 7))
        } catch UDPError.permissionDenied(_, _) {
            throw XCTSkip("binding port 7 needs root")
        }
        try await loopPeer.send(bytes: Array("loop?".utf8), to: server.socket.localAddress)
        let nothing = try await loopPeer.receive(timeout: .milliseconds(300))
        XCTAssertNil(nothing)
        XCTAssertEqual(server.counters.dropped[.loopPort], 1)
        task.cancel()
        await loopPeer.close()
        await server.socket.close()
    }

    func testRateLimitHoldsForAmplifyingTemplates() async throws {
        var config = EchoServer.Configuration()
        config.template = try ReplyTemplate("a much longer reply than the request: {text}")
        config.repliesPerSecond = 5
        config.burst = 5
        let (server, task) = try await start(config)
        let client = try await UDPSocket.client(for: server.socket.localAddress)
        try await client.send((0..<50).map { _ in OutgoingDatagram(bytes: [0x78], to: server.socket.localAddress) })
        var replies = 0
        while try await client.receive(timeout: .milliseconds(300)) != nil { replies += 1 }
        // 5 at once, plus at most a couple refilled while the test ran.
        XCTAssertGreaterThanOrEqual(replies, 5)
        XCTAssertLessThanOrEqual(replies, 8)
        XCTAssertEqual(server.counters.dropped[.rateLimited], 50 - replies)
        task.cancel()
        await client.close()
        await server.socket.close()
    }

    func testAccessControl() async throws {
        var config = EchoServer.Configuration()
        config.access = AccessControl(allow: [try AddressRange("127.0.0.0/8")], deny: [try AddressRange("127.0.0.2")])
        let (server, task) = try await start(config)
        let allowed = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 0))
        let denied = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.2", port: 0))
        try await allowed.send(bytes: [1], to: server.socket.localAddress)
        try await denied.send(bytes: [2], to: server.socket.localAddress)
        let yes = try await allowed.receive(timeout: .seconds(1))
        let no = try await denied.receive(timeout: .milliseconds(300))
        XCTAssertEqual(yes?.bytes, [1])
        XCTAssertNil(no)
        XCTAssertEqual(server.counters.dropped[.accessDenied], 1)
        task.cancel()
        for s in [allowed, denied, server.socket] { await s.close() }
    }

    func testAddressRanges() throws {
        let net = try AddressRange("192.168.1.0/24")
        XCTAssertTrue(net.contains(try UDPAddress(ip: "192.168.1.77", port: 1)))
        XCTAssertFalse(net.contains(try UDPAddress(ip: "192.168.2.1", port: 1)))
        XCTAssertFalse(net.contains(try UDPAddress(ip: "::1", port: 1)))
        XCTAssertEqual(net.description, "192.168.1.0/24")
        XCTAssertEqual(try AddressRange("10.1.2.3/8").description, "10.0.0.0/8")
        XCTAssertTrue(try AddressRange("fe80::/10").contains(try UDPAddress(ip: "fe80::1", port: 1)))
        XCTAssertTrue(try AddressRange("0.0.0.0/0").contains(try UDPAddress(ip: "8.8.8.8", port: 1)))
        for bad in ["10.0.0.0/33", "10.0.0.0/", "nonsense/8", "::/129", "1.2.3.4/8/9", "10.0.0.0/-1"] {
            XCTAssertThrowsError(try AddressRange(bad), bad)
        }
    }

    func testALoopBetweenTwoServersStopsAndBothStillAnswer() async throws {
        let (first, firstTask) = try await start()
        let (second, secondTask) = try await start()
        // A datagram from the first server's own address to the second: what a spoofed source makes.
        try await first.socket.send(bytes: Array("bounce".utf8), to: second.socket.localAddress)
        try await Task.sleep(for: .milliseconds(500))
        let bounced = first.counters.received + second.counters.received
        try await Task.sleep(for: .milliseconds(500))
        XCTAssertEqual(first.counters.received + second.counters.received, bounced, "still bouncing")
        XCTAssertLessThanOrEqual(bounced, 2 * (EchoServer.Configuration().loopLimit + 1) + 1)
        XCTAssertEqual((first.counters.dropped[.loop] ?? 0) + (second.counters.dropped[.loop] ?? 0), 1)
        let client = try await UDPSocket.client(for: first.socket.localAddress)
        for server in [first, second] {
            try await client.send(bytes: Array("bounce".utf8), to: server.socket.localAddress)
            let reply = try await client.receive(timeout: .seconds(1))
            XCTAssertEqual(reply?.bytes, Array("bounce".utf8), "the same payload from a real client is answered")
        }
        firstTask.cancel()
        secondTask.cancel()
        for socket in [client, first.socket, second.socket] { await socket.close() }
    }

    func testTemplateRepliesStayWithinThreeTimesTheBytesReceived() async throws {
        var config = EchoServer.Configuration()
        // 200 bytes and more for 1 byte: 228 bytes on the wire against 29 received.
        config.template = try ReplyTemplate(String(repeating: "x", count: 200) + "{text}")
        let (server, task) = try await start(config)
        let client = try await UDPSocket.client(for: server.socket.localAddress)
        // Each request earns 3 x 29 = 87 bytes of budget; a reply costs 229: the 3rd, 6th and 9th of ten get one.
        try await client.send((0..<10).map { _ in OutgoingDatagram(bytes: [0x41], to: server.socket.localAddress) })
        var replies = 0
        while try await client.receive(timeout: .milliseconds(300)) != nil { replies += 1 }
        XCTAssertEqual(replies, 3)
        XCTAssertEqual(server.counters.dropped[.amplification], 7)
        XCTAssertLessThanOrEqual(
            server.counters.repliedBytes + 28 * server.counters.replied,
            3 * (server.counters.receivedBytes + 28 * server.counters.received))
        task.cancel()
        await client.close()
        await server.socket.close()
    }

    func testUnicastArrivalsAreAnsweredOnTheFastPath() async throws {
        var options = UDPSocketOptions()
        options.receivePacketInfo = true
        let socket = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 0), options: options)
        let server = EchoServer(socket: socket)
        let task = Task { try await server.run() }
        let client = try await UDPSocket.connect(to: socket.localAddress)
        let reply = try await client.request(
            ByteBuffer(string: "unicast"), policy: RequestPolicy(timeout: .seconds(1), retries: 1))
        XCTAssertEqual(String(buffer: reply.datagram.payload), "unicast")
        task.cancel()
        await client.close()
        await socket.close()
    }
}
