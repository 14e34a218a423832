import Foundation
import XCTest

/// `udp ipmsg` on a network of namespaces (see `TestLAN`), against real peers: iptux (under Xvfb) and Python
/// peers speaking like FeiQ (GBK, FeiQ's version string) and like the classic Python tutorial (the bare packet). Every
/// peer binds port 2425 on its own host; nothing leaves the namespaces.
final class IPMsgCLITests: LANTestCase {
    /// A peer on port 2425 that answers BR_ENTRY with ANSENTRY (nick and group in its encoding), acknowledges
    /// SENDMSG with SENDCHECKOPT, and prints what it gets ("entry ADDR", "msg NUMBER HEX", "ack NUMBER", "exit").
    /// When the first BR_ENTRY arrives, it runs its actions towards the sender:
    ///   dup:TEXT      one SENDMSG|SENDCHECKOPT sent three times with the same packet number ("sent-dup NUMBER")
    ///   say:TEXT      one SENDMSG|SENDCHECKOPT in its encoding ("sent NUMBER")
    ///   tutorial      the tutorial's bare packet, from another socket, to the subnet's broadcast address
    ///   junk          two malformed datagrams
    ///   offer:NAME    a SENDMSG offering a file NAME of `fileContent` bytes, served over TCP on port 2425
    ///                 to GETFILEDATA ("served ID BYTES")
    /// A SENDMSG with FILEATTACHOPT is answered by fetching each file over TCP ("fetched NAME SIZE SHA256").
    /// Stops after SECONDS.
    static let peer = """
        import hashlib, re, socket, sys, threading, time
        content = bytes(range(256)) * 40 + b'end'
        offers = []
        def serve_files():
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(('0.0.0.0', 2425))
            server.listen(4)
            server.settimeout(1)
            end = time.time() + float(sys.argv[6])
            while time.time() < end:
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    continue
                conn.settimeout(3)
                request = b''
                while b'\\0' not in request:
                    part = conn.recv(9000)
                    if not part:
                        break
                    request += part
                pkt_no, fid, offset = [int(x, 16) for x in request.split(b'\\0')[0].split(b':', 5)[5].split(b':')[:3]]
                if (pkt_no, fid) in offers:
                    conn.sendall(content[offset:])
                    print('served', fid, len(content) - offset, flush=True)
                conn.close()
        def fetch(addr, number, field):
            for entry in field.split(b'\\a'):
                entry = entry.lstrip(b':')
                if not entry:
                    continue
                m = re.match(rb'(\\d+):((?:[^:]|::)+):([0-9a-fA-F]+):', entry)
                fid, name, size = int(m.group(1)), m.group(2).replace(b'::', b':'), int(m.group(3), 16)
                c = socket.create_connection((addr[0], 2425), timeout=5)
                c.sendall(b'1:%d:fetcher:PEER-PC:96:%x:%x:0\\0' % (int(time.time()), number, fid))
                got = b''
                while len(got) < size:
                    part = c.recv(65536)
                    if not part:
                        break
                    got += part
                c.close()
                print('fetched', name.decode(), len(got), hashlib.sha256(got).hexdigest(), flush=True)
        version, user, nick, group, enc, seconds = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6])
        actions = sys.argv[7:]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.bind(('0.0.0.0', 2425))
        s.settimeout(0.2)
        num = [1700000000]
        def pkt(cmd, extra, ext=b'', number=None):
            if number is None:
                num[0] += 1
                number = num[0]
            return b'%s:%d:%s:PEER-PC:%d:' % (version, number, user, cmd) + extra + b'\\0' + ext
        def act(addr):
            for a in actions:
                kind, _, text = a.partition(':')
                if kind == 'dup':
                    num[0] += 1
                    p = pkt(0x120, text.encode(enc), number=num[0])
                    for _ in range(3):
                        s.sendto(p, addr)
                        time.sleep(0.3)
                    print('sent-dup', num[0], flush=True)
                elif kind == 'say':
                    p = pkt(0x120, text.encode(enc))
                    s.sendto(p, addr)
                    print('sent', num[0], flush=True)
                elif kind == 'tutorial':
                    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    t.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                    t.sendto(b'1:100:will:will-pc:32:will broadcast', (addr[0].rsplit('.', 1)[0] + '.255', 2425))
                    print('sent-tutorial', flush=True)
                elif kind == 'offer':
                    num[0] += 1
                    offers.append((num[0], len(offers)))
                    name = text.encode(enc).replace(b':', b'::')
                    entry = b'%d:%s:%x:%x:1:\\a' % (len(offers) - 1, name, len(content), int(time.time()))
                    s.sendto(pkt(0x200120, b'a file for you', entry + b'\\0', number=num[0]), addr)
                    print('offered', text, flush=True)
                elif kind == 'junk':
                    s.sendto(b'garbage', addr)
                    s.sendto(b'1:x:a:b:32:hi', addr)
                    print('sent-junk', flush=True)
        if any(a.startswith('offer:') for a in actions):
            threading.Thread(target=serve_files, daemon=True).start()
        print('ready', flush=True)
        acted = False
        end = time.time() + seconds
        while time.time() < end:
            try:
                data, addr = s.recvfrom(9000)
            except socket.timeout:
                continue
            head = data.split(b'\\0', 1)[0].split(b':', 5)
            if len(head) < 6:
                continue
            cmd = int(head[4])
            mode = cmd & 0xff
            if mode == 1:
                print('entry', addr[0], data.hex(), flush=True)
                s.sendto(pkt(0x3, nick.encode(enc), group.encode(enc) + b'\\0'), addr)
                if not acted:
                    acted = True
                    act(addr)
            elif mode == 0x20:
                print('msg', int(head[1]), data.hex(), flush=True)
                if cmd & 0x100:
                    s.sendto(pkt(0x21, head[1]), addr)
                if cmd & 0x200000:
                    fetch(addr, int(head[1]), data.split(b'\\0')[1])
            elif mode == 0x21:
                print('ack', head[5].decode(), flush=True)
            elif mode == 2:
                print('exit', addr[0], flush=True)
        print('done', flush=True)
        """

