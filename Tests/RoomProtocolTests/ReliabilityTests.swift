import RoomProtocol
import XCTest

final class ReliableSenderTests: XCTestCase {
    func testWindowLimitsWhatIsInFlight() {
        var sender = ReliableSender<Int>()
        for i in 0..<100 { XCTAssertEqual(sender.enqueue(i), UInt64(i + 1)) }
        XCTAssertEqual(sender.nextDeadline, 0)
        let first = sender.due(now: 0)
        XCTAssertEqual(first.map(\.sequence), Array(1...64))
        XCTAssertEqual(first.map(\.payload), Array(0..<64))
        XCTAssertTrue(first.allSatisfy { $0.attempt == 1 })
        XCTAssertEqual(sender.inFlight, 64)
        XCTAssertEqual(sender.count, 100)
        XCTAssertEqual(sender.due(now: 1), [])
        XCTAssertEqual(sender.acknowledge(Acknowledgement(cumulative: 10), now: 50 * ms), 10)
        XCTAssertEqual(sender.due(now: 50 * ms).map(\.sequence), Array(65...74))
        XCTAssertEqual(sender.count, 90)
    }

    func testRetransmissionBacksOffPerItemUpToTheMaximum() {
        var sender = ReliableSender<String>()
        _ = sender.enqueue("a")
        XCTAssertEqual(sender.due(now: 0).count, 1)
        XCTAssertEqual(sender.nextDeadline, 200 * ms)
        XCTAssertEqual(sender.due(now: 199 * ms), [])
        var now: UInt64 = 200 * ms
        var gaps: [UInt64] = []
        for attempt in 2...7 {
            let sent = sender.due(now: now)
            XCTAssertEqual(sent.map(\.attempt), [attempt])
            let next = sender.nextDeadline!
            gaps.append((next - now) / ms)
            now = next
        }
        XCTAssertEqual(gaps, [400, 800, 1600, 2000, 2000, 2000])
        XCTAssertEqual(sender.retransmissions, 6)
        XCTAssertEqual(sender.oldestUnacknowledgedSince, 0)
    }

    func testRoundTripMeasurementOnlyFromSingleTransmissions() {
        var config = ReliableStreamConfiguration()
        config.minimumTimeout = 10 * ms
        var sender = ReliableSender<Int>(configuration: config)
        _ = sender.enqueue(1)
        _ = sender.due(now: 0)
        _ = sender.due(now: 200 * ms)
        sender.acknowledge(Acknowledgement(cumulative: 1), now: 210 * ms)
        XCTAssertNil(sender.roundTripTime, "an item sent twice gives no sample (Karn)")
        _ = sender.enqueue(2)
        _ = sender.due(now: 300 * ms)
        sender.acknowledge(Acknowledgement(cumulative: 2), now: 340 * ms)
        XCTAssertEqual(sender.roundTripTime, 40 * ms)
        XCTAssertEqual(sender.currentTimeout, 40 * ms + 4 * 20 * ms)
        for step in 0..<50 {
            let start = 400 * ms + UInt64(step) * 100 * ms
            _ = sender.enqueue(step)
            _ = sender.due(now: start)
            sender.acknowledge(Acknowledgement(cumulative: UInt64(3 + step)), now: start + 20 * ms)
        }
        XCTAssertEqual(Double(sender.roundTripTime!) / Double(ms), 20, accuracy: 1)
        XCTAssertGreaterThanOrEqual(sender.currentTimeout, 20 * ms)
        XCTAssertLessThan(sender.currentTimeout, 30 * ms, "the deviation term decays on a steady path")
    }

    func testASlowPathIsLearnedAfterRetransmissions() {
        // Round trip 700 ms, above the 200 ms first timeout: the first items go out twice (and cannot be
        // measured), later ones start with the backed-off timeout, get through once, and are measured.
        var sender = ReliableSender<Int>()
        var sent: [UInt64: Int] = [:]
        var now: UInt64 = 0
        var pending: [(at: UInt64, ack: Acknowledgement)] = []
        var acknowledgedThrough: UInt64 = 0
        for item in 1...40 {
            _ = sender.enqueue(item)
            for step in 0..<100 {
                now += 10 * ms
                for transmission in sender.due(now: now) {
                    sent[transmission.sequence, default: 0] += 1
                    acknowledgedThrough = max(acknowledgedThrough, transmission.sequence)
                    pending.append((now + 700 * ms, Acknowledgement(cumulative: acknowledgedThrough)))
                }
                for ack in pending where ack.at <= now { sender.acknowledge(ack.ack, now: now) }
                pending.removeAll { $0.at <= now }
                if step > 0 && sender.isIdle { break }
            }
        }
        XCTAssertTrue(sender.isIdle)
        XCTAssertGreaterThan(sent[1]!, 1)
        XCTAssertEqual(
            (30...40).map { sent[UInt64($0)]! }, Array(repeating: 1, count: 11), "\(sent.sorted { $0.key < $1.key })")
        XCTAssertEqual(Double(sender.roundTripTime ?? 0) / Double(ms), 700, accuracy: 20)
    }

