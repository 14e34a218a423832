import NIOConcurrencyHelpers
import NIOCore
import UDPKit
import UDPProxy
import XCTest

/// The unimpaired proxy relays from the thread that receives (no task between client and upstream): the same
/// limits, counters and events as the impaired path.
final class UnimpairedRelayTests: XCTestCase {
    private let loopback = try! UDPAddress(ip: "127.0.0.1", port: 0)

    private func replies(_ socket: UDPSocket, expecting count: Int) async throws -> [String] {
        var seen: [String] = []
        while seen.count < count, let reply = try await socket.receive(timeout: .milliseconds(500)) {
            seen.append(String(decoding: reply.bytes, as: UTF8.self))
        }
        return seen
    }

    func testClientsPastTheMaximumAreRefusedAndCountedWhileTheOthersAreServed() async throws {
        let (echo, echoTask) = try await startEchoUpstream()
        var configuration = UDPProxy.Configuration(upstream: echo.localAddress)
        configuration.maximumClients = 2
        let proxy = try await UDPProxy.bind(to: loopback, configuration: configuration)
        let proxyTask = Task { try await proxy.run() }
        let clients = [
            try await UDPSocket.client(for: proxy.localAddress), try await UDPSocket.client(for: proxy.localAddress),
        ]
        for (index, client) in clients.enumerated() {
            try await client.send(bytes: Array("first \(index)".utf8), to: proxy.localAddress)
            let answered = try await replies(client, expecting: 1)
            XCTAssertEqual(answered, ["first \(index)"])
        }
        let third = try await UDPSocket.client(for: proxy.localAddress)
        for i in 0..<5 { try await third.send(bytes: Array("third \(i)".utf8), to: proxy.localAddress) }
        let refusedReplies = try await replies(third, expecting: 1)
        XCTAssertEqual(refusedReplies, [])
        try await clients[0].send(bytes: Array("again".utf8), to: proxy.localAddress)
        let again = try await replies(clients[0], expecting: 1)
        XCTAssertEqual(again, ["again"])
        let counters = proxy.counters
        XCTAssertEqual(counters.clients, 2)
        XCTAssertEqual(counters.refused, 5)
        XCTAssertEqual(counters.up.forwarded, 3)
        XCTAssertEqual(counters.down.forwarded, 3)
        proxyTask.cancel()
        try await proxyTask.value
        echoTask.cancel()
        for socket in clients + [third, echo] { await socket.close() }
    }

    func testEveryDatagramIsReportedBothWays() async throws {
        let (echo, echoTask) = try await startEchoUpstream()
        let events = NIOLockedValueBox<[(UDPProxy.Direction, String)]>([])
        let proxy = try await UDPProxy.bind(
            to: loopback, configuration: UDPProxy.Configuration(upstream: echo.localAddress)
        ) { event in
            events.withLockedValue {
                $0.append((event.direction, String(decoding: event.datagram.bytes, as: UTF8.self)))
            }
        }
        let proxyTask = Task { try await proxy.run() }
        let client = try await UDPSocket.client(for: proxy.localAddress)
        for i in 0..<5 { try await client.send(bytes: Array("m\(i)".utf8), to: proxy.localAddress) }
        let answered = try await replies(client, expecting: 5)
        XCTAssertEqual(answered, (0..<5).map { "m\($0)" })
        proxyTask.cancel()
        try await proxyTask.value
        let seen = events.withLockedValue { $0 }
        XCTAssertEqual(seen.filter { $0.0 == .up }.map(\.1), (0..<5).map { "m\($0)" })
        XCTAssertEqual(seen.filter { $0.0 == .down }.map(\.1), (0..<5).map { "m\($0)" })
        echoTask.cancel()
        await client.close()
        await echo.close()
    }
}