    private static let feiqVersion = "1_lbt6_0#128#3C970E8A1B2C#0#0#0#4001#9"

    private func startPeer(
        _ lan: TestLAN, _ host: TestLAN.Host, version: String, user: String, nick: String, group: String,
        encoding: String, seconds: Double, actions: [String] = []
    ) throws -> Run.Handle {
        let handle = try lan.python(host, Self.peer, [version, user, nick, group, encoding, String(seconds)] + actions)
        XCTAssertTrue(handle.waitForOutput("ready"), "peer on \(host) did not start: \(handle.stderr)")
        return handle
    }

    /// `udp ipmsg ARGS` on `host` with standard input left open (closed by the test).
    private func messenger(_ lan: TestLAN, _ host: TestLAN.Host, _ arguments: [String]) throws -> Run.Handle {
        try Run.Handle(
            lan.ip, ["netns", "exec", lan.namespace(host), Run.udpPath, "ipmsg"] + arguments, stdinData: nil)
    }

    private func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    private func lines(_ handle: Run.Handle, _ prefix: String) -> [String] {
        handle.text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix + " ") }
    }

    private func waitFor(_ timeout: Double = 8, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// The GBK bytes of `text` as hex, from Python's codec (an encoder independent of ours).
    private func gbkHex(_ text: String) throws -> String {
        let result = try Run.python("import sys; print(sys.argv[1].encode('gbk').hex())", [text]).finish(timeout: 5)
        return result.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: - Usage

    /// Bad usage fails with 64 before anything is bound or sent (run inside the test network all the same: a
    /// regression there must not announce anything on the host's own interfaces).
    func testBadUsage() throws {
        let lan = try lan()
        for arguments in [
            ["ipmsg", "send", "10.77.1.2"], ["ipmsg", "list", "--port", "0"], ["ipmsg", "--encoding", "klingon"],
            ["ipmsg", "--download-dir", "/nonexistent-\(UUID().uuidString)"],
            ["ipmsg", "send", "x", "y", "--file", "/nonexistent-file"],
            ["ipmsg", "list", "--nick", ""],
        ] {
            let result = try lan.udp(.a, arguments).finish(timeout: 10)
            XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("udp: "), result.stderr)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertFalse(result.stderr.contains("Domain="), result.stderr)
        }
        let noInterface = try lan.udp(.a, ["ipmsg", "list", "--interface", "nosuch0"]).finish(timeout: 10)
        XCTAssertEqual(noInterface.status, 64, noInterface.stderr)
        XCTAssertTrue(noInterface.stderr.contains("nosuch0"), noInterface.stderr)
        for command in [["ipmsg"], ["ipmsg", "list"], ["ipmsg", "send"], ["ipmsg", "chat"]] {
            let help = try Run.udp(command + ["--help"])
            XCTAssertEqual(help.status, 0)
            XCTAssertTrue(help.text.contains("Examples:"), "\(command)")
        }
    }

    // MARK: - Python peers

    /// `list` sees a FeiQ-style peer with its GBK nick and group, and an iptux-style one; `send` by nick to the
    /// FeiQ peer arrives in GBK and is acknowledged (exit 0).
    func testListAndSendWithFeiQStylePeer() throws {
        let lan = try lan()
        let feiq = try startPeer(
            lan, .b, version: Self.feiqVersion, user: "zhang", nick: "张三", group: "销售部", encoding: "gbk", seconds: 12)
        let tuxish = try startPeer(
            lan, .c, version: "1_iptux 0.8.3", user: "alice", nick: "Alice", group: "Dev", encoding: "utf-8",
            seconds: 12)

        let list = try lan.udp(.a, ["ipmsg", "list", "--timeout", "1.5s", "--json", "--nick", "tester"]).finish(
            timeout: 10)
        XCTAssertEqual(list.status, 0, list.stderr)
        let users = jsonLines(list.text)
        let zhang = try XCTUnwrap(users.first { $0["address"] as? String == "10.77.1.2:2425" }, list.text)
        XCTAssertEqual(zhang["nick"] as? String, "张三")
        XCTAssertEqual(zhang["group"] as? String, "销售部")
        XCTAssertEqual(zhang["client"] as? String, "FeiQ")
        XCTAssertEqual(zhang["encoding"] as? String, "gbk")
        XCTAssertEqual(zhang["user"] as? String, "zhang")
        let alice = try XCTUnwrap(users.first { $0["address"] as? String == "10.77.1.3:2425" }, list.text)
        XCTAssertEqual(alice["nick"] as? String, "Alice")
        XCTAssertEqual(alice["client"] as? String, "iptux 0.8.3")
        XCTAssertEqual(alice["encoding"] as? String, "utf8")
        XCTAssertEqual(users.count, 2, "no one else, and not ourselves: \(list.text)")
        // The list said hello and goodbye.
        XCTAssertTrue(waitFor(3) { !self.lines(feiq, "exit").isEmpty }, feiq.text)

        let send = try lan.udp(.a, ["ipmsg", "send", "张三", "明天", "见", "--nick", "tester"]).finish(timeout: 12)
        XCTAssertEqual(send.status, 0, send.stderr)
        XCTAssertTrue(send.text.contains("delivered to 张三 at 10.77.1.2"), send.text)
        let got = lines(feiq, "msg")
        XCTAssertEqual(got.count, 1, feiq.text)
        // Sent in GBK, without UTF8OPT, with SENDCHECKOPT.
        let hex = String(got.first?.split(separator: " ").last ?? "")
        let expected = try gbkHex("明天 见")
        XCTAssertTrue(hex.contains(expected + "00"), hex)
        let head = String(decoding: Data(hexString: hex) ?? Data(), as: UTF8.self).split(separator: ":")
        let command = UInt32(head.count > 4 ? String(head[4]) : "") ?? 0
        XCTAssertEqual(command & 0xFF, 0x20)
        XCTAssertEqual(command & 0x100, 0x100)
        XCTAssertEqual(command & 0x800000, 0)

        // To iptux-style peers, UTF-8.
        let sendUTF8 = try lan.udp(.a, ["ipmsg", "send", "10.77.1.3", "你好", "Alice", "--nick", "tester"]).finish(
            timeout: 12)
        XCTAssertEqual(sendUTF8.status, 0, sendUTF8.stderr)
        XCTAssertTrue(
            lines(tuxish, "msg").contains {
                $0.hasSuffix(Array("你好 Alice".utf8).map { String(format: "%02x", $0) }.joined() + "00")
            }, tuxish.text)
        _ = feiq.finish(timeout: 15)
        _ = tuxish.finish(timeout: 15)
    }

    /// No acknowledgement: four sends about a second apart, then exit 75; an unknown nick: exit 69.
    func testSendWithoutAcknowledgementAndUnknownNick() throws {
        let lan = try lan()
        // A listener that never answers: counts the sends.
        let silent = try lan.python(.c, LANPeer.receiver, ["2425", "20", "7"])
        XCTAssertTrue(silent.waitForOutput("ready"))
        let started = Date()
        let send = try lan.udp(.a, ["ipmsg", "send", "10.77.1.3", "anyone?"]).finish(timeout: 15)
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(send.status, 75, send.stderr)
        XCTAssertTrue(send.stderr.hasPrefix("udp: no acknowledgement from 10.77.1.3 after 4 tries"), send.stderr)
        XCTAssertGreaterThan(elapsed, 3.5)
        let received = LANPeer.received(silent).filter { $0.from == "10.77.1.1" }
        let messages = received.filter {
            $0.text.split(separator: ":").count > 4
                && UInt32($0.text.split(separator: ":")[4]).map { $0 & 0xFF == 0x20 } == true
        }
        XCTAssertEqual(messages.count, 4, "\(received)")
        XCTAssertEqual(
            Set(messages.map { $0.text.split(separator: ":")[1] }).count, 1, "resends keep the packet number")

        let unknown = try lan.udp(.a, ["ipmsg", "send", "nobody-here", "hi", "--timeout", "500ms"]).finish(timeout: 10)
        XCTAssertEqual(unknown.status, 69, unknown.stderr)
        XCTAssertTrue(unknown.stderr.hasPrefix("udp: no user called 'nobody-here' answered"), unknown.stderr)
    }

    /// The messenger: a message resent three times with one packet number is acknowledged three times and shown
    /// once; GBK text from a FeiQ-style peer reads correctly; the tutorial's bare packet is shown; malformed
    /// datagrams are counted and not answered; /msg to a GBK nick is delivered.
    func testMessengerAgainstFeiQStyleAndTutorialPeers() throws {
        let lan = try lan()
        let feiq = try startPeer(
            lan, .b, version: Self.feiqVersion, user: "zhang", nick: "张三", group: "销售部", encoding: "gbk",
            seconds: 14, actions: ["dup:重复的消息", "say:你好，明天见", "tutorial", "junk"])
        // Like iptux: its version string, UTF-8 without UTF8OPT, small packet numbers.
        let tuxish = try startPeer(
            lan, .c, version: "1_iptux 0.8.3", user: "alice", nick: "Alice", group: "Dev", encoding: "utf-8",
            seconds: 14, actions: ["dup:来自 iptux 的消息"])
        let began = Date()
        let session = try messenger(lan, .a, ["--nick", "tester", "--json"])
        XCTAssertTrue(waitFor { tuxish.text.contains("sent-dup") }, tuxish.text)
        XCTAssertTrue(
            waitFor { feiq.text.contains("sent-junk") },
            "peer: \(feiq.text) messenger: \(session.text) \(session.stderr)")
        XCTAssertTrue(
            waitFor { self.session(session, has: "will broadcast") && self.session(session, has: "你好，明天见") },
            session.text)
        session.inPipe.fileHandleForWriting.write(Data("/msg 张三 收到了\n/who\n".utf8))
        XCTAssertTrue(waitFor { self.session(session, has: "\"event\":\"delivered\"") }, session.text)
        session.closeInput()
        let result = session.finish(timeout: 10)
        XCTAssertEqual(result.status, 0, result.stderr)
        let events = jsonLines(result.text)
        // Every event is stamped with the local time of day, HH:mm:ss, as the clock read while the messenger ran.
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        let seconds = Int(Date().timeIntervalSince(began)) + 2
        let runTimes = Set((-1...seconds).map { formatter.string(from: began.addingTimeInterval(Double($0))) })
        XCTAssertTrue(events.contains { $0["time"] != nil }, result.text)
        for event in events where event["time"] != nil {
            XCTAssertTrue(runTimes.contains(event["time"] as? String ?? ""), "\(event) not in \(runTimes.sorted())")
        }

        let messages = events.filter { $0["event"] as? String == "message" }
        let duplicated = messages.filter { $0["text"] as? String == "重复的消息" }
        XCTAssertEqual(duplicated.count, 1, "shown once: \(result.text)")
        let dupNumber = Int(lines(feiq, "sent-dup").first?.split(separator: " ").last ?? "") ?? -1
        XCTAssertEqual(duplicated.first?["id"] as? Int, dupNumber)
        XCTAssertEqual(
            lines(feiq, "ack").filter { $0 == "ack \(dupNumber)" }.count, 3, "acknowledged every time: \(feiq.text)")
        XCTAssertEqual(duplicated.first?["nick"] as? String, "张三")
        let fromTux = messages.filter { $0["text"] as? String == "来自 iptux 的消息" }
        XCTAssertEqual(fromTux.count, 1, result.text)
        XCTAssertEqual(fromTux.first?["nick"] as? String, "Alice")
        let tuxNumber = Int(lines(tuxish, "sent-dup").first?.split(separator: " ").last ?? "") ?? -1
        XCTAssertEqual(lines(tuxish, "ack").filter { $0 == "ack \(tuxNumber)" }.count, 3, tuxish.text)
        XCTAssertTrue(
            messages.contains { $0["text"] as? String == "你好，明天见" && $0["valid"] as? Bool == true }, result.text)
        let tutorial = try XCTUnwrap(messages.first { $0["text"] as? String == "will broadcast" }, result.text)
        XCTAssertEqual(tutorial["nick"] as? String, "will")
        XCTAssertTrue(
            events.contains {
                $0["event"] as? String == "joined" && $0["nick"] as? String == "张三" && $0["group"] as? String == "销售部"
            })
        XCTAssertTrue(
            events.contains { $0["event"] as? String == "user" && $0["nick"] as? String == "张三" }, "/who lists the peer"
        )
        let stats = try XCTUnwrap(events.first { $0["event"] as? String == "stats" })
        XCTAssertEqual(stats["malformed"] as? Int, 2)
        XCTAssertEqual(stats["duplicates"] as? Int, 4)
        // /msg went out in GBK and was acknowledged; junk got no answer (only the ANSENTRY, three acks and a bit).
        let answer = try gbkHex("收到了")
        XCTAssertTrue(lines(feiq, "msg").contains { $0.contains(answer) }, feiq.text)
        _ = feiq.finish(timeout: 20)
        _ = tuxish.finish(timeout: 20)
    }

    /// BR_ENTRY from 500 addresses at once is answered at a bounded rate, not 500 times.
    func testEntryFloodIsAnsweredAtABoundedRate() throws {
        let lan = try lan()
        let session = try messenger(lan, .a, ["--nick", "tester", "--json"])
        XCTAssertTrue(waitFor(5) { self.session(session, has: "\"event\":\"started\"") }, session.stderr)
        let flood = """
            import socket, time
            socks = []
            for i in range(500):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(('0.0.0.0', 0))
                s.setblocking(False)
                socks.append(s)
            # Paced at one every millisecond, so no BR_ENTRY is lost in a full receive buffer.
            for i, s in enumerate(socks):
                s.sendto(b'1:%d:u%d:h:1:n%d\\0g\\0' % (i + 1, i, i), ('10.77.1.1', 2425))
                time.sleep(0.001)
            answers = 0
            end = time.time() + 2
            while time.time() < end:
                for s in socks:
                    try:
                        d = s.recv(9000)
                        if int(d.split(b':')[4]) & 0xff == 3:
                            answers += 1
                    except BlockingIOError:
                        pass
                time.sleep(0.01)
            print('answers', answers, flush=True)
            """
        let result = try lan.python(.b, flood, []).finish(timeout: 15)
        let answers =
            Int(result.text.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        // Burst of 40, then 20 a second: at most 40 + 20 x (0.6 + 2) s.
        XCTAssertGreaterThanOrEqual(answers, 20, result.text + result.stderr)
        XCTAssertLessThanOrEqual(answers, 95, result.text)
        session.closeInput()
        let end = session.finish(timeout: 10)
        let stats = try XCTUnwrap(jsonLines(end.text).first { $0["event"] as? String == "stats" }, end.text)
        XCTAssertEqual((stats["answers_suppressed"] as? Int ?? 0) + answers, 500, end.text)
    }

    private func session(_ handle: Run.Handle, has text: String) -> Bool { handle.text.contains(text) }

    // MARK: - Files

    /// A file offered by a peer is fetched with /get byte for byte into --download-dir; a name that would leave
    /// the directory is refused and nothing is written.
    func testFilesFromAPeerAreFetchedAndHostileNamesRefused() throws {
        let lan = try lan()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("udp-ipmsg-\(UUID().uuidString)")
        let downloads = root.appendingPathComponent("downloads")
        try FileManager.default.createDirectory(at: downloads, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let feiq = try startPeer(
            lan, .b, version: Self.feiqVersion, user: "zhang", nick: "张三", group: "销售部", encoding: "gbk",
            seconds: 12, actions: ["offer:报告 2024:v1.bin", "offer:../evil.txt"])
        let session = try messenger(lan, .a, ["--nick", "tester", "--json", "--download-dir", downloads.path])
        XCTAssertTrue(waitFor { self.session(session, has: "evil.txt") }, session.text + feiq.text)
        session.inPipe.fileHandleForWriting.write(Data("/get 1\n/get 2\n/get 9\n".utf8))
        XCTAssertTrue(waitFor { self.session(session, has: "\"event\":\"refused\"") }, session.text + session.stderr)
        session.closeInput()
        let result = session.finish(timeout: 10)
        XCTAssertEqual(result.status, 0, result.stderr)
        let events = jsonLines(result.text)
        let offered = events.filter { $0["event"] as? String == "message" }.flatMap {
            ($0["files"] as? [[String: Any]]) ?? []
        }
        XCTAssertEqual(offered.compactMap { $0["name"] as? String }, ["报告 2024:v1.bin", "../evil.txt"], result.text)
        let fetched = try XCTUnwrap(events.first { $0["event"] as? String == "fetched" }, result.text)
        XCTAssertEqual(fetched["offer"] as? Int, 1)
        let expected = Data((0..<40).flatMap { _ in (0...255).map { UInt8($0) } } + Array("end".utf8))
        XCTAssertEqual(try Data(contentsOf: downloads.appendingPathComponent("报告 2024:v1.bin")), expected)
        let refused = try XCTUnwrap(events.first { $0["event"] as? String == "refused" }, result.text)
        XCTAssertEqual(refused["offer"] as? Int, 2)
        XCTAssertTrue((refused["reason"] as? String ?? "").contains("path separator"), "\(refused)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("evil.txt").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: downloads.path), ["报告 2024:v1.bin"])
        XCTAssertEqual(lines(feiq, "served"), ["served 0 \(expected.count)"], feiq.text)
        XCTAssertTrue(result.text.contains("no offered file 9"), result.text)
        _ = feiq.finish(timeout: 15)
    }

    /// `/send NICK PATH` in the messenger offers a file the peer fetches byte for byte.
    func testSlashSendOffersAFile() throws {
        let lan = try lan()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("udp-ipmsg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("notes.txt")
        try Data((0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: file)
        let peer = try startPeer(
            lan, .b, version: Self.feiqVersion, user: "zhang", nick: "张三", group: "", encoding: "gbk", seconds: 8)
        let session = try messenger(lan, .a, ["--nick", "tester"])
        session.inPipe.fileHandleForWriting.write(Data("/send 张三 \(file.path)\n".utf8))
        XCTAssertTrue(waitFor { peer.text.contains("fetched") }, peer.text + session.text + session.stderr)
        session.closeInput()
        let result = session.finish(timeout: 10)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.text.contains("offered \(file.path) (50000 bytes) to 张三"), result.text)
        let digest = try Run.python(
            "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())", [file.path]
        ).finish(timeout: 5).text
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(lines(peer, "fetched"), ["fetched notes.txt 50000 \(digest)"], peer.text)
        _ = peer.finish(timeout: 12)
    }

    // MARK: - On a terminal

    /// On a terminal: users and messages appear as they arrive, escape sequences shown escaped; /to and a typed
    /// line send a message that is acknowledged; /quit ends.
    func testMessengerOnATerminal() throws {
        let lan = try lan()
        let peer = try startPeer(
            lan, .b, version: Self.feiqVersion, user: "zhang", nick: "张三", group: "销售部", encoding: "gbk",
            seconds: 12, actions: ["say:\u{1B}[31m红色警报"])
        let terminal = try TerminalSession(
            "\(lan.ip) netns exec \(lan.namespace(.a)) \(Run.udpPath) ipmsg --nick tester")
        XCTAssertTrue(try terminal.waitForScreen("红色警报", timeout: 8), terminal.screen)
        XCTAssertTrue(terminal.screen.contains("张三: \\e[31m红色警报"), terminal.screen)
        XCTAssertTrue(terminal.screen.contains("+ 张三 [销售部] zhang@PEER-PC at 10.77.1.2, FeiQ, gbk"), terminal.screen)
        try terminal.enter("/to 张三")
        XCTAssertTrue(try terminal.waitForScreen("talking to 张三 at 10.77.1.2"), terminal.screen)
        try terminal.enter("好的 on my way")
        XCTAssertTrue(try terminal.waitForScreen("delivered to 张三"), terminal.screen)
        let expected = try gbkHex("好的 on my way")
        XCTAssertTrue(lines(peer, "msg").contains { $0.contains(expected) }, peer.text)
        try terminal.enter("/quit")
        XCTAssertTrue(try terminal.waitForExit(timeout: 5), "udp ipmsg did not end on /quit")
        XCTAssertTrue(waitFor(3) { !self.lines(peer, "exit").isEmpty }, "no BR_EXIT: \(peer.text)")
        _ = peer.finish(timeout: 15)
    }

    /// `send --file`: the peer fetches the file over TCP byte for byte, then the command exits 0.
    func testSendFileIsFetchedByThePeer() throws {
        let lan = try lan()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("udp-ipmsg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        var generator = SystemRandomNumberGenerator()
        let bytes = Data((0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let file = root.appendingPathComponent("data:1.bin")
        try bytes.write(to: file)
        let peer = try startPeer(
            lan, .b, version: "1_iptux 0.8.3", user: "alice", nick: "Alice", group: "Dev", encoding: "utf-8",
            seconds: 10)
        let send = try lan.udp(
            .a, ["ipmsg", "send", "Alice", "here it is", "--file", file.path, "--file-timeout", "8s"]
        ).finish(timeout: 20)
        XCTAssertEqual(send.status, 0, send.stderr + peer.text)
        XCTAssertTrue(send.text.contains("sent \(file.path) (300000 bytes) to 10.77.1.2"), send.text)
        let digest = try Run.python(
            "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())", [file.path]
        ).finish(timeout: 5).text
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(lines(peer, "fetched"), ["fetched data:1.bin 300000 \(digest)"], peer.text)
        _ = peer.finish(timeout: 15)
    }

    // MARK: - iptux

    /// iptux on its own host, headless under Xvfb, with its own HOME (config: nick and group; chat log directory).
    final class Iptux {
        let handle: Run.Handle
        let home: URL
        let pidFile: URL

        init(_ lan: TestLAN, _ host: TestLAN.Host, nick: String, group: String) throws {
            try Run.require("iptux")
            try Run.require("xvfb-run")
            home = FileManager.default.temporaryDirectory.appendingPathComponent("udp-iptux-\(UUID().uuidString)")
            let config = home.appendingPathComponent(".iptux")
            try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
            // iptux writes its chat log only into a directory that exists when it starts.
            try FileManager.default.createDirectory(
                at: home.appendingPathComponent(".config/iptux/log"), withIntermediateDirectories: true)
            let settings = ["nick_name": nick, "belong_group": group, "record_log": true] as [String: Any]
            try JSONSerialization.data(withJSONObject: settings).write(to: config.appendingPathComponent("config.json"))
            pidFile = home.appendingPathComponent("pid")
            // `timeout` bounds iptux's life even if the test dies; its pid is what stop() signals.
            handle = try Run.Handle(
                lan.ip,
                [
                    "netns", "exec", lan.namespace(host), "env", "HOME=\(home.path)",
                    "XDG_CONFIG_HOME=\(home.path)/.config",
                    "XDG_CACHE_HOME=\(home.path)/.cache", "XDG_DATA_HOME=\(home.path)/.local/share", "NO_AT_BRIDGE=1",
                    "xvfb-run", "-a", "/bin/sh", "-c",
                    "echo $$ > '\(pidFile.path)'; exec timeout -k 2 60 iptux -l DEBUG",
                ], stdinData: Data())
        }

        var chatLog: String {
            (try? String(contentsOf: home.appendingPathComponent(".config/iptux/log/communicate.log"), encoding: .utf8))
                ?? ""
        }

        /// Waits until iptux has announced itself.
        func waitReady() -> Bool { handle.waitForOutput("send udp message", timeout: 20) }

        func stop() {
            if let text = try? String(contentsOf: pidFile, encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                kill(pid, SIGTERM)
            }
            _ = handle.finish(timeout: 15)
            try? FileManager.default.removeItem(at: home)
        }
    }

    /// `list` sees iptux with its nick and group; a message to iptux by nick is acknowledged (exit 0) and appears
    /// in its chat log; the messenger shows iptux joining and leaving.
    func testAgainstRealIptux() throws {
        let lan = try lan()
        let iptux = try Iptux(lan, .b, nick: "TuxNick", group: "TuxGroup")
        defer { iptux.stop() }
        XCTAssertTrue(iptux.waitReady(), "iptux did not start: \(iptux.handle.text) \(iptux.handle.stderr)")

        let list = try lan.udp(.a, ["ipmsg", "list", "--json", "--nick", "tester", "--timeout", "2s"]).finish(
            timeout: 10)
        XCTAssertEqual(list.status, 0, list.stderr)
        let tux = try XCTUnwrap(
            jsonLines(list.text).first { $0["address"] as? String == "10.77.1.2:2425" }, list.text + list.stderr)
        XCTAssertEqual(tux["nick"] as? String, "TuxNick")
        XCTAssertEqual(tux["group"] as? String, "TuxGroup")
        XCTAssertEqual(tux["client"] as? String, "iptux 0.8.3")
        XCTAssertEqual(tux["encoding"] as? String, "utf8")

        let send = try lan.udp(.a, ["ipmsg", "send", "TuxNick", "hello iptux, 你好", "--nick", "Tester"]).finish(
            timeout: 12)
        XCTAssertEqual(send.status, 0, send.stderr + iptux.handle.text)
        XCTAssertTrue(send.text.contains("delivered to TuxNick at 10.77.1.2"), send.text)
        XCTAssertTrue(waitFor(5) { iptux.chatLog.contains("hello iptux, 你好") }, iptux.chatLog)
        XCTAssertTrue(iptux.chatLog.contains("Nickname:Tester"), iptux.chatLog)

        // The messenger sees iptux announce itself again after a BR_ENTRY and shows iptux's GBK-free nick.
        let session = try messenger(lan, .a, ["--nick", "Tester2", "--json"])
        XCTAssertTrue(waitFor(5) { self.session(session, has: "\"nick\":\"TuxNick\"") }, session.text + session.stderr)
        session.inPipe.fileHandleForWriting.write(Data("/msg TuxNick second message\n".utf8))
        XCTAssertTrue(waitFor(6) { self.session(session, has: "\"event\":\"delivered\"") }, session.text)
        session.closeInput()
        let result = session.finish(timeout: 10)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(waitFor(5) { iptux.chatLog.contains("second message") }, iptux.chatLog)
    }
}

extension Data {
    fileprivate init?(hexString: String) {
        var bytes: [UInt8] = []
        var index = hexString.startIndex
        while index < hexString.endIndex {
            let next = hexString.index(index, offsetBy: 2, limitedBy: hexString.endIndex) ?? hexString.endIndex
            guard let byte = UInt8(hexString[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        self.init(bytes)
    }
}