    func testSelectiveAcknowledgementPreventsRetransmission() {
        var sender = ReliableSender<Int>()
        for i in 1...5 { _ = sender.enqueue(i) }
        _ = sender.due(now: 0)
        // 1 lost; 2, 3 and 5 arrived.
        XCTAssertEqual(sender.acknowledge(Acknowledgement(cumulative: 0, selective: 0b1011), now: 20 * ms), 3)
        XCTAssertEqual(sender.inFlight, 2)
        XCTAssertEqual(sender.due(now: 200 * ms).map(\.sequence), [1, 4])
        XCTAssertEqual(sender.acknowledge(Acknowledgement(cumulative: 5), now: 220 * ms), 2)
        XCTAssertTrue(sender.isIdle)
        XCTAssertNil(sender.nextDeadline)
        XCTAssertNil(sender.oldestUnacknowledgedSince)
    }

    func testStaleDuplicateAndBogusAcknowledgements() {
        var sender = ReliableSender<Int>()
        for i in 1...3 { _ = sender.enqueue(i) }
        _ = sender.due(now: 0)
        XCTAssertEqual(sender.acknowledge(Acknowledgement(cumulative: 2), now: 1), 2)
        XCTAssertEqual(sender.acknowledge(Acknowledgement(cumulative: 2), now: 2), 0)
        XCTAssertEqual(sender.acknowledge(Acknowledgement(cumulative: 1), now: 3), 0)
        XCTAssertEqual(sender.acknowledge(Acknowledgement(cumulative: 9), now: 4), 0)
        XCTAssertEqual(sender.invalidAcknowledgements, 1)
        XCTAssertEqual(
            sender.acknowledge(Acknowledgement(cumulative: 0, selective: .max), now: 5), 1,
            "bits past what was sent are ignored")
        XCTAssertTrue(sender.isIdle)
        _ = sender.enqueue(4)
        XCTAssertEqual(
            sender.acknowledge(Acknowledgement(cumulative: 4), now: 6), 0, "an unsent item cannot be acknowledged")
        XCTAssertEqual(sender.due(now: 7).map(\.sequence), [4])
    }

    func testCapacityAndDrain() {
        var sender = ReliableSender<Int>(configuration: ReliableStreamConfiguration(window: 2, capacity: 3))
        XCTAssertNotNil(sender.enqueue(1))
        XCTAssertNotNil(sender.enqueue(2))
        XCTAssertNotNil(sender.enqueue(3))
        XCTAssertNil(sender.enqueue(4))
        _ = sender.due(now: 0)
        sender.acknowledge(Acknowledgement(cumulative: 0, selective: 0b0), now: 1)
        sender.acknowledge(Acknowledgement(cumulative: 1), now: 1)
        XCTAssertEqual(sender.enqueue(5), 4)
        XCTAssertEqual(sender.drainUnacknowledged(), [2, 3, 5])
        XCTAssertTrue(sender.isIdle)
        XCTAssertEqual(sender.nextSequence, 5)
        XCTAssertEqual(sender.enqueue(6), 5)
        XCTAssertEqual(sender.due(now: 2).map(\.sequence), [5])
    }

    func testClockGoingBackwardsDoesNotTrap() {
        var sender = ReliableSender<Int>()
        _ = sender.enqueue(1)
        _ = sender.due(now: .max - 1)
        XCTAssertEqual(sender.nextDeadline, .max)
        sender.acknowledge(Acknowledgement(cumulative: 1), now: 0)
        XCTAssertTrue(sender.isIdle)
    }

    func testLongRunCompactsStorage() {
        var sender = ReliableSender<Int>()
        var receiver = ReliableReceiver<Int>()
        for i in 0..<10_000 {
            _ = sender.enqueue(i)
            for transmission in sender.due(now: UInt64(i)) {
                XCTAssertEqual(
                    receiver.receive(sequence: transmission.sequence, payload: transmission.payload).deliverable, [i])
            }
            sender.acknowledge(receiver.acknowledgement, now: UInt64(i))
        }
        XCTAssertTrue(sender.isIdle)
        XCTAssertEqual(receiver.deliveredCount, 10_000)
    }
}

