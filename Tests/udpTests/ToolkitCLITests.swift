import Foundation
import XCTest

/// The netcat/socat/Packet Sender toolkit: pipe, replay, echo --exec/--rule, templates, checksums, --all, --pcap.
final class ToolkitCLITests: XCTestCase {
    private func tempPath(_ suffix: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("udp-toolkit-\(UUID().uuidString)\(suffix)").path
    }

    /// A Python peer that answers every datagram with the same bytes, from 127.0.0.1; exits after 3 s idle.
    private let pythonEcho = """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); s.settimeout(3)
        print('ready', s.getsockname()[1], flush=True)
        while True:
            try: data, addr = s.recvfrom(70000)
            except socket.timeout: break
            print('got', len(data), flush=True)
            s.sendto(data, addr)
        """

    // MARK: - pipe

    func testPipeIsBinarySafeAndSplitsBySize() throws {
        let peer = try Run.python(pythonEcho)
        let port = try Peer.port(of: peer)
        let input = Data((0..<2_560).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let result = try Run.udp(
            ["pipe", "127.0.0.1", String(port), "--size", "1000", "--linger", "500ms"], stdin: input)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, input, "the replies, in order, nothing added")
        XCTAssertEqual(result.stderr, "")
        let sizes = peer.finish(timeout: 6).text.split(separator: "\n").filter { $0.hasPrefix("got ") }.compactMap {
            Int($0.dropFirst(4))
        }
        XCTAssertEqual(sizes.reduce(0, +), 2_560)
        XCTAssertTrue(sizes.allSatisfy { $0 <= 1_000 }, "\(sizes)")
    }

    func testPipeAppendsModbusCRC() throws {
        let peer = try Run.python(pythonEcho)
        let port = try Peer.port(of: peer)
        let result = try Run.udp(
            ["pipe", "127.0.0.1:\(port)", "--append", "crc16-modbus", "--linger", "300ms"],
            stdin: Data([1, 3, 0, 0, 0, 1]))
        XCTAssertEqual(Array(result.stdout), [1, 3, 0, 0, 0, 1, 0x84, 0x0A], result.stderr)
        _ = peer.finish(timeout: 6)
    }

    func testPipeAgainstSocatExecServer() throws {
        try Run.require("socat")
        let port = Int.random(in: 30_000...60_000)
        let socat = try Run.program("socat", ["-T3", "UDP-RECVFROM:\(port),bind=127.0.0.1,fork", "EXEC:tr a-z A-Z"])
        defer { _ = socat.finish(timeout: 1, signal: SIGTERM) }
        XCTAssertTrue(Peer.waitBound(port), "socat did not bind \(port)")
        let result = try Run.udp(
            ["pipe", "127.0.0.1", String(port), "--linger", "1s"], stdin: Data("hello socat".utf8))
        XCTAssertEqual(result.text, "HELLO SOCAT", result.stderr)
    }

