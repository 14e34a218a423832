import Foundation
import XCTest

/// `udp echo` against the seeds' clients written in Python.
final class EchoCLITests: XCTestCase {
    private func startEcho(_ extra: [String] = [], stdin: Data? = nil) throws -> (Run.Handle, Int) {
        let server = try Run.start(["echo", "127.0.0.1:0", "--show-port"] + extra, stdin: stdin)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if let line = server.stderr.split(separator: "\n").first(where: { $0.hasPrefix("echo server on ") }),
               let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...]) {
                return (server, port)
            }
            usleep(10_000)
        }
        XCTFail("udp echo did not start: \(server.stderr)")
        throw XCTSkip("no server")
    }

    /// The seeds' greeting client: sends three names, prints each reply.
    private let greetingClient = """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    for name in sys.argv[2:]:
        s.sendto(name.encode(), ('127.0.0.1', int(sys.argv[1])))
        print(s.recvfrom(1024)[0].decode(), flush=True)
    """

    func testGreetingServerAnswersTheSeedsClientAndSummarizesOnSIGTERM() throws {
        let (server, port) = try startEcho(["--reply", "Hello, {text}!"])
        let client = try Run.python(greetingClient, [String(port), "Tom", "Jerry", "Spike"]).finish()
        XCTAssertEqual(client.text, "Hello, Tom!\nHello, Jerry!\nHello, Spike!\n", client.stderr)
        let result = server.finish(signal: SIGTERM)
        XCTAssertEqual(result.status, 0)
        XCTAssertEqual(result.text.split(separator: "\n").count, 3)
        XCTAssertTrue(result.stderr.contains("3 received (13 bytes) from 1 sender, 3 replied (37 bytes)"), result.stderr)
    }

    func testEchoIsByteExactAndQuiet() throws {
        let (server, port) = try startEcho(["--quiet"])
        let client = try Run.python("""
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
        for n in (0, 1, 1472, 65507):
            data = bytes((i * 7 + n) & 255 for i in range(n))
            s.sendto(data, ('127.0.0.1', int(sys.argv[1])))
            print(n, s.recvfrom(70000)[0] == data, flush=True)
        """, [String(port)]).finish()
        XCTAssertEqual(client.text, "0 True\n1 True\n1472 True\n65507 True\n", client.stderr)
        let result = server.finish(signal: SIGINT)
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.isEmpty)
    }

    func testInteractiveRepliesComeFromStandardInput() throws {
        let (server, port) = try startEcho(["--interactive"], stdin: Data("first answer\nsecond answer\n".utf8))
        let client = try Run.python(greetingClient, [String(port), "q1", "q2"]).finish()
        XCTAssertEqual(client.text, "first answer\nsecond answer\n", client.stderr)
        _ = server.finish(signal: SIGTERM)
    }

    func testBadSettings() throws {
        for (arguments, mention) in [
            (["echo", "0", "--reply", "Hi {name}"], "unknown placeholder {name}"),
            (["echo", "0", "--allow", "10.0.0.0/40"], "prefix length"),
            (["echo", "0", "--rate", "0"], "--rate"),
        ] {
            let result = try Run.udp(arguments)
            XCTAssertEqual(result.status, 64, "\(arguments) \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("udp: ") && result.stderr.contains(mention), result.stderr)
        }
    }
}
