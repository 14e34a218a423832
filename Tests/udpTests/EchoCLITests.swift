import Foundation
import XCTest

/// `udp echo` against the classic clients written in Python.
final class EchoCLITests: XCTestCase {
    /// The classic Python greeting client: sends three names, prints each reply.
    private let greetingClient = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
        for name in sys.argv[2:]:
            s.sendto(name.encode(), ('127.0.0.1', int(sys.argv[1])))
            print(s.recvfrom(1024)[0].decode(), flush=True)
        """

    func testGreetingServerAnswersTheSeedsClientAndSummarizesOnSIGTERM() throws {
        let (server, port) = try Peer.startEcho(["--reply", "Hello, {text}!"])
        let client = try Run.python(greetingClient, [String(port), "Tom", "Jerry", "Spike"]).finish()
        XCTAssertEqual(client.text, "Hello, Tom!\nHello, Jerry!\nHello, Spike!\n", client.stderr)
        let result = server.finish(signal: SIGTERM)
        XCTAssertEqual(result.status, 0)
        XCTAssertEqual(result.text.split(separator: "\n").count, 3)
        XCTAssertTrue(
            result.stderr.contains("3 received (13 bytes) from 1 sender, 3 replied (37 bytes)"), result.stderr)
    }

    func testEchoIsByteExactAndQuiet() throws {
        let (server, port) = try Peer.startEcho(["--quiet"])
        let client = try Run.python(
            """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
            for n in (0, 1, 1472, 65507):
                data = bytes((i * 7 + n) & 255 for i in range(n))
                s.sendto(data, ('127.0.0.1', int(sys.argv[1])))
                print(n, s.recvfrom(70000)[0] == data, flush=True)
            """, [String(port)]
        ).finish()
        XCTAssertEqual(client.text, "0 True\n1 True\n1472 True\n65507 True\n", client.stderr)
        let result = server.finish(signal: SIGINT)
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.isEmpty)
    }

    func testInteractiveRepliesComeFromStandardInput() throws {
        let (server, port) = try Peer.startEcho(["--interactive"], stdin: Data("first answer\nsecond answer\n".utf8))
        let client = try Run.python(greetingClient, [String(port), "q1", "q2"]).finish()
        XCTAssertEqual(client.text, "first answer\nsecond answer\n", client.stderr)
        _ = server.finish(signal: SIGTERM)
    }

    /// An echo server whose stdout nobody reads still answers everyone: the line per datagram is dropped and
    /// counted, never waited for (it used to stop answering once the pipe was full).
    func testEchoAnswersWhileItsStdoutIsAPipeNobodyReads() throws {
        let server = try StalledStdout(["echo", "127.0.0.1:0", "--show-port"])
        let port = try stalledPort(server)
        // Fill the pipe (64 KiB) and the display queue (2 MiB) with lines of about 8 KB.
        let sender = try Run.python(burstSender, [String(port), "1000", "8000", "2000"])
        XCTAssertTrue(sender.waitForOutput("sent 1000", timeout: 30), sender.stderr)
        _ = sender.finish(timeout: 5)
        let client = try Run.python(
            """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
            ok = 0
            for i in range(50):
                msg = ('question %d' % i).encode()
                s.sendto(msg, ('127.0.0.1', int(sys.argv[1])))
                while True:
                    data = s.recvfrom(70000)[0]
                    if data == msg:
                        ok += 1
                        break
            print('answered', ok, flush=True)
            """, [String(port)]
        ).finish(timeout: 60)
        XCTAssertEqual(client.text, "answered 50\n", client.stderr)
        let seconds = try XCTUnwrap(server.secondsToExit(after: SIGINT, limit: 10), "udp echo did not end on SIGINT")
        XCTAssertLessThan(seconds, 3)
        XCTAssertEqual(server.process.terminationStatus, 0, server.stderr)
        XCTAssertTrue(server.stderr.contains("50 replied") || server.stderr.contains(" replied ("), server.stderr)
        XCTAssertTrue(
            server.stderr.range(of: #"udp: display fell behind: \d+ lines not shown"#, options: .regularExpression)
                != nil, server.stderr)
    }

    private func stalledPort(_ handle: StalledStdout) throws -> Int {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if let line = handle.stderr.split(separator: "\n").first(where: { $0.hasPrefix("echo server on ") }),
                let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...])
            {
                return port
            }
            usleep(10_000)
        }
        XCTFail("udp echo did not start: \(handle.stderr)")
        throw XCTSkip("no server")
    }

    /// Piped stdin: no prompt on stdout (it is for the datagrams), and SIGINT ends the server promptly with its
    /// summary although stdin is still open.
    func testInteractiveWithPipedInputStopsOnSIGINTWithSummaryAndNoPrompt() throws {
        for signal in [SIGINT, SIGTERM] {
            let (server, port) = try Peer.startEcho(["--interactive"])
            let client = try Run.python(greetingClient, [String(port), "q1"])
            XCTAssertTrue(server.waitForOutput("q1"), server.text)
            server.inPipe.fileHandleForWriting.write(Data("the answer\n".utf8))
            XCTAssertEqual(client.finish(timeout: 5).text, "the answer\n")
            let start = Date()
            let result = server.finish(timeout: 5, signal: signal)
            let elapsed = Date().timeIntervalSince(start)
            XCTAssertLessThan(elapsed, 3, "stdin is still open; the signal must end the server anyway")
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertFalse(result.text.contains("reply>"), "the prompt is not data: \(result.text)")
            XCTAssertTrue(result.text.contains("q1"), result.text)
            XCTAssertTrue(
                result.stderr.contains("1 received (2 bytes) from 1 sender, 1 replied (10 bytes)"), result.stderr)
        }
    }

    /// A reply the operator mistyped (bad hex, too large for a datagram) is reported, and the same datagram waits
    /// for a good line; the server goes on.
    func testInteractiveTypoIsReportedAndServingGoesOn() throws {
        let (server, port) = try Peer.startEcho(["--interactive", "--hex"])
        let client = try Run.python(greetingClient, [String(port), "q1", "q2"])
        XCTAssertTrue(server.waitForOutput("2 bytes"), server.text)
        let huge = String(repeating: "41", count: 70_000)
        server.inPipe.fileHandleForWriting.write(Data("zz not hex\n\(huge)\n4142\n4344\n".utf8))
        let answers = client.finish(timeout: 10)
        XCTAssertEqual(answers.text, "AB\nCD\n", answers.stderr)
        server.closeInput()
        let result = server.finish(timeout: 5)
        XCTAssertEqual(result.status, 0, result.stderr)
        let errors = result.stderr.split(separator: "\n").filter { $0.hasPrefix("udp: ") }
        XCTAssertEqual(errors.count, 2, result.stderr)
        XCTAssertTrue(errors.allSatisfy { $0.contains("type the reply again") }, result.stderr)
        XCTAssertTrue(result.stderr.contains("2 received (4 bytes) from 1 sender, 2 replied (4 bytes)"), result.stderr)
    }

    /// On a terminal: the prompt shows, the typed reply goes out, and Ctrl-C prints the summary.
    func testInteractiveOnATerminalPromptsAndSummarizesOnCtrlC() throws {
        let port = try freePort()
        // bash goes on after a child that handled Ctrl-C itself and exited normally, so the exit status shows.
        let screen = try TerminalSession(
            "bash -c '\(Run.udpPath) echo 127.0.0.1:\(port) --interactive; echo exit=$?; sleep 30'")
        XCTAssertTrue(try screen.waitForScreen("echo server on"), screen.screen)
        let client = try Run.python(greetingClient, [String(port), "hello"])
        // (tmux drops trailing blanks from the screen it captures: the prompt reads "reply>".)
        XCTAssertTrue(try screen.waitForScreen("reply>"), screen.screen)
        XCTAssertTrue(screen.screen.contains("5 bytes  hello"), screen.screen)
        try screen.enter("hi there")
        XCTAssertEqual(client.finish(timeout: 5).text, "hi there\n")
        XCTAssertTrue(try screen.waitForScreen("reply> hi there"), screen.screen)
        _ = try Spawn.run(["tmux", "send-keys", "-t", screen.session, "C-c"])
        XCTAssertTrue(try screen.waitForScreen("exit=0", timeout: 5), screen.screen)
        XCTAssertTrue(screen.screen.contains("1 received (5 bytes) from 1 sender, 1 replied (8 bytes)"), screen.screen)
    }

    func testBadSettings() throws {
        for (arguments, mention) in [
            (["echo", "0", "--reply", "Hi {name}"], "unknown placeholder {name}"),
            (["echo", "0", "--allow", "10.0.0.0/40"], "prefix length"),
            (["echo", "0", "--rate", "0"], "--rate"),
        ] {
            let result = try Run.udp(arguments)
            XCTAssertEqual(result.status, 64, "\(arguments) \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("udp: ") && result.stderr.contains(mention), result.stderr)
        }
    }

    // MARK: - Loops, kernel drops, Unix-domain senders

    /// The JSON summary `udp echo --json` writes on stderr when it ends.
    private func summary(_ result: Run.Result, file: StaticString = #filePath, line: UInt = #line) throws -> [String:
        Any]
    {
        let last = try XCTUnwrap(
            result.stderr.split(separator: "\n").last, "no summary: \(result.stderr)", file: file, line: line)
        return try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], String(last), file: file,
            line: line)
    }

    private func dropped(_ summary: [String: Any], _ reason: String) -> Int {
        (summary["dropped"] as? [String: Any])?[reason] as? Int ?? -1
    }

    /// Writes one UDP datagram with a chosen source address and port through a raw socket (root only): what an
    /// attacker who spoofs the source does. The payload is text, or hex after "hex:".
    static let rawSender = """
        import socket, struct, sys
        src, sport, dst, dport, text = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
        payload = bytes.fromhex(text[4:]) if text.startswith('hex:') else text.encode()
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0x4242, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
        s.sendto(ip + udp, (dst, 0))
        print('sent', flush=True)
        """

    func testASpoofedDatagramBetweenTwoEchoServersStopsBouncingAndBothStillAnswer() throws {
        guard geteuid() == 0 else { throw XCTSkip("a raw socket needs root") }
        let (a, portA) = try Peer.startEcho(["--quiet", "--json"])
        let (b, portB) = try Peer.startEcho(["--quiet", "--json"])
        defer {
            for server in [a, b] where server.process.isRunning { _ = server.finish(signal: SIGKILL) }
        }
        // "From" A to B: B answers A, A answers B, and so on.
        let spoof = try Run.python(
            Self.rawSender, ["127.0.0.1", String(portA), "127.0.0.1", String(portB), "ping-pong"]
        ).finish()
        XCTAssertEqual(spoof.text, "sent\n", spoof.stderr)
        usleep(1_200_000)
        // Both still answer a real client.
        for port in [portA, portB] {
            let client = try Run.python(greetingClient, [String(port), "real"]).finish()
            XCTAssertEqual(client.text, "real\n", "port \(port): \(client.stderr)")
        }
        // Both end before either summary is read, so a failure leaves no server behind.
        let (endedA, endedB) = (a.finish(signal: SIGTERM), b.finish(signal: SIGTERM))
        let first = try summary(endedA)
        let second = try summary(endedB)
        let received = (first["received"] as? Int ?? 0) + (second["received"] as? Int ?? 0)
        // Without loop detection this is tens of thousands after a second; 8 round trips are allowed, then the
        // next return is dropped.
        XCTAssertLessThanOrEqual(received, 2 * (8 + 2) + 2, "first \(first), second \(second)")
        XCTAssertEqual(dropped(first, "loop") + dropped(second, "loop"), 1, "first \(first), second \(second)")
    }

    func testAClientRepeatingItselfIsNotALoop() throws {
        let (server, port) = try Peer.startEcho(["--quiet", "--json"])
        // The same request 30 times, 20 ms apart, each after its reply: all but one in nine are answered.
        let client = try Run.python(
            """
            import socket, sys, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
            replies = 0
            for i in range(30):
                s.sendto(b'same', ('127.0.0.1', int(sys.argv[1])))
                try:
                    replies += s.recvfrom(100)[0] == b'same'
                except socket.timeout:
                    pass
                time.sleep(0.02)
            print('replies', replies, flush=True)
            """, [String(port)]
        ).finish(timeout: 15)
        XCTAssertEqual(client.text, "replies 27\n", client.stderr)
        let result = try summary(server.finish(signal: SIGTERM))
        XCTAssertEqual(result["replied"] as? Int, 27)
        XCTAssertEqual(dropped(result, "loop"), 3)
    }

    /// Sends COUNT datagrams of SIZE bytes to PORT on 127.0.0.1 and never reads; prints "sent N". A pause every
    /// 100 datagrams lets loopback's input queue (1,000 packets) drain, so that only the receiving socket drops.
    static let burst = """
        import socket, sys, time
        port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = 0
        for i in range(count):
            s.sendto(i.to_bytes(4, 'big') * (size // 4), ('127.0.0.1', port))
            sent += 1
            if sent % 100 == 0:
                time.sleep(0.001)
        print('sent', sent, flush=True)
        """

    func testEchoReportsDatagramsTheKernelDropped() throws {
        try skipWithoutFastPath("Kernel drop counts")
        let (server, port) = try Peer.startEcho(["--quiet", "--json"])
        // Stopped, the server reads nothing: a burst larger than its receive buffer overflows it.
        kill(server.process.processIdentifier, SIGSTOP)
        let burst = try Run.python(Self.burst, [String(port), "4000", "1400"]).finish()
        kill(server.process.processIdentifier, SIGCONT)
        XCTAssertEqual(burst.text, "sent 4000\n", burst.stderr)
        usleep(1_500_000)
        let result = server.finish(signal: SIGTERM)
        let json = try summary(result)
        let received = try XCTUnwrap(json["received"] as? Int)
        let drops = try XCTUnwrap(json["kernel_drops"] as? Int, "\(json)")
        XCTAssertGreaterThan(drops, 0)
        XCTAssertEqual(received + drops, 4000, "\(json)")
    }

    func testUnixSendersWithoutAPathOrGoneAreNotAnsweredAndDoNotEndTheServer() throws {
        try skipWithoutFastPath("Receiving Unix-domain datagrams from unbound senders, and replies to gone senders")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("udp-echo-\(getpid()).sock").path
        defer { unlink(path) }
        let server = try Run.start(["echo", "unix:\(path)", "--json"])
        let deadline = Date().addingTimeInterval(5)
        while !FileManager.default.fileExists(atPath: path) && Date() < deadline { usleep(10_000) }
        let clients = try Run.python(
            """
            import os, socket, sys
            path = sys.argv[1]
            unbound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            unbound.sendto(b'from nowhere', path)
            abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            abstract.bind('\\0udp-test-abstract-%d' % os.getpid())
            abstract.sendto(b'from the abstract namespace', path)
            gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            gone.bind(path + '.gone')
            gone.sendto(b'gone before the reply', path)
            gone.close()
            os.unlink(path + '.gone')
            named = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            mine = path + '.client'
            named.bind(mine)
            named.settimeout(2)
            named.sendto(b'answer me', path)
            print(named.recvfrom(100)[0].decode(), flush=True)
            os.unlink(mine)
            """, [path]
        ).finish()
        XCTAssertEqual(clients.text, "answer me\n", clients.stderr)
        let result = server.finish(signal: SIGTERM)
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, result.text)
        XCTAssertTrue(lines[0].contains("\"from\":\"(unbound)\""), lines[0])
        XCTAssertTrue(lines[1].contains("\"from\":\"@udp-test-abstract-"), lines[1])
        let json = try summary(result)
        XCTAssertEqual(json["received"] as? Int, 4)
        XCTAssertEqual(dropped(json, "unbound-sender"), 2)
        // The sender that vanished got its reply only if it was quick enough to still be there.
        XCTAssertEqual((json["replied"] as? Int ?? 0) + dropped(json, "send-failed"), 2, "\(json)")
    }

    func testAReplyTheKernelRefusesIsCountedAsFailedNotReplied() throws {
        guard geteuid() == 0 else { throw XCTSkip("a raw socket needs root") }
        let (server, port) = try Peer.startEcho(["--quiet", "--json"])
        // 127.255.255.255 is loopback's broadcast route: the kernel refuses a reply there without SO_BROADCAST
        // (and the reply would stay on this host anyway).
        let spoof = try Run.python(Self.rawSender, ["127.255.255.255", "5555", "127.0.0.1", String(port), "refuse me"])
            .finish()
        XCTAssertEqual(spoof.text, "sent\n", spoof.stderr)
        usleep(300_000)
        let json = try summary(server.finish(signal: SIGTERM))
        XCTAssertEqual(json["received"] as? Int, 1, "\(json)")
        XCTAssertEqual(json["replied"] as? Int, 0, "\(json)")
        XCTAssertEqual(dropped(json, "send-failed"), 1, "\(json)")
    }
}
