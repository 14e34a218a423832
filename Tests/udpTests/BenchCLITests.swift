import Foundation
import XCTest

/// `udp bench ping` against a Python echo server written the classic way.
final class BenchCLITests: XCTestCase {
    func testPingCountsLossAndReportsPercentiles() throws {
        // The server ignores the first 3 probes: exactly 3 are lost.
        let server = try Run.python(Peer.echo, ["127.0.0.1", "3"])
        let port = try Peer.port(of: server)
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let result = try Run.udp([
            "bench", "ping", "127.0.0.1", String(port), "--count", "50", "--inflight", "4", "--timeout", "300ms",
            "--json",
        ])
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

/// `udp bench flood` and `udp bench sink`, against each other and against Python peers.
final class FloodSinkCLITests: XCTestCase {
    private func json(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(
            try JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self))
    }

    func testFloodIntoSinkAtAGivenRate() throws {
        let sink = try Run.start(["bench", "sink", "127.0.0.1:0", "--show-port", "--count", "2000", "--json"])
        let port = try Peer.listenPort(of: sink, prefix: "sink on ")
        let flood = try Run.udp([
            "bench", "flood", "127.0.0.1", String(port), "--count", "2000", "--rate", "20k", "--size", "200", "--json",
        ])
        XCTAssertEqual(flood.status, 0, flood.stderr)
        let sent = try json(flood.stdout)
        XCTAssertEqual(sent["sent"] as? Int, 2000)
        // 2,000 at 20k/s take about 0.1 s: the pacing holds the rate (generously bounded for a busy machine).
        let seconds = try XCTUnwrap(sent["seconds"] as? Double)
        XCTAssertGreaterThan(seconds, 0.08)
        let done = sink.finish(timeout: 5)
        XCTAssertEqual(done.status, 0, done.stderr)
        let received = try json(done.stdout)
        XCTAssertEqual(received["received"] as? Int, 2000)
        XCTAssertEqual(received["bytes"] as? Int, 400_000)
        XCTAssertEqual(received["lost"] as? Int, 0)
        XCTAssertEqual(received["duplicates"] as? Int, 0)
    }

    func testSinkCountsLossReorderingAndDuplicatesFromHandMadeProbes() throws {
        let sink = try Run.start(["bench", "sink", "127.0.0.1:0", "--show-port", "--timeout", "500ms"])
        let port = try Peer.listenPort(of: sink, prefix: "sink on ")
        // Sequences 0 1 2 5 4 4 7 (3 and 6 lost, 4 reordered then duplicated), plus one stray datagram.
        func probe(_ sequence: UInt64) -> String {
            var bytes: [UInt8] = [0x55, 0x44, 0x50, 0x42, 1, 0, 0, 0, 0, 0, 0, 9]
            bytes += (0..<8).reversed().map { UInt8(truncatingIfNeeded: sequence >> ($0 * 8)) }
            bytes += [UInt8](repeating: 0, count: 8 + 36)
            return bytes.map { String(format: "%02x", $0) }.joined()
        }
        let sender = try Run.python(
            Peer.sender, ["127.0.0.1", String(port)] + [0, 1, 2, 5, 4, 4, 7].map(probe) + ["6869"])
        XCTAssertEqual(sender.finish(timeout: 5).status, 0)
        let done = sink.finish(timeout: 5)
        XCTAssertEqual(done.status, 0, done.stderr)
        XCTAssertTrue(done.text.contains("received  6 datagrams (448 bytes)"), done.text)
        // No final report came (these are not a flood's): the loss is a lower bound, and says so.
        XCTAssertTrue(done.text.contains("lost      at least 2 (25.00%), 1 duplicate, 1 reordered"), done.text)
        XCTAssertTrue(done.text.contains("no final report from the flood"), done.text)
        XCTAssertTrue(done.text.contains("1 not bench probes"), done.text)
    }

    /// A sink whose receive buffer is far too small for a flood at full speed loses most of it, the tail included.
    /// The flood's final report tells the sink how many were sent, so the loss it reports is exactly sent -
    /// received (before, the lost tail was invisible and the sink said "lost 0").
    func testSinkWithASmallReceiveBufferCountsTheLostTail() throws {
        let sink = try Run.start([
            "bench", "sink", "127.0.0.1:0", "--show-port", "--recv-buffer", "4096", "--timeout", "2s", "--json",
        ])
        let port = try Peer.listenPort(of: sink, prefix: "sink on ")
        let flood = try Run.udp(
            ["bench", "flood", "127.0.0.1", String(port), "--count", "100000", "--json"], timeout: 30)
        XCTAssertEqual(flood.status, 0, flood.stderr)
        let sent = try XCTUnwrap(try json(flood.stdout)["sent"] as? Int)
        XCTAssertEqual(sent, 100_000)
        let done = sink.finish(timeout: 15)
        XCTAssertEqual(done.status, 0, done.stderr)
        let report = try json(done.stdout)
        let received = try XCTUnwrap(report["received"] as? Int)
        XCTAssertEqual(report["sent"] as? Int, sent, done.text)
        XCTAssertLessThan(received, sent, "a 4 KiB receive buffer cannot take a full-speed flood: \(done.text)")
        XCTAssertEqual(report["lost"] as? Int, sent - received, done.text)
        XCTAssertEqual(report["lost_is_lower_bound"] as? Bool, false)
        let ratio = try XCTUnwrap(report["loss_ratio"] as? Double)
        XCTAssertEqual(ratio, Double(sent - received) / Double(sent), accuracy: 1e-9)
        // Jitter is measured from datagrams with times of their own, or not reported: never a fake 0.
        if let jitter = report["jitter_ms"] as? Double { XCTAssertGreaterThan(jitter, 0, done.text) }
    }

    /// The same in text: the report names the count sent, and the loss matches it.
    func testSinkTextReportNamesTheCountSent() throws {
        let sink = try Run.start([
            "bench", "sink", "127.0.0.1:0", "--show-port", "--recv-buffer", "4096", "--timeout", "2s",
        ])
        let port = try Peer.listenPort(of: sink, prefix: "sink on ")
        let flood = try Run.udp(
            ["bench", "flood", "127.0.0.1", String(port), "--count", "50000", "--no-offload"], timeout: 30)
        XCTAssertEqual(flood.status, 0, flood.stderr)
        let done = sink.finish(timeout: 15)
        XCTAssertEqual(done.status, 0, done.stderr)
        let lines = done.text.split(separator: "\n").map(String.init)
        let first = try XCTUnwrap(lines.first { $0.hasPrefix("received  ") }, done.text)
        let words = first.split(separator: " ")
        let received = try XCTUnwrap(Int(words[1]), first)
        XCTAssertTrue(first.contains(" datagrams of 50000 sent ("), first)
        let lost = try XCTUnwrap(lines.first { $0.hasPrefix("lost      ") }, done.text)
        XCTAssertTrue(lost.hasPrefix("lost      \(50_000 - received) ("), "lost must be sent - received: \(done.text)")
        XCTAssertFalse(done.text.contains("jitter 0.00 ns"), done.text)
    }

    /// A flood all of which was lost still gets a report, from its final report alone.
    func testSinkReportsAFloodOfWhichOnlyTheFinalReportArrived() throws {
        let sink = try Run.start(["bench", "sink", "127.0.0.1:0", "--show-port", "--timeout", "500ms", "--json"])
        let port = try Peer.listenPort(of: sink, prefix: "sink on ")
        // "UDPE", version 1, stream 9, last sequence 41, 42 sent.
        let end = "5544504501000000" + "00000009" + "0000000000000029" + "000000000000002a"
        let sender = try Run.python(Peer.sender, ["127.0.0.1", String(port), end, end])
        XCTAssertEqual(sender.finish(timeout: 5).status, 0)
        let done = sink.finish(timeout: 5)
        XCTAssertEqual(done.status, 0, done.stderr)
        let reports = done.text.split(separator: "\n")
        XCTAssertEqual(reports.count, 1, "the repeated report is used once: \(done.text)")
        let report = try json(Data(reports[0].utf8))
        XCTAssertEqual(report["sent"] as? Int, 42)
        XCTAssertEqual(report["received"] as? Int, 0)
        XCTAssertEqual(report["lost"] as? Int, 42)
        XCTAssertTrue(report["jitter_ms"] is NSNull, done.text)
    }

    func testFloodInEchoModeAgainstAPythonEcho() throws {
        let server = try Run.python(Peer.echo, ["127.0.0.1", "0"])
        let port = try Peer.port(of: server)
        defer { _ = server.finish(timeout: 1, signal: SIGTERM) }
        let result = try Run.udp(["bench", "flood", "127.0.0.1:\(port)", "--count", "300", "--window", "8", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try json(result.stdout)
        XCTAssertEqual(report["sent"] as? Int, 300)
        XCTAssertEqual(report["received"] as? Int, 300)
        XCTAssertEqual(report["lost"] as? Int, 0)
        XCTAssertNotNil(report["rtt_p50_us"] as? Double)
    }

    func testBadFloodSettings() throws {
        for arguments in [
            ["--rate", "0"], ["--rate", "fast"], ["--rate", "-5k"], ["--size", "27"], ["--size", "65508"],
            ["--duration", "0s"], ["--window", "0"], ["--count", "0"],
        ] {
            let result = try Run.udp(["bench", "flood", "127.0.0.1", "9"] + arguments)
            XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").first?.hasPrefix("udp: "), true, result.stderr)
        }
        // Nothing listening: the ICMP error ends a paced one-way flood too, with its own exit code.
        let refused = try Run.udp([
            "bench", "flood", "127.0.0.1", String(try freePort()), "--rate", "1k", "--duration", "2s",
        ])
        XCTAssertEqual(refused.status, 69, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("refused"), refused.stderr)
        let sink = try Run.udp(["bench", "sink", "127.0.0.1:70000"])
        XCTAssertEqual(sink.status, 64, sink.stderr)
    }
}
