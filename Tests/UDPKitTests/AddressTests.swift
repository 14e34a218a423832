import UDPKit
import XCTest

final class AddressTests: XCTestCase {
    func testAcceptedEndpointForms() throws {
        let cases: [(String, UDPEndpoint.Kind)] = [
            ("127.0.0.1:9999", .ip(host: .name("127.0.0.1"), port: 9999)),
            ("example.org:53", .ip(host: .name("example.org"), port: 53)),
            ("[::1]:9999", .ip(host: .name("::1"), port: 9999)),
            ("[fe80::1%eth0]:5", .ip(host: .name("fe80::1%eth0"), port: 5)),
            (":9999", .ip(host: .any, port: 9999)),
            ("*:0", .ip(host: .any, port: 0)),
            ("0.0.0.0:1", .ip(host: .name("0.0.0.0"), port: 1)),
            ("[::]:65535", .ip(host: .name("::"), port: 65535)),
            ("<broadcast>:2425", .ip(host: .broadcast, port: 2425)),
            ("broadcast:2425", .ip(host: .broadcast, port: 2425)),
            ("unix:/tmp/a.sock", .unix(path: "/tmp/a.sock")),
            ("/tmp/b.sock", .unix(path: "/tmp/b.sock")),
            ("./c.sock", .unix(path: "./c.sock")),
        ]
        for (text, kind) in cases {
            XCTAssertEqual(try UDPEndpoint.parse(text).kind, kind, text)
        }
        XCTAssertEqual(try UDPEndpoint.parse("9999", defaultHost: .any).kind, .ip(host: .any, port: 9999))
        XCTAssertEqual(try UDPEndpoint(host: "::1", port: "7").kind, .ip(host: .name("::1"), port: 7))
        XCTAssertEqual(try UDPEndpoint(host: "[::1]", port: "7").kind, .ip(host: .name("::1"), port: 7))
        XCTAssertEqual(try UDPEndpoint(host: "", port: "7").kind, .ip(host: .any, port: 7))
        XCTAssertEqual(try UDPEndpoint(host: "<broadcast>", port: "7").kind, .ip(host: .broadcast, port: 7))
    }

    func testRejectedEndpointFormsSayWhy() {
        let cases: [(String, String)] = [
            ("", "empty address"),
            ("9999", "missing host"),
            ("localhost", "missing port"),
            ("localhost:", "missing port"),
            ("::1:9999", "brackets"),
            ("[::1:9999", "missing ']'"),
            ("[::1]9999", "expected :PORT"),
            ("[::1]:", "expected :PORT"),
            ("host:70000", "invalid port '70000'"),
            ("host:65536", "invalid port '65536'"),
            ("host:-1", "invalid port '-1'"),
            ("host:http", "invalid port 'http'"),
            ("host:0x10", "invalid port"),
            ("host:123456", "invalid port"),
            ("bad host:1", "unexpected character ' '"),
            ("bad\u{1B}host:1", "unexpected character '\\u{1B}'"),
            ("unix:", "empty Unix socket path"),
        ]
        for (text, reason) in cases {
            XCTAssertThrowsError(try UDPEndpoint.parse(text), text) { error in
                let message = (error as? UDPError)?.description ?? ""
                XCTAssertTrue(message.contains(reason), "\(text): \(message)")
                XCTAssertFalse(message.contains("\n"))
            }
        }
        XCTAssertThrowsError(try UDPEndpoint.parse("-5", defaultHost: .any))
    }

    func testPortParsing() {
        XCTAssertEqual(try UDPEndpoint.parsePort("0"), 0)
        XCTAssertEqual(try UDPEndpoint.parsePort("65535"), 65535)
        XCTAssertEqual(try UDPEndpoint.parsePort("00080"), 80)
        for bad in ["", "65536", "1e3", " 1", "１２"] {
            XCTAssertThrowsError(try UDPEndpoint.parsePort(bad), bad)
        }
    }

    func testResolutionOfLiteralsAndSpecialWords() async throws {
        let any = try await UDPEndpoint.parse("*:5").resolve()
        XCTAssertEqual(any.map(\.description), ["[::]:5"])
        let any4 = try await UDPEndpoint.parse("*:5").resolve(family: .ipv4)
        XCTAssertEqual(any4.map(\.description), ["0.0.0.0:5"])
        let v6 = try await UDPEndpoint.parse("[::1]:9").resolve()
        XCTAssertEqual(v6.first?.family, .ipv6)
        do {
            _ = try await UDPEndpoint.parse("<broadcast>:2425").resolve(family: .ipv6)
            XCTFail("IPv6 has no broadcast")
        } catch {
            XCTAssertTrue(error.description.contains("use a multicast group"), error.description)
        }
        do {
            _ = try await UDPEndpoint.parse("127.0.0.1:1").resolve(family: .ipv6)
            XCTFail("an IPv4 literal is not IPv6")
        } catch {
            XCTAssertTrue(error.description.contains("IPv6 was asked for"), error.description)
        }
    }

    func testResolutionOfNames() async throws {
        let local = try await UDPEndpoint.parse("localhost:80").resolve(family: .ipv4)
        XCTAssertEqual(local.first?.description, "127.0.0.1:80")
        // Names under "invalid." (RFC 6761) fail at once, without a query leaving the host.
        for name in ["no-such-host.invalid", "NO-SUCH-HOST.INVALID.", "invalid"] {
            do {
                _ = try await UDPEndpoint.parse("\(name):1").resolve()
                XCTFail("resolved \(name), a name that cannot exist")
            } catch {
                guard case .nameNotFound(_, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(reason, "no such host", "answered here, not by a DNS server")
            }
        }
    }

    func testAddressProperties() throws {
        let mapped = try UDPAddress(ip: "::ffff:10.1.2.3", port: 7)
        XCTAssertEqual(mapped.family, .ipv4, "IPv4-mapped addresses are normalized")
        XCTAssertEqual(mapped.description, "10.1.2.3:7")
        XCTAssertEqual(mapped, try UDPAddress(ip: "10.1.2.3", port: 7))
        XCTAssertEqual(try UDPAddress(ip: "::1", port: 9).description, "[::1]:9")
        XCTAssertEqual(try UDPAddress(ip: "224.1.1.1", port: 9).isMulticast, true)
        XCTAssertEqual(try UDPAddress(ip: "ff02::1", port: 9).isMulticast, true)
        XCTAssertEqual(try UDPAddress(ip: "127.0.0.1", port: 9).isMulticast, false)
        XCTAssertEqual(try UDPAddress(ip: "0.0.0.0", port: 9).isAny, true)
        XCTAssertEqual(try UDPAddress(ip: "127.0.0.1", port: 9).maximumPayload, 65_507)
        XCTAssertEqual(try UDPAddress(ip: "::1", port: 9).maximumPayload, 65_527)
        XCTAssertEqual(try UDPAddress(ip: "127.0.0.1", port: 9).withPort(10).port, 10)
        XCTAssertThrowsError(try UDPAddress(ip: "localhost", port: 1))
        XCTAssertThrowsError(try UDPAddress(ip: "127.0.0.1", port: 65536))
        XCTAssertThrowsError(try UDPAddress(unixPath: String(repeating: "x", count: 200)))
    }
}