final class ReliableReceiverTests: XCTestCase {
    func testInOrderOutOfOrderDuplicateAndBeyondWindow() {
        var receiver = ReliableReceiver<String>(window: 4)
        XCTAssertEqual(receiver.acknowledgement, Acknowledgement(cumulative: 0))
        XCTAssertEqual(receiver.receive(sequence: 1, payload: "a").deliverable, ["a"])
        XCTAssertEqual(receiver.receive(sequence: 3, payload: "c").disposition, .buffered)
        XCTAssertEqual(receiver.receive(sequence: 5, payload: "e").disposition, .buffered)
        XCTAssertEqual(receiver.acknowledgement, Acknowledgement(cumulative: 1, selective: 0b101))
        XCTAssertEqual(receiver.receive(sequence: 6, payload: "f").disposition, .beyondWindow)
        XCTAssertEqual(receiver.receive(sequence: 3, payload: "c").disposition, .duplicate)
        XCTAssertEqual(receiver.receive(sequence: 1, payload: "a").disposition, .duplicate)
        let receipt = receiver.receive(sequence: 2, payload: "b")
        XCTAssertEqual(receipt.disposition, .delivered)
        XCTAssertEqual(receipt.deliverable, ["b", "c"])
        XCTAssertEqual(receiver.receive(sequence: 4, payload: "d").deliverable, ["d", "e"])
        XCTAssertEqual(receiver.acknowledgement, Acknowledgement(cumulative: 5))
        XCTAssertEqual(receiver.receive(sequence: 0, payload: "?").disposition, .duplicate)
        XCTAssertEqual(receiver.receive(sequence: .max, payload: "?").disposition, .beyondWindow)
        XCTAssertEqual(receiver.duplicateCount, 3)
        XCTAssertEqual(receiver.beyondWindowCount, 2)
        XCTAssertEqual(receiver.deliveredCount, 5)
        XCTAssertEqual(receiver.bufferedCount, 0)
    }

    func testSelectiveBitsCoverSixtyFiveBeyondCumulative() {
        var receiver = ReliableReceiver<Int>(window: 100)
        for sequence: UInt64 in [2, 65, 66] { _ = receiver.receive(sequence: sequence, payload: 0) }
        XCTAssertEqual(receiver.acknowledgement, Acknowledgement(cumulative: 0, selective: 1 << 0 | 1 << 63))
    }
}

final class LossyStreamTests: XCTestCase {
    /// 300 items over a path with 20% loss, 5% duplication and 10% reordering, both ways
    /// (data and acknowledgements), arrive exactly once and in order.
    func testThreeHundredItemsExactlyOnceInOrderOverABadPath() {
        for seed: UInt64 in [1, 2, 3, 42, 0xDEAD_BEEF] {
            var rng = SplitMix64(seed: seed &* 7)
            var sender = ReliableSender<Int>()
            var receiver = ReliableReceiver<Int>()
            var data = LossyChannel<(UInt64, Int)>(seed: seed)
            var acks = LossyChannel<Acknowledgement>(seed: ~seed)
            var delivered: [Int] = []
            var nextItem = 0
            var now: UInt64 = 0
            // Typed and pasted: bursts of up to 50 at random moments.
            var nextBurst: UInt64 = 0
            while now < 120_000 * ms {
                if now >= nextBurst && nextItem < 300 {
                    for _ in 0..<min(Int.random(in: 1...50, using: &rng), 300 - nextItem) {
                        XCTAssertNotNil(sender.enqueue(nextItem))
                        nextItem += 1
                    }
                    nextBurst = now + UInt64.random(in: 0...500, using: &rng) * ms
                }
                for transmission in sender.due(now: now) {
                    data.send((transmission.sequence, transmission.payload), now: now)
                }
                now += ms
                for (sequence, item) in data.arrivals(now: now) {
                    delivered += receiver.receive(sequence: sequence, payload: item).deliverable
                    acks.send(receiver.acknowledgement, now: now)
                }
                for ack in acks.arrivals(now: now) { sender.acknowledge(ack, now: now) }
                if nextItem == 300 && sender.isIdle { break }
            }
            XCTAssertEqual(delivered, Array(0..<300), "seed \(seed)")
            XCTAssertTrue(sender.isIdle, "seed \(seed)")
            XCTAssertLessThan(now, 60_000 * ms, "seed \(seed): took \(now / ms) ms")
            XCTAssertGreaterThan(data.dropped, 0)
            XCTAssertGreaterThan(data.duplicated + acks.duplicated, 0)
            XCTAssertGreaterThan(data.delayed, 0)
            XCTAssertGreaterThan(receiver.duplicateCount, 0)
            XCTAssertGreaterThan(sender.retransmissions, 0)
        }
    }

