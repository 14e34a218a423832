import NIOCore
import RoomProtocol
import UDPKit
import XCTest

@testable import UDPRoom

/// The server's rules against abuse, on `ServerCore` with a clock and addresses of the test's choosing: an
/// attacker may put any source address on a datagram, which a unit test can do without raw sockets.
final class ServerCoreTests: XCTestCase {
    /// A `ServerCore` fed datagrams "from" any address, counting the bytes that go each way per address.
    struct Harness {
        var core: ServerCore
        var now: UInt64 = 1_000_000_000
        var sent: [UDPAddress: Int] = [:]
        var received: [UDPAddress: Int] = [:]
        var datagramsTo: [UDPAddress: Int] = [:]
        /// Every packet sent, in order.
        var log: [(to: UDPAddress, packet: ServerPacket)] = []

        init(_ configuration: RoomServer.Configuration = .fast()) {
            core = ServerCore(configuration: configuration, instance: 7)
        }

        /// Feeds one packet, as if from `address`; returns what the server sent (to anyone) meanwhile.
        @discardableResult
        mutating func send(_ packet: ClientPacket, from address: UDPAddress) -> [(to: UDPAddress, packet: ServerPacket)]
        {
            let bytes = try! RoomCodec.encode(packet)
            received[address, default: 0] += bytes.count
            core.receive(bytes, truncated: false, from: address, now: now, unixMillis: 1)
            core.tick(now: now)
            return collect()
        }

        /// Moves the clock on in steps of `step`, ticking the server as its deadlines come.
        @discardableResult
        mutating func advance(_ duration: UInt64, step: UInt64 = 10 * ms) -> [(to: UDPAddress, packet: ServerPacket)] {
            var out: [(to: UDPAddress, packet: ServerPacket)] = []
            let end = now + duration
            while now < end {
                now += step
                core.tick(now: now)
                out += collect()
            }
            return out
        }

        private mutating func collect() -> [(to: UDPAddress, packet: ServerPacket)] {
            let out = core.takeOutgoing().map { datagram -> (to: UDPAddress, packet: ServerPacket) in
                let bytes = Array(datagram.payload.readableBytesView)
                sent[datagram.destination, default: 0] += bytes.count
                datagramsTo[datagram.destination, default: 0] += 1
                if let refusal = RoomCodec.decodeVersionRefusal(bytes) {
                    return (
                        datagram.destination,
                        .refused(nonce: refusal.nonce, reason: .unsupportedVersion, text: refusal.text)
                    )
                }
                return (datagram.destination, try! RoomCodec.decodeServerPacket(bytes))
            }
            log += out
            return out
        }

        /// Joins and confirms a member from `address`; returns its token.
        mutating func member(_ nick: String, at address: UDPAddress) -> SessionToken {
            let answer = send(.join(nonce: .random(in: 1...UInt64.max), nick: nick), from: address)
            guard case .welcome(let welcome)? = answer.first?.packet else {
                XCTFail("no WELCOME for \(nick): \(answer)")
                return SessionToken(high: 0, low: 0)
            }
            send(.ack(token: welcome.token, Acknowledgement(cumulative: 0)), from: address)
            return welcome.token
        }
    }

    static func address(_ ip: String, _ port: Int) -> UDPAddress { try! UDPAddress(ip: ip, port: port) }
    let attacker = address("10.0.0.66", 4000)
    let victim = address("10.0.0.99", 53)

    /// The attack of the report: members with a long unacknowledged history send heartbeats "from" a victim.
    /// Before path validation the server moved every stream there at once (×388 measured); now the victim gets
    /// challenges only, at most three times the bytes "from" it, and the streams stay where they were.
    func testSpoofedTokensFromAVictimGetAtMostThreeTimesTheirBytes() {
        var h = Harness(.fast(limits: RoomLimits(maxMembers: 64, historyLength: 20)))
        let poster = h.member("poster", at: attacker)
        let line = String(repeating: "x", count: 1000)
        for sequence in 1...20 {
            h.send(.command(token: poster, sequence: UInt64(sequence), .say(kind: .text, text: line)), from: attacker)
            h.advance(200 * ms)
        }
        // 20 sessions that acknowledge nothing: their history (20 × 1 KB) waits to be retransmitted.
        var tokens: [SessionToken] = []
        for index in 0..<20 {
            tokens.append(h.member("m\(index)", at: Self.address("10.0.0.66", 5000 + index)))
        }
        h.advance(100 * ms)
        let before = h.sent[victim, default: 0]
        XCTAssertEqual(before, 0)
        for round in 0..<25 {
            for token in tokens { h.send(.heartbeat(token: token, echo: UInt64(round)), from: victim) }
            h.advance(100 * ms)
        }
        let toVictim = h.sent[victim, default: 0]
        let fromVictim = h.received[victim, default: 0]
        XCTAssertEqual(fromVictim, 500 * 28)
        XCTAssertGreaterThan(toVictim, 0, "the victim address is challenged")
        XCTAssertLessThanOrEqual(toVictim, 3 * fromVictim, "amplification \(Double(toVictim) / Double(fromVictim))")
        XCTAssertTrue(
            h.log.filter { $0.to == victim }.allSatisfy { if case .pathChallenge = $0.packet { true } else { false } })
        // The members' streams still go to their own addresses.
        for index in 0..<20 {
            XCTAssertGreaterThan(h.sent[Self.address("10.0.0.66", 5000 + index), default: 0], 20_000)
        }
        XCTAssertEqual(h.core.counters.migrations, 0)
    }

