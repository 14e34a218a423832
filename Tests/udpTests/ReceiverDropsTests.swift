import Foundation
import XCTest

/// `udp listen` and `udp bench sink` as receivers under pressure: datagrams the kernel dropped for their socket
/// are reported, and a Unix-domain datagram from a sender without a path is shown, never the end of the command.
final class ReceiverDropsTests: XCTestCase {
    /// The last line of stderr as a JSON object.
    private func lastJSON(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let last = try XCTUnwrap(text.split(separator: "\n").last, "nothing: \(text)", file: file, line: line)
        return try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], String(last), file: file,
            line: line)
    }

    /// Stops `handle`, sends a burst of `count` datagrams of 1,400 bytes to `port`, and lets it run again.
    private func burstWhileStopped(_ handle: Run.Handle, port: Int, count: Int) throws {
        kill(handle.process.processIdentifier, SIGSTOP)
        let burst = try Run.python(EchoCLITests.burst, [String(port), String(count), "1400"]).finish()
        kill(handle.process.processIdentifier, SIGCONT)
        XCTAssertEqual(burst.text, "sent \(count)\n", burst.stderr)
        // Time to read what the buffer held.
        usleep(1_500_000)
    }

    func testListenReportsKernelDropsInTextAndJSON() throws {
        try skipWithoutFastPath("Kernel drop counts")
        let json = try Run.start(["listen", "127.0.0.1:0", "--show-port", "--json"])
        let port = try Peer.listenPort(of: json)
        try burstWhileStopped(json, port: port, count: 3000)
        let result = json.finish(signal: SIGINT)
        let summary = try lastJSON(result.stderr)
        let datagrams = result.text.split(separator: "\n").count
        XCTAssertEqual(summary["datagrams"] as? Int, datagrams)
        let drops = try XCTUnwrap(summary["kernel_drops"] as? Int, "\(summary)")
        XCTAssertGreaterThan(drops, 0)
        XCTAssertEqual(datagrams + drops, 3000, "\(summary)")

        let text = try Run.start(["listen", "127.0.0.1:0", "--show-port", "--hex"])
        let textPort = try Peer.listenPort(of: text)
        try burstWhileStopped(text, port: textPort, count: 3000)
        let plain = text.finish(signal: SIGINT)
        XCTAssertTrue(plain.stderr.contains(" dropped by the kernel (receive buffer full)"), plain.stderr)
    }

    func testBenchSinkReportsKernelDrops() throws {
        try skipWithoutFastPath("Kernel drop counts")
        let sink = try Run.start(["bench", "sink", "127.0.0.1:0", "--show-port", "--json"])
        let port = try Peer.listenPort(of: sink, prefix: "sink on ")
        // Its receive buffer is the largest the system allows (8 MiB here): the burst must exceed it.
        try burstWhileStopped(sink, port: port, count: 12_000)
        let result = sink.finish(signal: SIGINT)
        let report = try lastJSON(result.text)
        let notProbes = try XCTUnwrap(report["not_probes"] as? Int, "\(report)")
        let drops = try XCTUnwrap(report["kernel_drops"] as? Int, "\(report)")
        XCTAssertGreaterThan(drops, 0)
        XCTAssertEqual(notProbes + drops, 12_000, "\(report)")
    }

    /// Sends, to the Unix socket at PATH, one datagram from an unbound socket and one from an abstract-namespace
    /// socket; prints "sent".
    private static let unnamedSenders = """
        import os, socket, sys
        unbound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        unbound.sendto(b'from nowhere', sys.argv[1])
        abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        abstract.bind('\\0udp-test-abstract-%d' % os.getpid())
        abstract.sendto(b'from the abstract namespace', sys.argv[1])
        print('sent', flush=True)
        """

    private func socketPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("udp-\(name)-\(getpid()).sock").path
    }

    private func waitForFile(_ path: String) {
        let deadline = Date().addingTimeInterval(5)
        while !FileManager.default.fileExists(atPath: path) && Date() < deadline { usleep(10_000) }
    }

    func testListenShowsUnboundAndAbstractUnixSenders() throws {
        try skipWithoutFastPath("Receiving Unix-domain datagrams from unbound senders")
        let path = socketPath("listen")
        defer { unlink(path) }
        let listener = try Run.start(["listen", "unix:\(path)", "--count", "3", "--timeout", "5s"])
        waitForFile(path)
        let sent = try Run.python(Self.unnamedSenders, [path]).finish()
        XCTAssertEqual(sent.text, "sent\n", sent.stderr)
        let named = try Run.python(
            """
            import os, socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind(sys.argv[1] + '.client')
            s.sendto(b'still here', sys.argv[1])
            os.unlink(sys.argv[1] + '.client')
            print('sent', flush=True)
            """, [path]
        ).finish()
        XCTAssertEqual(named.text, "sent\n", named.stderr)
        let result = listener.finish()
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.text.contains("(unbound)") && result.text.contains("from nowhere"), result.text)
        XCTAssertTrue(
            result.text.contains("@udp-test-abstract-") && result.text.contains("from the abstract namespace"),
            result.text)
        XCTAssertTrue(result.text.contains("still here"), result.text)
    }

    func testBenchSinkSurvivesUnboundUnixSenders() throws {
        try skipWithoutFastPath("Receiving Unix-domain datagrams from unbound senders")
        let path = socketPath("sink")
        defer { unlink(path) }
        let sink = try Run.start(["bench", "sink", "unix:\(path)", "--json"])
        waitForFile(path)
        let sent = try Run.python(Self.unnamedSenders, [path]).finish()
        XCTAssertEqual(sent.text, "sent\n", sent.stderr)
        usleep(300_000)
        let result = sink.finish(signal: SIGINT)
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try lastJSON(result.text)
        XCTAssertEqual(report["not_probes"] as? Int, 2, "\(report)")
    }
}
