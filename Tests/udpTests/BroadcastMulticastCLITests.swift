import Foundation
import XCTest

/// `udp broadcast`, `udp send` to broadcast addresses and groups, `udp listen --join` and `udp interfaces` on a
/// network of namespaces (see `TestLAN`), and `udp echo` across its links: nothing here touches the host's own
/// interfaces.
final class BroadcastMulticastCLITests: LANTestCase {
    /// Python receivers bound to 0.0.0.0:`port` on each host, ready to receive.
    private func receivers(_ lan: TestLAN, _ hosts: [TestLAN.Host], port: Int, count: Int, idle: Double) throws
        -> [TestLAN.Host: Run.Handle]
    {
        var started: [TestLAN.Host: Run.Handle] = [:]
        for host in hosts {
            started[host] = try lan.python(host, LANPeer.receiver, [String(port), String(count), String(idle)])
        }
        for (host, handle) in started {
            XCTAssertTrue(handle.waitForOutput("ready"), "receiver on \(host) did not start: \(handle.stderr)")
        }
        return started
    }

    /// `udp listen` on `host`, once it is bound (and, with --join, a member).
    private func listener(_ lan: TestLAN, _ host: TestLAN.Host, _ arguments: [String]) throws -> Run.Handle {
        let handle = try lan.udp(host, ["listen"] + arguments + ["--show-port"])
        XCTAssertTrue(
            handle.waitForOutput(arguments.contains("--join") ? "joined" : "listening on"),
            "listener on \(host) did not start: \(handle.stderr)")
        return handle
    }

    private func run(_ lan: TestLAN, _ host: TestLAN.Host, _ arguments: [String]) throws -> Run.Result {
        try lan.udp(host, arguments).finish()
    }

    private func json(_ result: Run.Result) throws -> [[String: Any]] {
        try result.text.split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
    }

    // MARK: - Echo across a link

    /// A burst of datagrams to echo, and every reply checked. Replies of one size to one sender leave as one
    /// segmentation-offload send where the link takes it (1,000 bytes on a 1,500-byte MTU); 3,000-byte segments
    /// do not fit the MTU, the system refuses the joined send, and the replies must go one by one instead.
    private static let burstClient = """
        import socket, sys, time
        host, port, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for i in range(count):
            s.sendto(bytes([i]) * size, (host, port))
        s.settimeout(3)
        got = {}
        try:
            while len(got) < count:
                data, _ = s.recvfrom(65535)
                ok = len(data) == size and data == bytes([data[0]]) * size
                got[data[0]] = got.get(data[0], True) and ok
        except socket.timeout:
            pass
        print("replies", len(got), "intact", sum(1 for v in got.values() if v))
        """

    func testEchoAnswersABurstAcrossTheLinkWhetherOrNotJoinedSendsFit() throws {
        let lan = try lan()
        let server = try lan.udp(.a, ["echo", "7100", "--quiet", "--show-port"])
        defer { _ = server.finish(timeout: 5, signal: SIGTERM) }
        XCTAssertTrue(server.waitForOutput("echo server on"), server.stderr)
        for size in [1_000, 3_000] {
            let client = try lan.python(.b, Self.burstClient, [TestLAN.Host.a.address, "7100", String(size), "40"])
                .finish(timeout: 10)
            XCTAssertEqual(
                client.text.trimmingCharacters(in: .whitespacesAndNewlines), "replies 40 intact 40",
                "size \(size): \(client.stderr)")
        }
    }

    // MARK: - Echo: no reflection through broadcast and multicast

    /// On B: one datagram to each address given (its own text as payload), the IPv4 ones from one socket that may
    /// broadcast on lan0, ff02::1 from an IPv6 socket on lan0; then every reply for a second, sorted.
    private static let castProber = """
        import socket, sys, time
        port = int(sys.argv[1])
        index = socket.if_nametoindex('lan0')
        v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        v4.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        v4.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'lan0')
        v4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('10.77.1.2'))
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        for name in sys.argv[2:]:
            if ':' in name:
                v6.sendto(name.encode(), (name, port, 0, index))
            else:
                v4.sendto(name.encode(), (name, port))
            time.sleep(0.05)
        got = []
        deadline = time.time() + 1
        for s in (v4, v6):
            s.settimeout(0.05)
        while time.time() < deadline:
            for s in (v4, v6):
                try:
                    got.append(s.recvfrom(100)[0].decode())
                except socket.timeout:
                    pass
        print('replies', ' '.join(sorted(got)), flush=True)
        """

