import Foundation
import NIOCore
import ServiceLifecycle
import UDPKit
import UDPServers
import UDPText
import XCTest

@testable import UDPStudio

final class HistoryTests: XCTestCase {
    private func record(_ size: Int) -> StudioRecord {
        StudioRecord(
            id: 0, time: Date(), direction: .incoming, listener: 1, localPort: 1, remoteAddress: "127.0.0.1",
            remotePort: 2, bytes: Array(repeating: 0x41, count: size))
    }

    func testKeepsTheNewestWithinTheRecordBound() {
        var history = History(capacity: 5)
        for _ in 0..<12 { history.append(record(1)) }
        XCTAssertEqual(history.count, 5)
        XCTAssertEqual(history.records().map(\.id), [8, 9, 10, 11, 12])
        XCTAssertEqual(history.records(after: 9).map(\.id), [10, 11, 12])
        XCTAssertEqual(history.records(after: 0, limit: 2).map(\.id), [11, 12])
        XCTAssertEqual(history.records(after: 12), [])
        XCTAssertNil(history.record(7))
        XCTAssertEqual(history.record(8)?.id, 8)
        XCTAssertEqual(history.bytes, 5)
    }

    func testKeepsWithinTheByteBound() {
        var history = History(capacity: 100, byteLimit: 1000)
        for _ in 0..<10 { history.append(record(300)) }
        XCTAssertEqual(history.count, 3)
        XCTAssertEqual(history.bytes, 900)
        XCTAssertEqual(history.records().map(\.id), [8, 9, 10])
        history.removeAll()
        XCTAssertEqual(history.count, 0)
        XCTAssertEqual(history.append(record(1)), 11, "ids keep counting after a clear")
    }

    func testJSONCarriesExactHexAndEscapedText() throws {
        var r = record(0)
        r.bytes = Array("<img src=x onerror=alert(1)>\u{1b}[2J\n".utf8) + [0xff]
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as! [String: Any]
        XCTAssertEqual(json["hex"] as? String, Hex.encode(r.bytes))
        XCTAssertEqual(json["text"] as? String, "<img src=x onerror=alert(1)>\\e[2J\\n\\xff")
        XCTAssertEqual(json["length"] as? Int, r.bytes.count)
        let back = try JSONDecoder().decode(StudioRecord.self, from: JSONEncoder().encode(r))
        XCTAssertEqual(back.bytes, r.bytes)
    }
}

final class RuleTests: XCTestCase {
    private func datagram(_ text: String, port: Int = 40000) throws -> Datagram {
        Datagram(payload: ByteBuffer(string: text), sender: try UDPAddress(ip: "127.0.0.1", port: port))
    }

    func testFirstMatchWins() throws {
        let rules = try StudioRules([
            AutoReplyRule(match: .contains, pattern: "ping", reply: "first"),
            AutoReplyRule(match: .exact, pattern: "ping", reply: "second"),
            AutoReplyRule(match: .regex, pattern: "^GET (\\w+)$", reply: "got {1} from {from}"),
            AutoReplyRule(match: .hexPrefix, pattern: "01 02", reply: "bin {hex}"),
        ])
        XCTAssertEqual(
            rules.reply(to: try datagram("ping"), count: 1).map { String(decoding: $0, as: UTF8.self) }, "first")
        XCTAssertEqual(
            rules.reply(to: try datagram("GET temp"), count: 1).map { String(decoding: $0, as: UTF8.self) },
            "got temp from 127.0.0.1")
        var binary = ByteBuffer(bytes: [1, 2, 3])
        let d = Datagram(payload: binary, sender: try UDPAddress(ip: "127.0.0.1", port: 1234))
        XCTAssertEqual(rules.reply(to: d, count: 1).map { String(decoding: $0, as: UTF8.self) }, "bin 010203")
        binary = ByteBuffer(bytes: [2, 1])
        XCTAssertNil(rules.reply(to: Datagram(payload: binary, sender: d.sender), count: 1))
        XCTAssertNil(rules.reply(to: try datagram("nothing"), count: 1))
    }

