import ArgumentParser
import Foundation
import XCTest

@testable import UDPCommandLine

/// `udp send WORDS...` skips the argument parser (`SendSettings.plain`): it must take only what the parser would
/// read as those words with every option at its default, and give exactly the settings parsing gives.
final class PlainSendTests: XCTestCase {
    /// Words after `udp send`, and whether the plain form takes them.
    static let forms: [(words: [String], plain: Bool)] = [
        (["127.0.0.1", "9", "hi"], true),
        (["127.0.0.1:9", "a", "b"], true),
        (["localhost", "9999", "hello", "world"], true),
        (["[::1]:9", "x"], true),
        (["unix:/tmp/s", "ping"], true),
        (["127.0.0.1", "9"], true),
        (["127.0.0.1"], true),
        (["127.0.0.1", "9", ""], true),
        (["127.0.0.1", "9", "help", "version"], true),
        (["127.0.0.1", "9", "a=b", "@x", "x-y"], true),
        (["<broadcast>", "2425", "hi"], true),
        (["127.0.0.1", "9", "--hex", "41"], false),
        (["-q", "127.0.0.1", "9", "hi"], false),
        (["127.0.0.1", "9", "hi", "-q"], false),
        (["127.0.0.1", "9", "--", "-x"], false),
        (["--", "127.0.0.1", "9", "x"], false),
        (["127.0.0.1", "9", "-"], false),
        (["127.0.0.1", "9", "-5"], false),
        (["127.0.0.1", "-5", "x"], false),
        (["127.0.0.1", "9", "--help"], false),
        (["127.0.0.1", "9", "-h"], false),
        (["127.0.0.1", "9", "x", "--version"], false),
        (["@name"], false),
        (["@name", "x"], false),
        ([], false),
    ]

    /// What parsing `udp send WORDS...` gives, as settings.
    private func parsed(_ words: [String]) throws -> SendSettings {
        let command = try UDPCommand.parseAsRoot(["send"] + words)
        let send = try XCTUnwrap(command as? Send, "\(words) parsed as \(type(of: command))")
        return SendSettings(send)
    }

    func testPlainFormGivesWhatParsingGives() throws {
        for (words, plain) in Self.forms {
            let settings = SendSettings.plain(["send"] + words)
            XCTAssertEqual(settings != nil, plain, "\(words)")
            guard let settings else { continue }
            XCTAssertEqual(settings.words, words)
            XCTAssertEqual(settings, try parsed(words), "\(words)")
        }
    }

    func testOnlySendIsTaken() {
        for arguments in [
            ["listen", "9"], ["request", "127.0.0.1", "9", "x"], ["help", "send"], ["Send", "x", "9"],
        ] {
            XCTAssertNil(SendSettings.plain(arguments), "\(arguments)")
        }
        XCTAssertNil(SendSettings.plain([]))
    }

    /// The defaults live in two places, the options and the settings: they must agree.
    func testDefaultsAreWhatParsingNoOptionsGives() throws {
        XCTAssertEqual(SendSettings(), try parsed([]))
        XCTAssertEqual(OutgoingSettings(), OutgoingSettings(try OutgoingOptions.parse([])))
        XCTAssertEqual(NetworkSettings(), NetworkSettings(try NetworkOptions.parse([])))
        XCTAssertEqual(MessageSettings(), MessageSettings(try MessageOptions.parse([])))
        XCTAssertEqual(ShapingSettings(), ShapingSettings(try ShapingOptions.parse([])))
    }

    /// Every option reaches its setting (none is dropped or swapped on the way).
    func testParsedOptionsCarryOver() throws {
        let settings = try parsed([
            "239.1.2.3", "5000", "x", "--broadcast", "--ttl", "4", "--interface", "lo", "--no-loop", "--each",
            "--count", "3", "--interval", "10ms", "--from", "127.0.0.1:0", "--show-port", "-q", "-e",
            "--encoding", "latin1", "--template", "--append", "crc8", "-4",
        ])
        var expected = SendSettings(words: ["239.1.2.3", "5000", "x"])
        expected.broadcast = true
        expected.ttl = 4
        expected.interface = "lo"
        expected.loop = false
        expected.outgoing.each = true
        expected.outgoing.givenCount = 3
        expected.outgoing.interval = DurationArgument(seconds: 0.01)
        expected.outgoing.from = "127.0.0.1:0"
        expected.outgoing.showPort = true
        expected.outgoing.quiet = true
        expected.outgoing.payload.escapes = true
        expected.outgoing.payload.encodingName = "latin1"
        expected.outgoing.shaping.template = true
        expected.outgoing.shaping.append = "crc8"
        expected.network.ipv4 = true
        XCTAssertEqual(settings, expected)
        XCTAssertEqual(
            try parsed(["127.0.0.1", "9", "--limited", "--hex", "--file", "f", "-6"]).outgoing.payload.hex, true)
        let other = try parsed([
            "255.255.255.255", "9", "--limited", "--file", "f", "--forever", "--interval", "1s", "-6",
        ])
        XCTAssertEqual(other.limited, true)
        XCTAssertEqual(other.outgoing.file, "f")
        XCTAssertEqual(other.outgoing.forever, true)
        XCTAssertEqual(other.network.ipv6, true)
        XCTAssertEqual(try parsed(["127.0.0.1", "9", "--hex", "41"]).outgoing.payload.hex, true)
    }

    /// The running program: the plain form and the same words after `--` (which the parser handles, to the same
    /// settings) give the same output, errors and exit codes, and send the same bytes.
    func testPlainAndParsedRunsAgree() throws {
        let cases: [[String]] = [
            ["127.0.0.1"],
            ["127.0.0.1", "9"],
            ["127.0.0.1", "70000", "x"],
            ["127.0.0.1", "0", "x"],
            ["127.0.0.1:http", "x"],
            ["[::1:9999", "x"],
            ["host with space", "9", "x"],
            ["127.0.0.1:9", "9", "x"],
            ["unix:/nonexistent-dir/s", "ping"],
            ["127.0.0.1", "9", String(repeating: "a", count: 70_000)],
            ["127.0.0.1", "9", "hi"],
            ["::1", "9", "hi"],
        ]
        for words in cases {
            let plain = try Run.udp(["send"] + words)
            let parsed = try Run.udp(["send", "--"] + words)
            XCTAssertEqual(plain.status, parsed.status, "\(words): \(plain.stderr) / \(parsed.stderr)")
            XCTAssertEqual(plain.stderr, parsed.stderr, "\(words)")
            XCTAssertEqual(plain.stdout, parsed.stdout, "\(words)")
        }
        // The bytes that arrive.
        let receiver = try Run.python(Peer.receiver, ["127.0.0.1", "2"])
        let port = String(try Peer.port(of: receiver))
        for arguments in [
            ["send", "127.0.0.1", port, "héllo", "", "w"], ["send", "--", "127.0.0.1", port, "héllo", "", "w"],
        ] {
            let result = try Run.udp(arguments)
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        let hex = Data("héllo  w".utf8).map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(
            Array(receiver.finish().text.split(separator: "\n").dropFirst()), [Substring(hex), Substring(hex), "done"])
    }
}
