import Foundation
import XCTest

/// `udp send` and `udp listen` against independent peers: python3's socket module, socat and nc.
final class SendListenTests: XCTestCase {
    private func receiver(_ host: String = "127.0.0.1", count: Int) throws -> (Run.Handle, Int) {
        let peer = try Run.python(Peer.receiver, [host, String(count)])
        return (peer, try Peer.port(of: peer))
    }

    private func received(_ peer: Run.Handle) -> [String] {
        let result = peer.finish()
        let lines = result.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertTrue(lines.contains("done"), "receiver did not get everything: \(result.text) \(result.stderr)")
        guard let start = lines.firstIndex(where: { $0.hasPrefix("ready") }), let end = lines.firstIndex(of: "done")
        else { return lines }
        return Array(lines[(start + 1)..<end])
    }

    private func hex(_ text: String) -> String { Data(text.utf8).map { String(format: "%02x", $0) }.joined() }

    func testSendJoinsWordsIntoOneDatagram() throws {
        let (peer, port) = try receiver(count: 1)
        let result = try Run.udp(["send", "127.0.0.1", String(port), "hello", "world"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(received(peer), [hex("hello world")])
    }

    func testSendEachWordAndHostColonPortForm() throws {
        let (peer, port) = try receiver(count: 3)
        let result = try Run.udp(["send", "127.0.0.1:\(port)", "--each", "Tom", "Jerry", "Spike"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(received(peer), [hex("Tom"), hex("Jerry"), hex("Spike")])
    }

    func testSendOneDatagramPerStdinLineIncludingEmptyLine() throws {
        let (peer, port) = try receiver(count: 3)
        let result = try Run.udp(["send", "127.0.0.1", String(port)], stdin: Data("first\n\nthird\n".utf8))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(received(peer), [hex("first"), "", hex("third")])
    }

    func testSendHexEscapesEncodingAndCount() throws {
        let (peer, port) = try receiver(count: 5)
        XCTAssertEqual(try Run.udp(["send", "127.0.0.1", String(port), "--hex", "0x48 0x69:00 ff"]).status, 0)
        XCTAssertEqual(try Run.udp(["send", "127.0.0.1", String(port), "-e", "a\\tb\\x00\\n"]).status, 0)
        XCTAssertEqual(try Run.udp(["send", "127.0.0.1", String(port), "--encoding", "gbk", "你好"]).status, 0)
        XCTAssertEqual(
            try Run.udp(["send", "127.0.0.1", String(port), "--count", "2", "--interval", "10ms", "again"]).status, 0)
        XCTAssertEqual(received(peer), ["486900ff", "61096200" + "0a", "c4e3bac3", hex("again"), hex("again")])
    }

    func testSendFileOfMaximumSizeArrivesByteExact() throws {
        let (peer, port) = try receiver(count: 1)
        let bytes = (0..<65_507).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("udp-max-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try Run.udp(["send", "127.0.0.1", String(port), "--file", path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(received(peer), [bytes.map { String(format: "%02x", $0) }.joined()])
    }

    func testSendEmptyMessageIsAZeroByteDatagram() throws {
        let (peer, port) = try receiver(count: 2)
        XCTAssertEqual(try Run.udp(["send", "127.0.0.1", String(port), ""]).status, 0)
        XCTAssertEqual(try Run.udp(["send", "127.0.0.1", String(port), "end"]).status, 0)
        XCTAssertEqual(received(peer), ["", hex("end")])
    }

    /// `--file -`: the whole of stdin as one datagram, whatever bytes it holds (every byte value, newlines and NULs,
    /// more than one read's worth of a pipe).
    func testSendFileFromStdinArrivesByteExact() throws {
        let (peer, port) = try receiver(count: 2)
        let bytes = (0..<65_507).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 17) }
        let result = try Run.udp(["send", "127.0.0.1", String(port), "--file", "-"], stdin: Data(bytes))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try Run.udp(["send", "127.0.0.1", String(port), "--file", "-"], stdin: Data()).status, 0)
        XCTAssertEqual(received(peer), [bytes.map { String(format: "%02x", $0) }.joined(), ""])
    }

    /// `--file -` with a stdin that cannot be read (a directory): one line saying why, and the data-error status.
    func testSendFileFromUnreadableStdinSaysWhy() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Run.udpPath)
        process.arguments = ["send", "127.0.0.1", "9", "--file", "-"]
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/"))
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 65, stderr)
        XCTAssertEqual(stderr, "udp: reading standard input failed: \(String(cString: strerror(EISDIR)))\n")
    }

    func testSendOverIPv6() throws {
        let (peer, port) = try receiver("::1", count: 2)
        XCTAssertEqual(try Run.udp(["send", "[::1]:\(port)", "six"]).status, 0)
        XCTAssertEqual(try Run.udp(["send", "::1", String(port), "again"]).status, 0)
        XCTAssertEqual(received(peer), [hex("six"), hex("again")])
    }

    func testShowPortReportsTheEphemeralPortTheReceiverSaw() throws {
        let peer = try Run.python(
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); s.settimeout(5)
            print('ready', s.getsockname()[1], flush=True)
            d, a = s.recvfrom(100); print('from', a[1], flush=True)
            """)
        let port = try Peer.port(of: peer)
        let result = try Run.udp(["send", "127.0.0.1", String(port), "x", "--show-port"])
        let peerOut = peer.finish().text
        let sourcePort = peerOut.split(separator: "\n").first { $0.hasPrefix("from ") }.map { String($0.dropFirst(5)) }
        XCTAssertNotNil(sourcePort)
        XCTAssertTrue(result.stderr.contains("local address 0.0.0.0:\(sourcePort ?? "?")"), result.stderr)
    }

    // MARK: listen

    private func startListener(_ extra: [String] = []) throws -> (Run.Handle, Int) {
        let listener = try Run.start(["listen", "127.0.0.1:0", "--show-port"] + extra)
        return (listener, try Peer.listenPort(of: listener))
    }

    func testListenShowsSenderLengthAndEscapedText() throws {
        let (listener, port) = try startListener(["--count", "3", "--timeout", "5s"])
        let sender = try Run.python(
            Peer.sender, ["127.0.0.1", String(port), hex("hello"), "", "1b5b326a1b5d303b78070a"])
        XCTAssertEqual(sender.finish().status, 0)
        let result = listener.finish()
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, result.text)
        XCTAssertTrue(lines[0].contains("127.0.0.1:") && lines[0].hasSuffix("5 bytes  hello"), lines[0])
        XCTAssertTrue(lines[1].contains("0 bytes"), lines[1])
        XCTAssertTrue(lines[2].hasSuffix("\\e[2j\\e]0;x\\a\\n"), lines[2])
        XCTAssertFalse(result.stdout.contains(0x1B), "an escape byte reached the terminal")
        XCTAssertTrue(result.stderr.contains("3 datagrams, 16 bytes from 1 sender"), result.stderr)
    }

    func testListenHexDumpAndRawAndJSON() throws {
        let payload = "000102414243ff0a"
        do {
            let (listener, port) = try startListener(["--count", "1", "--hex"])
            _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), payload]).finish()
            let text = listener.finish().text
            XCTAssertTrue(text.contains("00000000  00 01 02 41 42 43 ff 0a                           |...ABC..|"), text)
        }
        do {
            let (listener, port) = try startListener(["--count", "2", "--raw"])
            _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), payload, "7a"]).finish()
            XCTAssertEqual(listener.finish().stdout, Data([0, 1, 2, 0x41, 0x42, 0x43, 0xFF, 0x0A, 0x7A]))
        }
        do {
            let (listener, port) = try startListener(["--count", "2", "--json"])
            _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), payload, hex("héllo \"q\"")]).finish()
            let lines = listener.finish().text.split(separator: "\n")
            XCTAssertEqual(lines.count, 2)
            let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
            XCTAssertEqual(first["length"] as? Int, 8)
            XCTAssertEqual(first["from"] as? String, "127.0.0.1")
            XCTAssertEqual(first["truncated"] as? Bool, false)
            XCTAssertEqual(
                first["payload"] as? String, Data([0, 1, 2, 0x41, 0x42, 0x43, 0xFF, 0x0A]).base64EncodedString())
            XCTAssertNil(first["text"], "invalid UTF-8 has no text field")
            let second = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as! [String: Any]
            XCTAssertEqual(second["text"] as? String, "héllo \"q\"")
        }
    }

    func testListenFlagsTruncationWithSmallMaximum() throws {
        let (listener, port) = try startListener(["--count", "2", "--json", "--max-size", "4"])
        _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), hex("abcdefgh"), hex("abcd")]).finish()
        let lines = listener.finish().text.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let cut = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        XCTAssertEqual(cut["truncated"] as? Bool, true)
        XCTAssertEqual(cut["text"] as? String, "abcd")
        let whole = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as! [String: Any]
        XCTAssertEqual(whole["truncated"] as? Bool, false)
    }

    func testListenReceivesIPv4AndIPv6OnTheWildcard() throws {
        let listener = try Run.start(["listen", "0", "--show-port", "--count", "2"])
        let port = try Peer.listenPort(of: listener)
        _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), hex("four")]).finish()
        _ = try Run.python(Peer.sender, ["::1", String(port), hex("six")]).finish()
        let text = listener.finish().text
        XCTAssertTrue(text.contains("127.0.0.1:"), text)
        XCTAssertTrue(text.contains("[::1]:"), text)
    }

    func testListenDecodesGB18030() throws {
        let (listener, port) = try startListener(["--count", "1", "--encoding", "gb18030"])
        _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), "c4e3bac3"]).finish()
        XCTAssertTrue(listener.finish().text.hasSuffix("4 bytes  你好\n"))
    }

    func testListenTimeoutWithNothingExits75() throws {
        let result = try Run.udp(["listen", "127.0.0.1:0", "--timeout", "200ms"])
        XCTAssertEqual(result.status, 75)
        XCTAssertTrue(result.stderr.contains("0 datagrams"), result.stderr)
    }

    func testListenPrintsSummaryOnSIGTERMAndSIGINT() throws {
        for signal in [SIGTERM, SIGINT] {
            let (listener, port) = try startListener()
            _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), hex("one"), hex("two")]).finish()
            XCTAssertTrue(listener.waitForOutput("two"))
            let result = listener.finish(signal: signal)
            XCTAssertEqual(result.status, 0)
            XCTAssertTrue(result.stderr.contains("2 datagrams, 6 bytes from 1 sender"), result.stderr)
        }
    }

    func testUnixDomainDatagramSocket() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "udp-\(UUID().uuidString.prefix(8)).sock"
        ).path
        let listener = try Run.start(["listen", "unix:\(path)", "--show-port", "--count", "1"])
        XCTAssertTrue(listener.waitForOutput("listening on"))
        XCTAssertEqual(try Run.udp(["send", path, "over unix"]).status, 0)
        let result = listener.finish()
        XCTAssertTrue(result.text.hasSuffix("9 bytes  over unix\n"), result.text + result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "socket file left behind")
    }

    // MARK: socat and nc as peers

    func testSocatReceivesFromUdpSend() throws {
        try Run.require("socat")
        let port = try freePort()
        let socat = try Run.program("socat", ["-u", "UDP4-RECV:\(port),bind=127.0.0.1", "STDOUT"])
        XCTAssertTrue(Peer.waitBound(port), "socat did not bind port \(port)")
        XCTAssertEqual(try Run.udp(["send", "127.0.0.1", String(port), "to socat"]).status, 0)
        XCTAssertTrue(socat.waitForOutput("to socat"))
        _ = socat.finish(timeout: 1, signal: SIGTERM)
    }

    func testUdpListenReceivesFromSocatAndNetcat() throws {
        try Run.require("socat")
        try Run.require("nc")
        let (listener, port) = try startListener(["--count", "2"])
        let socat = try Run.program(
            "socat", ["-u", "STDIN", "UDP4-SENDTO:127.0.0.1:\(port)"], stdin: Data("from socat".utf8))
        XCTAssertEqual(socat.finish().status, 0)
        XCTAssertTrue(listener.waitForOutput("from socat"))
        let nc = try Run.program("nc", ["-u", "-w1", "127.0.0.1", String(port)], stdin: Data("from nc\n".utf8))
        _ = nc.finish()
        let text = listener.finish().text
        XCTAssertTrue(text.contains("10 bytes  from socat"), text)
        XCTAssertTrue(text.contains("8 bytes  from nc\\n"), text)
    }

    func testPythonSeedChatPeerUnderstandsGBK() throws {
        // The classic Python peer decodes with gb2312; udp send --encoding gbk speaks it.
        let peer = try Run.python(
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); s.settimeout(5)
            print('ready', s.getsockname()[1], flush=True)
            d, a = s.recvfrom(1024); print(d.decode('gb2312'), flush=True)
            """)
        let port = try Peer.port(of: peer)
        XCTAssertEqual(try Run.udp(["send", "127.0.0.1", String(port), "--encoding", "gbk", "你好，世界"]).status, 0)
        XCTAssertTrue(peer.finish().text.contains("你好，世界"))
    }
}