    func testStudioRulesAnswerLikeEchoRules() throws {
        // Each kind the page offers, next to the `udp echo --rule` it stands for: both must give the same replies.
        let studio: [AutoReplyRule] = [
            AutoReplyRule(match: .exact, pattern: "ping", reply: "pong {count}"),
            AutoReplyRule(match: .prefix, pattern: "GET ", reply: "get {length}"),
            AutoReplyRule(match: .contains, pattern: "temp", reply: "21"),
            AutoReplyRule(match: .regex, pattern: "^set (\\w+)=(\\d+)$", reply: "{1} is {2}"),
            AutoReplyRule(match: .hexPrefix, pattern: "ff 01", reply: "ACK {hex}"),
        ]
        let echo = try ReplyRules(parsing: studio.map(\.ruleText))
        let rules = try StudioRules(studio)
        let payloads: [[UInt8]] = [
            Array("ping".utf8), Array("ping!".utf8), Array("GET /x".utf8), Array("xGET ".utf8),
            Array("the temp".utf8), Array("set a=12".utf8), [0xff, 0x01, 0x02], [0x01, 0xff], [],
        ]
        var answered = 0
        for payload in payloads {
            let d = Datagram(payload: ByteBuffer(bytes: payload), sender: try UDPAddress(ip: "127.0.0.1", port: 40000))
            let expected = echo.reply(to: d, count: 3)?.reply
            XCTAssertEqual(rules.reply(to: d, count: 3), expected, "\(payload)")
            if expected != nil { answered += 1 }
        }
        XCTAssertEqual(answered, 5)
        XCTAssertEqual(
            rules.reply(to: try datagram("GET /index"), count: 1).map { String(decoding: $0, as: UTF8.self) }, "get 10")
        // A kind chosen on the page is never re-read from the pattern: an exact "regex:a" is the text "regex:a".
        let literal = try StudioRules([AutoReplyRule(match: .exact, pattern: "regex:a", reply: "lit")])
        XCTAssertNotNil(literal.reply(to: try datagram("regex:a"), count: 1))
        XCTAssertNil(literal.reply(to: try datagram("a"), count: 1))
    }

    func testCapturesStayLiteral() throws {
        let rules = try StudioRules([AutoReplyRule(match: .regex, pattern: "name=(.*)", reply: "Hello, {1}!")])
        let reply = rules.reply(to: try datagram("name={text}}"), count: 1)
        XCTAssertEqual(reply.map { String(decoding: $0, as: UTF8.self) }, "Hello, {text}}!")
    }

    func testBadRulesAreRefusedWithTheirNumber() {
        XCTAssertThrowsError(
            try StudioRules([
                AutoReplyRule(match: .exact, pattern: "a", reply: "ok"),
                AutoReplyRule(match: .regex, pattern: "(", reply: "x"),
            ])
        ) { error in
            XCTAssertTrue("\(error)".hasPrefix("rule 2: invalid regular expression"), "\(error)")
        }
        XCTAssertThrowsError(try StudioRules([AutoReplyRule(match: .hexPrefix, pattern: "zz", reply: "x")]))
        XCTAssertThrowsError(try StudioRules([AutoReplyRule(match: .exact, pattern: "a", reply: "{nope}")]))
    }

    func testGuardRefusesLoopPortsBroadcastOwnSocketsAndAmplification() throws {
        var guardian = ReplyGuard()
        let now = ContinuousClock.now
        for port in [0, 7, 13, 17, 19, 37] {
            XCTAssertEqual(
                guardian.check(reply: 1, to: try datagram("x", port: port), ownPorts: [], now: now), .loopPort)
        }
        var broadcast = try datagram("x")
        broadcast.arrival = Datagram.Arrival(
            destination: try UDPAddress(ip: "255.255.255.255", port: 9), interfaceIndex: 1,
            interfaceName: "lo", kind: .broadcast)
        XCTAssertEqual(guardian.check(reply: 1, to: broadcast, ownPorts: [], now: now), .broadcast)
        XCTAssertEqual(
            guardian.check(reply: 1, to: try datagram("x", port: 5000), ownPorts: [5000], now: now), .ownSocket)
        // Replies no larger than the request are not limited.
        for _ in 0..<100 { XCTAssertNil(guardian.check(reply: 1, to: try datagram("x"), ownPorts: [], now: now)) }
        // Larger ones get the burst, then the rate, while the byte budget covers them (1,000-byte requests, 1,001-byte
        // replies: it does).
        let large = String(repeating: "x", count: 1_000)
        for _ in 0..<40 { XCTAssertNil(guardian.check(reply: 1_001, to: try datagram(large), ownPorts: [], now: now)) }
        XCTAssertEqual(
            guardian.check(reply: 1_001, to: try datagram(large, port: 40001), ownPorts: [], now: now), .rateLimited,
            "a new port of the same address earns no new allowance")
        XCTAssertNil(guardian.check(reply: 1_001, to: try datagram(large), ownPorts: [], now: now + .milliseconds(100)))
    }

