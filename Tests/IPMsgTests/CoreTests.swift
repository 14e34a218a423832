import IPMsg
import UDPKit
import UDPText
import XCTest

final class CoreTests: XCTestCase {
    private let me = IPMsgIdentity(user: "bob", host: "bob-pc", nick: "Bob", group: "Ops")
    private let second: UInt64 = 1_000_000_000
    private func address(_ last: Int, port: Int = 2425) -> UDPAddress {
        try! UDPAddress(ip: "10.0.0.\(last)", port: port)
    }
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func sent(_ outputs: [IPMsgCore.Output]) -> [(IPMsgPacket, UDPAddress?)] {
        outputs.compactMap {
            switch $0 {
            case .send(let bytes, let to): return (try! IPMsgPacket.decode(bytes), to)
            case .broadcast(let bytes): return (try! IPMsgPacket.decode(bytes), nil)
            case .event: return nil
            }
        }
    }

    private func events(_ outputs: [IPMsgCore.Output]) -> [IPMsgCore.IPMsgEvent] {
        outputs.compactMap { if case .event(let event) = $0 { return event } else { return nil } }
    }

    func testAnnounceAnswerAndPresenceTable() throws {
        var core = IPMsgCore(identity: me)
        let announce = sent(core.announce(unixSeconds: 1_000))
        XCTAssertEqual(announce.count, 1)
        XCTAssertNil(announce[0].1)
        XCTAssertEqual(announce[0].0.command.mode, .entry)
        XCTAssertTrue(announce[0].0.command.has(.capableOfUTF8))
        XCTAssertEqual(announce[0].0.extra, bytes("Bob"))
        XCTAssertEqual(announce[0].0.group, bytes("Ops"))
        XCTAssertEqual(announce[0].0.user, bytes("bob"))

        // iptux announces itself: answered with a unicast ANSENTRY, shown as joined, read as UTF-8.
        let entry = bytes("1_iptux 0.8.3:5:alice:box:257:爱丽丝\0研发\0icon-tux.png\0utf-8\0")
        let outputs = core.receive(entry, from: address(2), now: 0, unixSeconds: 1_000)
        let answers = sent(outputs)
        XCTAssertEqual(answers.count, 1)
        XCTAssertEqual(answers[0].0.command.mode, .answerEntry)
        XCTAssertEqual(answers[0].1, address(2))
        guard case .joined(let peer)? = events(outputs).first else { return XCTFail("\(outputs)") }
        XCTAssertEqual(peer.nick, "爱丽丝")
        XCTAssertEqual(peer.group, "研发")
        XCTAssertEqual(peer.version.label, "iptux 0.8.3")
        XCTAssertEqual(peer.encoding, .utf8)
        XCTAssertTrue(peer.isAbsent == false)

        // An ANSENTRY is not answered; a BR_ABSENCE with a new nick is a change; BR_EXIT removes.
        let ans = core.receive(bytes("1:6:carol:c:3:Carol\0\0"), from: address(3), now: 0, unixSeconds: 1_000)
        XCTAssertTrue(sent(ans).isEmpty)
        XCTAssertEqual(core.peers.count, 2)
        let change = core.receive(bytes("1:7:carol:c:260:Caz\0\0"), from: address(3), now: 0, unixSeconds: 1_000)
        XCTAssertTrue(sent(change).isEmpty)
        guard case .changed(let changed)? = events(change).first else { return XCTFail("\(change)") }
        XCTAssertEqual(changed.nick, "Caz")
        XCTAssertTrue(changed.isAbsent)
        XCTAssertEqual(core.peers(named: "caz").map(\.address), [address(3)])
        guard
            case .left? = events(core.receive(bytes("1:8:carol:c:2:\0"), from: address(3), now: 0, unixSeconds: 1_000))
                .first
        else {
            return XCTFail("no left event")
        }
        XCTAssertEqual(core.peers.count, 1)
    }

    func testGBKPeerIsReadAndWrittenInGBK() throws {
        var core = IPMsgCore(identity: me)
        let nick = try TextEncoding.gbk.encode("张三")
        let group = try TextEncoding.gbk.encode("销售部")
        let feiq =
            bytes("1_lbt6_0#128#3C970E8A1B2C#0#0#0#4001#9:1700000000:zhang:ZHANG-PC:1:") + nick + [0] + group + [0]
        let outputs = core.receive(feiq, from: address(4), now: 0, unixSeconds: 1_000)
        guard case .joined(let peer)? = events(outputs).first else { return XCTFail("\(outputs)") }
        XCTAssertEqual(peer.nick, "张三")
        XCTAssertEqual(peer.group, "销售部")
        XCTAssertEqual(peer.version.client, "FeiQ")
        XCTAssertEqual(peer.encoding, .gbk)
        XCTAssertFalse(peer.acceptsUTF8)

        let text = try TextEncoding.gbk.encode("你好，明天见")
        let message = bytes("1_lbt6_0#128#3C970E8A1B2C#0#0#0#4001#9:1700000001:zhang:ZHANG-PC:288:") + text + [0]
        let got = core.receive(message, from: address(4), now: 0, unixSeconds: 1_000)
        guard case .message(let incoming)? = events(got).first else { return XCTFail("\(got)") }
        XCTAssertEqual(incoming.text.string, "你好，明天见")
        XCTAssertEqual(incoming.from.nick, "张三")

        // Our answer goes back in GBK, without UTF8OPT.
        let (_, out) = try core.send("收到", to: address(4), now: 0, unixSeconds: 1_000)
        let packet = sent(out)[0].0
        XCTAssertEqual(packet.extra, try TextEncoding.gbk.encode("收到"))
        XCTAssertFalse(packet.command.has(.utf8))
        XCTAssertTrue(packet.command.has(.sendCheck))
    }

