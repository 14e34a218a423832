import Foundation
import NIOCore
import UDPKit
import UDPText
import XCTest

final class FormatTests: XCTestCase {
    private let sender = try! UDPAddress(ip: "127.0.0.1", port: 4000)
    private let time = Date(timeIntervalSince1970: 1_700_000_000.25)

    func testJSONQuotingEscapesControlsAndKeepsUnicode() throws {
        XCTAssertEqual(
            JSONText.quote("a\"b\\c\n\t\u{1B}\u{85}\u{2028}é你"), "\"a\\\"b\\\\c\\n\\t\\u001b\\u0085\\u2028é你\"")
        let object = JSONText.object([
            "s": .string("x"), "n": .int(-3), "d": .double(1.5), "b": .bool(true), "z": .null,
            "inf": .double(.infinity),
        ])
        XCTAssertEqual(object, "{\"s\":\"x\",\"n\":-3,\"d\":1.5,\"b\":true,\"z\":null,\"inf\":null}")
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(object.utf8)))
    }

    func testJSONEscapesBidiControlsSoTextCannotReorderTheLine() throws {
        let evil =
            "abc\u{202E}gpj.exe\u{202C} \u{2066}x\u{2069} \u{200E}\u{200F}\u{061C}\u{202A}\u{202B}\u{202D}\u{2067}\u{2068}"
        let quoted = JSONText.quote(evil)
        for value: UInt32 in [
            0x202E, 0x202C, 0x2066, 0x2069, 0x200E, 0x200F, 0x061C, 0x202A, 0x202B, 0x202D, 0x2067, 0x2068,
        ] {
            XCTAssertFalse(
                quoted.unicodeScalars.contains { $0.value == value }, "U+\(String(value, radix: 16)) raw in \(quoted)")
        }
        XCTAssertTrue(quoted.contains("abc\\u202egpj.exe\\u202c"), quoted)
        // Any JSON parser reads the same text back.
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as! [String]
        XCTAssertEqual(decoded, [evil])
        // Neighbours are kept as they are.
        XCTAssertEqual(JSONText.quote("\u{200D}\u{2070}\u{061B}"), "\"\u{200D}\u{2070}\u{061B}\"")
        // And a datagram's `text` field in --json output carries no raw bidi control.
        let datagram = Datagram(payload: ByteBuffer(string: evil), sender: sender, receivedAt: time)
        let line = DatagramFormatter(style: .json).render(datagram)
        XCTAssertFalse(line.unicodeScalars.contains { $0.value == 0x202E }, line)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        XCTAssertEqual(object["text"] as? String, evil)
    }

    func testTextModeEscapesLineSeparators() {
        let datagram = Datagram(
            payload: ByteBuffer(string: "up\u{2028}down\u{2029}end"), sender: sender, receivedAt: time)
        let line = DatagramFormatter().render(datagram)
        XCTAssertTrue(line.hasSuffix("  up\\u{2028}down\\u{2029}end\n"), line)
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1)
    }

    func testTextRendering() {
        let datagram = Datagram(
            payload: ByteBuffer(string: "hi\u{1B}[31m"), sender: sender, receivedAt: time, truncated: false)
        let line = DatagramFormatter().render(datagram)
        XCTAssertTrue(line.hasSuffix("  127.0.0.1:4000  7 bytes  hi\\e[31m\n"), line)
        XCTAssertEqual(line.split(separator: " ").first?.count, 12, "hh:mm:ss.mmm")
        let cut = Datagram(payload: ByteBuffer(string: "abcd"), sender: sender, receivedAt: time, truncated: true)
        XCTAssertTrue(
            DatagramFormatter().render(cut, event: "reply", extra: [("rtt_ms", .double(0.5))])
                .hasSuffix("reply from 127.0.0.1:4000  4 bytes (truncated)  rtt_ms=0.5  abcd\n"))
        let one = Datagram(payload: ByteBuffer(bytes: [0x41]), sender: sender, receivedAt: time)
        XCTAssertTrue(DatagramFormatter().render(one).contains("  1 byte  A"))
    }

    func testArrivalIsShownForBroadcastAndMulticastAndAlwaysInJSON() throws {
        func datagram(to destination: String, _ kind: Datagram.Arrival.Kind) throws -> Datagram {
            let arrival = Datagram.Arrival(
                destination: try UDPAddress(ip: destination, port: 2425), interfaceIndex: 3,
                interfaceName: "eth\u{1B}1", kind: kind)
            return Datagram(payload: ByteBuffer(string: "hi"), sender: sender, receivedAt: time, arrival: arrival)
        }
        let broadcast = DatagramFormatter().render(try datagram(to: "10.1.1.255", .broadcast))
        XCTAssertTrue(
            broadcast.hasSuffix("127.0.0.1:4000  2 bytes  broadcast to 10.1.1.255 on eth\\e1  hi\n"), broadcast)
        let multicast = DatagramFormatter(style: .hex).render(try datagram(to: "ff02::1", .multicast))
        XCTAssertTrue(
            multicast.split(separator: "\n")[0].hasSuffix("2 bytes  multicast to ff02::1 on eth\\e1"), multicast)
        let unicast = DatagramFormatter().render(try datagram(to: "127.0.0.1", .unicast))
        XCTAssertTrue(unicast.hasSuffix("127.0.0.1:4000  2 bytes  hi\n"), "unicast stays unmarked: \(unicast)")

        let json = DatagramFormatter(style: .json).render(
            try datagram(to: "127.0.0.1", .unicast), extra: [("n", .int(1))])
        XCTAssertTrue(
            json.hasSuffix(",\"to\":\"127.0.0.1\",\"cast\":\"unicast\",\"interface\":\"eth\\u001b1\",\"n\":1}\n"), json)
        let plain = DatagramFormatter(style: .json).render(
            Datagram(payload: ByteBuffer(), sender: sender, receivedAt: time))
        XCTAssertFalse(plain.contains("\"cast\""), "no packet information, no fields: \(plain)")
    }

    func testJSONArrays() throws {
        XCTAssertEqual(JSONText.array([]), "[]")
        let array = JSONText.array([.string("up"), .int(2), .null, .raw(JSONText.object(["a": .bool(false)]))])
        XCTAssertEqual(array, "[\"up\",2,null,{\"a\":false}]")
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(array.utf8)))
    }

    func testHexRendering() {
        let datagram = Datagram(payload: ByteBuffer(bytes: Array(0..<18)), sender: sender, receivedAt: time)
        let lines = DatagramFormatter(style: .hex).render(datagram).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines[0].hasSuffix("127.0.0.1:4000  18 bytes"))
        XCTAssertEqual(lines[1], "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|")
        XCTAssertEqual(lines[2], "00000010  10 11                                             |..|")
    }

    func testJSONRendering() throws {
        let datagram = Datagram(
            payload: ByteBuffer(bytes: [0xC4, 0xE3]), sender: sender, receivedAt: time, truncated: true)
        let utf8 = DatagramFormatter(style: .json).render(datagram)
        XCTAssertEqual(
            utf8,
            "{\"time\":\"2023-11-14T22:13:20.250Z\",\"from\":\"127.0.0.1\",\"port\":4000,\"length\":2,\"truncated\":true,\"payload\":\"xOM=\"}\n"
        )
        let gbk = DatagramFormatter(style: .json, encoding: .gbk).render(
            datagram, event: "reply", extra: [("attempts", .int(2))])
        let object = try JSONSerialization.jsonObject(with: Data(gbk.utf8)) as! [String: Any]
        XCTAssertEqual(object["text"] as? String, "你")
        XCTAssertEqual(object["event"] as? String, "reply")
        XCTAssertEqual(object["attempts"] as? Int, 2)
    }

    func testErrorMessagesAreOneLineAndSayWhatToDo() {
        let errors: [UDPError] = [
            .addressInUse("127.0.0.1:9"), .permissionDenied("binding 0.0.0.0:80", hint: "use a port of 1024 or more"),
            .messageTooLarge(size: 70_000, limit: 65_507), .messageTooLarge(size: nil, limit: nil),
            .timedOut(seconds: 0.25),
            .timedOut(seconds: 3), .connectionRefused("127.0.0.1:9"), .system(operation: "bind", errno: 22),
        ]
        for error in errors {
            XCTAssertFalse(error.description.contains("\n"))
            XCTAssertFalse(error.description.isEmpty)
        }
        XCTAssertTrue(UDPError.addressInUse("127.0.0.1:9").description.contains("choose another port"))
        XCTAssertEqual(UDPError.timedOut(seconds: 0.25).description, "timed out after 250 ms with no reply")
        XCTAssertEqual(UDPError.timedOut(seconds: 3).description, "timed out after 3 s with no reply")
        XCTAssertEqual(UDPError.timedOut(seconds: 0.00025).description, "timed out after 250 us with no reply")
        XCTAssertEqual(UDPError.timedOut(seconds: 0.0015).description, "timed out after 1.5 ms with no reply")
    }
}
