import Foundation
import RoomProtocol
import UDPKit
import UDPRoom
import XCTest

/// Room server and clients on loopback: presence, commands, history, refusals, limits.
final class RoomTests: XCTestCase {
    /// A graceful shutdown tells the members the server is stopping (ENDED, server shutdown); a cancellation stops
    /// it at once, telling nobody. Either way `run()` closes the socket before it returns: the port is free again.
    func testGracefulShutdownTellsTheMembersCancellationDoesNotAndBothCloseTheSocket() async throws {
        for graceful in [true, false] {
            let running = try await RunningServer()
            let alice = try await Transcript.join(running.address, "alice")
            await alice.wait(for: .joined("alice"))
            if graceful { await running.stop() } else { await running.cancel() }
            do {
                let again = try await UDPSocket.bind(to: running.address)
                await again.close()
            } catch {
                XCTFail("graceful \(graceful): \(running.address) is still bound after run() returned: \(error)")
            }
            if graceful {
                await alice.wait("ENDED") { $0.contains(.sessionEnded(.serverShutdown)) }
            } else {
                try await Task.sleep(for: .milliseconds(300))
                XCTAssertFalse(alice.all.contains(.sessionEnded(.serverShutdown)), "\(alice.all)")
            }
            XCTAssertEqual(running.server.counters.members, graceful ? 0 : 1)
            await alice.client.close()
        }
    }

    func testMembersTalkAndSeeEachOtherComeAndGo() async throws {
        let running = try await RunningServer()
        let alice = try await Transcript.join(running.address, "alice")
        await alice.wait(for: .joined("alice"))
        let bob = try await Transcript.join(running.address, "bob")
        await alice.wait(for: .joined("bob"))
        await bob.wait(for: .joined("bob"))

        try await alice.client.say("hello bob")
        try await bob.client.send(.say(kind: .action, text: "waves"))
        await bob.wait("both messages") { _ in bob.messages == ["alice: hello bob", "bob: waves"] }
        await alice.wait("both messages") { _ in alice.messages == ["alice: hello bob", "bob: waves"] }

        try await alice.client.send(.privateMessage(to: "BOB", text: "psst"))
        let whisper = RoomEvent.privateMessage(from: "alice", to: "bob", text: "psst", unixMillis: 0, flags: [])
        await bob.wait("the private message") { _ in bob.roomEvents.map(\.untimed).contains(whisper) }
        await alice.wait("the private message's copy") { _ in alice.roomEvents.map(\.untimed).contains(whisper) }

        try await bob.client.send(.who)
        await bob.wait(for: .who(names: ["alice", "bob"], flags: []))
        try await bob.client.send(.changeNick("Robert"))
        await alice.wait(for: .nickChanged(from: "bob", to: "Robert"))
        await eventually("bob's client follows its nick") { bob.client.nick == "Robert" }

        let bobLeft = await bob.client.leave()
        XCTAssertTrue(bobLeft)
        await alice.wait(for: .left("Robert"))
        XCTAssertEqual(bob.all.last, .ended(.left(confirmed: true)))
        let aliceLeft = await alice.client.leave()
        XCTAssertTrue(aliceLeft)
        await eventually("the server counts") { running.server.counters.members == 0 }
        let counters = running.server.counters
        XCTAssertEqual(counters.joined, 2)
        XCTAssertEqual(counters.left, 2)
        XCTAssertEqual(counters.messages, 2)
        XCTAssertEqual(counters.privateMessages, 1)
        XCTAssertEqual(counters.droppedTotal, 0)
        XCTAssertEqual(running.events.withLockedValue { $0.count }, 5)
        await running.stop()
    }

    func testNewcomerGetsTheHistoryFirst() async throws {
        let running = try await RunningServer(.fast(limits: RoomLimits(historyLength: 3)))
        let alice = try await Transcript.join(running.address, "alice")
        for n in 1...5 { try await alice.client.say("m\(n)") }
        await alice.wait("five messages") { _ in alice.messages.count == 5 }
        let bob = try await Transcript.join(running.address, "bob")
        XCTAssertEqual(bob.client.welcome?.historyCount, 3)
        await bob.wait(for: .joined("bob"))
        let history = bob.roomEvents.prefix(4).map(\.untimed)
        XCTAssertEqual(
            history,
            [
                .message(from: "alice", kind: .text, text: "m3", unixMillis: 0, flags: .history),
                .message(from: "alice", kind: .text, text: "m4", unixMillis: 0, flags: .history),
                .message(from: "alice", kind: .text, text: "m5", unixMillis: 0, flags: .history),
                .joined("bob"),
            ])
        await alice.client.close()
        await bob.client.close()
        await running.stop()
    }