    func testUndecodableBytesAreKeptAsInvalid() {
        var core = IPMsgCore(identity: me)
        let got = core.receive(bytes("1:5:x:y:32:ok ") + [0xff, 0xfe] + [0], from: address(5), now: 0, unixSeconds: 1)
        guard case .message(let incoming)? = events(got).first else { return XCTFail("\(got)") }
        XCTAssertEqual(incoming.text.escaped, "ok \\xff\\xfe")
    }

    func testTheTutorialPacketIsShownAndNotAcknowledged() {
        var core = IPMsgCore(identity: me)
        let got = core.receive(
            bytes("1:100:will:will-pc:32:will broadcast"), from: address(9, port: 40000), now: 0, unixSeconds: 1)
        XCTAssertTrue(sent(got).isEmpty, "no SENDCHECKOPT, so no RECVMSG")
        guard case .message(let incoming)? = events(got).first else { return XCTFail("\(got)") }
        XCTAssertEqual(incoming.text.string, "will broadcast")
        XCTAssertEqual(incoming.from.nick, "will")
    }

    func testDuplicatesAreAcknowledgedEachTimeButShownOnce() throws {
        var core = IPMsgCore(identity: me)
        let message = bytes("1_iptux 0.8.3:77:alice:box:288:hello\0")
        var shown = 0
        var acks: [UInt32] = []
        for _ in 0..<3 {
            let outputs = core.receive(message, from: address(2), now: 0, unixSeconds: 1)
            shown += events(outputs).filter { if case .message = $0 { return true } else { return false } }.count
            for (packet, to) in sent(outputs) {
                XCTAssertEqual(packet.command.mode, .receivedMessage)
                XCTAssertEqual(to, address(2))
                acks.append(packet.acknowledgedNumber ?? 0)
            }
        }
        XCTAssertEqual(shown, 1)
        XCTAssertEqual(acks, [77, 77, 77])
        XCTAssertEqual(core.counters.duplicates, 2)
        // A broadcast or automatic answer is never acknowledged.
        XCTAssertTrue(
            sent(
                core.receive(
                    bytes("1:78:alice:box:\(0x20 | 0x100 | 0x400):all\0"), from: address(2), now: 0, unixSeconds: 1)
            ).isEmpty)
        XCTAssertTrue(
            sent(
                core.receive(
                    bytes("1:79:alice:box:\(0x20 | 0x100 | 0x2000):away\0"), from: address(2), now: 0, unixSeconds: 1)
            ).isEmpty)
        // The same number from another address is another message.
        XCTAssertEqual(events(core.receive(message, from: address(3), now: 0, unixSeconds: 1)).count, 1)
        // After the sender announces itself again it may reuse numbers.
        _ = core.receive(bytes("1_iptux 0.8.3:1:alice:box:1:Alice\0\0"), from: address(2), now: 0, unixSeconds: 1)
        XCTAssertEqual(events(core.receive(message, from: address(2), now: 0, unixSeconds: 1)).count, 1)
    }

    func testSendRetriesAboutOnceASecondThenFails() throws {
        var core = IPMsgCore(identity: me)
        let peer = address(2)
        let (id, first) = try core.send("hi", to: peer, now: 0, unixSeconds: 5_000)
        XCTAssertEqual(id, 5_000)
        XCTAssertEqual(sent(first).count, 1)
        XCTAssertEqual(core.nextDeadline, second)
        XCTAssertTrue(core.tick(now: second / 2).isEmpty)
        var resends: [IPMsgPacket] = []
        var now: UInt64 = 0
        var failure: IPMsgCore.IPMsgEvent?
        while failure == nil && now < 10 * second {
            now += second
            let outputs = core.tick(now: now)
            resends += sent(outputs).map(\.0)
            failure = events(outputs).first
        }
        XCTAssertEqual(resends.count, 3, "four sends in all")
        XCTAssertTrue(
            resends.allSatisfy { $0.packetNumber == id && $0.command.has(.retry) && $0.extra == Array("hi".utf8) })
        guard case .undelivered(let failedID, let to, let tries)? = failure else { return XCTFail("no failure") }
        XCTAssertEqual(failedID, id)
        XCTAssertEqual(to.address, peer)
        XCTAssertEqual(tries, 4)
        XCTAssertEqual(now, 4 * second)
        XCTAssertNil(core.nextDeadline)
    }

