import Foundation
import UDPKit
import UDPText
import XCTest

final class PayloadTests: XCTestCase {

    // MARK: - Helpers

    private func hex(_ string: String) -> [UInt8] {
        // Test-only: trusted input.
        try! Hex.parse(string)
    }

    private func assertError<T>(
        _ expected: PayloadError, _ body: () throws(PayloadError) -> T,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let value = try body()
            XCTFail("expected \(expected), got \(value)", file: file, line: line)
        } catch {
            XCTAssertEqual(error, expected, file: file, line: line)
            assertOneLine(error.description, file: file, line: line)
        }
    }

    private func assertOneLine(_ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(message.isEmpty, file: file, line: line)
        XCTAssertFalse(message.contains("\n"), "multi-line: \(message)", file: file, line: line)
        XCTAssertFalse(message.contains("\r"), "contains CR: \(message)", file: file, line: line)
        XCTAssertFalse(message.contains("\u{1B}"), "contains ESC: \(message)", file: file, line: line)
        let first = message.unicodeScalars.first!
        XCTAssertTrue(first.properties.isLowercase, "not lower-case start: \(message)", file: file, line: line)
    }

    // MARK: - Hex.parse

    func testHexParseAcceptedForms() throws {
        let hi: [UInt8] = [0x48, 0x69]
        XCTAssertEqual(try Hex.parse("4869"), hi)
        XCTAssertEqual(try Hex.parse("48 69"), hi)
        XCTAssertEqual(try Hex.parse("48:69"), hi)
        XCTAssertEqual(try Hex.parse("48-69"), hi)
        XCTAssertEqual(try Hex.parse("48,69"), hi)
        XCTAssertEqual(try Hex.parse("48, 69"), hi)
        XCTAssertEqual(try Hex.parse("0x4869"), hi)
        XCTAssertEqual(try Hex.parse("0X4869"), hi)
        XCTAssertEqual(try Hex.parse("0x48 0x69"), hi)
        XCTAssertEqual(try Hex.parse("0x48,0x69"), hi)
        XCTAssertEqual(try Hex.parse("0x48, 0X69"), hi)
        XCTAssertEqual(try Hex.parse("0x48:0x69"), hi)
        XCTAssertEqual(try Hex.parse("  48\t69  "), hi)
        XCTAssertEqual(try Hex.parse("48\n69\n"), hi)
        XCTAssertEqual(try Hex.parse("48\r\n69\r\n"), hi)
        XCTAssertEqual(try Hex.parse("4 8 6 9"), hi, "digits are paired after removing separators")
        XCTAssertEqual(try Hex.parse("48 69 0a"), [0x48, 0x69, 0x0A])
        XCTAssertEqual(try Hex.parse("DEADBEEF"), [0xDE, 0xAD, 0xBE, 0xEF])
        XCTAssertEqual(try Hex.parse("deadBEEF"), [0xDE, 0xAD, 0xBE, 0xEF])
        XCTAssertEqual(try Hex.parse("00 ff 7F 80"), [0x00, 0xFF, 0x7F, 0x80])
        XCTAssertEqual(try Hex.parse("00"), [0x00])
        XCTAssertEqual(try Hex.parse("0x00"), [0x00])
        XCTAssertEqual(
            try Hex.parse("00000000  48 65 6c 6c\n6f 0a"), [0, 0, 0, 0, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x0A])
    }

    func testHexParseEmpty() throws {
        XCTAssertEqual(try Hex.parse(""), [])
        XCTAssertEqual(try Hex.parse("   "), [])
        XCTAssertEqual(try Hex.parse("\n\n"), [])
        XCTAssertEqual(try Hex.parse(" : - , "), [])
        XCTAssertEqual(try Hex.parse("0x"), [])
    }

    func testHexParseOddDigits() {
        assertError(.oddHexDigits(count: 1)) { () throws(PayloadError) in try Hex.parse("a") }
        assertError(.oddHexDigits(count: 3)) { () throws(PayloadError) in try Hex.parse("486") }
        assertError(.oddHexDigits(count: 3)) { () throws(PayloadError) in try Hex.parse("48 6") }
        assertError(.oddHexDigits(count: 5)) { () throws(PayloadError) in try Hex.parse("0x48 0x69 0xa") }
        assertError(.oddHexDigits(count: 5)) { () throws(PayloadError) in try Hex.parse("48:69:0") }
    }

    func testHexParseInvalidDigitPosition() {
        assertError(.invalidHexDigit("g", position: 3)) { () throws(PayloadError) in try Hex.parse("48 g9") }
        assertError(.invalidHexDigit("g", position: 0)) { () throws(PayloadError) in try Hex.parse("g") }
        assertError(.invalidHexDigit("z", position: 5)) { () throws(PayloadError) in try Hex.parse("0x486z") }
        // 'x' only counts as a prefix after a 0 at the start of a group.
        assertError(.invalidHexDigit("x", position: 2)) { () throws(PayloadError) in try Hex.parse("00x1") }
        assertError(.invalidHexDigit("x", position: 1)) { () throws(PayloadError) in try Hex.parse("1x00") }
        assertError(.invalidHexDigit("x", position: 3)) { () throws(PayloadError) in try Hex.parse("0x0x48") }
        // Other punctuation and prefixes are not accepted.
        assertError(.invalidHexDigit(".", position: 2)) { () throws(PayloadError) in try Hex.parse("48.69") }
        assertError(.invalidHexDigit("\\", position: 0)) { () throws(PayloadError) in try Hex.parse("\\x48") }
        // Position counts characters, not bytes.
        assertError(.invalidHexDigit("é", position: 3)) { () throws(PayloadError) in try Hex.parse("48 é") }
        assertError(.invalidHexDigit("你", position: 4)) { () throws(PayloadError) in try Hex.parse("4\r\n8 你") }
        // Full-width digits are not hex digits.
        assertError(.invalidHexDigit("４", position: 0)) { () throws(PayloadError) in try Hex.parse("４８") }
        // An invalid character wins over an odd count.
        assertError(.invalidHexDigit("q", position: 1)) { () throws(PayloadError) in try Hex.parse("4q") }
        // Control characters are shown escaped in the one-line message.
        assertError(.invalidHexDigit("\u{1B}", position: 2)) { () throws(PayloadError) in try Hex.parse("48\u{1B}[31m")
        }
    }

    func testHexParseErrorDescription() {
        XCTAssertEqual(
            PayloadError.invalidHexDigit("g", position: 3).description,
            "invalid hex digit 'g' at position 3 (use 0-9, a-f; separate bytes with spaces, ':', '-' or ',')")
        XCTAssertTrue(PayloadError.invalidHexDigit("\u{1B}", position: 0).description.contains("'\\e'"))
        XCTAssertTrue(PayloadError.oddHexDigits(count: 3).description.hasPrefix("odd number of hex digits (3)"))
    }

    // MARK: - Hex.encode

    func testHexEncode() {
        XCTAssertEqual(Hex.encode([UInt8]()), "")
        XCTAssertEqual(Hex.encode([0x48, 0x69, 0x0A]), "48690a")
        XCTAssertEqual(Hex.encode([0x00, 0xFF, 0xAB]), "00ffab")
        XCTAssertEqual(Hex.encode(Data([0xDE, 0xAD])), "dead")
        XCTAssertEqual(Hex.encode([UInt8](repeating: 0xAB, count: 300)[10..<12]), "abab")
        let all = (0...255).map { UInt8($0) }
        XCTAssertEqual(try Hex.parse(Hex.encode(all)), all)
    }

    // MARK: - Hex.dump

    private let blank = "                                 "  // for readability only

    func testHexDumpEmpty() {
        XCTAssertEqual(Hex.dump([UInt8]()), "")
    }

    func testHexDumpOneByte() {
        XCTAssertEqual(
            Hex.dump([0x41]),
            "00000000  41                                                |A|\n")
        XCTAssertEqual(
            Hex.dump([0x00]),
            "00000000  00                                                |.|\n")
    }

    func testHexDumpHello() {
        XCTAssertEqual(
            Hex.dump(Array("Hello\n".utf8)),
            "00000000  48 65 6c 6c 6f 0a                                 |Hello.|\n")
    }

    func testHexDumpSixteenBytes() {
        XCTAssertEqual(
            Hex.dump(Array("0123456789abcdef".utf8)),
            "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n")
        XCTAssertEqual(
            Hex.dump([0x00, 0x1F, 0x20, 0x7E, 0x7F, 0x80, 0xFF, 0x0A, 0x41, 0x42, 0x43, 0x09, 0x0D, 0x1B, 0x5C, 0x7C]),
            "00000000  00 1f 20 7e 7f 80 ff 0a  41 42 43 09 0d 1b 5c 7c  |.. ~....ABC...\\||\n")
    }

    func testHexDumpSeventeenBytes() {
        XCTAssertEqual(
            Hex.dump(Array("0123456789abcdefg".utf8)),
            "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n"
                + "00000010  67                                                |g|\n")
    }

    func testHexDumpEightAndNineBytes() {
        XCTAssertEqual(
            Hex.dump(Array("01234567".utf8)),
            "00000000  30 31 32 33 34 35 36 37                           |01234567|\n")
        XCTAssertEqual(
            Hex.dump(Array("012345678".utf8)),
            "00000000  30 31 32 33 34 35 36 37  38                       |012345678|\n")
    }

    func testHexDumpThirtyThreeBytes() {
        let bytes = (0..<33).map { UInt8($0 * 7 + 1) }
        let expected = """
            00000000  01 08 0f 16 1d 24 2b 32  39 40 47 4e 55 5c 63 6a  |.....$+29@GNU\\cj|
            00000010  71 78 7f 86 8d 94 9b a2  a9 b0 b7 be c5 cc d3 da  |qx..............|
            00000020  e1                                                |.|

            """
        XCTAssertEqual(Hex.dump(bytes), expected)
        XCTAssertEqual(Hex.dump(bytes[...]), expected, "works on slices")
        XCTAssertEqual(Hex.dump(Data(bytes)), expected, "works on Data")
    }

    func testHexDumpRepeatedLinesAreNotCollapsed() {
        let dump = Hex.dump([UInt8](repeating: 0, count: 48))
        XCTAssertEqual(dump.split(separator: "\n").count, 3)
        XCTAssertFalse(dump.contains("*"))
        XCTAssertTrue(dump.hasPrefix("00000000  00 00"))
        XCTAssertTrue(dump.contains("\n00000020  00 00"))
    }

    func testHexDumpMatchesRealHexdump() throws {
        let tool = "/usr/bin/hexdump"
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            throw XCTSkip("\(tool) not available")
        }
        var generator = SplitMix(seed: 0x5EED)
        var cases: [[UInt8]] = [
            [0x41], Array("Hello\n".utf8), (0..<16).map { UInt8($0) }, (0..<17).map { UInt8($0) },
            (0..<33).map { UInt8($0 * 7 + 1) }, (0...255).map { UInt8($0) },
        ]
        for length in [2, 7, 8, 9, 15, 31, 32, 47, 64, 100, 1000] {
            cases.append((0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        }
        // Repeated lines: compare with -v, which (like Hex.dump) does not collapse them.
        let repeated = [UInt8](repeating: 0x61, count: 40) + [0x0A]

        for bytes in cases {
            XCTAssertEqual(Hex.dump(bytes), try runHexdump(tool, ["-C"], bytes), "length \(bytes.count)")
        }
        XCTAssertEqual(Hex.dump(repeated), try runHexdump(tool, ["-C", "-v"], repeated))
    }

    /// hexdump output without its trailing offset line.
    private func runHexdump(_ tool: String, _ arguments: [String], _ bytes: [UInt8]) throws -> String {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("payloadtests-\(UUID().uuidString).bin")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments + [url.path]
        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        // Drop "" after the last newline and the final offset line.
        if lines.last == "" { lines.removeLast() }
        if let last = lines.last, last.count == 8, last.allSatisfy(\.isHexDigit) { lines.removeLast() }
        return lines.map { $0 + "\n" }.joined()
    }

    // MARK: - TextEncoding names

    func testEncodingNames() throws {
        let expected: [(String, TextEncoding)] = [
            ("utf8", .utf8), ("utf-8", .utf8), ("UTF-8", .utf8), ("Utf8", .utf8),
            ("gb18030", .gb18030), ("GB18030", .gb18030),
            ("gbk", .gbk), ("GBK", .gbk), ("gb2312", .gbk), ("GB2312", .gbk), ("cp936", .gbk), ("CP936", .gbk),
            ("shift-jis", .shiftJIS), ("Shift-JIS", .shiftJIS), ("shift_jis", .shiftJIS), ("SHIFT_JIS", .shiftJIS),
            ("sjis", .shiftJIS), ("SJIS", .shiftJIS), ("shiftjis", .shiftJIS), ("cp932", .shiftJIS),
            ("CP932", .shiftJIS),
            ("latin1", .latin1), ("LATIN1", .latin1), ("latin-1", .latin1), ("iso-8859-1", .latin1),
            ("ISO-8859-1", .latin1), ("iso8859-1", .latin1),
        ]
        for (name, encoding) in expected {
            XCTAssertEqual(try TextEncoding(name: name), encoding, name)
        }
        for encoding in TextEncoding.allCases {
            XCTAssertEqual(try TextEncoding(name: encoding.rawValue), encoding)
        }
        XCTAssertEqual(TextEncoding.shiftJIS.rawValue, "shift-jis")
        XCTAssertEqual(TextEncoding.allCases.map(\.rawValue), ["utf8", "gb18030", "gbk", "shift-jis", "latin1"])
    }

    func testUnknownEncoding() {
        for name in ["ebcdic", "", "utf16", " utf8", "utf 8", "ascii", "big5"] {
            assertError(.unknownEncoding(name)) { () throws(PayloadError) in try TextEncoding(name: name) }
        }
        let message = PayloadError.unknownEncoding("ebcdic").description
        XCTAssertTrue(message.hasPrefix("unknown encoding 'ebcdic'"), message)
        for name in ["utf8", "gb18030", "gbk", "shift-jis", "latin1"] {
            XCTAssertTrue(message.contains(name), "\(message) lacks \(name)")
        }
        // Hostile names stay on one line.
        assertOneLine(PayloadError.unknownEncoding("a\nb\u{1B}[2J").description)
    }

    // MARK: - Encode / decode

    func testKnownEncodings() throws {
        XCTAssertEqual(try TextEncoding.gb18030.encode("你好"), hex("c4e3bac3"))
        XCTAssertEqual(try TextEncoding.gbk.encode("你好"), hex("c4e3bac3"))
        XCTAssertEqual(try TextEncoding.utf8.encode("你好"), hex("e4bda0e5a5bd"))
        XCTAssertEqual(try TextEncoding.shiftJIS.encode("こんにちは"), hex("82b182f182c982bf82cd"))
        XCTAssertEqual(try TextEncoding.latin1.encode("café"), hex("636166e9"))
        XCTAssertEqual(try TextEncoding.utf8.encode("café"), hex("636166c3a9"))
        // gb18030 reaches outside the BMP with 4-byte sequences.
        XCTAssertEqual(try TextEncoding.gb18030.encode("😀"), hex("9439fc36"))
        // shift-jis is the CP932 variant: ASCII stays ASCII, NEC extensions work.
        XCTAssertEqual(try TextEncoding.shiftJIS.encode("a\\b~"), hex("615c627e"))
        XCTAssertEqual(try TextEncoding.shiftJIS.encode("①"), hex("8740"))
        XCTAssertEqual(try TextEncoding.shiftJIS.encode("ｱ"), hex("b1"))
        XCTAssertEqual(try TextEncoding.gbk.encode("€"), hex("80"))
        for encoding in TextEncoding.allCases {
            XCTAssertEqual(try encoding.encode(""), [])
            XCTAssertEqual(try encoding.encode("Hi!\n\0~\\"), hex("4869210a007e5c"), encoding.rawValue)
            XCTAssertEqual(encoding.decode([UInt8]()), DecodedText(segments: []))
            XCTAssertEqual(encoding.decode(hex("4869210a007e5c")).string, "Hi!\n\0~\\", encoding.rawValue)
        }
    }

    func testRoundTrips() throws {
        let samples: [TextEncoding: [String]] = [
            .utf8: ["hello", "你好，世界", "こんにちは世界", "😀👍🏽 e\u{301}", "\0\u{7F}\u{80}\u{10FFFF}"],
            .gb18030: ["hello", "你好，世界", "中文ＡＢＣ", "こんにちは", "😀 ė €"],
            .gbk: ["hello", "你好，世界", "中文ＡＢＣ €", "繁體字"],
            .shiftJIS: ["hello", "こんにちは世界", "カタカナ ｶﾀｶﾅ", "漢字①～", "日本語テキスト"],
            .latin1: ["hello", "café ÿ ñ", "\u{80}\u{9F}\u{A0}\u{FF}", "\0\u{7F}"],
        ]
        for encoding in TextEncoding.allCases {
            for text in samples[encoding]! {
                let bytes = try encoding.encode(text)
                let decoded = encoding.decode(bytes)
                XCTAssertTrue(decoded.isValid, "\(encoding) \(text)")
                XCTAssertEqual(decoded.string, text, "\(encoding)")
                XCTAssertEqual(decoded.segments, [.text(text)], "\(encoding)")
            }
        }
        // latin1: every byte decodes, and encodes back to itself.
        let all = (0...255).map { UInt8($0) }
        let decoded = TextEncoding.latin1.decode(all)
        XCTAssertTrue(decoded.isValid)
        XCTAssertEqual(decoded.string?.unicodeScalars.map(\.value), (0...255).map { UInt32($0) })
        XCTAssertEqual(try TextEncoding.latin1.encode(decoded.string!), all)
    }

    func testDecodeKeepsInvalidBytesUTF8() {
        let decoded = TextEncoding.utf8.decode([0x41, 0xFF, 0xFE, 0x42])
        XCTAssertEqual(decoded.segments, [.text("A"), .invalid([0xFF, 0xFE]), .text("B")])
        XCTAssertFalse(decoded.isValid)
        XCTAssertNil(decoded.string)
        XCTAssertEqual(decoded.escaped, "A\\xff\\xfeB")

        // Only invalid.
        XCTAssertEqual(TextEncoding.utf8.decode([0x80]).segments, [.invalid([0x80])])
        // Truncated multi-byte sequence at the end, after valid text.
        XCTAssertEqual(TextEncoding.utf8.decode(hex("e4bda0e5a5")).segments, [.text("你"), .invalid([0xE5, 0xA5])])
        // Truncated 4-byte sequence whose U+FFFD repair has the same length as the input.
        XCTAssertEqual(TextEncoding.utf8.decode(hex("f09f98")).segments, [.invalid([0xF0, 0x9F, 0x98])])
        // Overlong encoding, surrogate, and a valid character between invalid runs.
        XCTAssertEqual(
            TextEncoding.utf8.decode(hex("c0af 41 eda080 c3a9 ff")).segments,
            [.invalid([0xC0, 0xAF]), .text("A"), .invalid([0xED, 0xA0, 0x80]), .text("é"), .invalid([0xFF])])
        // Literal U+FFFD in the input is valid text, not an error.
        XCTAssertEqual(TextEncoding.utf8.decode(hex("efbfbd")).segments, [.text("\u{FFFD}")])
        // Works on non-contiguous collections and slices.
        XCTAssertEqual(
            TextEncoding.utf8.decode([0x41, 0xFF, 0x42].lazy.map { $0 }).segments,
            [.text("A"), .invalid([0xFF]), .text("B")])
        let array: [UInt8] = [0x00, 0x41, 0xFF, 0x42, 0x00]
        XCTAssertEqual(TextEncoding.utf8.decode(array[1..<4]).segments, [.text("A"), .invalid([0xFF]), .text("B")])
    }

    func testDecodeKeepsInvalidBytesIconvEncodings() {
        for encoding in [TextEncoding.gb18030, .gbk, .shiftJIS] {
            let decoded = encoding.decode([0x41, 0xFF, 0xFF, 0x42])
            XCTAssertEqual(decoded.segments, [.text("A"), .invalid([0xFF, 0xFF]), .text("B")], "\(encoding)")
            XCTAssertFalse(decoded.isValid)
            XCTAssertNil(decoded.string)
            XCTAssertEqual(decoded.escaped, "A\\xff\\xffB")
        }
        // Invalid bytes between CJK text, and a truncated double-byte character at the end.
        XCTAssertEqual(
            TextEncoding.gb18030.decode(hex("c4e3 ff bac3 c4")).segments,
            [.text("你"), .invalid([0xFF]), .text("好"), .invalid([0xC4])])
        XCTAssertEqual(
            TextEncoding.gbk.decode(hex("c4e3 ff bac3 c4")).segments,
            [.text("你"), .invalid([0xFF]), .text("好"), .invalid([0xC4])])
        XCTAssertEqual(
            TextEncoding.shiftJIS.decode(hex("82b1 a0 82f1 82")).segments,
            [.text("こ"), .invalid([0xA0]), .text("ん"), .invalid([0x82])])
        XCTAssertEqual(TextEncoding.shiftJIS.decode([0xFD]).segments, [.invalid([0xFD])])
        // gb18030: 0x80 is not valid, unlike gbk where it is the euro sign.
        XCTAssertEqual(TextEncoding.gb18030.decode([0x80, 0x41]).segments, [.invalid([0x80]), .text("A")])
        XCTAssertEqual(TextEncoding.gbk.decode([0x80, 0x41]).segments, [.text("€A")])
        // Large input with E2BIG-worthy expansion: 1-byte half-width katakana -> 3 UTF-8 bytes.
        let katakana = [UInt8](repeating: 0xB1, count: 5000)
        XCTAssertEqual(TextEncoding.shiftJIS.decode(katakana).string, String(repeating: "ｱ", count: 5000))
    }

    func testUnencodable() {
        assertError(.unencodable("😀", encoding: .gbk)) { () throws(PayloadError) in
            try TextEncoding.gbk.encode("hi 😀")
        }
        assertError(.unencodable("😀", encoding: .shiftJIS)) { () throws(PayloadError) in
            try TextEncoding.shiftJIS.encode("こんにちは😀")
        }
        assertError(.unencodable("한", encoding: .shiftJIS)) { () throws(PayloadError) in
            try TextEncoding.shiftJIS.encode("日本語 한국어")
        }
        assertError(.unencodable("€", encoding: .latin1)) { () throws(PayloadError) in
            try TextEncoding.latin1.encode("price: 5€")
        }
        assertError(.unencodable("你", encoding: .latin1)) { () throws(PayloadError) in
            try TextEncoding.latin1.encode("café 你好")
        }
        // The whole character is reported, including its combining marks.
        assertError(.unencodable("a\u{30A}\u{301}", encoding: .latin1)) { () throws(PayloadError) in
            try TextEncoding.latin1.encode("xa\u{30A}\u{301}")
        }
        assertError(.unencodable("👍🏽", encoding: .gbk)) { () throws(PayloadError) in
            try TextEncoding.gbk.encode("ok👍🏽")
        }
        let message = PayloadError.unencodable("😀", encoding: .gbk).description
        XCTAssertEqual(
            message,
            "cannot encode '😀' (U+1F600) in gbk (use utf8 or gb18030, which can encode every character,"
                + " or send the bytes as \\xNN escapes)")
        let latin = PayloadError.unencodable("\u{202E}", encoding: .latin1).description
        XCTAssertTrue(latin.contains("'\\u{202e}' (U+202E) in latin1"), latin)
    }

    func testDecodedTextProperties() {
        let empty = DecodedText(segments: [])
        XCTAssertTrue(empty.isValid)
        XCTAssertEqual(empty.string, "")
        XCTAssertEqual(empty.escaped, "")

        let valid = TextEncoding.utf8.decode(Array("a\u{1B}[31mred\\".utf8))
        XCTAssertEqual(valid.segments, [.text("a\u{1B}[31mred\\")])
        XCTAssertTrue(valid.isValid)
        XCTAssertEqual(valid.string, "a\u{1B}[31mred\\")
        XCTAssertEqual(valid.escaped, "a\\e[31mred\\\\")

        // Text that looks like an escape is distinguishable from a real invalid byte.
        let tricky = TextEncoding.utf8.decode(Array("\\xff".utf8) + [0xFF])
        XCTAssertEqual(tricky.escaped, "\\\\xff\\xff")

        let joined = DecodedText(segments: [.text("a"), .text("b")])
        XCTAssertEqual(joined.string, "ab")
    }

    // MARK: - Escapes

    func testEscapesPlain() throws {
        XCTAssertEqual(try Escapes.bytes(from: ""), [])
        XCTAssertEqual(try Escapes.bytes(from: "hello"), Array("hello".utf8))
        XCTAssertEqual(try Escapes.bytes(from: "你好"), hex("e4bda0e5a5bd"))
        XCTAssertEqual(try Escapes.bytes(from: "你好", encoding: .gbk), hex("c4e3bac3"))
    }

    func testEscapesSimple() throws {
        XCTAssertEqual(
            try Escapes.bytes(from: #"\n\r\t\0\\\"\'\a\b\e\f\v"#),
            [0x0A, 0x0D, 0x09, 0x00, 0x5C, 0x22, 0x27, 0x07, 0x08, 0x1B, 0x0C, 0x0B])
        XCTAssertEqual(try Escapes.bytes(from: #"ping\n"#), Array("ping\n".utf8))
        XCTAssertEqual(try Escapes.bytes(from: #"\012"#), [0x00, 0x31, 0x32], "no octal escapes")
        XCTAssertEqual(try Escapes.bytes(from: #"a\\nb"#), Array(#"a\nb"#.utf8))
        XCTAssertEqual(try Escapes.bytes(from: #"\e[31mred\e[0m"#), Array("\u{1B}[31mred\u{1B}[0m".utf8))
    }

    func testEscapesHexBytesAreRaw() throws {
        XCTAssertEqual(try Escapes.bytes(from: #"\x00\xff\xAB\x7f"#), [0x00, 0xFF, 0xAB, 0x7F])
        XCTAssertEqual(try Escapes.bytes(from: #"A\x42C"#), [0x41, 0x42, 0x43])
        XCTAssertEqual(try Escapes.bytes(from: #"\x414"#), [0x41, 0x34], "exactly two digits")
        // Raw bytes are not encoded: \xe4 stays one byte even though U+00E4 is two bytes in UTF-8...
        XCTAssertEqual(try Escapes.bytes(from: #"\xe4"#), [0xE4])
        // ...whereas \u{e4} is the character ä, encoded.
        XCTAssertEqual(try Escapes.bytes(from: #"\u{e4}"#), [0xC3, 0xA4])
        XCTAssertEqual(try Escapes.bytes(from: #"\u{e4}"#, encoding: .latin1), [0xE4])
        // Mixing raw bytes with gbk text: text is encoded, \xNN is not.
        XCTAssertEqual(try Escapes.bytes(from: #"你\xff好\x00"#, encoding: .gbk), hex("c4e3 ff bac3 00"))
        XCTAssertEqual(try Escapes.bytes(from: #"\xc4\xe3"#, encoding: .gbk), hex("c4e3"))
        XCTAssertEqual(try Escapes.bytes(from: #"\u{4f60}"#, encoding: .gbk), hex("c4e3"))
        XCTAssertEqual(try Escapes.bytes(from: #"\u{4F60}"#, encoding: .utf8), hex("e4bda0"))
        XCTAssertEqual(try Escapes.bytes(from: #"\u{3053}\n"#, encoding: .shiftJIS), hex("82b1 0a"))
    }

    func testEscapesUnicode() throws {
        XCTAssertEqual(try Escapes.bytes(from: #"\u{1F600}"#), hex("f09f9880"))
        XCTAssertEqual(try Escapes.bytes(from: #"\u{1f600}"#, encoding: .gb18030), hex("9439fc36"))
        XCTAssertEqual(try Escapes.bytes(from: #"\u{0}"#), [0x00])
        XCTAssertEqual(try Escapes.bytes(from: #"\u{0000041}"#), [0x41])
        XCTAssertEqual(try Escapes.bytes(from: #"\u{10FFFF}"#), hex("f48fbfbf"))
        // A combining mark given as an escape joins the preceding character.
        XCTAssertEqual(try Escapes.bytes(from: #"e\u{301}"#), hex("65cc81"))
        assertError(.unencodable("e\u{301}", encoding: .latin1)) { () throws(PayloadError) in
            try Escapes.bytes(from: #"e\u{301}"#, encoding: .latin1)
        }
        assertError(.unencodable("😀", encoding: .gbk)) { () throws(PayloadError) in
            try Escapes.bytes(from: #"hi \u{1F600}"#, encoding: .gbk)
        }
        assertError(.unencodable("😀", encoding: .shiftJIS)) { () throws(PayloadError) in
            try Escapes.bytes(from: "\\x00😀", encoding: .shiftJIS)
        }
    }

    func testEscapesErrors() {
        let cases: [(String, String, Int)] = [
            (#"\q"#, #"\q"#, 0),
            (#"abc\q"#, #"\q"#, 3),
            (#"你好\z"#, #"\z"#, 2),
            (#"\x4"#, #"\x4"#, 0),
            (#"ab\x"#, #"\x"#, 2),
            (#"\x4g"#, #"\x4g"#, 0),
            (#"\xg0"#, #"\xg"#, 0),
            (#"\x 1"#, #"\x "#, 0),
            (#"\u"#, #"\u"#, 0),
            (#"\u1234"#, #"\u1"#, 0),
            (#"\u{"#, #"\u{"#, 0),
            (#"\u{41"#, #"\u{41"#, 0),
            (#"\u{}"#, #"\u{}"#, 0),
            (#"x\u{zz}"#, #"\u{zz}"#, 1),
            (#"\u{110000}"#, #"\u{110000}"#, 0),
            (#"\u{D800}"#, #"\u{D800}"#, 0),
            (#"\u{000000041}"#, #"\u{000000041}"#, 0),
            (#"\u{12 34}"#, #"\u{12 34}"#, 0),
            (#"\N"#, #"\N"#, 0),
            (#"\1"#, #"\1"#, 0),
            (#"\\\"#, #"\"#, 2),
            (#"abc\"#, #"\"#, 3),
            (#"\"#, #"\"#, 0),
        ]
        for (input, escape, position) in cases {
            assertError(.invalidEscape(escape, position: position)) { () throws(PayloadError) in
                try Escapes.bytes(from: input)
            }
        }
        // Control characters after a backslash are shown escaped, and the message stays on one line.
        assertError(.invalidEscape("\\\n", position: 1)) { () throws(PayloadError) in
            try Escapes.bytes(from: "a\\\nb")
        }
        XCTAssertEqual(
            PayloadError.invalidEscape(#"\q"#, position: 3).description,
            #"invalid escape '\q' at position 3 (use \n \r \t \0 \\ \" \' \a \b \e \f \v, \xNN with exactly"#
                + #" two hex digits, or \u{1F600}; write \\ for a literal backslash)"#)
        XCTAssertEqual(
            PayloadError.invalidEscape(#"\"#, position: 5).description,
            #"lone backslash at the end of the input (position 5); write \\ for a literal backslash"#)
    }

    func testEscapesRoundTripTerminalText() throws {
        let samples = [
            "plain", "a\\b", "\u{1B}[31mred\u{1B}[0m\r\n", "\0\u{7}\u{8}\t\u{B}\u{C}\u{1}\u{1F}\u{7F}",
            "\u{80}\u{9B}\u{9F}", "\u{202E}evil\u{202C} \u{2066}x\u{2069} \u{200E}\u{200F}\u{61C}", "你好 😀 é",
        ]
        for text in samples {
            XCTAssertEqual(try Escapes.bytes(from: TerminalText.escape(text)), Array(text.utf8), text)
        }
    }

    // MARK: - TerminalText

    func testTerminalTextUnchanged() {
        for text in [
            "", "hello world", "你好，世界", "こんにちは", "😀👍🏽👨‍👩‍👧", "e\u{301}", "tab-free ~!@#$%^&*()", "\u{A0}\u{2027}\u{202F}¥",
        ] {
            XCTAssertEqual(TerminalText.escape(text), text)
            XCTAssertEqual(TerminalText.escapeKeepingLines(text), text)
        }
    }

    func testTerminalTextControls() {
        XCTAssertEqual(TerminalText.escape("\u{1B}[31mred\u{1B}[0m"), "\\e[31mred\\e[0m")
        XCTAssertEqual(TerminalText.escape("line1\r\nline2\n"), "line1\\r\\nline2\\n")
        XCTAssertEqual(TerminalText.escape("progress\r99%"), "progress\\r99%")
        XCTAssertEqual(
            TerminalText.escape("\0\u{7}\u{8}\t\n\u{B}\u{C}\r\u{1B}"), "\\0\\a\\b\\t\\n\\v\\f\\r\\e")
        XCTAssertEqual(TerminalText.escape("\u{1}\u{2}\u{1F}\u{7F}"), "\\x01\\x02\\x1f\\x7f")
        XCTAssertEqual(TerminalText.escape("\u{80}\u{85}\u{9B}31m\u{9F}"), "\\u{80}\\u{85}\\u{9b}31m\\u{9f}")
        // U+00A0 and above (outside the listed ranges) are printable and kept.
        XCTAssertEqual(TerminalText.escape("\u{A0}ÿ\u{9F}"), "\u{A0}ÿ\\u{9f}")
    }

    func testTerminalTextBidi() {
        XCTAssertEqual(TerminalText.escape("abc\u{202E}txt.exe"), "abc\\u{202e}txt.exe")
        XCTAssertEqual(
            TerminalText.escape("\u{202A}\u{202B}\u{202C}\u{202D}\u{202E}"),
            "\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{202e}")
        XCTAssertEqual(
            TerminalText.escape("\u{2066}\u{2067}\u{2068}\u{2069}"), "\\u{2066}\\u{2067}\\u{2068}\\u{2069}")
        XCTAssertEqual(TerminalText.escape("\u{200E}\u{200F}\u{061C}"), "\\u{200e}\\u{200f}\\u{61c}")
        // Neighbours of the bidi controls are not touched.
        XCTAssertEqual(TerminalText.escape("\u{200D}\u{2027}\u{2070}\u{061B}"), "\u{200D}\u{2027}\u{2070}\u{061B}")
        XCTAssertEqual(TerminalText.escape("שלום \u{202B}עולם"), "שלום \\u{202b}עולם")
    }

    func testTerminalTextLineAndParagraphSeparatorsStayOnOneLine() {
        XCTAssertEqual(TerminalText.escape("one\u{2028}two\u{2029}three"), "one\\u{2028}two\\u{2029}three")
        XCTAssertEqual(TerminalText.escapeKeepingLines("a\u{2028}b\nc"), "a\\u{2028}b\nc")
        // The escapes read back as the same bytes.
        XCTAssertEqual(try Escapes.bytes(from: TerminalText.escape("x\u{2029}y")), Array("x\u{2029}y".utf8))
        // What a listener prints for such a datagram has no raw separator left.
        let line = TextEncoding.utf8.decode(Array("a\u{2028}b".utf8)).escaped
        XCTAssertFalse(line.unicodeScalars.contains { $0.value == 0x2028 }, line)
    }

    func testTerminalTextBackslashAndMixed() {
        XCTAssertEqual(TerminalText.escape("C:\\path\\n"), "C:\\\\path\\\\n")
        XCTAssertEqual(TerminalText.escape("\\"), "\\\\")
        XCTAssertEqual(TerminalText.escape("你好\n😀\u{1B}"), "你好\\n😀\\e")
        XCTAssertEqual(TerminalText.escape("e\u{301}\u{7}"), "e\u{301}\\a")
        // A control inside a grapheme cluster is still escaped.
        XCTAssertEqual(TerminalText.escape("\r\n"), "\\r\\n")
    }

    func testTerminalTextKeepingLines() {
        XCTAssertEqual(TerminalText.escapeKeepingLines("a\nb\tc"), "a\nb\tc")
        XCTAssertEqual(TerminalText.escapeKeepingLines("a\r\nb"), "a\\r\nb")
        XCTAssertEqual(
            TerminalText.escapeKeepingLines("\u{1B}[2J\n\\\u{202E}\u{85}\0"), "\\e[2J\n\\\\\\u{202e}\\u{85}\\0")
        XCTAssertEqual(TerminalText.escapeKeepingLines("\u{B}\u{C}"), "\\v\\f")
    }

    // MARK: - Errors

    func testEveryErrorDescriptionIsOneLine() {
        let errors: [PayloadError] = [
            .invalidHexDigit("g", position: 3), .invalidHexDigit("\n", position: 0),
            .invalidHexDigit("\u{202E}", position: 1), .oddHexDigits(count: 1),
            .unknownEncoding("x\ny"), .unknownEncoding(""),
            .unencodable("😀", encoding: .gbk), .unencodable("\u{85}", encoding: .shiftJIS),
            .unencodable("€", encoding: .latin1), .unencodable("\u{E000}", encoding: .gb18030),
            .unencodable("x", encoding: .utf8),
            .invalidEscape(#"\q"#, position: 0), .invalidEscape("\\\r", position: 9),
            .invalidEscape(#"\"#, position: 2),
        ]
        for error in errors {
            assertOneLine(error.description)
            XCTAssertEqual("\(error)", error.description)
        }
    }
}

/// Deterministic pseudo-random numbers for tests.
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
