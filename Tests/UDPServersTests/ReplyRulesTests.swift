import Foundation
import NIOCore
import UDPKit
import UDPServers
import UDPText
import XCTest

final class ReplyRulesTests: XCTestCase {
    private func datagram(_ bytes: [UInt8]) throws -> Datagram {
        Datagram(payload: ByteBuffer(bytes: bytes), sender: try UDPAddress(ip: "127.0.0.1", port: 4000))
    }

    private func reply(_ rules: ReplyRules, _ text: String) throws -> String? {
        rules.reply(to: try datagram(Array(text.utf8)), count: 1).map { String(decoding: $0.reply, as: UTF8.self) }
    }

    func testEachKindOfMatchAndFirstMatchWins() throws {
        let rules = try ReplyRules(parsing: [
            "ping => pong",
            "prefix:GET  => got {text}",
            "contains:help => usage",
            "regex:^SET (\\w+)=(\\d+)$ => OK {1} is {2}",
            "hex:ff 00 => binary {length}",
            "prefix: => fallback",
        ])
        XCTAssertEqual(try reply(rules, "ping"), "pong")
        XCTAssertEqual(try reply(rules, "ping "), "fallback", "exact means the whole payload")
        XCTAssertEqual(try reply(rules, "GET x"), "got GET x")
        XCTAssertEqual(try reply(rules, "please help me"), "usage")
        XCTAssertEqual(try reply(rules, "SET temp=21"), "OK temp is 21")
        XCTAssertEqual(try reply(rules, "SET temp=hot"), "fallback")
        let binary = rules.reply(to: try datagram([0xFF, 0x00, 0x80]), count: 1)
        XCTAssertEqual(binary?.rule, 4)
        XCTAssertEqual(binary.map { String(decoding: $0.reply, as: UTF8.self) }, "binary 3")
    }

    func testNoMatchIsNil() throws {
        let rules = try ReplyRules(parsing: ["ping => pong"])
        XCTAssertNil(try reply(rules, "hello"))
    }

    func testOptionalGroupAndSpacesAroundTheArrow() throws {
        let rules = try ReplyRules(parsing: ["regex:a(b)?c=>[{1}]", "x =>  two spaces"])
        XCTAssertEqual(try reply(rules, "ac"), "[]")
        XCTAssertEqual(try reply(rules, "abc"), "[b]")
        XCTAssertEqual(try reply(rules, "x"), " two spaces")
    }

    func testBadRulesNameTheRule() {
        let cases: [([String], String)] = [
            (["ok => fine", "regex:([a-z => x"], "rule 2"),
            (["no arrow here"], "rule 1"),
            (["regex:(a) => {2}"], "only 1 capture group"),
            (["plain => {1}"], "need a regex"),
            (["hex:zz => x"], "invalid hex digit"),
            (["x => {nope}"], "unknown placeholder"),
        ]
        for (texts, expected) in cases {
            XCTAssertThrowsError(try ReplyRules(parsing: texts), "\(texts)") { error in
                XCTAssertTrue("\(error)".contains(expected), "\(texts): \(error)")
            }
        }
        XCTAssertThrowsError(try ReplyRules(parsing: ["regex:(unclosed => x"])) {
            XCTAssertTrue("\($0)".contains("bad regex"), "\($0)")
        }
    }

    func testRulesFile() throws {
        let json = #"[ "ping => pong", {"match": "regex:^hi (\\w+)", "reply": "hello {1}"} ]"#
        let rules = try ReplyRules(json: Array(json.utf8), file: "rules.json")
        XCTAssertEqual(try reply(rules, "hi bob"), "hello bob")
        let wrapped = try ReplyRules(json: Array(#"{"rules": ["a => b"]}"#.utf8), file: "r.json")
        XCTAssertEqual(try reply(wrapped, "a"), "b")
        XCTAssertThrowsError(try ReplyRules(json: Array(#"["a => b", "regex:[ => c"]"#.utf8), file: "r.json")) {
            XCTAssertTrue("\($0)".hasPrefix("r.json rule 2"), "\($0)")
        }
        XCTAssertThrowsError(try ReplyRules(json: Array("{oops".utf8), file: "r.json")) {
            XCTAssertTrue("\($0)".contains("not a rules file"), "\($0)")
        }
    }

    func testGroupCounting() throws {
        XCTAssertEqual(try RulePattern("(a)(?:b)(?<n>c)\\(d[(]", encoding: .utf8).groupCount, 2)
    }

    func testEchoServerAnswersByRuleAndCountsNoRule() async throws {
        var config = EchoServer.Configuration()
        config.rules = try ReplyRules(parsing: ["ping => pong"])
        let socket = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 0))
        let server = EchoServer(socket: socket, configuration: config)
        let task = Task { try await server.run() }
        let client = try await UDPSocket.connect(to: socket.localAddress)
        let reply = try await client.request(
            ByteBuffer(string: "ping"), policy: RequestPolicy(timeout: .seconds(1), retries: 1))
        XCTAssertEqual(String(buffer: reply.datagram.payload), "pong")
        try await client.send(ByteBuffer(string: "other"))
        let nothing = try await client.receive(timeout: .milliseconds(200))
        XCTAssertNil(nothing)
        let deadline = Date().addingTimeInterval(2)
        while server.counters.dropped[.noRule] != 1 && Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertEqual(server.counters.dropped[.noRule], 1)
        task.cancel()
        await client.close()
        await socket.close()
    }

    func testFallbackReplyAndAppendedChecksum() async throws {
        var config = EchoServer.Configuration()
        config.rules = try ReplyRules(parsing: ["ping => pong"])
        config.template = try ReplyTemplate("?")
        config.append = Checksum(.sum8)
        config.allowAmplification = true
        let socket = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 0))
        let server = EchoServer(socket: socket, configuration: config)
        let task = Task { try await server.run() }
        let client = try await UDPSocket.connect(to: socket.localAddress)
        let policy = RequestPolicy(timeout: .seconds(1), retries: 1)
        let pong = try await client.request(ByteBuffer(string: "ping"), policy: policy).datagram.bytes
        XCTAssertEqual(pong, Array("pong".utf8) + Checksum(.sum8).suffix(for: Array("pong".utf8)))
        let other = try await client.request(ByteBuffer(string: "zzz"), policy: policy).datagram.bytes
        XCTAssertEqual(other, [0x3F, 0x3F])
        task.cancel()
        await client.close()
        await socket.close()
    }
}
