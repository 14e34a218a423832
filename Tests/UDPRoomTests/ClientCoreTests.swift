import RoomProtocol
import XCTest

@testable import UDPRoom

/// The client's side of the hardening, on `ClientCore` with a clock of the test's choosing.
final class ClientCoreTests: XCTestCase {
    struct Harness {
        var core: ClientCore
        var now: UInt64 = 1_000_000_000
        var sent: [ClientPacket] = []

        init(_ configuration: RoomClient.Configuration = .init()) {
            core = ClientCore(nick: "alice", configuration: configuration, now: now)
            core.start(now: now)
            collect()
        }

        mutating func collect() {
            sent += core.takeOutgoing().map { try! RoomCodec.decodeClientPacket($0) }
        }

        mutating func hear(_ packet: ServerPacket) {
            core.receive(try! RoomCodec.encode(packet), truncated: false, now: now)
            core.transmit(now: now)
            collect()
        }

        /// Runs the client's timer for `duration`, as `RoomClient` does: to each deadline in turn.
        mutating func run(for duration: UInt64) {
            let end = now + duration
            while let deadline = core.nextDeadline(now: now), deadline <= end {
                now = max(now + 1, deadline)
                core.tick(now: now)
                collect()
            }
            now = end
        }

        var nonce: UInt64 {
            for packet in sent.reversed() { if case .join(let nonce, _) = packet { return nonce } }
            return 0
        }

        func welcome(heartbeat: UInt32 = 2000, timeout: UInt32 = 10000) -> Welcome {
            Welcome(
                nonce: nonce, token: ClientCoreTests.tokenA, serverInstance: 1, maxTextBytes: 1000, historyCount: 0,
                heartbeatMillis: heartbeat, timeoutMillis: timeout)
        }
    }

    static let tokenA = SessionToken(high: 1, low: 2)
    var tokenA: SessionToken { Self.tokenA }

    func heartbeats(_ packets: [ClientPacket]) -> Int {
        packets.count(where: { if case .heartbeat = $0 { true } else { false } })
    }

    /// A server announcing a 0 ms heartbeat (and timeout) must not make the client send a hundred a second.
    func testAnnouncedTimingsAreClamped() {
        var h = Harness()
        h.hear(.welcome(h.welcome(heartbeat: 0, timeout: 0)))
        let before = h.sent.count
        h.run(for: 1_000 * ms)
        let beats = heartbeats(Array(h.sent[before...]))
        XCTAssertGreaterThanOrEqual(beats, 1)
        XCTAssertLessThanOrEqual(beats, 10, "at most one heartbeat per 100 ms")

        // A heartbeat longer than the timeout would get the member dropped: the client beats at half the timeout.
        var slow = Harness()
        slow.hear(.welcome(slow.welcome(heartbeat: 4_000_000_000, timeout: 4_000)))
        let mark = slow.sent.count
        slow.run(for: 4_100 * ms)
        XCTAssertEqual(heartbeats(Array(slow.sent[mark...])), 2)
    }

    /// A challenge for our token is answered at once with the same value; one for another token is not.
    func testPathChallengesAreAnswered() {
        var h = Harness()
        h.hear(.welcome(h.welcome()))
        h.hear(.pathChallenge(token: SessionToken(high: 9, low: 9), challenge: 77))
        XCTAssertFalse(h.sent.contains { if case .pathResponse = $0 { true } else { false } })
        h.hear(.pathChallenge(token: tokenA, challenge: 77))
        XCTAssertEqual(h.sent.last, .pathResponse(token: tokenA, challenge: 77))
    }

    /// "Room full" is tried again a few times before the join gives up with that reason.
    func testAFullRoomIsTriedAgainBeforeGivingUp() {
        var configuration = RoomClient.Configuration()
        configuration.fullRoomRetries = 3
        configuration.fullRoomRetryDelay = 500 * ms
        var h = Harness(configuration)
        for attempt in 0..<3 {
            h.hear(.refused(nonce: h.nonce, reason: .roomFull, text: "the room is full (3 members)"))
            XCTAssertNil(h.core.ending, "attempt \(attempt)")
            let joins = h.sent.count(where: { if case .join = $0 { true } else { false } })
            h.run(for: 600 * ms)
            XCTAssertGreaterThan(
                h.sent.count(where: { if case .join = $0 { true } else { false } }), joins, "JOIN sent again")
        }
        h.hear(.refused(nonce: h.nonce, reason: .roomFull, text: "the room is full (3 members)"))
        XCTAssertEqual(h.core.ending, .refused(.roomFull, "the room is full (3 members)"))

        // And a place that frees up in between lets the member in.
        var lucky = Harness(configuration)
        lucky.hear(.refused(nonce: lucky.nonce, reason: .roomFull, text: "full"))
        lucky.run(for: 600 * ms)
        lucky.hear(.welcome(lucky.welcome()))
        guard case .success? = lucky.core.takeOutcome() else { return XCTFail("not joined") }
    }

    /// A join that only ever got "rate limited" reports that at its timeout, not that the server is silent.
    func testARateLimitedJoinSaysSo() {
        var configuration = RoomClient.Configuration()
        configuration.joinTimeout = 3_000 * ms
        var h = Harness(configuration)
        h.hear(.refused(nonce: h.nonce, reason: .rateLimited, text: "too many JOINs from this address"))
        h.run(for: 3_100 * ms)
        guard case .failure(let error)? = h.core.takeOutcome() else { return XCTFail("no outcome") }
        guard case RoomClientError.refused(.rateLimited, _)? = error as? RoomClientError else {
            return XCTFail("\(error)")
        }
        XCTAssertFalse("\(error)".contains("running there"), "\(error)")
    }
}

extension ClientCoreTests {
    /// An older (version-1) server answers our JOIN with a version-1 REFUSED "unsupported version": the client
    /// reports that, rather than waiting for an answer it cannot read.
    func testAnOlderServersVersionRefusalIsReported() throws {
        var h = Harness()
        var refusal = try RoomCodec.encode(
            ServerPacket.refused(
                nonce: h.nonce, reason: .unsupportedVersion, text: "this server speaks room protocol version 1 only"))
        refusal[2] = 1
        h.core.receive(refusal, truncated: false, now: h.now)
        XCTAssertEqual(h.core.ending, .refused(.unsupportedVersion, "this server speaks room protocol version 1 only"))
    }
}