/// A UDP port that was free a moment ago.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Edge cases found in review: live Unix sockets, unbound Unix senders, -6, a reader that goes away.
final class ListenEdgeTests: XCTestCase {
    func testLiveUnixSocketIsNotTakenOver() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "udp-live-\(UUID().uuidString.prefix(8)).sock"
        ).path
        let first = try Run.start(["listen", path, "--show-port", "--count", "2"])
        XCTAssertTrue(first.waitForOutput("listening on"))
        let second = try Run.udp(["listen", path])
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(second.stderr.contains("already in use"), second.stderr)
        XCTAssertEqual(try Run.udp(["send", path, "named"]).status, 0)
        XCTAssertTrue(first.waitForOutput("named"))
        // A sender without a path of its own is received and shown as such; it does not end the listener.
        // Only the Linux fast path can read such a datagram: without it, a second named one ends the count.
        if buildHasFastPath {
            _ = try Run.python(
                """
                import socket, sys
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'anon', sys.argv[1])
                """, [path]
            ).finish()
        } else {
            XCTAssertEqual(try Run.udp(["send", path, "again"]).status, 0)
        }
        let result = first.finish()
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.text.contains("named"), result.text)
        if buildHasFastPath {
            XCTAssertTrue(result.text.contains("(unbound)") && result.text.contains("anon"), result.text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testIPv6OnlyWildcardWithDash6() throws {
        let listener = try Run.start(["listen", "0", "-6", "--show-port", "--count", "1", "--timeout", "2s"])
        let port = try Peer.listenPort(of: listener)
        _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), "34"]).finish()
        _ = try Run.python(Peer.sender, ["::1", String(port), "36"]).finish()
        let text = listener.finish().text
        XCTAssertTrue(text.contains("[::1]:") && !text.contains("127.0.0.1"), text)
    }

    /// A listener whose stdout nobody reads keeps receiving, counts the lines it could not show, and still ends
    /// promptly on SIGINT and SIGTERM (it used to sit in write() until the reader woke up).
    func testListenIntoAStalledPipeExitsPromptlyOnSignal() throws {
        for signal in [SIGINT, SIGTERM] {
            let listener = try StalledStdout(["listen", "127.0.0.1:0", "--show-port"])
            let port = try waitForPort(listener, prefix: "listening on ")
            // 3,000 lines of about 8 KB: far more than the pipe (64 KiB) and the display queue (2 MiB) hold
            // (about 270 such lines); the kernel may drop some of the burst on a busy machine.
            let sender = try Run.python(burstSender, [String(port), "3000", "8000", "2000"])
            XCTAssertTrue(sender.waitForOutput("sent 3000", timeout: 30), sender.stderr)
            _ = sender.finish(timeout: 5)
            usleep(200_000)
            let seconds = listener.secondsToExit(after: signal, limit: 10)
            let elapsed = try XCTUnwrap(
                seconds, "udp listen did not end within 10 s of signal \(signal) with a stalled stdout")
            print("udp listen with a stalled stdout ended \(String(format: "%.3f", elapsed)) s after signal \(signal)")
            XCTAssertLessThan(elapsed, 3, "must end within about 1 s of the signal")
            XCTAssertEqual(listener.process.terminationStatus, 0, listener.stderr)
            let err = listener.stderr
            // Receiving went on long after the pipe and the queue were full (they hold about 270 such lines).
            let counted =
                err.split(separator: "\n").compactMap { line -> Int? in
                    guard line.hasSuffix("from 1 sender") || line.contains(" datagrams, ") else { return nil }
                    return Int(line.prefix { $0.isNumber })
                }.first ?? 0
            XCTAssertGreaterThan(counted, 350, err)
            XCTAssertTrue(
                err.range(of: #"udp: display fell behind: \d+ lines not shown"#, options: .regularExpression) != nil,
                err)
        }
    }

    private func waitForPort(_ handle: StalledStdout, prefix: String) throws -> Int {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if let line = handle.stderr.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }),
                let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...])
            {
                return port
            }
            usleep(10_000)
        }
        XCTFail("did not start: \(handle.stderr)")
        throw XCTSkip("did not start")
    }

    func testListenStopsWhenItsReaderGoesAway() throws {
        let listener = try Run.start(["listen", "127.0.0.1:0", "--show-port", "--raw"])
        let port = try Peer.listenPort(of: listener)
        // Close the read end of stdout by pointing it at a pipe nobody reads: emulate with `head -c1` via shell.
        _ = listener.finish(timeout: 1, signal: SIGTERM)
        let shell = try Run.program("sh", ["-c", "\(Run.udpPath) listen 127.0.0.1:\(port) --raw | head -c 1"])
        XCTAssertTrue(Peer.waitBound(port), "the listener did not bind port \(port)")
        _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), "41", "42", "43"]).finish()
        usleep(200_000)
        _ = try Run.python(Peer.sender, ["127.0.0.1", String(port), "44"]).finish()
        let result = shell.finish(timeout: 5)
        XCTAssertEqual(result.text, "A")
    }
}
