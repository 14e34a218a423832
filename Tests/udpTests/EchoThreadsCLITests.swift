import Foundation
import XCTest

/// `udp echo --threads N`: N sockets on one address (SO_REUSEPORT), the kernel spreading senders over them.
final class EchoThreadsCLITests: XCTestCase {
    /// Senders from 64 source ports: every one gets its own bytes back, and the summary shows that both sockets
    /// received some of them (all on one socket from 64 ports has odds of 2^-63) and that they add up.
    func testTwoThreadsAnswerEverySenderCorrectlyAndTheKernelSpreadsThem() throws {
        let (server, port) = try Peer.startEcho(["--threads", "2", "--quiet", "--json"])
        let client = try Run.python(
            """
            import socket, sys
            port = int(sys.argv[1])
            sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
            ok = 0
            for i, s in enumerate(sockets):
                s.settimeout(2)
                s.bind(('127.0.0.1', 0))
                message = ('sender %d of 64, port %d' % (i, s.getsockname()[1])).encode()
                for _ in range(3):
                    s.sendto(message, ('127.0.0.1', port))
                    try:
                        if s.recvfrom(2048)[0] == message:
                            ok += 1
                            break
                    except socket.timeout:
                        pass
            print('answered', ok, flush=True)
            """, [String(port)]
        ).finish(timeout: 30)
        XCTAssertEqual(client.text, "answered 64\n", client.stderr)
        let result = server.finish(signal: SIGTERM)
        XCTAssertEqual(result.status, 0, result.stderr)
        let last = try XCTUnwrap(result.stderr.split(separator: "\n").last, "no summary: \(result.stderr)")
        let summary = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], String(last))
        let perSocket = try XCTUnwrap(summary["received_per_socket"] as? [Int], String(last))
        XCTAssertEqual(perSocket.count, 2, String(last))
        XCTAssertTrue(perSocket.allSatisfy { $0 > 0 }, "one socket received nothing: \(last)")
        XCTAssertEqual(perSocket.reduce(0, +), summary["received"] as? Int, String(last))
        XCTAssertEqual(summary["replied"] as? Int, summary["received"] as? Int, String(last))
        XCTAssertEqual(summary["senders"] as? Int, 64, String(last))
    }

    /// Each socket has an answering thread of its own: the process has at least one more thread with two.
    func testEachSocketGetsAThreadOfItsOwn() throws {
        #if !os(Linux)
        throw XCTSkip("reads /proc")
        #else
        func threadCount(_ extra: [String]) throws -> Int {
            let (server, _) = try Peer.startEcho(["--quiet"] + extra)
            defer { _ = server.finish(signal: SIGTERM) }
            usleep(200_000)
            let tasks = try FileManager.default.contentsOfDirectory(
                atPath: "/proc/\(server.process.processIdentifier)/task")
            return tasks.count
        }
        let one = try threadCount([])
        let four = try threadCount(["--threads", "4"])
        XCTAssertGreaterThanOrEqual(four, one + 3, "threads: \(one) with one socket, \(four) with four")
        #endif
    }

    func testBadThreadCountsAndCombinationsAreUsageErrors() throws {
        for (arguments, message) in [
            (["echo", "127.0.0.1:0", "--threads", "0"], "--threads must be from 1 to 64"),
            (["echo", "127.0.0.1:0", "--threads", "65"], "--threads must be from 1 to 64"),
            (["echo", "127.0.0.1:0", "--threads", "2", "--interactive"], "--interactive"),
            (["echo", "/tmp/udp-echo-threads-\(getpid()).sock", "--threads", "2"], "--threads needs an IP address"),
        ] {
            let result = try Run.start(arguments).finish()
            XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }
}