    private static let casts = ["10.77.1.255", "255.255.255.255", "224.0.0.1", "ff02::1"]

    private func summary(_ result: Run.Result) throws -> [String: Any] {
        let last = try XCTUnwrap(result.stderr.split(separator: "\n").last, "no summary: \(result.stderr)")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], String(last))
    }

    /// `udp echo` on A for both families: IPv4 multicast reaches only IPv4 sockets (a dual-stack socket does not
    /// get it), so an IPv4 server and an IPv6-only one share the port.
    private func echoPair(_ lan: TestLAN, port: Int, _ extra: [String]) throws -> [Run.Handle] {
        let servers = [
            try lan.udp(.a, ["echo", "0.0.0.0:\(port)", "--show-port"] + extra),
            try lan.udp(.a, ["echo", "*:\(port)", "-6", "--show-port"] + extra),
        ]
        for server in servers { XCTAssertTrue(server.waitForOutput("echo server on"), server.stderr) }
        return servers
    }

    func testEchoAnswersOnlyUnicastUnlessBroadcastIsAllowed() throws {
        let lan = try lan()
        for (port, extra, reply) in [(7201, [String](), ""), (7202, ["--reply", "R:{text}"], "R:")] {
            let servers = try echoPair(lan, port: port, ["--quiet", "--json"] + extra)
            let probe = try lan.python(.b, Self.castProber, [String(port)] + Self.casts + ["10.77.1.1"]).finish(
                timeout: 10)
            XCTAssertEqual(probe.text, "replies \(reply)10.77.1.1\n", "\(extra): \(probe.stderr)")
            let ended = servers.map { $0.finish(timeout: 5, signal: SIGTERM) }
            let v4 = try summary(ended[0])
            let v6 = try summary(ended[1])
            XCTAssertEqual((v4["dropped"] as? [String: Int])?["to-broadcast"], 2, "\(v4)")
            XCTAssertEqual((v4["dropped"] as? [String: Int])?["to-multicast"], 1, "\(v4)")
            XCTAssertEqual(v4["replied"] as? Int, 1, "\(v4)")
            XCTAssertEqual((v6["dropped"] as? [String: Int])?["to-multicast"], 1, "\(v6)")
            XCTAssertEqual(v6["replied"] as? Int, 0, "\(v6)")
        }

        // Bound to its unicast address, a server (which then skips packet information) never even receives them.
        let bound = try lan.udp(.a, ["echo", "10.77.1.1:7206", "--quiet", "--json", "--show-port"])
        XCTAssertTrue(bound.waitForOutput("echo server on"), bound.stderr)
        let direct = try lan.python(
            .b, Self.castProber, ["7206"] + Self.casts.filter { !$0.contains(":") } + ["10.77.1.1"]
        ).finish(timeout: 10)
        XCTAssertEqual(direct.text, "replies 10.77.1.1\n", direct.stderr)
        let unicastOnly = try summary(bound.finish(timeout: 5, signal: SIGTERM))
        XCTAssertEqual(unicastOnly["received"] as? Int, 1, "\(unicastOnly)")

        let allowed = try echoPair(lan, port: 7203, ["--quiet", "--allow-broadcast"])
        let probe = try lan.python(.b, Self.castProber, ["7203"] + Self.casts + ["10.77.1.1"]).finish(timeout: 10)
        XCTAssertEqual(
            probe.text, "replies " + (Self.casts + ["10.77.1.1"]).sorted().joined(separator: " ") + "\n", probe.stderr)
        for server in allowed { _ = server.finish(timeout: 5, signal: SIGTERM) }
    }

    func testInteractiveEchoShowsOnlyUnicastDatagrams() throws {
        let lan = try lan()
        let server = try Run.Handle(
            lan.ip,
            ["netns", "exec", lan.namespace(.a), Run.udpPath, "echo", "0.0.0.0:7204", "--interactive", "--show-port"],
            stdinData: Data("typed\n".utf8))
        XCTAssertTrue(server.waitForOutput("echo server on"), server.stderr)
        let probe = try lan.python(
            .b, Self.castProber, ["7204"] + Self.casts.filter { !$0.contains(":") } + ["10.77.1.1"]
        ).finish(timeout: 10)
        XCTAssertEqual(probe.text, "replies typed\n", probe.stderr)
        let shown = server.finish(timeout: 5, signal: SIGTERM).text
        XCTAssertTrue(shown.contains("10.77.1.1"), shown)
        for cast in Self.casts {
            XCTAssertFalse(shown.contains(cast), "the datagram to \(cast) was shown: \(shown)")
        }
        // Piped stdin gets no prompt: one datagram line, the unicast one, is all stdout holds.
        XCTAssertEqual(
            shown.split(separator: "\n").filter { $0.contains(" bytes ") }.count, 1,
            "one datagram shown, the unicast one: \(shown)")
    }

    /// Servers on A (echo, interactive echo, proxy, room) get one datagram whose source B forged as the subnet's
    /// broadcast address 10.77.1.255 (raw socket; A's reverse-path filter off, as on many hosts). Whatever they
    /// would answer must not reach the subnet.
    func testNoServerAnswersASpoofedBroadcastSender() throws {
        let lan = try lan()
        guard geteuid() == 0 else { throw XCTSkip("a raw socket needs root") }
        let sysctl = try Run.Handle(
            lan.ip,
            [
                "netns", "exec", lan.namespace(.a), "sysctl", "-q", "-w",
                "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.lan0.rp_filter=0",
            ],
            stdinData: Data()
        ).finish()
        XCTAssertEqual(sysctl.status, 0, sysctl.stderr)
        let peers = try receivers(lan, [.b, .c], port: 7399, count: 3, idle: 2)
        let echo = try lan.udp(.a, ["echo", "7301", "--quiet", "--json", "--show-port"])
        defer { if echo.process.isRunning { _ = echo.finish(timeout: 5, signal: SIGTERM) } }
        let interactive = try Run.Handle(
            lan.ip, ["netns", "exec", lan.namespace(.a), Run.udpPath, "echo", "7302", "--interactive", "--show-port"],
            stdinData: Data("leak\n".utf8))
        let upstream = try lan.udp(.a, ["echo", "127.0.0.1:7304", "--quiet", "--show-port"])
        let proxy = try lan.udp(.a, ["proxy", "7303", "127.0.0.1", "7304"])
        let room = try lan.udp(.a, ["room", "serve", "--port", "7305"])
        defer {
            for handle in [interactive, upstream, proxy, room] { _ = handle.finish(timeout: 5, signal: SIGTERM) }
        }
        for server in [echo, interactive, upstream] {
            XCTAssertTrue(server.waitForOutput("echo server on"), server.stderr)
        }
        usleep(300_000)
        // A room JOIN (nonce 42, nick "spoof") would be answered with a WELCOME.
        let join = "hex:55520101000000000000002a000573706f6f66"
        for (port, payload) in [(7301, "spoofed"), (7302, "spoofed"), (7303, "spoofed"), (7305, join)] {
            let spoof = try lan.python(
                .b, EchoCLITests.rawSender, ["10.77.1.255", "7399", TestLAN.Host.a.address, String(port), payload]
            ).finish()
            XCTAssertEqual(spoof.text, "sent\n", spoof.stderr)
        }
        for host in [TestLAN.Host.b, .c] {
            XCTAssertEqual(
                LANPeer.received(peers[host]!).map(\.text), [],
                "a reply reached \(host) through the subnet's broadcast address")
        }
        let json = try summary(echo.finish(timeout: 5, signal: SIGTERM))
        XCTAssertEqual((json["dropped"] as? [String: Int])?["broadcast-sender"], 1, "\(json)")
        XCTAssertEqual(json["replied"] as? Int, 0, "\(json)")
    }

    // MARK: - Broadcast

    func testBroadcastReachesEverySubnetHostAndNoOtherSubnet() throws {
        let lan = try lan()
        let peers = try receivers(lan, [.b, .c, .d], port: 7001, count: 1, idle: 1)
        let sent = try run(lan, .a, ["send", "<broadcast>", "7001", "hello", "all"])
        XCTAssertEqual(sent.status, 0, sent.stderr)
        for host in [TestLAN.Host.b, .c] {
            let got = LANPeer.received(peers[host]!)
            XCTAssertEqual(got.map(\.text), ["hello all"], "\(host)")
            XCTAssertEqual(got.first?.from, "10.77.1.1")
        }
        XCTAssertEqual(
            LANPeer.received(peers[.d]!).map(\.text), [], "a host on another subnet received a directed broadcast")
    }

    func testDirectedAndLimitedBroadcast() throws {
        let lan = try lan()
        // A generous idle time: each `udp` run below starts a process, which takes a while on a loaded machine.
        let peers = try receivers(lan, [.b, .d], port: 7002, count: 2, idle: 4)
        let directed = try run(lan, .a, ["send", "10.77.1.255", "7002", "directed"])
        XCTAssertEqual(directed.status, 0, "a directed address needs no --broadcast: \(directed.stderr)")

        // 255.255.255.255 without a default route: the classic programs' failure, explained.
        let unrouted = try run(lan, .a, ["broadcast", "7002", "--limited", "lost"])
        XCTAssertEqual(unrouted.status, 69)
        XCTAssertTrue(unrouted.stderr.hasPrefix("udp: network unreachable for 255.255.255.255:7002"), unrouted.stderr)
        XCTAssertTrue(unrouted.stderr.contains("--interface"), unrouted.stderr)

        let limited = try run(lan, .a, ["broadcast", "7002", "--limited", "--interface", "lan0", "limited"])
        XCTAssertEqual(limited.status, 0, limited.stderr)
        XCTAssertEqual(LANPeer.received(peers[.b]!).map(\.text), ["directed", "limited"])
        XCTAssertEqual(LANPeer.received(peers[.d]!).map(\.text), ["limited"], "255.255.255.255 reaches the whole wire")

        let unknown = try run(lan, .a, ["broadcast", "7002", "--interface", "eth9", "x"])
        XCTAssertEqual(unknown.status, 64, "a name that is no interface here is bad usage, not an unreachable network")
        XCTAssertEqual(unknown.stderr, "udp: interface 'eth9': no such interface on this host (see 'udp interfaces')\n")
        let unicast = try run(lan, .a, ["send", "10.77.1.2", "7002", "--interface", "lan0", "x"])
        XCTAssertEqual(unicast.status, 64, unicast.stderr)
    }

    func testSeedFeiQPacketArrivesByteExactWhereTheSeedProgramFails() throws {
        let lan = try lan()
        let seed = try lan.python(
            .a, LANPeer.broadcaster, ["<broadcast>", "2425", "1:100:will:will-pc:32:will broadcast"]
        ).finish()
        XCTAssertEqual(seed.text, "error \(ENETUNREACH)\n", "the classic programs' <broadcast> needs a default route")

        let peers = try receivers(lan, [.b, .c], port: 2425, count: 1, idle: 3)
        let sent = try run(lan, .a, ["broadcast", "2425", "1:100:will:will-pc:32:will", "broadcast"])
        XCTAssertEqual(sent.status, 0, sent.stderr)
        for host in [TestLAN.Host.b, .c] {
            XCTAssertEqual(LANPeer.received(peers[host]!).map(\.text), ["1:100:will:will-pc:32:will broadcast"])
        }
    }

    func testListenMarksAPythonBroadcastAndItsInterface() throws {
        let lan = try lan()
        let json = try listener(lan, .b, ["7004", "--count", "2", "--timeout", "5s", "--json"])
        let text = try listener(lan, .c, ["7004", "--count", "1", "--timeout", "5s"])
        let broadcast = try lan.python(.a, LANPeer.broadcaster, ["10.77.1.255", "7004", "to everyone"]).finish()
        XCTAssertEqual(broadcast.text, "sent\n")
        let unicast = try lan.python(.a, LANPeer.broadcaster, ["10.77.1.2", "7004", "to b"]).finish()
        XCTAssertEqual(unicast.text, "sent\n")

        let objects = try self.json(json.finish())
        XCTAssertEqual(objects.count, 2)
        XCTAssertEqual(objects.first?["text"] as? String, "to everyone")
        XCTAssertEqual(objects.first?["from"] as? String, "10.77.1.1")
        XCTAssertEqual(objects.first?["to"] as? String, "10.77.1.255")
        XCTAssertEqual(objects.first?["cast"] as? String, "broadcast")
        XCTAssertEqual(objects.first?["interface"] as? String, "lan0")
        XCTAssertEqual(objects.last?["cast"] as? String, "unicast")
        XCTAssertEqual(objects.last?["to"] as? String, "10.77.1.2")

        let line = text.finish().text
        XCTAssertTrue(line.contains("10.77.1.1:"), line)
        XCTAssertTrue(line.hasSuffix("11 bytes  broadcast to 10.77.1.255 on lan0  to everyone\n"), line)
    }

    // MARK: - Who is out there?

    /// `udp request --all` from A to the subnet's broadcast address (named as <broadcast> or directly), to
    /// 255.255.255.255 and to the all-hosts group: the echo servers on B and C answer from their own addresses,
    /// and both are heard. D, on another subnet, is not reached by the directed broadcast, and has no route back
    /// for the others.
    func testRequestAllHearsEveryHostOfTheSubnet() throws {
        let lan = try lan()
        var servers: [Run.Handle] = []
        defer {
            for server in servers where server.process.isRunning { _ = server.finish(timeout: 5, signal: SIGKILL) }
        }
        for host in [TestLAN.Host.b, .c, .d] {
            let server = try lan.udp(host, ["echo", "0.0.0.0:7301", "--allow-broadcast", "--quiet", "--show-port"])
            XCTAssertTrue(server.waitForOutput("echo server on"), "\(host): \(server.stderr)")
            servers.append(server)
        }
        let expected: Set<String> = [TestLAN.Host.b.address, TestLAN.Host.c.address]
        for target in [
            ["<broadcast>", "--interface", "lan0"], ["<broadcast>"], ["10.77.1.255"],
            ["255.255.255.255", "--interface", "lan0"],
            ["224.0.0.1", "--interface", "lan0"],
        ] {
            let result = try run(
                lan, .a,
                ["request", target[0], "7301", "who is there", "--all", "--json", "--timeout", "1s"]
                    + target.dropFirst())
            XCTAssertEqual(result.status, 0, "\(target): \(result.stderr)")
            let replies = try json(result)
            XCTAssertEqual(Set(replies.compactMap { $0["from"] as? String }), expected, "\(target): \(result.text)")
            XCTAssertTrue(replies.allSatisfy { $0["text"] as? String == "who is there" }, result.text)
        }
        // A group has no route here but by an interface; and without --all nothing could be heard.
        let noRoute = try run(lan, .a, ["request", "224.0.0.1", "7301", "hi", "--all", "--timeout", "200ms"])
        XCTAssertEqual(noRoute.status, 69, noRoute.stderr)
        XCTAssertTrue(noRoute.stderr.contains("name an interface (--interface)"), noRoute.stderr)
        for target in ["<broadcast>", "10.77.1.255", "224.0.0.1"] {
            let withoutAll = try run(lan, .a, ["request", target, "7301", "hi", "--timeout", "200ms"])
            XCTAssertEqual(withoutAll.status, 64, "\(target): \(withoutAll.stderr)")
            XCTAssertTrue(withoutAll.stderr.contains("add --all"), withoutAll.stderr)
        }
        let outsideAll = try run(lan, .a, ["request", "10.77.1.2", "7301", "hi", "--interface", "lan0"])
        XCTAssertEqual(outsideAll.status, 64, outsideAll.stderr)
        for server in servers { _ = server.finish(timeout: 5, signal: SIGTERM) }
    }

    // MARK: - Multicast

    func testJoinedListenersReceiveAndOthersDoNot() throws {
        let lan = try lan()
        let group = [
            "7005", "--join", "239.77.1.1", "--interface", "lan0", "--count", "1", "--timeout", "5s", "--json",
        ]
        let first = try listener(lan, .b, group)
        let second = try listener(lan, .b, group)
        let bystander = try receivers(lan, [.c], port: 7005, count: 1, idle: 1)[.c]!

        let noRoute = try run(lan, .a, ["send", "239.77.1.1", "7005", "lost"])
        XCTAssertEqual(noRoute.status, 69)
        XCTAssertTrue(noRoute.stderr.contains("name an interface (--interface)"), noRoute.stderr)

        let sent = try run(
            lan, .a, ["send", "239.77.1.1", "7005", "--interface", "lan0", "--ttl", "1", "to the group"])
        XCTAssertEqual(sent.status, 0, sent.stderr)
        for listener in [first, second] {
            let objects = try json(listener.finish())
            XCTAssertEqual(objects.first?["text"] as? String, "to the group", "both listeners on one port receive")
            XCTAssertEqual(objects.first?["cast"] as? String, "multicast")
            XCTAssertEqual(objects.first?["to"] as? String, "239.77.1.1")
            XCTAssertEqual(objects.first?["interface"] as? String, "lan0")
        }
        XCTAssertEqual(LANPeer.received(bystander).map(\.text), [], "a host that did not join received the group")

        let join = try lan.udp(.d, ["listen", "7005", "--join", "239.77.1.1", "--timeout", "1s"]).finish()
        XCTAssertEqual(join.status, 69)
        XCTAssertTrue(join.stderr.hasPrefix("udp: no route picks an interface for group 239.77.1.1"), join.stderr)
        XCTAssertTrue(join.stderr.hasSuffix("(--interface)\n"), join.stderr)
    }

    func testNoLoopKeepsTheSendersOwnHostOut() throws {
        let lan = try lan()
        let group = ["7006", "--join", "239.77.1.6", "--interface", "lan0", "--count", "1"]
        let own = try listener(lan, .a, group + ["--timeout", "1s"])
        let other = try listener(lan, .b, group + ["--timeout", "5s"])
        let sent = try run(lan, .a, ["send", "239.77.1.6", "7006", "--interface", "lan0", "--no-loop", "out only"])
        XCTAssertEqual(sent.status, 0, sent.stderr)
        XCTAssertTrue(other.finish().text.hasSuffix("multicast to 239.77.1.6 on lan0  out only\n"))
        let ownResult = own.finish()
        XCTAssertEqual(ownResult.status, 75, "the sender's host received its own datagram: \(ownResult.text)")
        let looped = try run(lan, .a, ["send", "10.77.1.2", "7006", "--loop", "x"])
        XCTAssertEqual(looped.status, 64, looped.stderr)
    }

    func testSourceSpecificJoinTakesOnlyThatSource() throws {
        let lan = try lan()
        let listener = try listener(
            lan, .b,
            [
                "7007", "--join", "232.77.1.7", "--source", "10.77.1.1", "--interface", "lan0",
                "--count", "1", "--timeout", "5s", "--json",
            ])
        for (host, text) in [(TestLAN.Host.c, "from c"), (.a, "from a")] {
            let sent = try run(lan, host, ["send", "232.77.1.7", "7007", "--interface", "lan0", text])
            XCTAssertEqual(sent.status, 0, sent.stderr)
        }
        let objects = try json(listener.finish())
        XCTAssertEqual(
            objects.map { $0["text"] as? String }, ["from a"], "C's datagram came first and must have been filtered")
        XCTAssertEqual(objects.first?["from"] as? String, "10.77.1.1")
    }

    func testIPv6LinkLocalGroupOnTheLink() throws {
        let lan = try lan()
        let listener = try listener(
            lan, .b,
            ["[::]:7008", "--join", "ff02::77:8", "--interface", "lan0", "--count", "2", "--timeout", "5s", "--json"])
        for target in [["ff02::77:8", "7008"], ["[ff02::77:8%lan0]:7008"]] {
            let sent = try run(lan, .a, ["send"] + target + ["--interface", "lan0", "six"])
            XCTAssertEqual(sent.status, 0, sent.stderr)
        }
        let objects = try json(listener.finish())
        XCTAssertEqual(objects.count, 2)
        for object in objects {
            XCTAssertEqual(object["text"] as? String, "six")
            XCTAssertEqual(object["cast"] as? String, "multicast")
            XCTAssertEqual(object["to"] as? String, "ff02::77:8")
            XCTAssertEqual(object["interface"] as? String, "lan0")
            XCTAssertTrue((object["from"] as? String ?? "").hasPrefix("fe80::"), "\(object)")
        }
    }

    // MARK: - Interfaces

    func testInterfacesListsTheHostsLink() throws {
        let lan = try lan()
        let result = try run(lan, .a, ["interfaces", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let interfaces = try json(result)
        XCTAssertEqual(interfaces.map { $0["name"] as? String }, ["lo", "lan0"])
        let link = try XCTUnwrap(interfaces.last)
        XCTAssertEqual(link["mtu"] as? Int, 1500)
        XCTAssertEqual(link["flags"] as? [String], ["up", "running", "broadcast", "multicast"])
        let addresses = try XCTUnwrap(link["addresses"] as? [[String: Any]])
        let v4 = try XCTUnwrap(addresses.first { $0["family"] as? String == "ipv4" })
        XCTAssertEqual(v4["address"] as? String, "10.77.1.1")
        XCTAssertEqual(v4["prefix"] as? Int, 24)
        XCTAssertEqual(v4["broadcast"] as? String, "10.77.1.255")
        let v6 = try XCTUnwrap(addresses.first { $0["family"] as? String == "ipv6" })
        XCTAssertTrue((v6["address"] as? String ?? "").hasPrefix("fe80::"))
        XCTAssertEqual(v6["scope"] as? Int, link["index"] as? Int)

        let text = try run(lan, .a, ["interfaces", "lan0"]).text
        XCTAssertTrue(
            text.hasPrefix(
                "\(link["index"] as? Int ?? 0): lan0  <up,running,broadcast,multicast>  mtu 1500\n    ipv4 10.77.1.1/24  broadcast 10.77.1.255\n"
            ), text)
    }
}
