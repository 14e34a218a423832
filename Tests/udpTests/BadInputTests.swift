import Foundation
import XCTest

/// Bad input: one `udp: ` line on stderr, the documented exit code, and nothing sent.
final class BadInputTests: XCTestCase {
    private func assertFails(_ arguments: [String], code: Int32, mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try Run.udp(arguments)
        XCTAssertEqual(result.status, code, "\(arguments): \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("udp: "), "\(arguments): \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, "one line: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains(mentions), "\(arguments): \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stdout.isEmpty, file: file, line: line)
    }

    func testBadAddressesAndPorts() throws {
        try assertFails(["send", "127.0.0.1", "70000", "x"], code: 64, mentions: "invalid port '70000'")
        try assertFails(["send", "127.0.0.1:-1", "x"], code: 64, mentions: "invalid port")
        try assertFails(["send", "127.0.0.1:http", "x"], code: 64, mentions: "invalid port 'http'")
        try assertFails(["send", "::1:9999", "x"], code: 64, mentions: "brackets")
        try assertFails(["send", "[::1:9999", "x"], code: 64, mentions: "missing ']'")
        try assertFails(["send", "host with space", "9", "x"], code: 64, mentions: "unexpected character")
        try assertFails(["send"], code: 64, mentions: "missing destination")
        try assertFails(["listen", "99999"], code: 64, mentions: "invalid port '99999'")
        try assertFails(["listen", "localhost:"], code: 64, mentions: "missing port")
    }

    func testUnknownHostIs69() throws {
        try assertFails(["send", "no-such-host.invalid", "9", "x"], code: 69, mentions: "cannot resolve host 'no-such-host.invalid'")
        try assertFails(["request", "no-such-host.invalid:9", "x"], code: 69, mentions: "cannot resolve")
    }

    func testPortInUse() throws {
        let holder = try Run.python("""
        import socket, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))
        print('ready', s.getsockname()[1], flush=True); time.sleep(5)
        """)
        let port = try Peer.port(of: holder)
        defer { _ = holder.finish(timeout: 1, signal: SIGTERM) }
        try assertFails(["listen", "127.0.0.1:\(port)"], code: 1, mentions: "already in use")
        try assertFails(["send", "127.0.0.1", "9", "x", "--from", "127.0.0.1:\(port)"], code: 1, mentions: "already in use")
    }

    func testBadPayloads() throws {
        try assertFails(["send", "127.0.0.1", "9", "--hex", "abc"], code: 65, mentions: "odd number of hex digits")
        try assertFails(["send", "127.0.0.1", "9", "--hex", "zz"], code: 65, mentions: "invalid hex digit 'z'")
        try assertFails(["send", "127.0.0.1", "9", "-e", "bad \\q escape"], code: 65, mentions: "escape")
        try assertFails(["send", "127.0.0.1", "9", "--encoding", "ebcdic", "x"], code: 64, mentions: "unknown encoding 'ebcdic'")
        try assertFails(["send", "127.0.0.1", "9", "--encoding", "latin1", "你好"], code: 65, mentions: "latin1")
        try assertFails(["send", "127.0.0.1", "9", "--file", "/nonexistent/file"], code: 65, mentions: "no such file")
        try assertFails(["send", "127.0.0.1", "9", String(repeating: "a", count: 70_000)], code: 65, mentions: "70000 bytes is too large")
        try assertFails(["send", "[::1]:9", String(repeating: "a", count: 65_528)], code: 65, mentions: "at most 65527 bytes")
    }

    func testOversizedStdinLineStopsWithoutLosingEarlierLines() throws {
        let peer = try Run.python(Peer.receiver, ["127.0.0.1", "1"])
        let port = try Peer.port(of: peer)
        let input = "ok\n" + String(repeating: "b", count: 70_000) + "\n"
        let result = try Run.udp(["send", "127.0.0.1", String(port)], stdin: Data(input.utf8))
        XCTAssertEqual(result.status, 65)
        XCTAssertTrue(peer.finish().text.contains("\n6f6b\n"))
    }

    func testBadOptionValues() throws {
        try assertFails(["send", "127.0.0.1", "9", "x", "--count", "0"], code: 64, mentions: "--count")
        try assertFails(["send", "127.0.0.1", "9", "x", "--interval", "soon"], code: 64, mentions: "interval")
        try assertFails(["listen", "0", "--max-size", "0"], code: 64, mentions: "--max-size")
        try assertFails(["request", "127.0.0.1", "9", "x", "--timeout", "-1"], code: 64, mentions: "timeout")
        try assertFails(["send", "127.0.0.1", "9", "x", "-4", "-6"], code: 64, mentions: "-4 and -6")
        try assertFails(["nosuchcommand"], code: 64, mentions: "udp --help")
    }

    func testHelpAndVersion() throws {
        for command in ["send", "listen", "request", "client", "demo"] {
            let result = try Run.udp([command, "--help"])
            XCTAssertEqual(result.status, 0)
            XCTAssertTrue(result.text.contains("Examples:"), command)
        }
        let version = try Run.udp(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.text.first?.isNumber ?? false, version.text)
    }

    func testDemoRunsQuicklyOnLoopback() throws {
        let started = Date()
        let result = try Run.udp(["demo"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        for expected in ["Hello, UDP!", "0 bytes", "refused", "(truncated)", "你好，世界", "\\e[31mgotcha"] {
            XCTAssertTrue(result.text.contains(expected), "demo transcript lacks \(expected)")
        }
    }
}
