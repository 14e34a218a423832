import Foundation
import RoomProtocol
import UDPKit
import UDPRoom
import XCTest

/// The server as a client written from `docs/room-protocol.md` sees it: packets built by hand on a plain
/// socket, so every rule of the session is checked on the wire.
final class ServerProtocolTests: XCTestCase {
    /// A member driven packet by packet.
    struct RawMember {
        let socket: UDPSocket
        let server: UDPAddress

        static func open(_ server: UDPAddress) async throws -> RawMember {
            RawMember(socket: try await UDPSocket.client(for: server), server: server)
        }

        func send(_ packet: ClientPacket) async throws {
            try await socket.send(bytes: try RoomCodec.encode(packet), to: server)
        }

        func send(raw bytes: [UInt8]) async throws {
            try await socket.send(bytes: bytes, to: server)
        }

        /// The next packet within `timeout` seconds, nil if none came.
        func next(timeout: Double = 2) async throws -> ServerPacket? {
            guard let datagram = try await socket.receive(timeout: .milliseconds(Int64(timeout * 1000))) else {
                return nil
            }
            return try RoomCodec.decodeServerPacket(datagram.bytes)
        }

        /// Packets until `condition` matches one (returned last), within `timeout` seconds.
        func until(timeout: Double = 2, _ condition: (ServerPacket) -> Bool) async throws -> [ServerPacket] {
            var seen: [ServerPacket] = []
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline, let packet = try await next(timeout: deadline.timeIntervalSinceNow) {
                seen.append(packet)
                if condition(packet) { return seen }
            }
            XCTFail("no matching packet within \(timeout) s; got \(seen)")
            return seen
        }

        func join(_ nick: String, nonce: UInt64 = .random(in: 1...UInt64.max)) async throws -> Welcome {
            try await send(.join(nonce: nonce, nick: nick))
            guard case .welcome(let welcome)? = try await next() else { throw XCTSkip("no WELCOME") }
            return welcome
        }

        func close() async { await socket.close() }
    }

    /// Events of the DELIVERs among `packets`, acknowledging each.
    func events(_ packets: [ServerPacket]) -> [RoomEvent] {
        packets.compactMap { if case .deliver(_, _, let event) = $0 { event } else { nil } }
    }

    func testSessionIsConfirmedByTheTokenAndJoinsAreIdempotent() async throws {
        let running = try await RunningServer()
        let alice = try await Transcript.join(running.address, "alice")
        await alice.wait(for: .joined("alice"))
        let raw = try await RawMember.open(running.address)
        let welcome = try await raw.join("bob", nonce: 42)
        XCTAssertEqual(welcome.nonce, 42)
        XCTAssertEqual(welcome.serverInstance, running.server.instance)
        XCTAssertEqual(welcome.heartbeatMillis, 100)
        XCTAssertEqual(welcome.timeoutMillis, 2000)
        // The same JOIN again: the same WELCOME, not a second session.
        try await raw.send(.join(nonce: 42, nick: "bob"))
        let again = try await raw.next()
        XCTAssertEqual(again, .welcome(welcome))

        // Until bob's token comes back, the room has not heard of bob and sends him nothing, though alice talks.
        try await alice.client.say("before bob confirmed")
        let early = try await raw.next(timeout: 0.3)
        XCTAssertNil(early)
        XCTAssertFalse(alice.roomEvents.contains(.joined("bob")))

        try await raw.send(.ack(token: welcome.token, Acknowledgement(cumulative: 0)))
        let packets = try await raw.until { if case .deliver(_, _, .joined("bob")) = $0 { true } else { false } }
        // What was said after the WELCOME waited in bob's stream.
        XCTAssertEqual(
            events(packets).map(\.untimed),
            [
                .message(from: "alice", kind: .text, text: "before bob confirmed", unixMillis: 0, flags: []),
                .joined("bob"),
            ])
        await alice.wait(for: .joined("bob"))
        await alice.client.close()
        await raw.close()
        await running.stop()
    }

    func testMalformedAndForeignDatagramsAreCountedNotAnswered() async throws {
        let running = try await RunningServer()
        let raw = try await RawMember.open(running.address)
        var garbage: [[UInt8]] = [
            [], [0x55], Array("hello".utf8), [0x55, 0x52, 0x01, 0x90], [0x55, 0x52, 0x01, 0x10, 1, 2, 3],
        ]
        var join = try RoomCodec.encode(ClientPacket.join(nonce: 7, nick: "x"))
        join.append(0)
        garbage.append(join)
        garbage.append([UInt8](repeating: 0x55, count: RoomWire.maxDatagramSize + 1))
        for datagram in garbage { try await raw.send(raw: datagram) }
        let answer = try await raw.next(timeout: 0.3)
        XCTAssertNil(answer)
        XCTAssertEqual(running.server.counters.dropped[.malformed], garbage.count)

        // A JOIN of a future version gets a REFUSED of this version echoing its nonce.
        try await raw.send(raw: [0x55, 0x52, 0x03, 0x01, 0, 0, 0, 0, 0, 0, 0, 9, 0xFF])
        guard case .refused(9, .unsupportedVersion, _)? = try await raw.next() else {
            return XCTFail("no version refusal")
        }
        // A version-1 JOIN gets it in version 1, which an old client reads.
        try await raw.send(raw: [0x55, 0x52, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 10, 0, 1, 0x61])
        let old = try await raw.socket.receive(timeout: .seconds(2))
        XCTAssertEqual(old.map { RoomCodec.decodeVersionRefusal($0.bytes)?.nonce }, 10)

        // A token nobody has: ENDED, so a client of a restarted server knows to join again.
        let stranger = SessionToken.random()
        try await raw.send(.heartbeat(token: stranger, echo: 1))
        let ended = try await raw.next()
        XCTAssertEqual(ended, .ended(token: stranger, reason: .unknownSession))
        XCTAssertEqual(running.server.counters.dropped[.unknownSession], 1)

        // The room still works.
        let alice = try await Transcript.join(running.address, "alice")
        await alice.wait(for: .joined("alice"))
        await alice.client.close()
        await raw.close()
        await running.stop()
    }

