import Foundation
import RoomProtocol
import UDPRoom
import XCTest

/// Typed lines to commands, and events to terminal lines.
final class RoomTextTests: XCTestCase {
    func testTypedLines() {
        XCTAssertEqual(RoomInput.parse("hello there"), .command(.say(kind: .text, text: "hello there")))
        XCTAssertEqual(RoomInput.parse("hello\r"), .command(.say(kind: .text, text: "hello")))
        XCTAssertEqual(RoomInput.parse("   "), .empty)
        XCTAssertEqual(RoomInput.parse("/me waves  back"), .command(.say(kind: .action, text: "waves  back")))
        XCTAssertEqual(
            RoomInput.parse("/msg bob see you at 5"), .command(.privateMessage(to: "bob", text: "see you at 5")))
        XCTAssertEqual(RoomInput.parse("/MSG  李雷 你好"), .command(.privateMessage(to: "李雷", text: "你好")))
        XCTAssertEqual(RoomInput.parse("/nick al "), .command(.changeNick("al")))
        XCTAssertEqual(RoomInput.parse("/who"), .command(.who))
        XCTAssertEqual(RoomInput.parse("/quit"), .quit)
        XCTAssertEqual(RoomInput.parse("/help"), .help)
        XCTAssertEqual(
            RoomInput.parse("//etc/passwd is a path"), .command(.say(kind: .text, text: "/etc/passwd is a path")))
        for wrong in ["/me", "/msg bob", "/msg", "/nick", "/nick two words", "/frobnicate"] {
            guard case .invalid = RoomInput.parse(wrong) else { return XCTFail("\(wrong) was accepted") }
        }
    }

    func testEventsAsLines() {
        var display = RoomDisplay()
        let millis: UInt64 = 1_700_000_000_000
        let clock = "[" + LocalClock.hhmm(millis) + "]"
        XCTAssertEqual(
            display.lines(for: .message(from: "alice", kind: .text, text: "hi", unixMillis: millis, flags: [])),
            ["\(clock) alice: hi"])
        XCTAssertEqual(
            display.lines(for: .message(from: "bob", kind: .action, text: "waves", unixMillis: millis, flags: [])),
            ["\(clock) * bob waves"])
        XCTAssertEqual(
            display.lines(for: .message(from: "bob", kind: .text, text: "no time", unixMillis: 0, flags: [])),
            ["[--:--] bob: no time"])
        XCTAssertEqual(
            display.lines(for: .privateMessage(from: "a", to: "b", text: "psst", unixMillis: millis, flags: [])),
            ["\(clock) a -> b (private): psst"])
        XCTAssertEqual(display.lines(for: .joined("carol")), ["--> carol joined"])
        XCTAssertEqual(display.lines(for: .left("carol")), ["<-- carol left"])
        XCTAssertEqual(display.lines(for: .timedOut("dave")), ["<-- dave timed out"])
        XCTAssertEqual(display.lines(for: .nickChanged(from: "al", to: "alice")), ["--- al is now alice"])
        XCTAssertEqual(display.lines(for: .who(names: ["a", "b"], flags: .more)), [])
        XCTAssertEqual(display.lines(for: .who(names: ["c"], flags: [])), ["--- in the room (3): a, b, c"])
        XCTAssertEqual(
            display.lines(for: .notice(code: .textTooLong, inReplyTo: 3, text: "too long")), ["-!- too long"])
        XCTAssertEqual(
            display.lines(for: RoomClient.Event.rejoined(serverRestarted: true, resent: 2)),
            ["-!- server restarted; rejoined; 2 unconfirmed messages sent again (one may show twice)"])
        XCTAssertEqual(
            display.lines(for: RoomClient.Event.rejoined(serverRestarted: false, resent: 0)),
            ["-!- session expired; rejoined"])
    }

    /// Nothing from the network reaches the terminal raw: escape sequences, newlines and bidi overrides in
    /// nicks or texts are shown escaped, and a message stays one line.
    func testNetworkTextIsEscaped() {
        var display = RoomDisplay()
        let lines = display.lines(
            for: .message(
                from: "m\u{1B}[2Jallory", kind: .text, text: "line\nbreak \u{202E}evil\u{7}", unixMillis: 0, flags: []))
        XCTAssertEqual(lines, ["[--:--] m\\e[2Jallory: line\\nbreak \\u{202e}evil\\a"])
        XCTAssertEqual(
            display.lines(for: .notice(code: .info, inReplyTo: 0, text: "\u{1B}]0;title\u{7}")), ["-!- \\e]0;title\\a"])
    }
}

/// The expected `HH:MM` for a time, computed independently of `RoomDisplay` (local time zone).
enum LocalClock {
    static func hhmm(_ millis: UInt64) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm"
        formatter.timeZone = .current
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }
}