    /// Anything the server sends to an address no member was seen to receive at stays within three times what
    /// came from it: WELCOME and REFUSED (the JOIN is padded to 64 bytes), ENDED, version refusals.
    func testAnswersToUnprovenAddressesStayWithinThreeTimes() {
        var configuration = RoomServer.Configuration.fast(limits: RoomLimits(maxMembers: 1))
        configuration.addressBurst = 10_000
        var h = Harness(configuration)
        _ = h.member("owner", at: attacker)
        let nicks = [
            "a", "owner", "\u{7}", String(repeating: "n", count: 24), "\u{3164}", String(repeating: "é", count: 64),
        ]
        for nick in nicks {
            h.send(.join(nonce: 1, nick: nick), from: victim)
        }
        h.send(.heartbeat(token: SessionToken.random(), echo: 1), from: victim)
        let oldJoin: [UInt8] = [0x55, 0x52, 0x01, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0x61]
        h.received[victim, default: 0] += oldJoin.count
        h.core.receive(oldJoin, truncated: false, from: victim, now: h.now, unixMillis: 1)
        h.advance(50 * ms)
        XCTAssertEqual(
            h.datagramsTo[victim], nicks.count + 2, "every JOIN, the stray token and the old JOIN are answered")
        XCTAssertLessThanOrEqual(h.sent[victim, default: 0], 3 * h.received[victim, default: 0])

        // The worst single exchange: the shortest datagram that gets an answer, a JOIN of another version
        // that is nothing but header and nonce (12 bytes).
        let bare: [UInt8] = [0x55, 0x52, 0x03, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]
        let other = Self.address("10.0.0.98", 53)
        h.core.receive(bare, truncated: false, from: other, now: h.now, unixMillis: 1)
        h.advance(10 * ms)
        let answer = h.sent[other, default: 0]
        XCTAssertGreaterThan(answer, 0)
        XCTAssertLessThanOrEqual(answer, 3 * bare.count)
        print(
            "worst answer to an unproven address: \(answer) bytes for \(bare.count): ×\(Double(answer) / Double(bare.count))"
        )
    }

    /// A member whose address really changed (a NAT rebinding) moves once it answers the challenge from there;
    /// until then its stream stays at the old address, and afterwards goes to the new one.
    func testAMemberMovesAfterAnsweringTheChallenge() {
        var h = Harness()
        let old = Self.address("192.0.2.1", 1000)
        let new = Self.address("192.0.2.1", 2000)
        let alice = h.member("alice", at: old)
        h.advance(50 * ms)
        // A command from the new address is processed (the token proves the member), but its answer waits.
        let out = h.send(.command(token: alice, sequence: 1, .who), from: new)
        guard case .pathChallenge(alice, let challenge)? = out.first(where: { $0.to == new })?.packet else {
            return XCTFail("no challenge to the new address: \(out)")
        }
        h.advance(100 * ms)
        XCTAssertTrue(
            h.log.filter { $0.to == new }.allSatisfy { if case .pathChallenge = $0.packet { true } else { false } })
        XCTAssertTrue(h.log.contains { if $0.to == old, case .deliver(_, _, .who) = $0.packet { true } else { false } })
        // A wrong answer moves nothing.
        h.send(.pathResponse(token: alice, challenge: challenge &+ 1), from: new)
        XCTAssertEqual(h.core.counters.migrations, 0)
        h.send(.pathResponse(token: alice, challenge: challenge), from: new)
        XCTAssertEqual(h.core.counters.migrations, 1)
        XCTAssertEqual(h.core.takeEvents().last, .moved(nick: "alice", from: old, to: new))
        let before = h.log.count
        h.send(.heartbeat(token: alice, echo: 5), from: new)
        h.advance(500 * ms)
        let after = h.log[before...]
        XCTAssertTrue(after.contains { $0.to == new && $0.packet == .pong(token: alice, echo: 5) })
        XCTAssertTrue(
            after.contains { if $0.to == new, case .deliver(_, _, .who) = $0.packet { true } else { false } },
            "the stream follows")
        XCTAssertFalse(after.contains { $0.to == old })
        // A late packet from the old address gets a challenge there; answered from the new address (where the
        // member is now), it does not move the member back.
        let late = h.send(.heartbeat(token: alice, echo: 6), from: old)
        guard case .pathChallenge(alice, let back)? = late.first?.packet, late.first?.to == old else {
            return XCTFail("no challenge to the old address: \(late)")
        }
        h.send(.pathResponse(token: alice, challenge: back), from: new)
        XCTAssertEqual(h.core.counters.migrations, 1)
        let mark = h.log.count
        h.send(.command(token: alice, sequence: 2, .who), from: new)
        h.advance(300 * ms)
        XCTAssertTrue(h.log[mark...].contains { if case .deliver(_, _, .who) = $0.packet { true } else { false } })
        XCTAssertTrue(h.log[mark...].allSatisfy { $0.to == new })
    }