    /// `udp echo`'s byte budget: an address is sent at most three times the bytes received from it, IP and UDP headers
    /// counted (28 bytes over IPv4), whatever the rate allows and whichever port it uses.
    func testGuardKeepsRepliesWithinThreeTimesTheBytesReceived() throws {
        var guardian = ReplyGuard()
        let now = ContinuousClock.now
        var received = 0
        var sent = 0
        var refused = 0
        for index in 0..<30 {
            // Empty requests (28 bytes on the wire) and 100-byte replies (128): about two in three fit the budget.
            let request = try datagram("", port: 40000 + index % 3)
            received += 28
            if let refusal = guardian.check(reply: 100, to: request, ownPorts: [], now: now) {
                XCTAssertEqual(refusal, .amplification)
                refused += 1
            } else {
                sent += 128
            }
        }
        // The budget is spent, not hoarded: all but what the last reply would have needed went out.
        XCTAssertLessThanOrEqual(sent, 3 * received)
        XCTAssertGreaterThan(sent, 3 * received - 128)
        XCTAssertGreaterThan(refused, 0)
        XCTAssertEqual(
            ReplyGuard.Refusal.amplification.rawValue, EchoServer.DropReason.amplification.rawValue,
            "the studio and udp echo name the refusal alike")
    }
}

final class StudioEngineTests: XCTestCase {
    private func makeStudio(library: URL = temporaryLibrary()) throws -> Studio {
        var configuration = Studio.Configuration()
        configuration.libraryLocation = library
        configuration.historyCapacity = 1000
        return try Studio(configuration: configuration)
    }

    func testAnInterfaceOrSourceWithoutAGroupIsRefused() async throws {
        let studio = try makeStudio()
        for spec in [
            ListenerSpec(address: "127.0.0.1:0", interface: "lo"),
            ListenerSpec(address: "127.0.0.1:0", group: " ", interface: "", source: "127.0.0.2"),
        ] {
            do {
                try await studio.addListener(spec)
                XCTFail("\(spec) was accepted")
            } catch let error as StudioError {
                XCTAssertTrue(error.description.contains("give the group too"), error.description)
            }
        }
        XCTAssertEqual(studio.listeners.count, 0)
        await studio.shutdown()
    }

