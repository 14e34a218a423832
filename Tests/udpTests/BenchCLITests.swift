import Foundation
import XCTest

/// `udp bench ping` against a Python echo server written the seeds' way.
final class BenchCLITests: XCTestCase {
    func testPingCountsLossAndReportsPercentiles() throws {
        // The server ignores the first 3 probes: exactly 3 are lost.
        let server = try Run.python(Peer.echo, ["127.0.0.1", "3"])
        let port = try Peer.port(of: server)
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let result = try Run.udp(["bench", "ping", "127.0.0.1", String(port), "--count", "50", "--inflight", "4", "--timeout", "300ms", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try JSONSerialization.jsonObject(with: result.stdout) as! [String: Any]
        XCTAssertEqual(report["sent"] as? Int, 50)
        XCTAssertEqual(report["received"] as? Int, 47)
        XCTAssertEqual(report["lost"] as? Int, 3)
        XCTAssertEqual(report["duplicates"] as? Int, 0)
        let p50 = try XCTUnwrap(report["rtt_p50_us"] as? Double)
        let p99 = try XCTUnwrap(report["rtt_p99_us"] as? Double)
        let min = try XCTUnwrap(report["rtt_min_us"] as? Double)
        XCTAssertGreaterThan(min, 0)
        XCTAssertLessThanOrEqual(min, p50)
        XCTAssertLessThanOrEqual(p50, p99)
    }

    func testPingTextReportAndNoServer() throws {
        let server = try Run.start(["echo", "127.0.0.1:0", "--show-port", "--quiet"])
        XCTAssertTrue(server.waitForOutput("echo server on"))
        let line = server.stderr.split(separator: "\n").first { $0.hasPrefix("echo server on") }!
        let port = String(line[line.index(after: line.lastIndex(of: ":")!)...])
        let result = try Run.udp(["bench", "ping", "127.0.0.1", port, "--count", "20"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.text.contains("20 sent, 20 received, 0 lost (0.00%)"), result.text)
        XCTAssertTrue(result.text.contains("p99.9"), result.text)
        _ = server.finish(signal: SIGTERM)

        let refused = try Run.udp(["bench", "ping", "127.0.0.1", String(try freePort()), "--count", "3"])
        XCTAssertEqual(refused.status, 69, refused.stderr)
    }
}