    /// A session that sent LEAVE and then keeps sending anything but the acknowledgements of its stream is
    /// forgotten after the grace; the server does not go on retransmitting to it.
    func testALeftSessionIsGoneAfterTheGraceWhateverItSends() {
        var timing = fastTiming
        timing.leaveGrace = 500 * ms
        var configuration = RoomServer.Configuration.fast()
        configuration.timing = timing
        var h = Harness(configuration)
        let zombie = h.member("zombie", at: attacker)
        h.send(.command(token: zombie, sequence: 1, .who), from: attacker)
        h.send(.command(token: zombie, sequence: 2, .leave), from: attacker)
        for round in 0..<30 {
            h.send(.heartbeat(token: zombie, echo: UInt64(round)), from: attacker)
            h.send(.command(token: zombie, sequence: 3, .who), from: attacker)
            h.advance(100 * ms)
        }
        XCTAssertEqual(h.core.counters.expiredAfterLeave, 1)
        let answer = h.send(.heartbeat(token: zombie, echo: 99), from: attacker)
        XCTAssertEqual(answer.map(\.packet), [.ended(token: zombie, reason: .unknownSession)])
        let retransmissions = h.core.counters.retransmissions
        h.advance(2_000 * ms)
        XCTAssertEqual(h.core.counters.retransmissions, retransmissions)
        XCTAssertNil(h.core.nextDeadline(now: h.now))
    }

    /// A slow consumer: a member that keeps heartbeating but acknowledges nothing is dropped once its oldest
    /// event has waited three member timeouts, and the retransmissions to it stop.
    func testAMemberThatAcknowledgesNothingIsDropped() {
        var h = Harness()
        let slow = h.member("slow", at: attacker)
        var beats = 0
        while h.core.counters.timedOut == 0, beats < 100 {
            h.send(.heartbeat(token: slow, echo: 0), from: attacker)
            h.advance(100 * ms)
            beats += 1
        }
        XCTAssertEqual(h.core.counters.timedOut, 1)
        XCTAssertGreaterThanOrEqual(UInt64(beats) * 100 * ms, fastTiming.stallTimeout)
        let retransmissions = h.core.counters.retransmissions
        h.send(.heartbeat(token: slow, echo: 0), from: attacker)
        h.advance(1_000 * ms)
        XCTAssertEqual(h.core.counters.retransmissions, retransmissions)
    }

    /// JOINs nobody confirms do not fill the room; they are bounded per address and in total.
    func testPendingJoinsDoNotFillTheRoomAndAreBounded() {
        var configuration = RoomServer.Configuration.fast(limits: RoomLimits(maxMembers: 3))
        configuration.maxPendingJoinsPerAddress = 2
        configuration.maxPendingJoins = 5
        var h = Harness(configuration)
        _ = h.member("a", at: Self.address("192.0.2.1", 1))
        _ = h.member("b", at: Self.address("192.0.2.2", 1))
        // Three squatters JOIN over and over, with new nonces and nicks, and never confirm.
        var refusedPerAddress = 0
        for round in 0..<10 {
            for squatter in 0..<3 {
                let out = h.send(
                    .join(nonce: .random(in: 1...UInt64.max), nick: "s\(squatter)x\(round)"),
                    from: Self.address("198.51.100.\(squatter + 1)", 9))
                if case .refused(_, .rateLimited, _)? = out.first?.packet { refusedPerAddress += 1 }
            }
            h.advance(100 * ms)
        }
        XCTAssertGreaterThan(refusedPerAddress, 0, "the per-address bound refuses")
        XCTAssertGreaterThan(h.core.counters.dropped[.pendingJoinLimit, default: 0], 0)
        // A real member still gets in.
        let out = h.send(.join(nonce: 5, nick: "carol"), from: Self.address("192.0.2.3", 1))
        guard case .welcome(let welcome)? = out.first?.packet else { return XCTFail("carol refused: \(out)") }
        h.send(.ack(token: welcome.token, Acknowledgement(cumulative: 0)), from: Self.address("192.0.2.3", 1))
        XCTAssertEqual(h.core.counters.members, 3)
        // Now the room is full for real.
        let full = h.send(.join(nonce: 6, nick: "dave"), from: Self.address("192.0.2.4", 1))
        guard case .refused(_, .roomFull, _)? = full.first?.packet else { return XCTFail("not full: \(full)") }
    }