    func testListenerCountsEveryDatagramExactlyAndRemovingFreesThePort() async throws {
        let studio = try makeStudio()
        let info = try await studio.addListener(ListenerSpec(address: "127.0.0.1:0"))
        XCTAssertEqual(studio.listeners.count, 1)
        let result = try python(
            """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            for i in range(3000):
                s.sendto(b"n%d" % i, ("127.0.0.1", int(sys.argv[1])))
            print(s.getsockname()[1])
            """, [String(info.port)])
        XCTAssertEqual(result.status, 0)
        let peerPort = Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines))
        // Every datagram is either counted or reported as dropped by the kernel (a loaded machine may drop some).
        let all = await eventually {
            studio.listeners.first.map { $0.counters.received + ($0.kernelDrops ?? 0) } == 3000
        }
        let counted = studio.listeners[0]
        XCTAssertTrue(all, "received \(counted.counters.received) + dropped \(counted.kernelDrops ?? -1) of 3000")
        XCTAssertGreaterThan(counted.counters.received, 0)
        let records = studio.records()
        XCTAssertEqual(records.count, min(1000, counted.counters.received), "the history keeps the newest 1000")
        if counted.kernelDrops == 0 {
            XCTAssertEqual(counted.counters.receivedBytes, (0..<3000).reduce(0) { $0 + 1 + String($1).count })
        } else {
            XCTAssertTrue(
                (counted.counters.received * 2...counted.counters.received * 5).contains(counted.counters.receivedBytes)
            )
        }
        XCTAssertEqual(studio.snapshot().totals.received, counted.counters.received)
        if counted.kernelDrops == 0 { XCTAssertEqual(records.last?.bytes, Array("n2999".utf8)) }
        XCTAssertEqual(records.last?.remotePort, peerPort)
        XCTAssertEqual(records.last?.remoteAddress, "127.0.0.1")
        XCTAssertEqual(records.last?.localPort, info.port)

        let removed = await studio.removeListener(info.id)
        XCTAssertTrue(removed)
        XCTAssertEqual(studio.listeners.count, 0)
        let again = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: info.port))
        await again.close()
        await studio.shutdown()
    }

    func testSendsTextAndHexByteExactAndRefusesBadInput() async throws {
        let studio = try makeStudio()
        let receiver = try PythonPeer(pythonReceiver, ["3", "2"])
        let port = receiver.firstLine()
        for bad in [
            SendRequest(to: "127.0.0.1:\(port)", hex: "48 6"), SendRequest(to: "127.0.0.1:\(port)", hex: "zz"),
            SendRequest(to: "127.0.0.1:\(port)"), SendRequest(to: "127.0.0.1:\(port)", text: "a", hex: "41"),
            SendRequest(to: "127.0.0.1", text: "a"), SendRequest(to: "127.0.0.1:99999", text: "a"),
            SendRequest(to: "127.0.0.1:\(port)", text: "a", count: 0),
            SendRequest(to: "127.0.0.1:\(port)", hex: String(repeating: "00", count: 65_508)),
        ] {
            do {
                try await studio.send(bad)
                XCTFail("sent \(bad)")
            } catch {
                guard case .badInput = error else { return XCTFail("\(error)") }
            }
        }
        XCTAssertEqual(studio.snapshot().totals.sent, 0)
        try await studio.send(SendRequest(to: "127.0.0.1:\(port)", text: "héllo\\n", escapes: true))
        try await studio.send(SendRequest(to: "127.0.0.1:\(port)", hex: "00 ff 0d 0a"))
        try await studio.send(SendRequest(to: "127.0.0.1:\(port)", text: "你好", encoding: "gbk"))
        let lines = receiver.finish().split(separator: "\n").map { $0.split(separator: " ")[0] }
        XCTAssertEqual(lines, ["68c3a96c6c6f0a", "00ff0d0a", "c4e3bac3"])
        let outgoing = studio.records().filter { $0.direction == .outgoing }
        XCTAssertEqual(outgoing.map { Hex.encode($0.bytes) }, ["68c3a96c6c6f0a", "00ff0d0a", "c4e3bac3"])
        XCTAssertEqual(studio.snapshot().totals.sent, 3)
        await studio.shutdown()
    }

    func testRepeatsAndRoundTrips() async throws {
        let studio = try makeStudio()
        let echo = try PythonPeer(
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            print(s.getsockname()[1], flush=True)
            s.settimeout(3)
            for _ in range(5):
                data, addr = s.recvfrom(65535)
                s.sendto(b"re:" + data, addr)
            """)
        let port = echo.firstLine()
        let result = try await studio.send(SendRequest(to: "127.0.0.1:\(port)", text: "x", count: 5, interval: 20))
        XCTAssertEqual(result.sent, 5)
        _ = echo.finish()
        let answered = await eventually { studio.records().filter { $0.direction == .incoming }.count == 5 }
        XCTAssertTrue(answered)
        let replies = studio.records().filter { $0.direction == .incoming }
        XCTAssertEqual(replies.map { String(decoding: $0.bytes, as: UTF8.self) }, Array(repeating: "re:x", count: 5))
        XCTAssertTrue(
            replies.allSatisfy { ($0.roundTrip ?? -1) >= 0 && ($0.roundTrip ?? 99) < 5 },
            "every reply has its round trip")
        await studio.shutdown()
    }

    func testAutoReplyAnswersAndRefusesLoopPorts() async throws {
        let studio = try makeStudio()
        let info = try await studio.addListener(
            ListenerSpec(
                address: "127.0.0.1:0",
                rules: [
                    AutoReplyRule(match: .regex, pattern: "^hello (\\w+)", reply: "Hello, {1}!")
                ]))
        let result = try python(
            """
            import socket, sys
            port = int(sys.argv[1])
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.sendto(b"hello will", ("127.0.0.1", port))
            print(s.recvfrom(100)[0].decode())
            s.sendto(b"bye", ("127.0.0.1", port))
            try:
                print(s.recvfrom(100)[0].decode())
            except socket.timeout:
                print("no reply")
            # From the echo port: must not be answered.
            e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            e.bind(("127.0.0.1", 7))
            e.settimeout(1)
            e.sendto(b"hello loop", ("127.0.0.1", port))
            try:
                print(e.recvfrom(100)[0].decode())
            except socket.timeout:
                print("no reply")
            """, [String(info.port)])
        XCTAssertEqual(result.output.split(separator: "\n"), ["Hello, will!", "no reply", "no reply"])
        let counters = studio.listeners[0].counters
        XCTAssertEqual(counters.received, 3)
        XCTAssertEqual(counters.autoReplies, 1)
        XCTAssertEqual(counters.refusedReplies, 1)
        XCTAssertTrue(studio.records().contains { $0.marks.contains("no-reply: loop-port") && $0.remotePort == 7 })
        XCTAssertTrue(studio.records().contains { $0.direction == .outgoing && $0.marks == ["auto-reply"] })
        await studio.shutdown()
    }

    /// A rule's reply larger than its request goes out only within three times the bytes received from the sender
    /// (as `udp echo`'s): 30 empty datagrams (28 bytes each on the wire) answered by a 100-byte rule (128 on the
    /// wire) from one Python socket get about two replies in three; the others are refused and marked in the log.
    func testAutoRepliesStayWithinThreeTimesTheBytesReceived() async throws {
        let studio = try makeStudio()
        let reply = String(repeating: "R", count: 100)
        let info = try await studio.addListener(
            ListenerSpec(
                address: "127.0.0.1:0",
                rules: [
                    AutoReplyRule(match: .exact, pattern: "", reply: reply)
                ]))
        let result = try python(
            """
            import socket, sys, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            for _ in range(30):
                s.sendto(b"", ("127.0.0.1", int(sys.argv[1])))
                time.sleep(0.005)
            replies, size = 0, 0
            try:
                while True:
                    data = s.recvfrom(70000)[0]
                    replies += 1
                    size += len(data)
            except socket.timeout:
                pass
            print(replies, size)
            """, [String(info.port)])
        let numbers = result.output.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        XCTAssertEqual(numbers.count, 2, result.output)
        let (replies, bytes) = (numbers.first ?? 0, numbers.last ?? 0)
        let counters = studio.listeners[0].counters
        print(
            "studio auto-replies to 30 empty datagrams (840 bytes on the wire): \(replies) replies, \(replies * 128) bytes on the wire"
        )
        XCTAssertEqual(counters.received, 30)
        XCTAssertEqual(bytes, replies * 100)
        XCTAssertLessThanOrEqual(
            replies * (100 + 28), 3 * 30 * 28, "more than three times the bytes received, on the wire")
        XCTAssertGreaterThan(replies * (100 + 28), 3 * 30 * 28 - 128, "the budget was not used")
        XCTAssertEqual(counters.autoReplies, replies)
        XCTAssertEqual(counters.refusedReplies, 30 - replies)
        XCTAssertEqual(studio.records().filter { $0.marks.contains("no-reply: amplification") }.count, 30 - replies)
        await studio.shutdown()
    }

    /// Run as a service, the studio shuts down on a graceful shutdown: before `run()` returns, its listener and its
    /// sending socket are closed (their ports free again), and the `changes()` streams have ended.
    func testRunClosesEverySocketOnAGracefulShutdown() async throws {
        let studio = try makeStudio()
        let group = ServiceGroup(services: [studio])
        let task = Task { try await group.run() }
        let info = try await studio.addListener(ListenerSpec(address: "127.0.0.1:0"))
        let sent = try await studio.send(SendRequest(to: "127.0.0.1:\(info.port)", text: "hi"))
        let changes = studio.changes()
        let arrived = await eventually { studio.listeners.first?.counters.received == 1 }
        XCTAssertTrue(arrived)

        await group.triggerGracefulShutdown()
        try await task.value
        let sendingPort = try XCTUnwrap(sent.from.split(separator: ":").last.flatMap { Int($0) }, sent.from)
        for address in [
            try UDPAddress(ip: "127.0.0.1", port: info.port), try UDPAddress(ip: "0.0.0.0", port: sendingPort),
        ] {
            do {
                let again = try await UDPSocket.bind(to: address)
                await again.close()
            } catch {
                XCTFail("\(address) is still bound after run() returned: \(error)")
            }
        }
        var iterator = changes.makeAsyncIterator()
        while await iterator.next() != nil {}
        XCTAssertTrue(studio.listeners.isEmpty)
    }

    func testSavedPacketsSurviveARestart() async throws {
        let location = temporaryLibrary()
        let first = try makeStudio(library: location)
        try first.save(SavedPacket(name: "greeting", to: "127.0.0.1:9", text: "hi\\n", escapes: true))
        try first.save(SavedPacket(name: "probe", to: "[::1]:9", hex: "01 02"))
        try first.save(
            SavedSequence(
                name: "both", steps: [.init(packet: "greeting", delay: 10), .init(packet: "probe", delay: 0)]))
        XCTAssertThrowsError(try first.save(SavedPacket(name: "bad", to: "127.0.0.1:9", hex: "0")))
        XCTAssertThrowsError(try first.save(SavedPacket(name: "", to: "127.0.0.1:9", text: "x")))
        XCTAssertThrowsError(try first.save(SavedSequence(name: "s", steps: [.init(packet: "missing", delay: 0)])))
        await first.shutdown()

        let second = try makeStudio(library: location)
        XCTAssertEqual(second.library.packets.map(\.name), ["greeting", "probe"])
        XCTAssertEqual(second.library.packet(named: "probe")?.hex, "01 02")
        XCTAssertEqual(second.library.sequences.first?.steps.count, 2)
        let attributes = try FileManager.default.attributesOfItem(atPath: location.path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertTrue(try second.deleteSaved("probe"))
        XCTAssertEqual(try PacketLibrary.load(from: location).packets.map(\.name), ["greeting"])
        await second.shutdown()
    }

    func testLibraryLocationFollowsXDG() {
        XCTAssertEqual(
            PacketLibrary.defaultLocation(environment: ["XDG_CONFIG_HOME": "/x/cfg", "HOME": "/home/u"]).path,
            "/x/cfg/udp/packets.json")
        XCTAssertEqual(
            PacketLibrary.defaultLocation(environment: ["HOME": "/home/u"]).path, "/home/u/.config/udp/packets.json")
        XCTAssertEqual(
            PacketLibrary.defaultLocation(environment: ["XDG_CONFIG_HOME": "relative", "HOME": "/home/u"]).path,
            "/home/u/.config/udp/packets.json", "a relative XDG_CONFIG_HOME is ignored, as the spec says")
    }
}

final class KernelDropsTests: XCTestCase {
    func testReadsTheDropsColumnOfUnconnectedSocketsOnThePort() {
        let table = """
               sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
             6368: 0100007F:2328 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 320955 2 00000000597bc1a5 17
             6369: 0100007F:2328 0100007F:BD5A 01 00000000:00000000 00:00000000 00000000     0        0 320956 2 00000000a4737bfa 5
             6370: 00000000:2329 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 320957 2 00000000a4737bfb 3
            """
        XCTAssertEqual(KernelDrops.parse(table, ports: [9000]), [9000: 17])
        XCTAssertEqual(KernelDrops.parse(table, ports: [9000, 9001]), [9000: 17, 9001: 3])
    }
}
