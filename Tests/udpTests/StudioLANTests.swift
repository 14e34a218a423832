import Foundation
import XCTest

/// `udp studio`'s multicast and broadcast on a network of namespaces (see `TestLAN`): the studio runs on host A,
/// driven through its API over A's own loopback; Python peers on the other hosts send and receive. Nothing here
/// touches the host's own interfaces.
final class StudioLANTests: LANTestCase {
    /// One API call: URL TOKEN METHOD PATH [JSON BODY]; prints the HTTP status, a space and the response body.
    private static let client = """
        import sys, urllib.request, urllib.error
        url, token, method, path = sys.argv[1:5]
        body = sys.argv[5].encode() if len(sys.argv) > 5 else None
        request = urllib.request.Request(url + path, data=body, method=method,
                                         headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                print(response.status, response.read().decode(), flush=True)
        except urllib.error.HTTPError as e:
            print(e.code, e.read().decode(), flush=True)
        """

    /// Sends TEXT to GROUP:PORT once, out of the interface with address IFADDR: GROUP IFADDR PORT TEXT.
    private static let multicastSender = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[2]))
        s.sendto(sys.argv[4].encode(), (sys.argv[1], int(sys.argv[3])))
        print('sent', flush=True)
        """

    /// Joins GROUP on the interface with address IFADDR, binds PORT, prints "ready", then for each datagram
    /// "got SENDER TTL TEXT" until COUNT arrived or none came for IDLE seconds: GROUP IFADDR PORT COUNT IDLE.
    private static let multicastReceiver = """
        import socket, struct, sys
        group, ifaddr, port, count, idle = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('0.0.0.0', port))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton(ifaddr))
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, 'IP_RECVTTL', 12), 1)  # Linux's value where Python lacks the name
        s.settimeout(idle)
        print('ready', flush=True)
        try:
            for _ in range(count):
                data, anc, flags, addr = s.recvmsg(70000, socket.CMSG_SPACE(4))
                ttl = [struct.unpack('i', d[:4])[0] for level, kind, d in anc if level == socket.IPPROTO_IP and kind == socket.IP_TTL]
                print('got', addr[0], ttl[0] if ttl else -1, data.decode(), flush=True)
        except socket.timeout:
            pass
        print('done', flush=True)
        """

    private struct Studio {
        let lan: TestLAN
        let handle: Run.Handle
        let url: String
        let token: String

        /// Calls the API from host A; the status and the parsed JSON body.
        func call(_ method: String, _ path: String, _ body: String? = nil) throws -> (status: Int, json: Any?) {
            let run = try lan.python(.a, StudioLANTests.client, [url, token, method, path] + (body.map { [$0] } ?? []))
            let result = run.finish()
            let text = result.text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let space = text.firstIndex(of: " "), let status = Int(text[..<space]) else {
                XCTFail("no answer from the API: \(text) \(result.stderr)")
                return (0, nil)
            }
            return (status, try? JSONSerialization.jsonObject(with: Data(text[text.index(after: space)...].utf8)))
        }

        /// The `received` counter of each listener, by id.
        func received() throws -> [Int: Int] {
            let listeners = try call("GET", "/api/listeners").json as? [[String: Any]] ?? []
            var counts: [Int: Int] = [:]
            for l in listeners {
                counts[l["id"] as? Int ?? 0] = (l["counters"] as? [String: Any])?["received"] as? Int
            }
            return counts
        }
    }

    private func startStudio(_ lan: TestLAN) throws -> Studio {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent(
            "udp-studio-lan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
        let handle = try Run.Handle(
            lan.ip,
            [
                "netns", "exec", lan.namespace(.a), "env", "XDG_CONFIG_HOME=\(config.path)",
                Run.udpPath, "studio", "--http", "127.0.0.1:0", "--no-browser",
            ], stdinData: Data())
        XCTAssertTrue(handle.waitForOutput("token="), "the studio did not start: \(handle.stderr)")
        let line = handle.text.split(separator: "\n").first { $0.contains("token=") }.map(String.init) ?? ""
        guard let query = line.range(of: "/?token=") else { throw XCTSkip("no studio address in \(line)") }
        return Studio(
            lan: lan, handle: handle, url: String(line[..<query.lowerBound]), token: String(line[query.upperBound...]))
    }

    private func waitFor(_ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if try condition() { return true }
            usleep(100_000)
        }
        return false
    }

    func testListenerJoinsAGroupAndASourceSpecificGroupOnAnInterface() throws {
        let lan = try lan()
        let studio = try startStudio(lan)
        defer { _ = studio.handle.finish(signal: SIGTERM) }
        // Any-source group on lan0 (the hosts have no default route, so the interface is needed), and a
        // source-specific one that takes only what B sends.
        let any = try studio.call(
            "POST", "/api/listeners", #"{"address":"5300","group":"239.7.7.7","interface":"lan0"}"#)
        XCTAssertEqual(any.status, 201, "\(String(describing: any.json))")
        let ssm = try studio.call(
            "POST", "/api/listeners", #"{"address":"5301","group":"232.7.7.7","interface":"lan0","source":"10.77.1.2"}"#
        )
        XCTAssertEqual(ssm.status, 201, "\(String(describing: ssm.json))")
        let anyID = (any.json as? [String: Any])?["id"] as? Int ?? -1
        let ssmID = (ssm.json as? [String: Any])?["id"] as? Int ?? -1
        XCTAssertEqual((ssm.json as? [String: Any])?["source"] as? String, "10.77.1.2")
        XCTAssertEqual((ssm.json as? [String: Any])?["interface"] as? String, "lan0")

        for (host, group, port, text) in [
            (TestLAN.Host.b, "239.7.7.7", 5300, "from B"), (.c, "232.7.7.7", 5301, "from C, not the source"),
            (.b, "232.7.7.7", 5301, "from the source"),
        ] {
            let sender = try lan.python(host, Self.multicastSender, [group, host.address, String(port), text])
            XCTAssertTrue(sender.finish().text.contains("sent"))
        }
        let arrived = try waitFor { try studio.received()[anyID] == 1 && studio.received()[ssmID] == 1 }
        let counts = try studio.received()
        XCTAssertTrue(arrived, "counts: \(counts)")
        let records = try studio.call("GET", "/api/datagrams").json as? [String: Any]
        let incoming = (records?["records"] as? [[String: Any]] ?? []).filter { $0["direction"] as? String == "in" }
        XCTAssertEqual(
            Set(incoming.map { "\($0["remoteAddress"] ?? "") \($0["text"] ?? "")" }),
            ["10.77.1.2 from B", "10.77.1.2 from the source"])
        XCTAssertTrue(incoming.allSatisfy { ($0["marks"] as? [String] ?? []).contains("multicast") }, "\(incoming)")
        // A source without a group is refused, not silently ignored.
        let bad = try studio.call("POST", "/api/listeners", #"{"address":"5302","source":"10.77.1.2"}"#)
        XCTAssertEqual(bad.status, 400)
    }

    func testSendsToAGroupWithInterfaceAndTTLAndToBroadcast() throws {
        let lan = try lan()
        let studio = try startStudio(lan)
        defer { _ = studio.handle.finish(signal: SIGTERM) }
        let member = try lan.python(
            .c, Self.multicastReceiver, ["239.7.7.8", TestLAN.Host.c.address, "5310", "1", "4"])
        let everyone = try lan.python(.b, LANPeer.receiver, ["5311", "1", "4"])
        XCTAssertTrue(member.waitForOutput("ready") && everyone.waitForOutput("ready"), member.stderr + everyone.stderr)

        let group = try studio.call(
            "POST", "/api/send", #"{"to":"239.7.7.8:5310","text":"to the group","interface":"lan0","ttl":3}"#)
        XCTAssertEqual(group.status, 200, "\(String(describing: group.json))")
        let broadcast = try studio.call("POST", "/api/send", #"{"to":"<broadcast>:5311","text":"to everyone"}"#)
        XCTAssertEqual(broadcast.status, 200, "\(String(describing: broadcast.json))")
        XCTAssertEqual((broadcast.json as? [String: Any])?["to"] as? [String], ["10.77.1.255:5311"])

        let got = member.finish().text
        XCTAssertTrue(got.contains("got 10.77.1.1 3 to the group"), got)
        XCTAssertEqual(LANPeer.received(everyone).map(\.text), ["to everyone"])
        // The interface and TTL belong to multicast: for a unicast destination they are a clear error.
        let wrong = try studio.call("POST", "/api/send", #"{"to":"10.77.1.2:5311","text":"x","ttl":3}"#)
        XCTAssertEqual(wrong.status, 400)
    }
}
