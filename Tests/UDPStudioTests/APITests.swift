import Foundation
import UDPKit
import UDPStudio
import UDPStudioWeb
import UDPText
import XCTest

/// The JSON API and its access checks, over real HTTP on loopback.
final class APITests: XCTestCase {
    private var running: RunningStudio!

    override func setUp() async throws {
        running = try RunningStudio()
        try await running.start()
    }

    override func tearDown() async throws {
        await running.stop()
    }

    private var port: Int { running.port }

    func testTokenIsRequiredEverywhere() throws {
        XCTAssertGreaterThanOrEqual(running.token.count * 4, 128, "at least 128 bits of token")
        XCTAssertNotEqual(StudioAccess.makeToken(), StudioAccess.makeToken())
        for path in ["/", "/api/datagrams", "/api/state", "/api/events", "/api/packets", "/api/listeners"] {
            let reply = try RawHTTP.send("GET", path, port: port)
            XCTAssertEqual(reply.status, 401, path)
            XCTAssertFalse(reply.text.contains("records"), path)
            XCTAssertEqual(try RawHTTP.send("GET", path + "?token=0123", port: port).status, 403, path)
            XCTAssertEqual(
                try RawHTTP.send("GET", path, port: port, headers: ["Authorization": "Bearer \(running.token)x"])
                    .status, 403, path)
        }
        XCTAssertEqual(try RawHTTP.send("GET", "/api/datagrams", port: port, headers: running.auth).status, 200)
        XCTAssertEqual(try RawHTTP.send("GET", "/api/datagrams?token=\(running.token)", port: port).status, 200)
        XCTAssertEqual(
            try RawHTTP.send("POST", "/api/send", port: port, json: ["to": "127.0.0.1:9", "text": "x"]).status, 401)
        XCTAssertEqual(running.studio.snapshot().totals.sent, 0)
    }