    func testRefusedJoins() async throws {
        let running = try await RunningServer(.fast(limits: RoomLimits(maxMembers: 2)))
        let alice = try await Transcript.join(running.address, "alice")
        do {
            _ = try await RoomClient.join(running.address, nick: "ALICE", configuration: .fast())
            XCTFail("a nick differing only in case was accepted")
        } catch RoomClientError.refused(let reason, let text) {
            XCTAssertEqual(reason, .nickTaken)
            XCTAssertTrue(text.contains("ALICE"), text)
        }
        do {
            _ = try await RoomClient.join(running.address, nick: "two words", configuration: .fast())
            XCTFail("an invalid nick was sent")
        } catch RoomClientError.invalidNick(.forbiddenCharacter(let scalar)) {
            XCTAssertEqual(scalar, " ")
        }
        let bob = try await Transcript.join(running.address, "bob")
        var patient = RoomClient.Configuration.fast()
        patient.fullRoomRetries = 1
        patient.fullRoomRetryDelay = 100 * ms
        do {
            _ = try await RoomClient.join(running.address, nick: "carol", configuration: patient)
            XCTFail("a full room took another member")
        } catch RoomClientError.refused(let reason, _) {
            XCTAssertEqual(reason, .roomFull)
        }
        XCTAssertEqual(running.server.counters.refused, 3, "the nick, then the full room twice: carol tried once more")
        await alice.client.close()
        await bob.client.close()
        await running.stop()
    }

    func testJoinWithNobodyListeningGivesUp() async throws {
        // A port that was just free: nothing listens there.
        let probe = try await UDPSocket.bind(to: loopback)
        let address = probe.localAddress
        await probe.close()
        var configuration = RoomClient.Configuration.fast()
        configuration.joinTimeout = 500 * ms
        let started = Date()
        do {
            _ = try await RoomClient.join(address, nick: "alice", configuration: configuration)
            XCTFail("joined a room that does not exist")
        } catch RoomClientError.serverNotResponding(let seconds) {
            XCTAssertEqual(seconds, 0.5)
            XCTAssertEqual(Date().timeIntervalSince(started), 0.5, accuracy: 0.4)
        }
    }

    func testTextRulesAreCheckedOnBothSides() async throws {
        let running = try await RunningServer(.fast(limits: RoomLimits(maxTextBytes: 10)))
        let alice = try await Transcript.join(running.address, "alice")
        XCTAssertEqual(alice.client.welcome?.maxTextBytes, 10)
        do {
            try await alice.client.say("eleven byte")
            XCTFail("an over-long message was queued")
        } catch .invalidText(.tooLong(let bytes, let limit)) {
            XCTAssertEqual(bytes, 11)
            XCTAssertEqual(limit, 10)
        }
        do {
            try await alice.client.say("bell\u{7}")
            XCTFail("a control character was queued")
        } catch .invalidText(.forbiddenCharacter) {}
        try await alice.client.send(.privateMessage(to: "nobody", text: "hi"))
        await alice.wait("the notice") { _ in
            alice.roomEvents.contains { if case .notice(.noSuchMember, 1, _) = $0 { true } else { false } }
        }
        await alice.client.close()
        await running.stop()
    }

    /// A pasted block larger than the room's burst: a client that paces itself gets every line through; one
    /// that does not has the excess dropped by the server, with a notice per dropped line.
    func testPacingKeepsAPasteUnderTheRoomsRateLimit() async throws {
        let running = try await RunningServer(
            .fast(limits: RoomLimits(commandBurst: 10, commandRefillInterval: 20 * ms)))
        let paced = try await Transcript.join(running.address, "paced", .fast(pacing: 8, every: 20 * ms))
        for n in 0..<30 { try await paced.client.say("line \(n)") }
        await paced.wait("30 lines") { _ in paced.messages.count == 30 }
        XCTAssertEqual(running.server.counters.dropped[.rateLimited], nil)

        let eager = try await Transcript.join(running.address, "eager", .fast(pacing: nil))
        for n in 0..<30 { try await eager.client.say("line \(n)") }
        await eager.wait("30 answers") { _ in
            eager.messages.filter { $0.hasPrefix("eager:") }.count
                + eager.roomEvents.filter { if case .notice(.rateLimited, _, _) = $0 { true } else { false } }.count
                == 30
        }
        XCTAssertGreaterThan(running.server.counters.dropped[.rateLimited] ?? 0, 10)
        await paced.client.close()
        await eager.client.close()
        await running.stop()
    }
}
