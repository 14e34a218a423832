import Foundation
import XCTest

/// `udp request` and `udp client` against a Python echo server written the classic way.
final class RequestClientTests: XCTestCase {
    private func echoServer(_ host: String = "127.0.0.1", ignoringFirst skip: Int = 0) throws -> (Run.Handle, Int) {
        let server = try Run.python(Peer.echo, [host, String(skip)])
        return (server, try Peer.port(of: server))
    }

    func testRequestPrintsReplyWithRoundTrip() throws {
        let (server, port) = try echoServer()
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let result = try Run.udp(["request", "127.0.0.1", String(port), "hello", "there"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.text.contains("reply from 127.0.0.1:\(port)  11 bytes  rtt_ms="), result.text)
        XCTAssertTrue(result.text.hasSuffix("hello there\n"), result.text)
    }

    func testLostReplyIsRecoveredByRetry() throws {
        let (server, port) = try echoServer(ignoringFirst: 1)
        let result = try Run.udp(["request", "127.0.0.1:\(port)", "ping", "--timeout", "200ms", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let reply = try JSONSerialization.jsonObject(with: result.stdout) as! [String: Any]
        XCTAssertEqual(reply["event"] as? String, "reply")
        XCTAssertEqual(reply["text"] as? String, "ping")
        XCTAssertEqual(reply["attempts"] as? Int, 2)
        let serverLog = server.finish(timeout: 1, signal: SIGTERM).text
        XCTAssertTrue(serverLog.contains("got 2 "), "the server saw the resend: \(serverLog)")
    }

    func testRequestOverIPv6WithRawOutput() throws {
        let (server, port) = try echoServer("::1")
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let result = try Run.udp(["request", "[::1]:\(port)", "--hex", "00 ff 10", "--raw"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, Data([0x00, 0xFF, 0x10]))
    }

    func testRequestTimesOutWith75() throws {
        // A server that never answers.
        let (server, port) = try echoServer(ignoringFirst: 100)
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let started = Date()
        let result = try Run.udp([
            "request", "127.0.0.1", String(port), "anyone", "--timeout", "100ms", "--retries", "2",
        ])
        XCTAssertEqual(result.status, 75, result.stderr)
        XCTAssertTrue(result.stderr.hasSuffix("udp: timed out after 700 ms with no reply\n"), result.stderr)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.7)
        XCTAssertEqual(result.stderr.components(separatedBy: "sending again").count - 1, 2)
    }

    func testRequestToClosedPortIsRefusedWith69() throws {
        let port = try freePort()
        let result = try Run.udp(["request", "127.0.0.1", String(port), "hello", "--timeout", "2s"])
        XCTAssertEqual(result.status, 69)
        XCTAssertEqual(
            result.stderr,
            "udp: 127.0.0.1:\(port) refused the datagram (ICMP port unreachable): nothing is listening on that port\n")
    }

    func testClientThroughAPipeKeepsGoingAfterALostReply() throws {
        let (server, port) = try echoServer(ignoringFirst: 1)
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let result = try Run.udp(
            ["client", "127.0.0.1", String(port), "--timeout", "200ms", "--retries", "0"],
            stdin: Data("Tom\nJerry\nSpike\n".utf8)
        )
        XCTAssertEqual(result.status, 75, "a request went unanswered: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("udp: line 1 'Tom': timed out after 200 ms with no reply"), result.stderr)
        XCTAssertTrue(result.stderr.contains("udp: 1 of 3 requests got no reply (line 1 timed out)"), result.stderr)
        let replies = result.text.split(separator: "\n").filter { $0.contains("reply from") }
        XCTAssertEqual(replies.count, 2, result.text)
        XCTAssertTrue(replies[0].hasSuffix("Jerry") && replies[1].hasSuffix("Spike"), result.text)
    }

    func testClientReportsRefusalAndContinues() throws {
        let port = try freePort()
        let result = try Run.udp(
            ["client", "127.0.0.1", String(port), "--timeout", "300ms", "--retries", "0"], stdin: Data("a\nb\n".utf8))
        XCTAssertEqual(result.status, 69, result.stderr)
        XCTAssertTrue(result.stderr.contains("udp: line 1 'a': 127.0.0.1:\(port) refused"), result.stderr)
        XCTAssertTrue(result.stderr.contains("udp: line 2 'b': 127.0.0.1:\(port) refused"), result.stderr)
        XCTAssertTrue(result.stderr.contains("udp: 2 of 2 requests got no reply (lines 1, 2 refused)"), result.stderr)
    }

    /// A server that answers lines starting with "slow" only after 600 ms, the others at once.
    private static let slowServer = """
        import socket, sys, threading
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(('127.0.0.1', 0))
        s.settimeout(10)
        print('ready', s.getsockname()[1], flush=True)
        while True:
            try:
                data, addr = s.recvfrom(70000)
            except socket.timeout:
                break
            if data.startswith(b'slow'):
                threading.Timer(0.6, s.sendto, (data, addr)).start()
            else:
                s.sendto(data, addr)
        """

    /// Late replies are shown when they come: while the client waits for the next line, and after the last line.
    /// The timeout lines name their line, and the exit status says that requests went unanswered.
    func testClientShowsLateRepliesWhileWaitingAndAfterTheLastLine() throws {
        let server = try Run.python(Self.slowServer)
        let port = try Peer.port(of: server)
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let client = try Run.start(["client", "127.0.0.1", String(port), "--timeout", "200ms", "--retries", "0"])
        client.inPipe.fileHandleForWriting.write(Data("slow one\n".utf8))
        XCTAssertTrue(client.waitForOutput("line 1 'slow one': timed out after 200 ms"), client.stderr)
        // Nothing more is typed: the late reply must still show up.
        XCTAssertTrue(client.waitForOutput("late-reply from 127.0.0.1:\(port)"), client.text)
        XCTAssertTrue(client.text.contains("line=1  slow one"), client.text)
        client.inPipe.fileHandleForWriting.write(Data("fast\n".utf8))
        XCTAssertTrue(client.waitForOutput("4 bytes  rtt_ms="), client.text)
        client.inPipe.fileHandleForWriting.write(Data("slow two\n".utf8))
        client.closeInput()
        let result = client.finish(timeout: 10)
        XCTAssertEqual(result.status, 75, result.stderr)
        let lines = result.text.split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.contains("late-reply") }.count, 2, result.text)
        XCTAssertTrue(
            lines.last?.contains("late-reply") == true && lines.last?.hasSuffix("line=3  slow two") == true, result.text
        )
        XCTAssertEqual(lines.filter { $0.contains(" reply from") }.count, 1, result.text)
        XCTAssertTrue(result.stderr.contains("udp: line 3 'slow two': timed out after 200 ms"), result.stderr)
        XCTAssertTrue(
            result.stderr.contains("udp: 2 of 3 requests got no reply (lines 1, 3 timed out); 2 late replies shown"),
            result.stderr)
    }

    /// All answered: exit 0, nothing on stderr.
    func testClientExitsZeroWhenEveryRequestWasAnswered() throws {
        let (server, port) = try echoServer()
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let result = try Run.udp(
            ["client", "127.0.0.1", String(port), "--timeout", "500ms"], stdin: Data("a\nb\nc\n".utf8))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.text.split(separator: "\n").filter { $0.contains("reply from") }.count, 3, result.text)
        XCTAssertEqual(result.stderr, "")
    }

    /// The help says what each exit status means and what a late-reply line is; the 65 it promises is what a
    /// session with an unsendable line (bad hex) and every other line answered ends with.
    func testClientHelpExplainsExitCodesAndLateReplies() throws {
        let help = try Run.udp(["client", "--help"]).text.replacingOccurrences(of: "\n", with: " ")
            .split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        for promise in [
            "0 when every request was answered", "75 when some timed out", "69 when the server refused",
            "65 when every request was answered but some lines could not be made into a datagram",
            "'late-reply from ADDRESS ... line=N'",
        ] {
            XCTAssertTrue(help.contains(promise), "help lacks \(promise): \(help)")
        }
        let (server, port) = try echoServer()
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let result = try Run.udp(
            ["client", "127.0.0.1", String(port), "--hex", "--timeout", "500ms"], stdin: Data("61\nzz\n62\n".utf8))
        XCTAssertEqual(result.status, 65, result.stderr)
        XCTAssertEqual(result.text.split(separator: "\n").filter { $0.contains("reply from") }.count, 2, result.text)
        XCTAssertTrue(result.stderr.contains("line 2 could not be sent"), result.stderr)
    }
}
