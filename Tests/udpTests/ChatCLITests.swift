import Foundation
import XCTest

/// `udp chat` against a Python peer written the classic way (a receive thread and a send thread), through a
/// pipe and through a terminal (tmux).
final class ChatCLITests: XCTestCase {
    /// The classic Python chat peer: binds, then a receive thread prints each message (decoded with the given encoding)
    /// and, after the first one, a send thread answers with the remaining arguments to whoever wrote.
    static let seedPeer = """
        import socket, sys, threading
        enc = sys.argv[1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(('127.0.0.1', 0))
        s.settimeout(5)
        print('ready', s.getsockname()[1], flush=True)
        first = threading.Event()
        peer = []
        def receive():
            while True:
                try:
                    data, addr = s.recvfrom(1024)
                except socket.timeout:
                    return
                print('got', data.decode(enc), flush=True)
                if not peer:
                    peer.append(addr)
                    first.set()
        def send():
            if first.wait(5):
                for line in sys.argv[2:]:
                    s.sendto(line.encode(enc), peer[0])
        threads = [threading.Thread(target=receive), threading.Thread(target=send)]
        for t in threads: t.start()
        for t in threads: t.join()
        """

    private func chatWithSeedPeer(encoding: String, mine: String, theirs: String) throws {
        let peer = try Run.python(Self.seedPeer, [encoding, theirs])
        let port = try Peer.port(of: peer)
        let chat = try Run.start(["chat", "127.0.0.1", String(port), "--encoding", encoding, "--linger", "300ms"])
        chat.inPipe.fileHandleForWriting.write(Data((mine + "\n").utf8))
        XCTAssertTrue(peer.waitForOutput("got \(mine)"), peer.stderr + chat.stderr)
        XCTAssertTrue(chat.waitForOutput(": \(theirs)"), chat.text + chat.stderr)
        chat.closeInput()
        let done = chat.finish(timeout: 5)
        XCTAssertEqual(done.status, 0, done.stderr)
        XCTAssertTrue(done.text.contains("127.0.0.1:\(port): \(theirs)\n"), done.text)
        _ = peer.finish(timeout: 1, signal: SIGTERM)
    }

    func testTwoWayChatWithTheSeedsPeerInUTF8() throws {
        try chatWithSeedPeer(encoding: "utf-8", mine: "hello from swift", theirs: "hello from python ✓")
    }

    func testTwoWayChatWithTheSeedsPeerInGB18030() throws {
        try chatWithSeedPeer(encoding: "gb18030", mine: "你好，我是 udp", theirs: "收到，谢谢")
    }

    func testWaitingChatLearnsThePeerFromTheFirstMessage() throws {
        let chat = try Run.start(["chat", "--port", "0", "--bind", "127.0.0.1"])
        // The bound port is not printed on a pipe; find it from the process's socket table.
        let port = try XCTUnwrap(Self.boundPort(of: chat.process.processIdentifier))
        let peer = try Run.python(Peer.echo, ["127.0.0.1"])
        let peerPort = try Peer.port(of: peer)
        // A line typed before anyone wrote has nowhere to go: it is reported, not lost silently.
        chat.inPipe.fileHandleForWriting.write(Data("too early\n".utf8))
        XCTAssertTrue(chat.waitForOutput("no peer yet"), chat.text)
        let sender = try Run.python(
            Peer.sender, ["127.0.0.1", String(port), Data("first".utf8).map { String(format: "%02x", $0) }.joined()])
        _ = sender.finish(timeout: 5)
        XCTAssertTrue(chat.waitForOutput("peer is 127.0.0.1:"), chat.text)
        chat.closeInput()
        let done = chat.finish(timeout: 5)
        XCTAssertEqual(done.status, 0, done.stderr)
        XCTAssertTrue(done.text.contains(": first"), done.text)
        _ = peer.finish(timeout: 1, signal: SIGTERM)
        _ = peerPort
    }

    func testIncomingMessageLeavesTheTypedLineIntactOnATerminal() throws {
        try Run.require("tmux")
        let peer = try Run.python(Self.seedPeer, ["utf-8", "\u{1B}[31mred alert", "second"])
        let port = try Peer.port(of: peer)
        let terminal = try TerminalSession("\(Run.udpPath) chat 127.0.0.1 \(port)")
        XCTAssertTrue(try terminal.waitForScreen("chatting with 127.0.0.1:\(port)"), terminal.screen)
        try terminal.enter("first line")
        XCTAssertTrue(peer.waitForOutput("got first line"))
        // Half a line typed, then the peer's messages arrive.
        try terminal.type("half-typed wor")
        XCTAssertTrue(try terminal.waitForScreen("127.0.0.1:\(port): second"), terminal.screen)
        let lines = terminal.lines
        // The escape sequence arrived as text, not as color; the typed text is whole on the prompt line below.
        XCTAssertTrue(lines.contains("127.0.0.1:\(port): \\e[31mred alert"), terminal.screen)
        let promptLine = try XCTUnwrap(lines.lastIndex { $0.hasPrefix("> ") }, terminal.screen)
        XCTAssertEqual(lines[promptLine], "> half-typed wor", terminal.screen)
        XCTAssertGreaterThan(promptLine, try XCTUnwrap(lines.firstIndex { $0.contains(": second") }), terminal.screen)
        // Typing goes on where it was; /quit ends the chat.
        try terminal.enter("d")
        XCTAssertTrue(peer.waitForOutput("got half-typed word"), peer.stderr)
        try terminal.enter("/quit")
        XCTAssertTrue(try terminal.waitForExit(), "udp chat did not end on /quit")
        _ = peer.finish(timeout: 1, signal: SIGTERM)
    }

    func testBadChatArguments() throws {
        let none = try Run.udp(["chat"])
        XCTAssertEqual(none.status, 64, none.stderr)
        let badPort = try Run.udp(["chat", "127.0.0.1", "70000"])
        XCTAssertEqual(badPort.status, 64, badPort.stderr)
        let badEncoding = try Run.udp(["chat", "127.0.0.1", "9", "--encoding", "klingon"])
        XCTAssertEqual(badEncoding.status, 64, badEncoding.stderr)
    }

    /// The UDP port a process has bound, from /proc (Linux).
    static func boundPort(of pid: Int32) -> Int? {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            let inodes = Set(
                ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap {
                    fd -> String? in
                    guard
                        let target = try? FileManager.default.destinationOfSymbolicLink(
                            atPath: "/proc/\(pid)/fd/\(fd)"),
                        target.hasPrefix("socket:[")
                    else { return nil }
                    return String(target.dropFirst(8).dropLast())
                })
            for table in ["/proc/net/udp", "/proc/net/udp6"] {
                let rows = ((try? String(contentsOfFile: table, encoding: .utf8)) ?? "").split(separator: "\n")
                    .dropFirst()
                for row in rows {
                    let fields = row.split(separator: " ")
                    guard fields.count > 9, inodes.contains(String(fields[9])) else { continue }
                    let local = fields[1].split(separator: ":")
                    if local.count == 2, let port = Int(local[1], radix: 16) { return port }
                }
            }
            usleep(20_000)
        }
        return nil
    }
}