    /// What an unconfirmed session can hold is bounded: past its history and 64 events it is dropped, without
    /// a word to its unproven address.
    func testAPendingSessionHoldsAtMostSixtyFourEventsBeyondItsHistory() {
        var h = Harness(.fast(limits: RoomLimits(commandBurst: 1_000)))
        let talker = h.member("talker", at: attacker)
        let out = h.send(.join(nonce: 3, nick: "silent"), from: victim)
        guard case .welcome(let welcome)? = out.first?.packet else { return XCTFail("\(out)") }
        for sequence in 1...(ServerCore.pendingBacklog + 1) {
            h.send(
                .command(token: talker, sequence: UInt64(sequence), .say(kind: .text, text: "line \(sequence)")),
                from: attacker)
        }
        XCTAssertEqual(h.core.counters.dropped[.pendingJoinLimit], 1)
        XCTAssertEqual(h.datagramsTo[victim], 1, "the WELCOME only")
        let late = h.send(.ack(token: welcome.token, Acknowledgement(cumulative: 0)), from: victim)
        XCTAssertEqual(late.map(\.packet), [.ended(token: welcome.token, reason: .unknownSession)])
    }

    /// A confirmation that comes when the room filled up after the WELCOME ends that session: the room never
    /// holds more than its limit.
    func testConfirmingIntoARoomThatFilledMeanwhileEndsTheSession() {
        var h = Harness(.fast(limits: RoomLimits(maxMembers: 1)))
        let first = h.send(.join(nonce: 1, nick: "a"), from: Self.address("192.0.2.1", 1))
        let second = h.send(.join(nonce: 2, nick: "b"), from: Self.address("192.0.2.2", 1))
        guard case .welcome(let a)? = first.first?.packet, case .welcome(let b)? = second.first?.packet else {
            return XCTFail("both pending JOINs are welcome while the room is empty")
        }
        h.send(.ack(token: a.token, Acknowledgement(cumulative: 0)), from: Self.address("192.0.2.1", 1))
        let out = h.send(.ack(token: b.token, Acknowledgement(cumulative: 0)), from: Self.address("192.0.2.2", 1))
        XCTAssertEqual(out.map(\.packet), [.ended(token: b.token, reason: .roomFull)])
        XCTAssertEqual(h.core.counters.members, 1)
    }

    /// Forged tokens from an address use up only the budget for answering forged tokens: a member joining from
    /// the same address (behind the same NAT) still gets in, and valid tokens are never limited.
    func testForgedTokensDoNotLockOutJoinsFromTheSameAddress() {
        var configuration = RoomServer.Configuration.fast()
        configuration.addressBurst = 5
        configuration.addressRefillInterval = 10_000 * ms
        var h = Harness(configuration)
        let nat = Self.address("203.0.113.5", 40000)
        let neighbour = Self.address("203.0.113.5", 40001)
        let alice = h.member("alice", at: neighbour)
        for _ in 0..<100 { h.send(.heartbeat(token: SessionToken.random(), echo: 0), from: nat) }
        XCTAssertEqual(h.core.counters.dropped[.addressRateLimited], 95)
        let out = h.send(.join(nonce: 9, nick: "bob"), from: Self.address("203.0.113.5", 40002))
        guard case .welcome? = out.first?.packet else { return XCTFail("bob locked out: \(out)") }
        let pong = h.send(.heartbeat(token: alice, echo: 3), from: neighbour)
        XCTAssertEqual(pong.map(\.packet), [.pong(token: alice, echo: 3)])
        // JOINs over their own limit get a (limited) refusal that says so, instead of silence.
        var refusals = 0
        for nonce in 10..<30 {
            let answer = h.send(
                .join(nonce: UInt64(nonce), nick: "c\(nonce)"), from: Self.address("203.0.113.5", 40003))
            if case .refused(_, .rateLimited, let text)? = answer.first?.packet, text.hasPrefix("too many JOINs") {
                refusals += 1
            }
        }
        XCTAssertEqual(refusals, 1, "one refusal a second per address")
    }
}
