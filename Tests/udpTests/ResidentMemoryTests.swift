import Foundation
import XCTest

/// Long-running servers unmap the pages of the binary that only start-up touched.
final class ResidentMemoryTests: XCTestCase {
    /// Resident KiB of read-only file mappings (code and constants of the binary and its libraries).
    private func fileBackedReadOnlyKiB(_ pid: Int32) throws -> Int {
        let smaps = try String(contentsOfFile: "/proc/\(pid)/smaps", encoding: .utf8)
        var total = 0
        var counting = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first?.split(separator: "-"), range.count == 2, UInt(range[0], radix: 16) != nil {
                counting = fields.count >= 6 && fields[1].hasPrefix("r") && !fields[1].contains("w") && fields[5].hasPrefix("/")
            } else if counting, line.hasPrefix("Rss:"), let kib = Int(fields[1]) {
                total += kib
            }
        }
        return total
    }

    private func answered(_ port: Int) throws {
        let client = try Run.python("""
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
        s.sendto(b'ping', ('127.0.0.1', int(sys.argv[1])))
        print(s.recvfrom(100)[0].decode(), flush=True)
        """, [String(port)]).finish()
        XCTAssertEqual(client.text, "ping\n", client.stderr)
    }

    private func port(_ handle: Run.Handle, prefix: String) throws -> Int {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if let line = handle.stderr.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }),
               let address = line.dropFirst(prefix.count).split(separator: " ").first,
               let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) {
                return port
            }
            usleep(10_000)
        }
        XCTFail("did not start: \(handle.stderr)")
        throw XCTSkip("no server")
    }

    /// `udp echo` (which unmaps them) against `udp listen`, which starts the same way and keeps them: the echo
    /// server, having answered a datagram, maps clearly fewer (a debug build: about 7 MiB against 11 MiB).
    func testEchoServerHoldsFewerPagesOfTheBinaryThanAListenerThatKeepsThem() throws {
        #if !os(Linux)
        throw XCTSkip("reads /proc")
        #else
        let echo = try Run.start(["echo", "127.0.0.1:0", "--show-port", "--quiet"])
        defer { _ = echo.finish(signal: SIGTERM) }
        try answered(try port(echo, prefix: "echo server on "))
        let listener = try Run.start(["listen", "127.0.0.1:0", "--show-port"])
        defer { _ = listener.finish(signal: SIGTERM) }
        XCTAssertNotNil(try? port(listener, prefix: "listening on "), listener.stderr)
        usleep(200_000)
        let kept = try fileBackedReadOnlyKiB(listener.process.processIdentifier)
        let released = try fileBackedReadOnlyKiB(echo.process.processIdentifier)
        XCTAssertLessThan(released * 4, kept * 3, "read-only file pages resident: udp echo \(released) KiB, udp listen \(kept) KiB")
        #endif
    }
}