    func testRefusedCommandsGetNoticesAndLeaveEndsTheSession() async throws {
        let running = try await RunningServer(
            .fast(limits: RoomLimits(maxTextBytes: 20, commandBurst: 6, commandRefillInterval: 10_000 * ms)))
        let raw = try await RawMember.open(running.address)
        let welcome = try await raw.join("bob")
        let token = welcome.token
        try await raw.send(.ack(token: token, Acknowledgement(cumulative: 0)))
        _ = try await raw.until { if case .deliver(_, _, .joined("bob")) = $0 { true } else { false } }
        let commands: [ClientCommand] = [
            .say(kind: .text, text: String(repeating: "x", count: 21)),
            .say(kind: .text, text: "two\nlines"),
            .say(kind: MessageKind(rawValue: 9), text: "?"),
            .unrecognized(code: 0x40, body: [1, 2]),
            .changeNick("no spaces"),
            .who,
            .say(kind: .text, text: "over the limit"),
        ]
        for (index, command) in commands.enumerated() {
            try await raw.send(.command(token: token, sequence: UInt64(index + 1), command))
        }
        var notices: [UInt64: NoticeCode] = [:]
        var acknowledged: UInt64 = 0
        var delivered: UInt64 = 1
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline, notices.count < 6 || acknowledged < 7, let packet = try await raw.next(timeout: 1) {
            switch packet {
            case .ack(_, let ack): acknowledged = max(acknowledged, ack.cumulative)
            case .deliver(_, let sequence, let event):
                delivered = max(delivered, sequence)
                if case .notice(let code, let inReplyTo, _) = event { notices[inReplyTo] = code }
            default: break
            }
        }
        XCTAssertEqual(acknowledged, 7, "every command is acknowledged, refused or not")
        XCTAssertEqual(
            notices,
            [
                1: .textTooLong, 2: .invalidText, 3: .unsupportedCommand, 4: .unsupportedCommand, 5: .invalidNick,
                7: .rateLimited,
            ])
        XCTAssertEqual(running.server.counters.dropped[.rejected], 5)
        XCTAssertEqual(running.server.counters.dropped[.rateLimited], 1)

        // LEAVE is not rate limited; once it is processed the token is dead.
        try await raw.send(.ack(token: token, Acknowledgement(cumulative: delivered)))
        try await raw.send(.command(token: token, sequence: 8, .leave))
        _ = try await raw.until { if case .ack(_, let ack) = $0 { ack.cumulative == 8 } else { false } }
        try await raw.send(.command(token: token, sequence: 8, .leave))
        _ = try await raw.until { $0 == .ended(token: token, reason: .unknownSession) }
        XCTAssertEqual(running.server.counters.left, 1)
        await raw.close()
        await running.stop()
    }

    func testUnauthenticatedAnswersAreLimitedPerAddress() async throws {
        var configuration = RoomServer.Configuration.fast()
        configuration.addressBurst = 5
        configuration.addressRefillInterval = 10_000 * ms
        let running = try await RunningServer(configuration)
        let raw = try await RawMember.open(running.address)
        for _ in 0..<20 { try await raw.send(.heartbeat(token: SessionToken.random(), echo: 0)) }
        var answers = 0
        while try await raw.next(timeout: 0.3) != nil { answers += 1 }
        XCTAssertEqual(answers, 5)
        XCTAssertEqual(running.server.counters.dropped[.addressRateLimited], 15)
        await raw.close()
        await running.stop()
    }

    /// LEAVE frees the nick at once, but its acknowledgement waits until the member has acknowledged the
    /// events its earlier commands caused, so a member that leaves right after /who still sees the answer.
    func testLeaveIsAcknowledgedOnceTheStreamIsDelivered() async throws {
        let running = try await RunningServer()
        let raw = try await RawMember.open(running.address)
        let token = try await raw.join("bob").token
        try await raw.send(.ack(token: token, Acknowledgement(cumulative: 0)))
        _ = try await raw.until { if case .deliver(_, 1, .joined("bob")) = $0 { true } else { false } }
        try await raw.send(.ack(token: token, Acknowledgement(cumulative: 1)))
        try await raw.send(.command(token: token, sequence: 1, .who))
        try await raw.send(.command(token: token, sequence: 2, .leave))
        var acknowledged: UInt64 = 0
        var sawWho = false
        let window = Date().addingTimeInterval(0.3)
        while Date() < window, let packet = try await raw.next(timeout: window.timeIntervalSinceNow) {
            if case .ack(_, let ack) = packet { acknowledged = max(acknowledged, ack.cumulative) }
            if case .deliver(_, 2, .who(["bob"], _)) = packet { sawWho = true }
        }
        XCTAssertTrue(sawWho)
        XCTAssertEqual(acknowledged, 1, "the LEAVE waits for the WHO answer to be acknowledged")
        // The nick is free already.
        let bob = try await Transcript.join(running.address, "bob")
        try await raw.send(.ack(token: token, Acknowledgement(cumulative: 2)))
        _ = try await raw.until { if case .ack(_, let ack) = $0 { ack.cumulative == 2 } else { false } }
        try await raw.send(.heartbeat(token: token, echo: 0))
        _ = try await raw.until { $0 == .ended(token: token, reason: .unknownSession) }
        await bob.client.close()
        await raw.close()
        await running.stop()
    }
}
