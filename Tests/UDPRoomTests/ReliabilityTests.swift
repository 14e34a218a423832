import Foundation
import Impairment
import RoomProtocol
import UDPKit
import UDPProxy
import UDPRoom
import XCTest

/// Delivery guarantees over a bad network, liveness, restarts, and a large room.
final class RoomReliabilityTests: XCTestCase {
    /// Three members talk through a proxy that loses 20%, duplicates 5% and reorders 10% of datagrams both
    /// ways: all 300 messages reach every member exactly once, each sender's in the order sent.
    func testThreeHundredMessagesThroughAnImpairingProxy() async throws {
        // Each member sends 100 in bursts: more than the default burst of 50, so the rate limit is raised.
        let running = try await RunningServer(.fast(limits: RoomLimits(commandBurst: 400, commandRefillInterval: ms)))
        var proxyConfiguration = UDPProxy.Configuration(upstream: running.address)
        var impairment = ImpairmentSettings()
        impairment.loss = 0.20
        impairment.duplicate = 0.05
        impairment.reorder = 0.10
        proxyConfiguration.up = impairment
        proxyConfiguration.down = impairment
        proxyConfiguration.seed = 2026
        let proxy = try await UDPProxy.bind(to: loopback, configuration: proxyConfiguration)
        let proxyTask = Task { try await proxy.run() }

        let nicks = ["ann", "ben", "cat"]
        var members: [Transcript] = []
        for nick in nicks { members.append(try await Transcript.join(proxy.localAddress, nick)) }
        for member in members { await member.wait(for: .joined("cat")) }
        let started = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for member in members {
                group.addTask {
                    for burst in 0..<10 {
                        for n in 0..<10 { try await member.client.say("\(member.client.nick) \(burst * 10 + n)") }
                        try await Task.sleep(nanoseconds: 20 * ms)
                    }
                }
            }
            try await group.waitForAll()
        }
        for member in members {
            await member.wait(timeout: 30, "300 messages") { _ in member.messages.count >= 300 }
        }
        let elapsed = Date().timeIntervalSince(started)
        for member in members {
            let seen = member.messages
            XCTAssertEqual(seen.count, 300, "\(member.client.nick) saw \(seen.count)")
            XCTAssertEqual(Set(seen).count, seen.count, "\(member.client.nick) saw duplicates")
            for nick in nicks {
                XCTAssertEqual(
                    seen.filter { $0.hasPrefix("\(nick): ") }, (0..<100).map { "\(nick): \(nick) \($0)" },
                    "\(member.client.nick) from \(nick)")
            }
            XCTAssertEqual(seen, members[0].messages, "every member sees the same order")
        }
        let counters = proxy.counters
        XCTAssertGreaterThan(counters.up.dropped + counters.down.dropped, 0)
        XCTAssertGreaterThan(counters.up.duplicated + counters.down.duplicated, 0)
        XCTAssertGreaterThan(counters.up.reordered + counters.down.reordered, 0)
        XCTAssertGreaterThan(running.server.counters.retransmissions, 0)
        XCTAssertEqual(running.server.counters.messages, 300)
        print(
            "300 messages to 3 members through 20% loss, 5% duplication, 10% reordering: \(String(format: "%.2f", elapsed)) s; "
                + "server retransmissions \(running.server.counters.retransmissions), proxy lost \(counters.up.dropped + counters.down.dropped)"
        )
        for member in members { _ = await member.client.leave() }
        proxyTask.cancel()
        _ = try? await proxyTask.value
        await running.stop()
    }

    func testVanishedMemberTimesOut() async throws {
        let running = try await RunningServer()
        let alice = try await Transcript.join(running.address, "alice")
        let bob = try await Transcript.join(running.address, "bob")
        await alice.wait(for: .joined("bob"))
        let vanished = Date()
        await bob.client.close()
        // The member timeout is 2 s; the check runs with the server's next wake-up.
        await alice.wait(for: .timedOut("bob"), timeout: 5)
        XCTAssertGreaterThan(Date().timeIntervalSince(vanished), 1.9)
        XCTAssertEqual(running.server.counters.timedOut, 1)
        XCTAssertEqual(running.server.counters.members, 1)
        // The nick is free again.
        let bob2 = try await Transcript.join(running.address, "bob")
        await alice.wait(for: .joined("bob"))
        await bob2.client.close()
        await alice.client.close()
        await running.stop()
    }

    /// A stopped server tells its members; a crashed one does not. Either way the members rejoin the new
    /// server by themselves and say the server restarted; a command sent while it was down is delivered.
    func testMembersRejoinARestartedServer() async throws {
        var running = try await RunningServer()
        let address = running.address
        let alice = try await Transcript.join(address, "alice")
        let bob = try await Transcript.join(address, "bob")
        await alice.wait(for: .joined("bob"))
        try await alice.client.say("before")
        await bob.wait("the first message") { _ in bob.messages == ["alice: before"] }

        // A graceful stop: ENDED (server shutdown) to everyone, who then retry.
        await running.stop()
        await alice.wait("the shutdown") { $0.contains(.sessionEnded(.serverShutdown)) }
        running = try await RunningServer(at: address)
        for member in [alice, bob] {
            await member.wait("the rejoin") { $0.contains(.rejoined(serverRestarted: true, resent: 0)) }
        }
        XCTAssertNotEqual(alice.client.welcome?.serverInstance, nil)

        // A crash: the socket goes away without a word. The members notice the silence, keep sending
        // heartbeats, and the new server's ENDED (unknown session) sends them back in.
        await running.server.socket.close()
        _ = try? await running.task.value
        try await alice.client.say("during the outage")
        await alice.wait(timeout: 5, "the silence") { $0.contains(.serverNotResponding) }
        running = try await RunningServer(at: address)
        for member in [alice, bob] {
            await member.wait(timeout: 5, "the second rejoin") { events in
                events.filter { if case .rejoined(serverRestarted: true, _) = $0 { true } else { false } }.count == 2
            }
        }
        XCTAssertTrue(alice.all.contains(.rejoined(serverRestarted: true, resent: 1)), "\(alice.all)")
        await bob.wait("the message sent during the outage") { _ in bob.messages.contains("alice: during the outage") }
        XCTAssertEqual(alice.client.counters.rejoins, 2)
        await alice.client.close()
        await bob.client.close()
        await running.stop()
    }

    /// Someone who knows a member's address and port, but not its token, cannot speak for it: the packet
    /// is dropped (and answered with ENDED for the unknown token), and nobody hears it. Likewise a packet
    /// from the server's address with another token than the member's is dropped by the member.
    func testSpoofedPacketsFromTheRightAddressesAreRejected() async throws {
        // Both the server and alice allow a second socket on their port (SO_REUSEPORT), so the attacker can
        // send from exactly their addresses.
        var shared = UDPSocketOptions()
        shared.reusePort = true
        let running = RunningServer(
            RoomServer(socket: try await UDPSocket.bind(to: loopback, options: shared), configuration: .fast()))
        var configuration = RoomClient.Configuration.fast()
        configuration.socketOptions.reusePort = true
        let alice = try await Transcript.join(running.address, "alice", configuration)
        let bob = try await Transcript.join(running.address, "bob")
        await bob.wait(for: .joined("bob"))

        let asAlice = try await UDPSocket.bind(
            to: try UDPAddress(ip: "127.0.0.1", port: alice.client.localAddress.port!), options: shared)
        let forged = try RoomCodec.encode(
            ClientPacket.command(
                token: SessionToken.random(), sequence: 1, .say(kind: .text, text: "I am alice, send me your password"))
        )
        try await asAlice.send(bytes: forged, to: running.address)
        await eventually("the server drops it") { running.server.counters.dropped[.unknownSession] == 1 }
        await asAlice.close()

        let asServer = try await UDPSocket.bind(to: running.address, options: shared)
        let fakeDeliver = try RoomCodec.encode(
            ServerPacket.deliver(
                token: SessionToken.random(), sequence: 1,
                .message(from: "server", kind: .text, text: "forged", unixMillis: 0, flags: [])))
        try await asServer.send(
            bytes: fakeDeliver, to: try UDPAddress(ip: "127.0.0.1", port: bob.client.localAddress.port!))
        await eventually("bob drops it") { bob.client.counters.foreign == 1 }
        await asServer.close()

        try await alice.client.say("the real alice")
        await bob.wait("the real message") { _ in bob.messages.contains("alice: the real alice") }
        XCTAssertEqual(bob.messages, ["alice: the real alice"])
        XCTAssertEqual(running.server.counters.messages, 1)
        await alice.client.close()
        await bob.client.close()
        await running.stop()
    }

    /// A room of 100 members in one process: one message reaches all of them.
    func testHundredMemberRoomDeliversToEveryone() async throws {
        // The protocol's standard retransmission timeouts: 100 members in one debug-built process on two
        // cores answer in tens of milliseconds, which the fast test timeouts would take for losses.
        var configuration = RoomServer.Configuration.fast(limits: RoomLimits(maxMembers: 100))
        configuration.timing = RoomTiming(heartbeatInterval: 500 * ms, memberTimeout: 5_000 * ms)
        let clientConfiguration = {
            var configuration = RoomClient.Configuration.fast()
            configuration.stream = .standard
            return configuration
        }()
        let running = try await RunningServer(configuration)
        var members: [Transcript] = []
        let joinStarted = Date()
        try await withThrowingTaskGroup(of: Transcript.self) { group in
            for n in 0..<100 {
                group.addTask { try await Transcript.join(running.address, "m\(n)", clientConfiguration) }
            }
            for try await member in group { members.append(member) }
        }
        await eventually(timeout: 20, "100 members confirmed") { running.server.counters.members == 100 }
        let joinTime = Date().timeIntervalSince(joinStarted)
        // Let the join announcements (100 x 100 events) drain before timing the message.
        await eventually(timeout: 20, "the announcements delivered") {
            members.allSatisfy { member in member.roomEvents.contains { if case .joined = $0 { true } else { false } } }
        }
        let sender = members[0]
        let started = Date()
        try await sender.client.say("hello, hundred")
        for member in members {
            await member.wait(timeout: 10, "the message") { _ in
                member.messages.contains("\(sender.client.nick): hello, hundred")
            }
        }
        let fanOut = Date().timeIntervalSince(started)
        XCTAssertLessThan(fanOut, 5, "fan-out to 100 members took \(fanOut) s")
        print(
            "100 members: joined in \(String(format: "%.2f", joinTime)) s; one message reached all in \(String(format: "%.3f", fanOut)) s; "
                + "server sent \(running.server.counters.sent) datagrams, \(running.server.counters.retransmissions) of them again"
        )
        do {
            _ = try await RoomClient.join(running.address, nick: "m100", configuration: clientConfiguration)
            XCTFail("the 101st member got in")
        } catch RoomClientError.refused(let reason, _) {
            XCTAssertEqual(reason, .roomFull)
        }
        await withTaskGroup(of: Void.self) { group in
            for member in members { group.addTask { await member.client.close() } }
        }
        await running.stop()
    }
}