    func testPipeListenIsNcDashL() throws {
        try Run.require("nc")
        let listener = try Run.start(["pipe", "--listen", "127.0.0.1:0", "--show-port"], stdin: Data("reply\n".utf8))
        let port = try Peer.listenPort(of: listener)
        let nc = try Run.program("nc", ["-u", "-w", "2", "127.0.0.1", String(port)], stdin: Data("hello\n".utf8))
        let ncResult = nc.finish(timeout: 8)
        XCTAssertEqual(ncResult.text, "reply\n", "nc got what --listen read from stdin")
        let result = listener.finish(signal: SIGTERM)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.text, "hello\n", "the payload, raw, nothing added")
    }

    func testPipeReportsRefusalOnStderrOnly() throws {
        // Find a port nobody listens on: bind, note, close.
        let probe = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) }
        }
        close(probe)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let result = try Run.udp(["pipe", "127.0.0.1", String(port), "--linger", "300ms"], stdin: Data("x".utf8))
        XCTAssertEqual(result.stdout.count, 0)
        XCTAssertTrue(result.stderr.hasPrefix("udp: "), result.stderr)
        XCTAssertTrue(result.stderr.contains("refused") || result.stderr.contains("unreachable"), result.stderr)
        XCTAssertEqual(result.status, 69)
    }

    // MARK: - echo --exec

    func testExecRepliesWithTheCommandsOutputAndEnvironment() throws {
        let (server, port) = try Peer.startEcho([
            "--exec", #"printf '%s %s ' "$UDP_PEER_ADDR" "$UDP_LOCAL_PORT"; tr a-z A-Z"#,
        ])
        let reply = try Run.udp(["request", "127.0.0.1", String(port), "hello", "--raw"])
        XCTAssertEqual(reply.text, "127.0.0.1 \(port) HELLO", reply.stderr)
        let result = server.finish(signal: SIGTERM)
        XCTAssertTrue(result.stderr.contains("1 replied"), result.stderr)
    }

    func testExecCommandsGetOnlyTheStandardDescriptors() throws {
        // Not the server's socket, its event loop's descriptors, or another command's pipes.
        let (server, port) = try Peer.startEcho(["--exec", "ls -l /proc/$$/fd"])
        let reply = try Run.udp(["request", "127.0.0.1", String(port), "x", "--raw"])
        XCTAssertTrue(reply.text.contains(" 1 -> pipe:"), reply.text + reply.stderr)
        XCTAssertFalse(reply.text.contains("socket:"), reply.text)
        XCTAssertFalse(reply.text.contains("eventpoll"), reply.text)
        _ = server.finish(signal: SIGTERM)
    }

    func testExecBadCommandsAreKilledRefusedAndCounted() throws {
        let marker = "31.\(Int.random(in: 100...999))"
        let (server, port) = try Peer.startEcho(["--exec", "sleep \(marker); echo late", "--exec-timeout", "300ms"])
        let late = try Run.udp(["request", "127.0.0.1", String(port), "x", "--timeout", "1s", "--retries", "0"])
        XCTAssertEqual(late.status, 75, "no reply from a command that never finishes")
        // The timeout killed the command's whole process group.
        // (Anchored: the server's own command line holds the text too.)
        let left = try Spawn.run(["pgrep", "-f", "^(/bin/sh -c )?sleep \(marker)"])
        XCTAssertNotEqual(left.status, 0, "still running: \(left.text)")
        let result = server.finish(signal: SIGTERM)
        XCTAssertTrue(result.stderr.contains("exec-timeout 1"), result.stderr)

        let (big, bigPort) = try Peer.startEcho(["--exec", "head -c 100000 /dev/zero"])
        let none = try Run.udp(["request", "127.0.0.1", String(bigPort), "x", "--timeout", "1s", "--retries", "0"])
        XCTAssertEqual(none.status, 75, "100 KB does not fit in a datagram: refused, not cut")
        let bigResult = big.finish(signal: SIGTERM)
        XCTAssertTrue(bigResult.stderr.contains("exec-oversize 1"), bigResult.stderr)

        let (failing, failingPort) = try Peer.startEcho(["--exec", "echo partial; exit 3"])
        _ = try Run.udp(["request", "127.0.0.1", String(failingPort), "x", "--timeout", "500ms", "--retries", "0"])
        XCTAssertTrue(failing.finish(signal: SIGTERM).stderr.contains("exec-failed 1"))
    }

    func testExecLimitDropsAndCounts() throws {
        let (server, port) = try Peer.startEcho(["--exec", "sleep 1; echo done", "--exec-limit", "1"])
        let sender = try Run.python(Peer.sender, ["127.0.0.1", String(port), "61", "62", "63"]).finish()
        XCTAssertEqual(sender.status, 0)
        usleep(1_500_000)
        let result = server.finish(signal: SIGTERM)
        XCTAssertTrue(result.stderr.contains("1 replied"), result.stderr)
        XCTAssertTrue(result.stderr.contains("exec-limit 2"), result.stderr)
    }

    func testExecKeepsEchoProtections() throws {
        // A loop-prone source port never runs the command; replies larger than requests are rate limited.
        let (server, port) = try Peer.startEcho(["--exec", "echo a reply longer than the request", "--rate", "1"])
        let fromPort7 = """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 7)); s.settimeout(0.5)
            s.sendto(b'x', ('127.0.0.1', int(sys.argv[1])))
            try: print(s.recvfrom(100)[0])
            except socket.timeout: print('(none)')
            """
        let looped = try Run.python(fromPort7, [String(port)]).finish()
        XCTAssertEqual(looped.text, "(none)\n", looped.stderr)
        let burst = """
            import socket, sys, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
            for _ in range(6):
                s.sendto(b'x', ('127.0.0.1', int(sys.argv[1]))); time.sleep(0.05)
            n = 0
            while True:
                try: s.recvfrom(100); n += 1
                except socket.timeout: break
            print(n)
            """
        let replies = try Run.python(burst, [String(port)]).finish()
        let result = server.finish(signal: SIGTERM)
        XCTAssertEqual(replies.text, "2\n", "a burst of 2 at --rate 1: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("loop-port 1"), result.stderr)
        XCTAssertTrue(result.stderr.contains("rate-limited 4"), result.stderr)
    }

    func testPipeListenEndsAfterIdleTimeoutWithSuccessOnceSomeoneCame() throws {
        let listener = try Run.start(
            ["pipe", "--listen", "127.0.0.1:0", "--show-port", "--timeout", "500ms"], stdin: Data())
        let port = try Peer.listenPort(of: listener)
        XCTAssertEqual(try Run.udp(["send", "127.0.0.1", String(port), "hi"]).status, 0)
        let result = listener.finish(timeout: 5)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.text, "hi")
    }

    func testPipeListenFirstKeepsTheFirstSender() throws {
        let listener = try Run.start(["pipe", "--listen", "127.0.0.1:0", "--show-port", "--first"], stdin: nil)
        let port = try Peer.listenPort(of: listener)
        let twoSenders = """
            import socket, sys, time
            a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.settimeout(2)
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.settimeout(0.5)
            a.sendto(b'from a;', ('127.0.0.1', int(sys.argv[1]))); time.sleep(0.2)
            b.sendto(b'from b;', ('127.0.0.1', int(sys.argv[1]))); time.sleep(0.2)
            print('ready 0', flush=True)
            print('a got', a.recvfrom(100)[0].decode(), flush=True)
            try: print('b got', b.recvfrom(100)[0].decode())
            except socket.timeout: print('b got nothing')
            """
        let peers = try Run.python(twoSenders, [String(port)])
        _ = try Peer.port(of: peers)
        listener.inPipe.fileHandleForWriting.write(Data("to the first".utf8))
        listener.closeInput()
        let out = peers.finish()
        XCTAssertTrue(out.text.contains("a got to the first"), out.text + out.stderr)
        XCTAssertTrue(out.text.contains("b got nothing"), out.text)
        XCTAssertEqual(listener.finish(signal: SIGTERM).text, "from a;from b;")
    }

    private func jsonSummary(_ result: Run.Result) throws -> [String: Any] {
        let last = try XCTUnwrap(result.stderr.split(separator: "\n").last, "no summary: \(result.stderr)")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], String(last))
    }

    private func dropped(_ summary: [String: Any], _ reason: String) -> Int {
        (summary["dropped"] as? [String: Any])?[reason] as? Int ?? 0
    }

    func testExecRepliesBouncingBetweenTwoServersAreStopped() throws {
        guard geteuid() == 0 else { throw XCTSkip("a raw socket needs root") }
        let (a, portA) = try Peer.startEcho(["--exec", "cat", "--quiet", "--json"])
        let (b, portB) = try Peer.startEcho(["--exec", "cat", "--quiet", "--json"])
        defer {
            for server in [a, b] where server.process.isRunning { _ = server.finish(signal: SIGKILL) }
        }
        // "From" A to B: each command answers with the bytes it was given, so the two would bounce them forever.
        let spoof = try Run.python(
            EchoCLITests.rawSender, ["127.0.0.1", String(portA), "127.0.0.1", String(portB), "ping-pong"]
        ).finish()
        XCTAssertEqual(spoof.text, "sent\n", spoof.stderr)
        usleep(2_000_000)
        for port in [portA, portB] {
            let reply = try Run.udp(["request", "127.0.0.1", String(port), "real", "--raw"])
            XCTAssertEqual(reply.text, "real", "port \(port): \(reply.stderr)")
        }
        let (endedA, endedB) = (a.finish(signal: SIGTERM), b.finish(signal: SIGTERM))
        let first = try jsonSummary(endedA)
        let second = try jsonSummary(endedB)
        let received = (first["received"] as? Int ?? 0) + (second["received"] as? Int ?? 0)
        // 8 round trips are allowed, then the next return gets no reply; a real request each on top.
        XCTAssertLessThanOrEqual(received, 2 * (8 + 2) + 2, "first \(first), second \(second)")
        XCTAssertEqual(dropped(first, "loop") + dropped(second, "loop"), 1, "first \(first), second \(second)")
    }

    func testExecReplyTheKernelRefusesIsCountedAsFailedNotReplied() throws {
        guard geteuid() == 0 else { throw XCTSkip("a raw socket needs root") }
        let (server, port) = try Peer.startEcho(["--exec", "cat", "--quiet", "--json"])
        // 127.255.255.255 is loopback's broadcast route: the kernel refuses the command's reply there.
        let spoof = try Run.python(
            EchoCLITests.rawSender, ["127.255.255.255", "5555", "127.0.0.1", String(port), "refuse me"]
        ).finish()
        XCTAssertEqual(spoof.text, "sent\n", spoof.stderr)
        usleep(700_000)
        let json = try jsonSummary(server.finish(signal: SIGTERM))
        XCTAssertEqual(json["received"] as? Int, 1, "\(json)")
        XCTAssertEqual(json["replied"] as? Int, 0, "\(json)")
        XCTAssertEqual(dropped(json, "send-failed"), 1, "\(json)")
    }

    // MARK: - echo --rule

    func testRulesAnswerAndCountNoRule() throws {
        let rulesFile = tempPath(".json")
        try #"[{"match": "contains:temp", "reply": "21C"}]"#.write(toFile: rulesFile, atomically: true, encoding: .utf8)
        defer { unlink(rulesFile) }
        let (server, port) = try Peer.startEcho([
            "--rule", "ping => pong", "--rule", #"regex:^GET (\w+) => VALUE {1}"#, "--rules", rulesFile,
        ])
        let client = """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
            for m in sys.argv[2:]:
                s.sendto(m.encode(), ('127.0.0.1', int(sys.argv[1])))
                try: print(s.recvfrom(1024)[0].decode(), flush=True)
                except socket.timeout: print('(none)', flush=True)
            """
        let out = try Run.python(client, [String(port), "ping", "GET speed", "the temp?", "other"]).finish()
        XCTAssertEqual(out.text, "pong\nVALUE speed\n21C\n(none)\n", out.stderr)
        let result = server.finish(signal: SIGTERM)
        XCTAssertTrue(result.stderr.contains("no-rule 1"), result.stderr)
    }

    func testRuleRepliesKeepEchoProtections() throws {
        // A rule's reply larger than its request is rate limited like a template's; port 7 is never answered.
        let (server, port) = try Peer.startEcho(["--rule", "x => a reply longer than the request", "--rate", "1"])
        let script = """
            import socket, sys, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
            p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); p.bind(('127.0.0.1', 7))
            p.sendto(b'x', ('127.0.0.1', int(sys.argv[1])))
            for _ in range(6):
                s.sendto(b'x', ('127.0.0.1', int(sys.argv[1]))); time.sleep(0.05)
            n = 0
            while True:
                try: s.recvfrom(100); n += 1
                except socket.timeout: break
            p.settimeout(0.1)
            try: p.recvfrom(100); print(n, 'port 7 answered')
            except socket.timeout: print(n)
            """
        let replies = try Run.python(script, [String(port)]).finish()
        let result = server.finish(signal: SIGTERM)
        XCTAssertEqual(replies.text, "2\n", "a burst of 2 at --rate 1: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("loop-port 1"), result.stderr)
        XCTAssertTrue(result.stderr.contains("rate-limited 4"), result.stderr)
    }

    func testRulesWithFallbackReply() throws {
        let (server, port) = try Peer.startEcho(["--rule", "ping => pong", "--reply", "?{text}"])
        XCTAssertEqual(try Run.udp(["request", "127.0.0.1", String(port), "x", "--raw"]).text, "?x")
        XCTAssertEqual(try Run.udp(["request", "127.0.0.1", String(port), "ping", "--raw"]).text, "pong")
        XCTAssertFalse(server.finish(signal: SIGTERM).stderr.contains("no-rule"))
    }

    func testBadRulesAndChecksumsAreUsageErrors() throws {
        let regex = try Run.udp(["echo", "127.0.0.1:0", "--rule", "a => b", "--rule", "regex:([a-z => x"])
        XCTAssertEqual(regex.status, 64)
        XCTAssertTrue(regex.stderr.hasPrefix("udp: rule 2"), regex.stderr)
        XCTAssertTrue(regex.stderr.contains("bad regex"), regex.stderr)
        let checksum = try Run.udp(["send", "127.0.0.1", "9", "x", "--append", "md5"])
        XCTAssertEqual(checksum.status, 64)
        XCTAssertTrue(checksum.stderr.contains("unknown checksum 'md5'"), checksum.stderr)
        let template = try Run.udp(["send", "127.0.0.1", "9", "{nope}", "--template"])
        XCTAssertEqual(template.status, 64)
        XCTAssertTrue(template.stderr.contains("unknown placeholder {nope}"), template.stderr)
    }

    // MARK: - templates, checksums, --forever

    func testSendTemplateWithCounterAndCRC32() throws {
        let receiver = """
            import socket, zlib
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); s.settimeout(5)
            print('ready', s.getsockname()[1], flush=True)
            for _ in range(3):
                data = s.recvfrom(70000)[0]
                ok = zlib.crc32(data[:-4]).to_bytes(4, 'big') == data[-4:]
                print(data[:-4].hex(), ok, flush=True)
            """
        let peer = try Run.python(receiver)
        let port = try Peer.port(of: peer)
        let sent = try Run.udp([
            "send", "127.0.0.1", String(port), "n={counter}{hex:00 ff}", "--template", "--count", "3", "--append",
            "crc32",
        ])
        XCTAssertEqual(sent.status, 0, sent.stderr)
        let lines = peer.finish().text.split(separator: "\n").dropFirst().map(String.init)
        XCTAssertEqual(lines, ["6e3d3100ff True", "6e3d3200ff True", "6e3d3300ff True"])
    }

    func testSendForeverStopsOnSIGINTAndPrintsTheCount() throws {
        let receiver = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); s.settimeout(1.5)
            print('ready', s.getsockname()[1], flush=True)
            n = 0
            while True:
                try: s.recvfrom(100); n += 1
                except socket.timeout: break
                if n == 4: print('got 4', flush=True)
            print('count', n, flush=True)
            """
        let peer = try Run.python(receiver)
        let port = try Peer.port(of: peer)
        let sender = try Run.start([
            "send", "127.0.0.1", String(port), "tick {counter}", "--template", "--forever", "--interval", "50ms",
        ])
        // Four datagrams in (however slowly a loaded machine starts the process), then the signal.
        XCTAssertTrue(peer.waitForOutput("got 4", timeout: 10), peer.stderr)
        let result = sender.finish(signal: SIGINT)
        XCTAssertEqual(result.status, 0, result.stderr)
        let sent = result.stderr.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        XCTAssertNotNil(sent, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("sent "), result.stderr)
        let received = peer.finish().text.split(separator: "\n").last.map(String.init)
        XCTAssertEqual(received, "count \(sent ?? -1)")
        XCTAssertGreaterThan(sent ?? 0, 3)
        XCTAssertEqual(
            try Run.udp(["send", "127.0.0.1", "9", "x", "--forever"]).status, 64,
            "--forever without --interval would flood")
    }

    func testRequestTemplateAndAppendedChecksumOnEchoReplies() throws {
        let (server, port) = try Peer.startEcho(["--append", "xor8", "--allow-amplification"])
        let reply = try Run.udp(["request", "127.0.0.1", String(port), "{hex:01 02 04}", "--template", "--raw"])
        XCTAssertEqual(Array(reply.stdout), [1, 2, 4, 7], reply.stderr)
        _ = server.finish(signal: SIGTERM)
    }

    // MARK: - request --all

    func testRequestAllPrintsEveryReplyFromAnyAddress() throws {
        let responders = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); s.settimeout(5)
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); other.bind(('127.0.0.2', 0))
            print('ready', s.getsockname()[1], flush=True)
            data, addr = s.recvfrom(100)
            s.sendto(b'first ' + data, addr)
            other.sendto(b'second ' + data, addr)
            """
        let peer = try Run.python(responders)
        let port = try Peer.port(of: peer)
        let result = try Run.udp(["request", "127.0.0.1", String(port), "who", "--all", "--timeout", "700ms", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.text.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, result.text)
        XCTAssertTrue(
            lines.contains { $0.contains(#""from":"127.0.0.1""#) && $0.contains(#""text":"first who""#) }, result.text)
        XCTAssertTrue(
            lines.contains { $0.contains(#""from":"127.0.0.2""#) && $0.contains(#""text":"second who""#) }, result.text)
        XCTAssertTrue(lines.allSatisfy { $0.contains(#""rtt_ms":"#) })
        _ = peer.finish()
        let none = try Run.udp(["request", "127.0.0.1", String(port), "anyone?", "--all", "--timeout", "300ms"])
        XCTAssertEqual(none.status, 75, none.stderr)
    }

    // MARK: - captures

    private func tshark(_ file: String) throws -> [String] {
        try Run.require("tshark")
        let out = try Spawn.run(
            [
                "tshark", "-r", file, "-T", "fields", "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport", "-e",
                "udp.dstport", "-e", "data",
            ], timeout: 30)
        XCTAssertEqual(out.status, 0, out.text)
        return out.text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("Running as user") }
    }

    func testListenPcapOpensInTshark() throws {
        try Run.require("tshark")
        for (bind, host) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
            let file = tempPath(".pcap")
            defer { unlink(file) }
            let listener = try Run.start(["listen", bind, "--show-port", "--pcap", file, "--count", "2"])
            let port = try Peer.listenPort(of: listener)
            let sender = """
                import socket, sys
                fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
                s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((sys.argv[1], 0))
                print(s.getsockname()[1], flush=True)
                s.sendto(b'hello', (sys.argv[1], int(sys.argv[2]))); s.sendto(bytes(range(256)), (sys.argv[1], int(sys.argv[2])))
                """
            let sent = try Run.python(sender, [host, String(port)]).finish()
            let sourcePort = sent.text.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(listener.finish().status, 0)
            let rows = try tshark(file)
            let all = Data(0...255).map { String(format: "%02x", $0) }.joined()
            XCTAssertEqual(
                rows,
                [
                    host == "::1"
                        ? "\t::1\t\(sourcePort)\t\(port)\t68656c6c6f"
                        : "127.0.0.1\t\t\(sourcePort)\t\(port)\t68656c6c6f",
                    host == "::1"
                        ? "\t::1\t\(sourcePort)\t\(port)\t\(all)" : "127.0.0.1\t\t\(sourcePort)\t\(port)\t\(all)",
                ], "tshark decodes our records as the datagrams that arrived")
        }
    }

    func testListenPcapToStdoutAndReplayOfItsCutCopy() throws {
        let listener = try Run.start(["listen", "127.0.0.1:0", "--show-port", "--pcap", "-", "--count", "3"])
        let port = try Peer.listenPort(of: listener)
        _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), "6f6e65", "74776f", "7468726565"]).finish()
        let capture = listener.finish()
        XCTAssertEqual(capture.status, 0, capture.stderr)
        XCTAssertEqual(
            Array(capture.stdout.prefix(4)), [0xD4, 0xC3, 0xB2, 0xA1], "stdout is the pcap file and nothing else")
        let file = tempPath(".pcap")
        defer { unlink(file) }
        // Cut the last record in the middle.
        try capture.stdout.dropLast(2).write(to: URL(fileURLWithPath: file))
        let peer = try Run.python(Peer.receiver, ["127.0.0.1", "2"])
        let target = try Peer.port(of: peer)
        let replay = try Run.udp(["replay", file, "127.0.0.1", String(target), "--speed", "0"])
        XCTAssertEqual(replay.status, 65)
        XCTAssertTrue(replay.stderr.contains("sent 2 datagrams"), replay.stderr)
        XCTAssertTrue(replay.stderr.contains("udp: \(file): record 3"), replay.stderr)
        XCTAssertTrue(replay.stderr.contains("cut short"), replay.stderr)
        XCTAssertEqual(
            peer.finish().text.split(separator: "\n").dropFirst().map(String.init), ["6f6e65", "74776f", "done"])
    }

    /// Captures on loopback with tshark (pcapng, Ethernet on lo; Linux cooked on "any"), converts with editcap, and
    /// replays each file to a Python receiver.
    func testReplayReadsWhatTsharkAndEditcapWrite() throws {
        try Run.require("tshark")
        try Run.require("editcap")
        let capturePort = Int.random(in: 30_000...60_000)
        // Ethernet over IPv4; Linux cooked v1 over IPv6; Linux cooked v2 over IPv4.
        for (interface, linkType, host) in [
            ("lo", "EN10MB", "127.0.0.1"), ("any", "LINUX_SLL", "::1"), ("any", "LINUX_SLL2", "127.0.0.1"),
        ] {
            let file = tempPath(".pcapng")
            defer { unlink(file) }
            let tshark = try Run.program(
                "tshark",
                [
                    "-i", interface, "-y", linkType, "-f", "udp dst port \(capturePort)", "-c", "3", "-a",
                    "duration:20", "-w", file,
                ])
            XCTAssertTrue(tshark.waitForOutput("Capturing on", timeout: 15), tshark.stderr)
            usleep(500_000)
            _ = try Run.python(Peer.sender, [host, String(capturePort), "616161", "626262", "636363"]).finish()
            let captured = tshark.finish(timeout: 20)
            XCTAssertEqual(captured.status, 0, captured.stderr)
            let pcap = tempPath(".pcap")
            defer { unlink(pcap) }
            XCTAssertEqual(try Spawn.run(["editcap", "-F", "pcap", file, pcap]).status, 0)
            for (input, speed) in [(file, "0"), (pcap, "1")] {
                let peer = try Run.python(Peer.receiver, ["127.0.0.1", "3"])
                let target = try Peer.port(of: peer)
                let replay = try Run.udp([
                    "replay", input, "127.0.0.1", String(target), "--speed", speed, "--dst-port", String(capturePort),
                ])
                XCTAssertEqual(replay.status, 0, replay.stderr)
                XCTAssertTrue(
                    replay.stderr.hasPrefix("sent 3 datagrams (9 bytes)"), "\(linkType) \(input): \(replay.stderr)")
                XCTAssertEqual(
                    peer.finish().text.split(separator: "\n").dropFirst().map(String.init),
                    ["616161", "626262", "636363", "done"], linkType)
            }
        }
    }

    func testReplayKeepsScaledGapsAndCapsLongOnes() throws {
        // Three packets 0.4 s apart (raw IPv4 link type), written the way libpcap does.
        let writer = """
            import struct, sys
            with open(sys.argv[1], 'wb') as f:
                f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 101))
                for i in range(3):
                    udp = struct.pack('!HHHH', 5000, 9999, 9, 0) + bytes([0x61 + i])
                    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
                    f.write(struct.pack('<IIII', 1700000000, 400000 * i, len(ip), len(ip)) + ip)
            """
        let file = tempPath(".pcap")
        defer { unlink(file) }
        XCTAssertEqual(try Run.python(writer, [file]).finish().status, 0)
        func replay(_ extra: [String]) throws -> Double {
            let peer = try Run.python(Peer.receiver, ["127.0.0.1", "3"])
            let port = try Peer.port(of: peer)
            let started = Date()
            let result = try Run.udp(["replay", file, "127.0.0.1", String(port)] + extra)
            let elapsed = Date().timeIntervalSince(started)
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(
                peer.finish().text.split(separator: "\n").dropFirst().map(String.init), ["61", "62", "63", "done"])
            return elapsed
        }
        // Only lower bounds are asserted for the waits (a loaded machine is slower, never faster).
        XCTAssertGreaterThanOrEqual(try replay(["--speed", "2"]), 0.39, "0.8 s of capture at twice the speed")
        XCTAssertLessThan(
            try replay(["--speed", "1", "--max-pause", "20ms"]), 0.75, "pauses capped at 20 ms, not 0.4 s")
    }

    func testReplayFiltersAndRejectsNonCaptures() throws {
        let notCapture = tempPath(".txt")
        try "hello".write(toFile: notCapture, atomically: true, encoding: .utf8)
        defer { unlink(notCapture) }
        let bad = try Run.udp(["replay", notCapture, "127.0.0.1", "9"])
        XCTAssertEqual(bad.status, 65)
        XCTAssertTrue(bad.stderr.contains("not a pcap or pcapng capture"), bad.stderr)
        XCTAssertEqual(try Run.udp(["replay", "/nonexistent.pcap", "127.0.0.1", "9"]).status, 65)
    }
}
