import Foundation
import XCTest

/// `udp room serve` and `udp room join` as people and scripts use them: through a terminal (tmux), through
/// pipes, through `udp proxy`, across a server crash.
final class RoomCLITests: XCTestCase {
    /// A room server on a free loopback port (or `port`).
    private func startServer(port: Int = 0, extra: [String] = []) throws -> (Run.Handle, Int) {
        let server = try Run.start(["room", "serve", "--port", String(port), "--bind", "127.0.0.1", "--show-port"] + extra)
        return (server, try Peer.listenPort(of: server, prefix: "room server on "))
    }

    /// Lines of a member's output that are messages (`[HH:MM] nick: text`), without the time.
    private func messages(_ output: String) -> [String] {
        output.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("["), let close = line.firstIndex(of: "]") else { return nil }
            return String(line[line.index(close, offsetBy: 2)...])
        }
    }

    func testIncomingMessageLeavesTheTypedLineIntactOnATerminal() throws {
        try Run.require("tmux")
        let (server, port) = try startServer()
        let terminal = try TerminalSession("\(Run.udpPath) room join 127.0.0.1:\(port) --nick alice", height: 24)
        XCTAssertTrue(try terminal.waitForScreen("joined 127.0.0.1:\(port) as alice"), terminal.screen)
        XCTAssertTrue(try terminal.waitForScreen("--> alice joined"), terminal.screen)
        // Half a line typed; then bob joins, says two things (one with a bidi override) and leaves.
        try terminal.type("half-typed wor")
        let bob = try Run.udp(["room", "join", "127.0.0.1:\(port)", "--nick", "bob"],
                              stdin: Data("hello alice\n\u{202E}reversed\n".utf8), timeout: 10)
        XCTAssertEqual(bob.status, 0, bob.stderr)
        XCTAssertTrue(try terminal.waitForScreen("<-- bob left"), terminal.screen)
        let lines = terminal.lines
        XCTAssertTrue(lines.contains("--> bob joined"), terminal.screen)
        XCTAssertTrue(lines.contains { $0.hasSuffix("] bob: hello alice") }, terminal.screen)
        XCTAssertTrue(lines.contains { $0.hasSuffix("] bob: \\u{202e}reversed") }, terminal.screen)
        let promptLine = try XCTUnwrap(lines.lastIndex { $0.hasPrefix("> ") }, terminal.screen)
        XCTAssertEqual(lines[promptLine], "> half-typed wor", terminal.screen)
        XCTAssertGreaterThan(promptLine, try XCTUnwrap(lines.firstIndex { $0 == "<-- bob left" }), terminal.screen)

        // Typing goes on where it was; /me and /who work; /quit leaves.
        try terminal.enter("d")
        XCTAssertTrue(try terminal.waitForScreen("] alice: half-typed word"), terminal.screen)
        try terminal.enter("/me waves")
        XCTAssertTrue(try terminal.waitForScreen("] * alice waves"), terminal.screen)
        try terminal.enter("/who")
        XCTAssertTrue(try terminal.waitForScreen("--- in the room (1): alice"), terminal.screen)
        try terminal.enter("/quit")
        XCTAssertTrue(try terminal.waitForExit(), "udp room join did not end on /quit")
        let done = server.finish(timeout: 5, signal: SIGTERM)
        XCTAssertEqual(done.status, 0, done.stderr)
        XCTAssertTrue(done.text.contains("alice joined from 127.0.0.1:"), done.text)
        XCTAssertTrue(done.stderr.contains("room: 2 members joined (2 left, 0 timed out, 0 refused); 4 messages, 0 private"), done.stderr)
    }

    /// Three scripted members through `udp proxy` losing 20%, duplicating 5% and reordering 10% both
    /// ways: each sees every one of the 60 messages once, each sender's in order.
    func testThreeMembersThroughTheImpairingProxyBinary() throws {
        let (server, port) = try startServer()
        let proxy = try Run.start(["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:\(port)", "--show-port",
                                   "--loss", "20%", "--duplicate", "5%", "--reorder", "10%", "--seed", "7"])
        let proxyPort = try Peer.listenPort(of: proxy, prefix: "proxy on ")
        let nicks = ["ann", "ben", "cat"]
        var members: [Run.Handle] = []
        for nick in nicks {
            // One after the other, so that each is in the room when the next joins and sees it come.
            let member = try Run.start(["room", "join", "127.0.0.1:\(proxyPort)", "--nick", nick])
            XCTAssertTrue(member.waitForOutput("--> \(nick) joined", timeout: 10), member.text + member.stderr)
            members.append(member)
        }
        for member in members { XCTAssertTrue(member.waitForOutput("--> cat joined", timeout: 10), member.text + member.stderr) }
        for (member, nick) in zip(members, nicks) {
            member.inPipe.fileHandleForWriting.write(Data((0..<20).map { "\(nick) \($0)\n" }.joined().utf8))
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !members.allSatisfy({ messages($0.text).count >= 60 }) { usleep(50_000) }
        for member in members { member.closeInput() }
        for (member, nick) in zip(members, nicks) {
            let done = member.finish(timeout: 15)
            XCTAssertEqual(done.status, 0, "\(nick): \(done.stderr)")
            let seen = messages(done.text)
            XCTAssertEqual(seen.count, 60, "\(nick) saw \(seen.count): \(done.text.split(separator: "\n").filter { !$0.hasPrefix("[") })")
            for sender in nicks {
                XCTAssertEqual(seen.filter { $0.hasPrefix("\(sender): ") }, (0..<20).map { "\(sender): \(sender) \($0)" }, "\(nick) from \(sender)")
            }
        }
        let proxyDone = proxy.finish(timeout: 5, signal: SIGINT)
        XCTAssertTrue(proxyDone.stderr.contains("lost"), proxyDone.stderr)
        let serverDone = server.finish(timeout: 5, signal: SIGINT)
        XCTAssertEqual(serverDone.status, 0, serverDone.stderr)
        XCTAssertTrue(serverDone.stderr.contains("room: 3 members joined (3 left, 0 timed out, 0 refused); 60 messages"), serverDone.stderr)
    }

    /// The server dies without a word (SIGKILL) and comes back on the same port: the member notices, rejoins
    /// by itself, says the server restarted, and what it says next gets through.
    func testMemberRejoinsAServerThatCrashedAndCameBack() throws {
        // Short heartbeats, so that the silence is noticed within the test's seconds.
        let timing = ["--heartbeat", "200ms", "--member-timeout", "2s"]
        let (server, port) = try startServer(extra: timing)
        let member = try Run.start(["room", "join", "127.0.0.1:\(port)", "--nick", "alice"])
        XCTAssertTrue(member.waitForOutput("--> alice joined", timeout: 10), member.text + member.stderr)
        kill(server.process.processIdentifier, SIGKILL)
        _ = server.finish(timeout: 5)
        XCTAssertTrue(member.waitForOutput("-!- the server is not responding", timeout: 6), member.text)
        let (again, _) = try startServer(port: port, extra: timing)
        XCTAssertTrue(member.waitForOutput("-!- server restarted; rejoined", timeout: 10), member.text)
        member.inPipe.fileHandleForWriting.write(Data("still here\n".utf8))
        XCTAssertTrue(member.waitForOutput("] alice: still here", timeout: 5), member.text)
        member.closeInput()
        let done = member.finish(timeout: 10)
        XCTAssertEqual(done.status, 0, done.stderr)
        _ = again.finish(timeout: 5, signal: SIGTERM)
    }

    func testRoomErrors() throws {
        let noNick = try Run.udp(["room", "join", "127.0.0.1:9"])
        XCTAssertEqual(noNick.status, 64, noNick.stderr)
        let badNick = try Run.udp(["room", "join", "127.0.0.1:9", "--nick", "two words"])
        XCTAssertEqual(badNick.status, 64, badNick.stderr)
        XCTAssertTrue(badNick.stderr.hasPrefix("udp: invalid nick: a nick must not contain U+0020 (space)"), badNick.stderr)
        let badPort = try Run.udp(["room", "serve", "--port", "70000"])
        XCTAssertEqual(badPort.status, 64, badPort.stderr)

        // Nothing listening: the JOIN goes unanswered.
        let nobody = try Run.udp(["room", "join", "127.0.0.1:9", "--nick", "alice", "--timeout", "300ms"])
        XCTAssertEqual(nobody.status, 75, nobody.stderr)
        XCTAssertTrue(nobody.stderr.hasPrefix("udp: no answer from the room server within 0.3 s"), nobody.stderr)

        // A taken nick is refused with the server's reason; a message over the room's limit is refused
        // before it is sent, with the sizes.
        let (server, port) = try startServer(extra: ["--max-text", "10"])
        let alice = try Run.start(["room", "join", "127.0.0.1:\(port)", "--nick", "alice"])
        XCTAssertTrue(alice.waitForOutput("--> alice joined", timeout: 10), alice.text + alice.stderr)
        let taken = try Run.udp(["room", "join", "127.0.0.1:\(port)", "--nick", "Alice"])
        XCTAssertEqual(taken.status, 69, taken.stderr)
        XCTAssertTrue(taken.stderr.hasPrefix("udp: the room refused to let us in (nick taken): the nick Alice is taken"), taken.stderr)
        alice.inPipe.fileHandleForWriting.write(Data("this is far too long\nshort\n".utf8))
        XCTAssertTrue(alice.waitForOutput("] alice: short", timeout: 5), alice.text)
        alice.closeInput()
        let done = alice.finish(timeout: 10)
        XCTAssertEqual(done.status, 0, done.stderr)
        XCTAssertTrue(done.text.contains("-!- message too long: 20 bytes of UTF-8, the limit is 10\n"), done.text)
        _ = server.finish(timeout: 5, signal: SIGTERM)
    }
}