    /// The room's relay, end to end through the codec: three members each send 100 messages
    /// over their own bad path; the server relays every accepted message into every member's
    /// stream. Every member sees all 300 exactly once, each sender's in its order, and all in
    /// the same overall order.
    func testRelayThroughTheCodecKeepsEverySendersOrder() throws {
        struct Member {
            let nick: String
            let token: SessionToken
            var toServer: LossyChannel<[UInt8]>
            var toClient: LossyChannel<[UInt8]>
            var clientSender = ReliableSender<ClientCommand>()
            var clientReceiver = ReliableReceiver<RoomEvent>()
            var serverReceiver = ReliableReceiver<ClientCommand>()
            var serverSender = ReliableSender<RoomEvent>()
            var seen: [String] = []
            var written = 0
        }
        var rng = SplitMix64(seed: 99)
        var members = (0..<3).map { index in
            Member(
                nick: "m\(index)", token: SessionToken.random(using: &rng),
                toServer: LossyChannel(seed: UInt64(index) * 2 + 100),
                toClient: LossyChannel(seed: UInt64(index) * 2 + 101))
        }
        var now: UInt64 = 0
        var malformed = 0
        while now < 300_000 * ms {
            for m in members.indices {
                if members[m].written < 100 && rng.chance(0.05) {
                    _ = members[m].clientSender.enqueue(
                        .say(kind: .text, text: "\(members[m].nick)-\(members[m].written)"))
                    members[m].written += 1
                }
                for t in members[m].clientSender.due(now: now) {
                    let packet = ClientPacket.command(token: members[m].token, sequence: t.sequence, t.payload)
                    members[m].toServer.send(try RoomCodec.encode(packet), now: now)
                }
                for t in members[m].serverSender.due(now: now) {
                    let packet = ServerPacket.deliver(token: members[m].token, sequence: t.sequence, t.payload)
                    members[m].toClient.send(try RoomCodec.encode(packet), now: now)
                }
            }
            now += ms
            // Server side.
            for m in members.indices {
                for datagram in members[m].toServer.arrivals(now: now) {
                    guard let packet = try? RoomCodec.decodeClientPacket(datagram), packet.token == members[m].token
                    else {
                        malformed += 1
                        continue
                    }
                    switch packet {
                    case .command(_, let sequence, let command):
                        let receipt = members[m].serverReceiver.receive(sequence: sequence, payload: command)
                        let ack = ServerPacket.ack(token: members[m].token, members[m].serverReceiver.acknowledgement)
                        members[m].toClient.send(try RoomCodec.encode(ack), now: now)
                        for case .say(let kind, let text) in receipt.deliverable {
                            let event = RoomEvent.message(
                                from: members[m].nick, kind: kind, text: text, unixMillis: now / ms, flags: [])
                            for r in members.indices { XCTAssertNotNil(members[r].serverSender.enqueue(event)) }
                        }
                    case .ack(_, let ack):
                        members[m].serverSender.acknowledge(ack, now: now)
                    default:
                        XCTFail("unexpected \(packet)")
                    }
                }
            }
            // Client side.
            for m in members.indices {
                for datagram in members[m].toClient.arrivals(now: now) {
                    let packet = try RoomCodec.decodeServerPacket(datagram)
                    XCTAssertEqual(packet.token, members[m].token)
                    switch packet {
                    case .deliver(_, let sequence, let event):
                        for case .message(_, _, let text, _, _) in members[m].clientReceiver.receive(
                            sequence: sequence, payload: event
                        ).deliverable {
                            members[m].seen.append(text)
                        }
                        let ack = ClientPacket.ack(token: members[m].token, members[m].clientReceiver.acknowledgement)
                        members[m].toServer.send(try RoomCodec.encode(ack), now: now)
                    case .ack(_, let ack):
                        members[m].clientSender.acknowledge(ack, now: now)
                    default:
                        XCTFail("unexpected \(packet)")
                    }
                }
            }
            if members.allSatisfy({ $0.seen.count == 300 && $0.clientSender.isIdle && $0.serverSender.isIdle }) {
                break
            }
        }
        XCTAssertEqual(malformed, 0)
        for member in members {
            XCTAssertEqual(member.seen.count, 300, member.nick)
            XCTAssertEqual(Set(member.seen).count, 300, "\(member.nick) saw duplicates")
            for sender in members {
                let fromSender = member.seen.filter { $0.hasPrefix(sender.nick + "-") }
                XCTAssertEqual(
                    fromSender, (0..<100).map { "\(sender.nick)-\($0)" }, "\(member.nick) from \(sender.nick)")
            }
            XCTAssertEqual(member.seen, members[0].seen, "every member sees the same order")
        }
    }
}