    func testAcknowledgementStopsRetries() throws {
        var core = IPMsgCore(identity: me)
        let (id, _) = try core.send("hi", to: address(2), now: 0, unixSeconds: 5_000)
        _ = core.tick(now: second)
        // An acknowledgement from another address does not count.
        XCTAssertTrue(core.receive(bytes("1:9:a:b:33:\(id)\0"), from: address(3), now: second, unixSeconds: 1).isEmpty)
        let outputs = core.receive(bytes("1:9:a:b:33:\(id)\0"), from: address(2), now: second, unixSeconds: 1)
        guard case .delivered(let delivered, _)? = events(outputs).first else { return XCTFail("\(outputs)") }
        XCTAssertEqual(delivered, id)
        XCTAssertTrue(core.tick(now: 10 * second).isEmpty)
        XCTAssertEqual(core.unacknowledged, 0)
    }

    func testPacketNumbersGrowAcrossEverythingSent() throws {
        var core = IPMsgCore(identity: me)
        var numbers: [UInt32] = []
        numbers += sent(core.announce(unixSeconds: 100)).map(\.0.packetNumber)
        numbers.append(try core.send("a", to: address(2), now: 0, unixSeconds: 100).id)
        numbers += sent(core.receive(bytes("1:5:x:y:288:m\0"), from: address(2), now: 0, unixSeconds: 50)).map(
            \.0.packetNumber)
        numbers += sent(try core.sendToAll("all", unixSeconds: 100)).map(\.0.packetNumber)
        numbers += sent(core.leave(unixSeconds: 99)).map(\.0.packetNumber)
        XCTAssertEqual(numbers, [100, 101, 102, 103, 104])
    }

    func testOwnAndMalformedPacketsAreIgnoredAndCounted() {
        var core = IPMsgCore(identity: me)
        core.ownAddresses = [address(1)]
        XCTAssertTrue(core.receive(bytes("1:5:bob:bob-pc:1:Bob\0\0"), from: address(1), now: 0, unixSeconds: 1).isEmpty)
        XCTAssertEqual(core.counters.own, 1)
        for junk in ["", "hello", "1:x:a:b:32:hi", "1:2:a:b:zz:hi", "\u{0}\u{0}"] {
            XCTAssertTrue(core.receive(bytes(junk), from: address(7), now: 0, unixSeconds: 1).isEmpty, junk)
        }
        XCTAssertEqual(core.counters.malformed, 5)
        XCTAssertTrue(core.peers.isEmpty)
    }

    func testEntryFloodIsAnsweredAtABoundedRate() {
        var settings = IPMsgCore.Settings()
        settings.answersPerSecond = 20
        settings.answerBurst = 40
        var core = IPMsgCore(identity: me, settings: settings)
        // 5,000 BR_ENTRY from distinct addresses in one second, then 1 s more of them.
        var answers = 0
        for i in 0..<10_000 {
            let from = try! UDPAddress(ip: "10.\(1 + i / 65_536).\((i / 256) % 256).\(i % 256)", port: 2425)
            let now = UInt64(i) * (second / 5_000)
            answers += sent(core.receive(bytes("1:\(i + 1):u:h:1:n\0\0"), from: from, now: now, unixSeconds: 1)).count
        }
        // Burst 40 plus 20/s over 2 s.
        XCTAssertLessThanOrEqual(answers, 40 + 2 * 20 + 1)
        XCTAssertGreaterThanOrEqual(answers, 40)
        XCTAssertEqual(core.counters.answersSuppressed, 10_000 - answers - core.counters.peersRefused)
        XCTAssertLessThanOrEqual(core.peers.count, settings.maximumPeers)

        // The same address repeating BR_ENTRY is answered at most once per spacing.
        var quiet = IPMsgCore(identity: me)
        var repeated = 0
        for i in 0..<100 {
            repeated +=
                sent(
                    quiet.receive(
                        bytes("1:\(i + 1):u:h:1:n\0\0"), from: address(2), now: UInt64(i) * (second / 100),
                        unixSeconds: 1)
                ).count
        }
        XCTAssertEqual(repeated, 1)
    }

    func testUTF8CapablePeerGetsUTF8() throws {
        var core = IPMsgCore(identity: me)
        _ = core.receive(bytes("1:5:ken:jp:\(0x1000003):Ken\0\0"), from: address(6), now: 0, unixSeconds: 1)
        let (_, out) = try core.send("こんにちは", to: address(6), now: 0, unixSeconds: 1)
        let packet = sent(out)[0].0
        XCTAssertTrue(packet.command.has(.utf8))
        XCTAssertEqual(String(decoding: packet.extra, as: UTF8.self), "こんにちは")
        // An unknown address gets the default encoding; text it cannot carry is an error, not garbage.
        XCTAssertThrowsError(try core.send("😀", to: address(8), now: 0, unixSeconds: 1))
    }
}
