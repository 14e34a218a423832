import Foundation
import XCTest

/// `udp request` and `udp client` against a Python echo server written the seeds' way.
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
        let result = try Run.udp(["request", "127.0.0.1", String(port), "anyone", "--timeout", "100ms", "--retries", "2"])
        XCTAssertEqual(result.status, 75, result.stderr)
        XCTAssertTrue(result.stderr.hasSuffix("udp: timed out after 700 ms with no reply\n"), result.stderr)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.7)
        XCTAssertEqual(result.stderr.components(separatedBy: "sending again").count - 1, 2)
    }

    func testRequestToClosedPortIsRefusedWith69() throws {
        let port = try freePort()
        let result = try Run.udp(["request", "127.0.0.1", String(port), "hello", "--timeout", "2s"])
        XCTAssertEqual(result.status, 69)
        XCTAssertEqual(result.stderr, "udp: 127.0.0.1:\(port) refused the datagram (ICMP port unreachable): nothing is listening on that port\n")
    }

    func testClientThroughAPipeKeepsGoingAfterALostReply() throws {
        let (server, port) = try echoServer(ignoringFirst: 1)
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let result = try Run.udp(
            ["client", "127.0.0.1", String(port), "--timeout", "200ms", "--retries", "0"],
            stdin: Data("Tom\nJerry\nSpike\n".utf8)
        )
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("udp: timed out after 200 ms with no reply"), result.stderr)
        let replies = result.text.split(separator: "\n").filter { $0.contains("reply from") }
        XCTAssertEqual(replies.count, 2, result.text)
        XCTAssertTrue(replies[0].hasSuffix("Jerry") && replies[1].hasSuffix("Spike"), result.text)
    }

    func testClientReportsRefusalAndContinues() throws {
        let port = try freePort()
        let result = try Run.udp(["client", "127.0.0.1", String(port), "--timeout", "300ms", "--retries", "0"], stdin: Data("a\nb\n".utf8))
        XCTAssertEqual(result.status, 0)
        XCTAssertEqual(result.stderr.components(separatedBy: "refused").count - 1, 2, result.stderr)
    }
}