    func testPageAndAssetsNeedTheTokenAndCarryAStrictPolicy() throws {
        let page = try RawHTTP.send("GET", "/?token=\(running.token)", port: port)
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.text.contains("/s/\(running.token)/app.js"))
        XCTAssertTrue(page.headers["content-security-policy"]?.contains("script-src 'self'") == true)
        XCTAssertEqual(page.headers["referrer-policy"], "no-referrer")
        let script = try RawHTTP.send("GET", "/s/\(running.token)/app.js", port: port)
        XCTAssertEqual(script.status, 200)
        XCTAssertTrue(script.headers["content-type"]?.hasPrefix("text/javascript") == true)
        XCTAssertTrue(script.text.contains("EventSource"))
        XCTAssertEqual(try RawHTTP.send("GET", "/s/\(running.token)/log.js", port: port).status, 200)
        XCTAssertEqual(try RawHTTP.send("GET", "/s/wrong/app.js", port: port).status, 403)
        XCTAssertEqual(try RawHTTP.send("GET", "/s/\(running.token)/passwd", port: port).status, 404)
    }

    func testForeignHostIsRefused() throws {
        // DNS rebinding: the attacker's name resolves to 127.0.0.1, so the browser sends the attacker's Host.
        for host in ["evil.example:\(port)", "127.0.0.1:\(port + 1)", "127.0.0.2:\(port)", ""] {
            let reply = try RawHTTP.send(
                "GET", "/api/datagrams", port: port, headers: running.auth.merging(["Host": host]) { $1 })
            XCTAssertEqual(reply.status, 403, host)
        }
        for host in ["localhost:\(port)", "LOCALHOST:\(port)", "[::1]:\(port)"] {
            XCTAssertEqual(
                try RawHTTP.send(
                    "GET", "/api/datagrams", port: port, headers: running.auth.merging(["Host": host]) { $1 }
                ).status, 200, host)
        }
    }

    func testForeignOriginCannotChangeStateOrWatch() throws {
        let receiver = try PythonPeer(pythonReceiver, ["1", "1"])
        let target = "127.0.0.1:\(receiver.firstLine())"
        for origin in ["http://evil.example", "http://127.0.0.1:\(port + 1)", "null"] {
            let headers = running.auth.merging(["Origin": origin]) { $1 }
            XCTAssertEqual(
                try RawHTTP.send("POST", "/api/send", port: port, headers: headers, json: ["to": target, "text": "x"])
                    .status, 403)
            XCTAssertEqual(
                try RawHTTP.send(
                    "POST", "/api/listeners", port: port, headers: headers, json: ["address": "127.0.0.1:0"]
                ).status, 403)
            XCTAssertEqual(try RawHTTP.send("DELETE", "/api/datagrams", port: port, headers: headers).status, 403)
            XCTAssertEqual(
                try RawHTTP.send("GET", "/api/events?token=\(running.token)", port: port, headers: ["Origin": origin])
                    .status, 403)
        }
        let crossSite = running.auth.merging(["Sec-Fetch-Site": "cross-site"]) { $1 }
        XCTAssertEqual(
            try RawHTTP.send("POST", "/api/send", port: port, headers: crossSite, json: ["to": target, "text": "x"])
                .status, 403)
        XCTAssertEqual(receiver.finish(), "", "nothing was sent")
        XCTAssertEqual(running.studio.snapshot().totals.sent, 0)
        XCTAssertEqual(running.studio.listeners.count, 0)
        // The studio's own origin may.
        let own = running.auth.merging(["Origin": "http://127.0.0.1:\(port)"]) { $1 }
        XCTAssertEqual(
            try RawHTTP.send("POST", "/api/listeners", port: port, headers: own, json: ["address": "127.0.0.1:0"])
                .status, 201)
    }

    func testSendTextAndHexArriveByteExactAndBadInputSendsNothing() throws {
        let receiver = try PythonPeer(pythonReceiver, ["2", "2"])
        let target = "127.0.0.1:\(receiver.firstLine())"
        for bad: [String: Any] in [
            ["to": target, "hex": "4"], ["to": target, "hex": "xyz"], ["to": target], ["to": "nowhere", "text": "a"],
            ["to": target, "text": "a", "count": 1_000_000],
        ] {
            let reply = try RawHTTP.send("POST", "/api/send", port: port, headers: running.auth, json: bad)
            XCTAssertEqual(reply.status, 400, "\(bad)")
            XCTAssertNotNil((try reply.json() as? [String: Any])?["error"] as? String)
        }
        let text = try RawHTTP.send(
            "POST", "/api/send", port: port, headers: running.auth, json: ["to": target, "text": "héllo <b>"])
        XCTAssertEqual(text.status, 200, text.text)
        XCTAssertEqual((try text.json() as? [String: Any])?["sent"] as? Int, 1)
        XCTAssertEqual(
            try RawHTTP.send(
                "POST", "/api/send", port: port, headers: running.auth, json: ["to": target, "hex": "00 01 fe ff"]
            ).status, 200)
        let lines = receiver.finish().split(separator: "\n").map { String($0.split(separator: " ")[0]) }
        XCTAssertEqual(lines, [Hex.encode(Array("héllo <b>".utf8)), "0001feff"])
    }

    func testListenersAndHistoryOverTheAPI() throws {
        let created = try RawHTTP.send(
            "POST", "/api/listeners", port: port, headers: running.auth, json: ["address": "127.0.0.1:0"])
        XCTAssertEqual(created.status, 201, created.text)
        let info = try created.json() as! [String: Any]
        let listenerPort = info["port"] as! Int
        let id = info["id"] as! Int
        XCTAssertEqual(
            try RawHTTP.send(
                "POST", "/api/listeners", port: port, headers: running.auth,
                json: ["address": "127.0.0.1:\(listenerPort)"]
            ).status, 400, "a busy port is refused")
        let sent = try python(
            """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"<img src=x onerror=alert(1)>\\x1b[31m", ("127.0.0.1", int(sys.argv[1])))
            print(s.getsockname()[1])
            """, [String(listenerPort)])
        let peerPort = Int(sent.output.trimmingCharacters(in: .whitespacesAndNewlines))!
        var records: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(5)
        while records.isEmpty && Date() < deadline {
            let reply = try RawHTTP.send("GET", "/api/datagrams", port: port, headers: running.auth)
            records = ((try reply.json() as? [String: Any])?["records"] as? [[String: Any]]) ?? []
            usleep(20_000)
        }
        let record = try XCTUnwrap(records.last)
        XCTAssertEqual(record["direction"] as? String, "in")
        XCTAssertEqual(record["remoteAddress"] as? String, "127.0.0.1")
        XCTAssertEqual(record["remotePort"] as? Int, peerPort)
        XCTAssertEqual(record["localPort"] as? Int, listenerPort)
        XCTAssertEqual(record["text"] as? String, "<img src=x onerror=alert(1)>\\e[31m")
        XCTAssertEqual(record["hex"] as? String, Hex.encode(Array("<img src=x onerror=alert(1)>\u{1b}[31m".utf8)))
        XCTAssertEqual(
            try RawHTTP.send("DELETE", "/api/listeners/\(id)", port: port, headers: running.auth).status, 200)
        XCTAssertEqual(
            try RawHTTP.send("DELETE", "/api/listeners/\(id)", port: port, headers: running.auth).status, 404)
    }

    func testRulesAndSavedPacketsOverTheAPI() throws {
        let created = try RawHTTP.send(
            "POST", "/api/listeners", port: port, headers: running.auth, json: ["address": "127.0.0.1:0"])
        let info = try created.json() as! [String: Any]
        let listenerPort = info["port"] as! Int
        XCTAssertEqual(
            try RawHTTP.send(
                "PUT", "/api/listeners/\(info["id"]!)/rules", port: port, headers: running.auth,
                json: [["match": "regex", "pattern": "(", "reply": "x"]]
            ).status, 400)
        XCTAssertEqual(
            try RawHTTP.send(
                "PUT", "/api/listeners/\(info["id"]!)/rules", port: port, headers: running.auth,
                json: [["match": "contains", "pattern": "ping", "reply": "pong {count}"]]
            ).status, 200)
        let put = try RawHTTP.send(
            "PUT", "/api/packets/ping", port: port, headers: running.auth,
            json: ["to": "127.0.0.1:\(listenerPort)", "text": "ping"])
        XCTAssertEqual(put.status, 200, put.text)
        XCTAssertEqual(
            try RawHTTP.send(
                "PUT", "/api/packets/bad", port: port, headers: running.auth,
                json: ["to": "127.0.0.1:1", "hex": "q"]
            ).status, 400)
        let library = try PacketLibrary.load(from: running.studio.configuration.libraryLocation)
        XCTAssertEqual(library.packets.map(\.name), ["ping"])
        let send = try RawHTTP.send("POST", "/api/packets/ping/send", port: port, headers: running.auth)
        XCTAssertEqual(send.status, 200, send.text)
        XCTAssertEqual(
            try RawHTTP.send("POST", "/api/packets/nope/send", port: port, headers: running.auth).status, 404)
        // The studio's own socket sent "ping"; the listener's rule answered it back to that socket.
        let deadline = Date().addingTimeInterval(5)
        while !running.studio.records().contains(where: {
            $0.direction == .incoming && $0.bytes == Array("pong 1".utf8)
        }) && Date() < deadline {
            usleep(20_000)
        }
        XCTAssertTrue(
            running.studio.records().contains {
                $0.direction == .incoming && $0.bytes == Array("pong 1".utf8) && $0.roundTrip != nil
            })
    }

    func testLiveStreamDeliversNewDatagramsAndExactStats() throws {
        let listener = try RawHTTP.send(
            "POST", "/api/listeners", port: port, headers: running.auth, json: ["address": "127.0.0.1:0"])
        let listenerPort = (try listener.json() as! [String: Any])["port"] as! Int
        let fd = try RawHTTP.connect(port: port, timeout: 5)
        defer { close(fd) }
        let request = RawHTTP.requestText(
            "GET", "/api/events?token=\(running.token)", port: port,
            headers: ["Origin": "http://127.0.0.1:\(port)"], body: nil)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        _ = try python(
            """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(50):
                s.sendto(b"live %d" % i, ("127.0.0.1", int(sys.argv[1])))
            """, [String(listenerPort)])
        var seen = ""
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && !(seen.contains("live 49") && seen.contains("\"received\":50")) {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            seen += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        XCTAssertTrue(seen.contains("text/event-stream"))
        XCTAssertTrue(seen.contains("event: records"))
        XCTAssertTrue(seen.contains("live 49"), "the newest datagram arrived live")
        XCTAssertTrue(seen.contains("event: stats") && seen.contains("\"received\":50"), "exact counters arrived live")
    }
}
