import Foundation
import XCTest

/// Bad input: one `udp: ` line on stderr, the documented exit code, and nothing sent.
final class BadInputTests: XCTestCase {
    private func assertFails(
        _ arguments: [String], code: Int32, mentions: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let result = try Run.udp(arguments)
        XCTAssertEqual(result.status, code, "\(arguments): \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("udp: "), "\(arguments): \(result.stderr)", file: file, line: line)
        XCTAssertEqual(
            result.stderr.filter { $0 == "\n" }.count, 1, "one line: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains(mentions), "\(arguments): \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stdout.isEmpty, file: file, line: line)
    }

    func testBadAddressesAndPorts() throws {
        try assertFails(["send", "127.0.0.1", "70000", "x"], code: 64, mentions: "invalid port '70000'")
        try assertFails(["send", "127.0.0.1:-1", "x"], code: 64, mentions: "invalid port")
        try assertFails(["send", "127.0.0.1:http", "x"], code: 64, mentions: "invalid port 'http'")
        try assertFails(["send", "::1:9999", "x"], code: 64, mentions: "brackets")
        try assertFails(["send", "[::1:9999", "x"], code: 64, mentions: "missing ']'")
        try assertFails(["send", "host with space", "9", "x"], code: 64, mentions: "unexpected character")
        try assertFails(["send"], code: 64, mentions: "missing destination")
        try assertFails(["listen", "99999"], code: 64, mentions: "invalid port '99999'")
        try assertFails(["listen", "localhost:"], code: 64, mentions: "missing port")
    }

    func testUnknownHostIs69() throws {
        try assertFails(
            ["send", "no-such-host.invalid", "9", "x"], code: 69, mentions: "cannot resolve host 'no-such-host.invalid'"
        )
        try assertFails(["request", "no-such-host.invalid:9", "x"], code: 69, mentions: "cannot resolve")
    }

    func testPortInUse() throws {
        let holder = try Run.python(
            """
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))
            print('ready', s.getsockname()[1], flush=True); time.sleep(5)
            """)
        let port = try Peer.port(of: holder)
        defer { _ = holder.finish(timeout: 1, signal: SIGTERM) }
        try assertFails(["listen", "127.0.0.1:\(port)"], code: 1, mentions: "already in use")
        try assertFails(
            ["send", "127.0.0.1", "9", "x", "--from", "127.0.0.1:\(port)"], code: 1, mentions: "already in use")
    }

    func testBadPayloads() throws {
        try assertFails(["send", "127.0.0.1", "9", "--hex", "abc"], code: 65, mentions: "odd number of hex digits")
        try assertFails(["send", "127.0.0.1", "9", "--hex", "zz"], code: 65, mentions: "invalid hex digit 'z'")
        try assertFails(["send", "127.0.0.1", "9", "-e", "bad \\q escape"], code: 65, mentions: "escape")
        try assertFails(
            ["send", "127.0.0.1", "9", "--encoding", "ebcdic", "x"], code: 64, mentions: "unknown encoding 'ebcdic'")
        try assertFails(["send", "127.0.0.1", "9", "--encoding", "latin1", "你好"], code: 65, mentions: "latin1")
        try assertFails(["send", "127.0.0.1", "9", "--file", "/nonexistent/file"], code: 65, mentions: "no such file")
        try assertFails(
            ["send", "127.0.0.1", "9", String(repeating: "a", count: 70_000)], code: 65,
            mentions: "70000 bytes is too large")
        try assertFails(
            ["send", "[::1]:9", String(repeating: "a", count: 65_528)], code: 65, mentions: "at most 65527 bytes")
    }

    func testOversizedStdinLineStopsWithoutLosingEarlierLines() throws {
        let peer = try Run.python(Peer.receiver, ["127.0.0.1", "1"])
        let port = try Peer.port(of: peer)
        let input = "ok\n" + String(repeating: "b", count: 70_000) + "\n"
        let result = try Run.udp(["send", "127.0.0.1", String(port)], stdin: Data(input.utf8))
        XCTAssertEqual(result.status, 65)
        XCTAssertTrue(peer.finish().text.contains("\n6f6b\n"))
    }

    func testBadOptionValues() throws {
        try assertFails(["send", "127.0.0.1", "9", "x", "--count", "0"], code: 64, mentions: "--count")
        try assertFails(["send", "127.0.0.1", "9", "x", "--interval", "soon"], code: 64, mentions: "interval")
        try assertFails(["listen", "0", "--max-size", "0"], code: 64, mentions: "--max-size")
        try assertFails(["request", "127.0.0.1", "9", "x", "--timeout", "-1"], code: 64, mentions: "timeout")
        try assertFails(["send", "127.0.0.1", "9", "x", "-4", "-6"], code: 64, mentions: "-4 and -6")
        try assertFails(["nosuchcommand"], code: 64, mentions: "udp --help")
    }

    func testHelpAndVersion() throws {
        for command in ["send", "listen", "request", "client", "demo"] {
            let result = try Run.udp([command, "--help"])
            XCTAssertEqual(result.status, 0)
            XCTAssertTrue(result.text.contains("Examples:"), command)
        }
        let version = try Run.udp(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.text.first?.isNumber ?? false, version.text)
    }

    func testDemoRunsQuicklyOnLoopback() throws {
        let started = Date()
        let result = try Run.udp(["demo"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        for expected in ["Hello, UDP!", "0 bytes", "refused", "(truncated)", "你好，世界", "\\e[31mgotcha"] {
            XCTAssertTrue(result.text.contains(expected), "demo transcript lacks \(expected)")
        }
        // It speaks to people who never saw the original example programs.
        XCTAssertFalse(result.text.contains("seeds"), result.text)
    }

    // MARK: - The toolkit, used as netcat or socat would be

    func testToolkitBadInputSaysWhatIsWrong() throws {
        let directory = FileManager.default.temporaryDirectory.path
        let notCapture = FileManager.default.temporaryDirectory.appendingPathComponent("udp-bad-\(getpid()).txt").path
        try "hello".write(toFile: notCapture, atomically: true, encoding: .utf8)
        defer { unlink(notCapture) }
        try assertFails(
            ["replay", "/nonexistent-\(getpid()).pcap", "127.0.0.1", "9"], code: 65, mentions: "no such file")
        try assertFails(
            ["replay", directory, "127.0.0.1", "9"], code: 65, mentions: "it is a directory; give a capture file")
        try assertFails(["replay", notCapture, "127.0.0.1", "9"], code: 65, mentions: "not a pcap or pcapng capture")
        try assertFails(
            ["listen", "127.0.0.1:0", "--pcap", directory, "--timeout", "1s"], code: 1,
            mentions: "cannot write the capture to '\(directory)': it is a directory")
        try assertFails(
            ["listen", "127.0.0.1:0", "--pcap", "/nonexistent-\(getpid())/x.pcap", "--timeout", "1s"], code: 1,
            mentions: "no such directory '/nonexistent-\(getpid())'")
        try assertFails(
            ["echo", "127.0.0.1:0", "--rules", directory], code: 64,
            mentions: "cannot read rules file '\(directory)': it is a directory")
        try assertFails(
            ["echo", "127.0.0.1:0", "--rules", "/nonexistent-\(getpid()).json"], code: 64, mentions: "no such file")
        try assertFails(
            ["echo", "127.0.0.1:0", "--exec", "cat", "--exec-limit", "0"], code: 64,
            mentions: "--exec-limit must be from 1 to 256")
        // Without --exec these changed nothing, silently.
        try assertFails(["echo", "127.0.0.1:0", "--exec-limit", "3"], code: 64, mentions: "apply with --exec")
        try assertFails(["echo", "127.0.0.1:0", "--exec-timeout", "1s"], code: 64, mentions: "apply with --exec")
        try assertFails(["echo", "127.0.0.1:0", "--exec", " "], code: 64, mentions: "--exec needs a command")
        try assertFails(
            ["pipe", "127.0.0.1", "9", "--size", "0"], code: 64, mentions: "--size must be from 1 to 65507")
        // An empty rules file would leave a plain echo answering everything.
        let emptyRules = notCapture + ".json"
        try "[]".write(toFile: emptyRules, atomically: true, encoding: .utf8)
        defer { unlink(emptyRules) }
        try assertFails(
            ["echo", "127.0.0.1:0", "--rules", emptyRules], code: 64, mentions: "the rules file holds no rules")
        // Listening and nobody came within --timeout: a timeout, as for udp listen, not a success.
        try assertFails(
            ["pipe", "--listen", "127.0.0.1:0", "--timeout", "200ms"], code: 75,
            mentions: "no datagram arrived within 200 ms")
        try assertFails(
            ["pipe", "--listen", "127.0.0.1:0", "--timeout", "0s"], code: 64, mentions: "--timeout must be more than 0")
        // A port nobody listens on: the refusal is an error, with the exit status for it.
        let closed = try Run.python(
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()
            """
        ).finish()
        let port = try XCTUnwrap(Int(closed.text.trimmingCharacters(in: .whitespacesAndNewlines)), closed.stderr)
        let piped = try Run.udp(["pipe", "127.0.0.1", String(port), "--linger", "300ms"], stdin: Data("hi\n".utf8))
        XCTAssertEqual(piped.status, 69, piped.stderr)
        XCTAssertTrue(piped.stderr.hasPrefix("udp: 127.0.0.1:\(port) refused the datagram"), piped.stderr)
        XCTAssertTrue(piped.stdout.isEmpty)
    }

    // MARK: - What a new user trips over

    func testNegativeNumbersSayWhatIsWrong() throws {
        try assertFails(["send", "127.0.0.1", "9", "x", "--count", "-1"], code: 64, mentions: "--count must be from 1")
        try assertFails(
            ["request", "127.0.0.1", "9", "x", "--retries", "-1"], code: 64, mentions: "--retries must be from 0 to 20")
        try assertFails(
            ["request", "127.0.0.1", "9", "x", "--timeout", "-5s"], code: 64,
            mentions: "--timeout -5s: a duration cannot be negative")
        try assertFails(
            ["send", "127.0.0.1", "9", "x", "--interval", "-1s"], code: 64,
            mentions: "--interval -1s: a duration cannot be negative")
        try assertFails(["echo", "127.0.0.1:0", "--rate", "-3"], code: 64, mentions: "--rate must be more than 0")
        try assertFails(["room", "serve", "--history", "-1"], code: 64, mentions: "--history must be from 0 to 65535")
        try assertFails(
            ["bench", "flood", "127.0.0.1", "9", "--rate", "-3"], code: 64, mentions: "--rate -3: must not be negative")
        try assertFails(["send", "127.0.0.1", "-1", "x"], code: 64, mentions: "invalid port '-1'")
        try assertFails(["listen", "-1"], code: 64, mentions: "invalid port '-1'")
        try assertFails(
            ["send", "127.0.0.1", "9", "-1"], code: 64, mentions: "'-1' is a negative number, not an option")
        for arguments in [["send", "127.0.0.1", "9", "x", "--count", "-1"], ["send", "127.0.0.1", "-1", "x"]] {
            let result = try Run.udp(arguments)
            XCTAssertFalse(
                result.stderr.contains("missing value") || result.stderr.contains("unknown option"), result.stderr)
        }
    }

    func testAWrongPortIsNamed() throws {
        try assertFails(["send", "127.0.0.1", "abc", "x"], code: 64, mentions: "invalid port 'abc'")
        XCTAssertFalse(try Run.udp(["send", "127.0.0.1", "abc", "x"]).stderr.contains("missing port"))
        try assertFails(["send", "127.0.0.1"], code: 64, mentions: "missing port after '127.0.0.1'")
    }

    func testPortZeroIsNotADestination() throws {
        try assertFails(["send", "127.0.0.1", "0", "x"], code: 64, mentions: "port 0 is not a destination")
        try assertFails(["request", "127.0.0.1:0", "x"], code: 64, mentions: "port 0 is not a destination")
        try assertFails(["bench", "ping", "127.0.0.1", "0"], code: 64, mentions: "port 0 is not a destination")
    }

    func testUnixSocketErrorsNameThePath() throws {
        try assertFails(
            ["send", "unix:/nonexistent/sock", "x"], code: 69,
            mentions: "no Unix socket at /nonexistent/sock: start the receiver")
        try assertFails(
            ["listen", "unix:/nonexistent/dir/x.sock"], code: 1,
            mentions: "the directory /nonexistent/dir does not exist")
        // The directory as the path names it: relative stays relative, repeated slashes count as one.
        try assertFails(
            ["listen", "unix:./nonexistent-\(getpid())/x.sock"], code: 1,
            mentions: "the directory ./nonexistent-\(getpid()) does not exist")
        try assertFails(
            ["listen", "unix:/nonexistent//dir//x.sock"], code: 1,
            mentions: "the directory /nonexistent/dir does not exist")
        // A socket file whose receiver has gone: a Python receiver binds it and exits without removing it.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("udp-gone-\(getpid()).sock").path
        defer { unlink(path) }
        let binder = try Run.python(
            "import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); print('ready 0', flush=True)",
            [path])
        _ = binder.finish()
        try assertFails(
            ["request", "unix:\(path)", "x", "--timeout", "200ms"], code: 69,
            mentions: "nothing is receiving on the Unix socket \(path)")
        unlink(path)
        try assertFails(["request", "unix:\(path)", "x"], code: 69, mentions: "no Unix socket at \(path)")
    }

    func testUnknownInterfaceIsBadUsage() throws {
        try assertFails(["interfaces", "nosuchif0"], code: 64, mentions: "no such interface")
        try assertFails(
            ["send", "<broadcast>", "9", "x", "--interface", "nosuchif0"], code: 64, mentions: "no such interface")
        try assertFails(
            ["listen", "127.0.0.1:0", "--join", "239.1.2.3", "--interface", "nosuchif0"], code: 64,
            mentions: "no such interface")
    }

    func testUnknownCommandsListTheCommands() throws {
        for arguments in [["frobnicate"], ["help", "frobnicate"]] {
            try assertFails(
                arguments, code: 64, mentions: "unknown command 'frobnicate'; the commands are send, listen, request")
        }
        try assertFails(["room"], code: 64, mentions: "udp room serve, udp room join")
        try assertFails(["bench"], code: 64, mentions: "udp bench ping, udp bench flood, udp bench sink")
        try assertFails(
            ["room", "frob"], code: 64,
            mentions: "unknown command 'frob'; the subcommands of 'udp room' are serve, join")
        let help = try Run.udp(["help", "send"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.text.contains("USAGE: udp send"), help.text)
    }

    func testUsageErrorsPointToTheSubcommandsHelp() throws {
        try assertFails(["send", "127.0.0.1", "9", "--frob"], code: 64, mentions: "(see 'udp send --help')")
        try assertFails(["room", "serve", "--frob"], code: 64, mentions: "(see 'udp room serve --help')")
        try assertFails(
            ["bench", "ping", "127.0.0.1", "9", "--count", "0"], code: 64, mentions: "(see 'udp bench ping --help')")
        try assertFails(["listen"], code: 64, mentions: "(see 'udp listen --help')")
    }

    func testListenTimeoutSaysNoDatagramArrived() throws {
        let result = try Run.udp(["listen", "127.0.0.1:0", "--timeout", "300ms"])
        XCTAssertEqual(result.status, 75)
        XCTAssertTrue(result.stderr.hasSuffix("udp: no datagram arrived within 300 ms\n"), result.stderr)
        XCTAssertFalse(result.stderr.contains("reply"), result.stderr)
        let quiet = try Run.udp(["listen", "127.0.0.1:0", "--timeout", "300ms", "-q"])
        XCTAssertEqual(quiet.status, 75)
        XCTAssertEqual(quiet.stderr, "")
    }

    func testDurationsNeedAUnitEverywhere() throws {
        try assertFails(
            ["listen", "127.0.0.1:0", "--timeout", "5"], code: 64, mentions: "--timeout 5: add a unit: 5s, 5ms or 5us")
        try assertFails(
            ["request", "127.0.0.1", "9", "x", "--timeout", "2"], code: 64, mentions: "add a unit: 2s, 2ms or 2us")
        try assertFails(
            ["proxy", "0", "127.0.0.1", "9", "--delay", "20"], code: 64,
            mentions: "--delay: add a unit to 20: 20ms, 20s or 20us")
        try assertFails(
            ["proxy", "0", "127.0.0.1", "9", "--up-jitter", "5"], code: 64, mentions: "--up-jitter: add a unit")
        try assertFails(
            ["listen", "127.0.0.1:0", "--timeout", "2S"], code: 64,
            mentions: "unknown unit 'S'; the units are us (or µs), ms, s, m")
        try assertFails(
            ["listen", "127.0.0.1:0", "--timeout", "5parsecs"], code: 64,
            mentions: "unknown unit 'parsecs'; the units are")
    }

    func testShortTimeoutsAreNotReportedAsZero() throws {
        // A receiver that never answers, so the request times out (no ICMP refusal).
        let peer = try Run.python(Peer.receiver, ["127.0.0.1", "1"])
        let port = try Peer.port(of: peer)
        defer { _ = peer.finish(timeout: 6, signal: SIGTERM) }
        try assertFails(
            ["request", "127.0.0.1", String(port), "x", "--timeout", "250us", "--retries", "0"], code: 75,
            mentions: "timed out after 250 us")
    }

    func testIgnoredOrImpossibleOptionsAreRefused() throws {
        try assertFails(
            ["listen", "127.0.0.1:0", "--timeout", "0"], code: 64, mentions: "--timeout must be more than 0")
        try assertFails(
            ["send", "127.0.0.1", "9", "--hex", "48", "--encoding", "gbk"], code: 64,
            mentions: "--encoding gbk does not apply to --hex messages")
        try assertFails(
            ["send", "127.0.0.1", "9", "--hex", "48", "-e"], code: 64, mentions: "-e does not apply to --hex messages")
        try assertFails(["send", "127.0.0.1", "9", "--each"], code: 64, mentions: "--each needs MESSAGE words")
        try assertFails(
            ["listen", "127.0.0.1:0", "--max-size", "70000"], code: 64, mentions: "--max-size must be from 1 to 65535")
    }

    func testEmptyStdinAndHostPortFollowedByANumberAreWarned() throws {
        let peer = try Run.python(Peer.receiver, ["127.0.0.1", "1"])
        let port = try Peer.port(of: peer)
        let empty = try Run.udp(["send", "127.0.0.1", String(port)], stdin: Data())
        XCTAssertEqual(empty.status, 0)
        XCTAssertTrue(empty.stderr.contains("udp: warning: nothing sent: standard input was empty"), empty.stderr)
        let mixed = try Run.udp(["send", "127.0.0.1:\(port)", "9998", "x"])
        XCTAssertEqual(mixed.status, 0)
        XCTAssertTrue(
            mixed.stderr.contains("udp: warning: '9998' after 127.0.0.1:\(port) is part of the message, not a port"),
            mixed.stderr)
        // It is still sent as written: "9998 x" to the HOST:PORT.
        XCTAssertTrue(
            peer.finish().text.contains("\n" + Array("9998 x".utf8).map { String(format: "%02x", $0) }.joined() + "\n"))
    }

    func testRequestWithoutMessageSendsAnEmptyDatagramAsDocumented() throws {
        let help = try Run.udp(["request", "--help"])
        XCTAssertTrue(help.text.contains("an empty datagram"), help.text)
        let echo = try Run.python(Peer.echo, ["127.0.0.1"])
        let port = try Peer.port(of: echo)
        defer { _ = echo.finish(timeout: 6, signal: SIGTERM) }
        let result = try Run.udp(["request", "127.0.0.1", String(port), "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.text.contains("\"length\":0"), result.text)
    }

    func testRoomServeTakesItsAddressAsAnArgument() throws {
        let server = try Run.start(["room", "serve", "127.0.0.1:0", "--show-port"])
        let port = try Peer.listenPort(of: server, prefix: "room server on ")
        XCTAssertGreaterThan(port, 0)
        let result = server.finish(timeout: 5, signal: SIGTERM)
        XCTAssertTrue(result.stderr.contains("room server on 127.0.0.1:\(port)"), result.stderr)
        try assertFails(
            ["room", "serve", "127.0.0.1:0", "--port", "9000"], code: 64, mentions: "give the local address once")
    }

    func testChatBindsWithFromLikeSendAndRequest() throws {
        for command in ["send", "request", "chat"] {
            let help = try Run.udp([command, "--help"]).text
            XCTAssertTrue(help.contains("--from <address>"), "\(command): \(help)")
            XCTAssertFalse(help.contains("--bind") || help.contains("--port <"), "\(command): \(help)")
        }
        // The peer prints the port each message came from; chat sends from the --from port.
        let peer = try Run.python(
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); s.settimeout(5)
            print('ready', s.getsockname()[1], flush=True)
            data, addr = s.recvfrom(100)
            print('from', addr[1], data.decode(), flush=True)
            """)
        let port = try Peer.port(of: peer)
        let holder = try Run.python(
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close()
            print('ready', p, flush=True)
            """)
        let local = try Peer.port(of: holder)
        _ = holder.finish()
        let chat = try Run.udp(
            ["chat", "127.0.0.1", String(port), "--from", "127.0.0.1:\(local)"], stdin: Data("hi\n".utf8))
        XCTAssertEqual(chat.status, 0, chat.stderr)
        XCTAssertTrue(peer.finish().text.contains("from \(local) hi"))
    }

    func testHelpShowsOnlyWhatAppliesAndFitsTheTerminal() throws {
        let commands = [
            ["send"], ["listen"], ["request"], ["client"], ["echo"], ["chat"], ["room", "serve"], ["room", "join"],
            ["broadcast"], ["interfaces"], ["bench", "ping"], ["bench", "flood"], ["bench", "sink"], ["proxy"],
        ]
        for command in commands {
            let text = try Run.udp(command + ["--help"]).text
            var inExamples = false
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("Examples:") || line.hasPrefix("  Examples:") {
                    inExamples = true
                    continue
                }
                if inExamples && !line.isEmpty && !line.hasPrefix("  ") { inExamples = false }
                // An example line too long for 80 columns wraps back to column 0.
                if inExamples && !line.isEmpty { XCTAssertTrue(line.hasPrefix("  "), "\(command): '\(line)' wrapped") }
            }
            // "seed" as in the tutorials' programs means nothing to a user (--seed, the proxy's random seed, does).
            let jargon = text.range(
                of: "seeds|seed's|seed (program|sender|receiver|client|broadcaster)",
                options: [.regularExpression, .caseInsensitive])
            XCTAssertNil(jargon, "\(command) help: \(jargon.map { String(text[$0]) } ?? "")")
        }
        let send = try Run.udp(["send", "--help"]).text
        XCTAssertFalse(send.contains("received payloads"), send)
        let listen = try Run.udp(["listen", "--help"]).text
        XCTAssertFalse(listen.contains("--escapes"), listen)
        XCTAssertTrue(listen.contains("Show each payload as a hex dump"), listen)
        let echo = try Run.udp(["echo", "--help"]).text
        XCTAssertTrue(echo.contains("(default: 20)"), echo)
        XCTAssertFalse(echo.contains("20.0"), echo)
        let request = try Run.udp(["request", "--help"]).text
        for line in request.split(separator: "\n") where line.contains("udp request") && line.contains("--hex") {
            XCTAssertEqual(line.components(separatedBy: "--hex").count, 2, "one --hex per example: \(line)")
        }
    }
}
