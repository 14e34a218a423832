import IPMsg
import XCTest

final class CodecTests: XCTestCase {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testTheTutorialPacketWithoutFinalNUL() throws {
        let packet = try IPMsgPacket.decode(bytes("1:100:will:will-pc:32:will broadcast"))
        XCTAssertEqual(packet.version, bytes("1"))
        XCTAssertEqual(packet.packetNumber, 100)
        XCTAssertEqual(packet.user, bytes("will"))
        XCTAssertEqual(packet.host, bytes("will-pc"))
        XCTAssertEqual(packet.command.mode, .sendMessage)
        XCTAssertEqual(packet.command.options, [])
        XCTAssertEqual(packet.extra, bytes("will broadcast"))
        XCTAssertEqual(packet.extensions, [])
        // Encoding adds the NUL the tutorial left out.
        XCTAssertEqual(try packet.encode(), bytes("1:100:will:will-pc:32:will broadcast") + [0])
    }

    func testHeaderIsSplitOnlyFiveTimes() throws {
        let packet = try IPMsgPacket.decode(bytes("1:7:u:h:288:meet at 10:30: room 2\0"))
        XCTAssertEqual(packet.extra, bytes("meet at 10:30: room 2"))
        XCTAssertEqual(packet.command.mode, .sendMessage)
        XCTAssertTrue(packet.command.has(.sendCheck))
    }

    func testExtensionFieldsAfterNUL() throws {
        let iptux = bytes("1_iptux 0.8.3:5:alice:box:257:Alice\0Team\0icon-tux.png\0utf-8\0")
        let packet = try IPMsgPacket.decode(iptux)
        XCTAssertEqual(packet.extra, bytes("Alice"))
        XCTAssertEqual(packet.extensions, [bytes("Team"), bytes("icon-tux.png"), bytes("utf-8")])
        XCTAssertEqual(packet.group, bytes("Team"))
        XCTAssertEqual(packet.declaredEncoding, "utf-8")
        XCTAssertEqual(packet.command, IPMsgCommand(.entry, .absence))
        XCTAssertEqual(try packet.encode(), iptux)
        // The last field's NUL may be missing.
        let short = try IPMsgPacket.decode(bytes("1:5:a:b:1:Nick\0Group"))
        XCTAssertEqual(short.extensions, [bytes("Group")])
        XCTAssertEqual(try short.encode(), bytes("1:5:a:b:1:Nick\0Group\0"))
        // An empty extension field survives.
        XCTAssertEqual(try IPMsgPacket.decode(bytes("1:5:a:b:1:Nick\0\0")).extensions, [[]])
    }

    func testFourFieldsMeanEmptyExtraAndFewerAreMalformed() throws {
        XCTAssertEqual(try IPMsgPacket.decode(bytes("1:5:a:b:2")).extra, [])
        XCTAssertThrowsError(try IPMsgPacket.decode(bytes("1:5:a:b"))) {
            XCTAssertEqual($0 as? IPMsgPacket.CodecError, .missingFields)
        }
        XCTAssertThrowsError(try IPMsgPacket.decode(bytes(""))) {
            XCTAssertEqual($0 as? IPMsgPacket.CodecError, .missingFields)
        }
        // A ':' after the first NUL does not count as a header separator.
        XCTAssertThrowsError(try IPMsgPacket.decode(bytes("1:5:a\0:b:2:x")))
    }

    func testNumbersMustBeDecimal32Bit() {
        XCTAssertThrowsError(try IPMsgPacket.decode(bytes("1:x5:a:b:32:hi"))) {
            XCTAssertEqual($0 as? IPMsgPacket.CodecError, .badPacketNumber)
        }
        XCTAssertThrowsError(try IPMsgPacket.decode(bytes("1::a:b:32:hi"))) {
            XCTAssertEqual($0 as? IPMsgPacket.CodecError, .badPacketNumber)
        }
        XCTAssertThrowsError(try IPMsgPacket.decode(bytes("1:4294967296:a:b:32:hi"))) {
            XCTAssertEqual($0 as? IPMsgPacket.CodecError, .badPacketNumber)
        }
        XCTAssertEqual(try? IPMsgPacket.decode(bytes("1:4294967295:a:b:32:hi")).packetNumber, UInt32.max)
        XCTAssertThrowsError(try IPMsgPacket.decode(bytes("1:5:a:b:0x20:hi"))) {
            XCTAssertEqual($0 as? IPMsgPacket.CodecError, .badCommand)
        }
        XCTAssertThrowsError(try IPMsgPacket.decode(bytes("1:5:a:b:-32:hi"))) {
            XCTAssertEqual($0 as? IPMsgPacket.CodecError, .badCommand)
        }
    }

    func testEveryModeAndOptionValue() {
        let modes: [(IPMsgCommand.Mode, UInt8, String)] = [
            (.entry, 0x01, "BR_ENTRY"), (.exit, 0x02, "BR_EXIT"), (.answerEntry, 0x03, "ANSENTRY"),
            (.absence, 0x04, "BR_ABSENCE"),
            (.isGetList, 0x10, "BR_ISGETLIST"), (.okGetList, 0x11, "OKGETLIST"), (.getList, 0x12, "GETLIST"),
            (.answerList, 0x13, "ANSLIST"), (.isGetList2, 0x18, "BR_ISGETLIST2"),
            (.sendMessage, 0x20, "SENDMSG"), (.receivedMessage, 0x21, "RECVMSG"), (.readMessage, 0x30, "READMSG"),
            (.deleteMessage, 0x31, "DELMSG"), (.answerReadMessage, 0x32, "ANSREADMSG"), (.getInfo, 0x40, "GETINFO"),
            (.sendInfo, 0x41, "SENDINFO"), (.getAbsenceInfo, 0x50, "GETABSENCEINFO"),
            (.sendAbsenceInfo, 0x51, "SENDABSENCEINFO"),
            (.getFileData, 0x60, "GETFILEDATA"), (.releaseFiles, 0x61, "RELEASEFILES"),
            (.getDirectoryFiles, 0x62, "GETDIRFILES"),
        ]
        for (mode, value, name) in modes {
            XCTAssertEqual(mode.rawValue, value)
            XCTAssertEqual(mode.description, name)
        }
        let options: [(IPMsgCommand.Options, UInt32)] = [
            (.absence, 0x100), (.sendCheck, 0x100), (.secret, 0x200), (.broadcast, 0x400), (.multicast, 0x800),
            (.autoReturn, 0x2000), (.readCheck, 0x100000), (.fileAttach, 0x200000), (.utf8, 0x800000),
            (.capableOfUTF8, 0x1000000),
        ]
        for (option, value) in options { XCTAssertEqual(option.rawValue, value) }
        let command = IPMsgCommand(rawValue: 0x20 | 0x100 | 0x800000 | 0x200000)
        XCTAssertEqual(command.mode, .sendMessage)
        XCTAssertTrue(command.has([.sendCheck, .utf8, .fileAttach]))
        XCTAssertFalse(command.has(.broadcast))
        XCTAssertEqual(IPMsgCommand(.sendMessage, [.sendCheck, .utf8]).rawValue, 0x800120)
        // Options never leak into the mode.
        XCTAssertEqual(IPMsgCommand(.entry, IPMsgCommand.Options(rawValue: 0xFF)).rawValue, 1)
        XCTAssertEqual(IPMsgCommand(rawValue: 0x77).mode.description, "0x77")
    }

    func testAcknowledgedNumber() throws {
        XCTAssertEqual(try IPMsgPacket.decode(bytes("1:9:a:b:33:1700000000\0")).acknowledgedNumber, 1_700_000_000)
        XCTAssertNil(try IPMsgPacket.decode(bytes("1:9:a:b:33:abc\0")).acknowledgedNumber)
    }

    func testEncodeRefusesBytesThatWouldSplitDifferently() {
        var packet = IPMsgPacket(packetNumber: 1, user: bytes("a:b"), host: bytes("h"), command: IPMsgCommand(.entry))
        XCTAssertThrowsError(try packet.encode()) {
            XCTAssertEqual($0 as? IPMsgPacket.CodecError, .forbiddenByte(field: "user", byte: 0x3a))
        }
        packet.user = bytes("a")
        packet.extra = [0x41, 0, 0x42]
        XCTAssertThrowsError(try packet.encode())
        packet.extra = Array(repeating: 0x41, count: 9000)
        XCTAssertThrowsError(try packet.encode()) { error in
            guard case .tooLarge? = error as? IPMsgPacket.CodecError else { return XCTFail("\(error)") }
        }
        packet.extra = Array(repeating: 0x41, count: 8000)
        XCTAssertNoThrow(try packet.encode())
    }

    func testLenientVersions() {
        let feiq = IPMsgVersion(bytes("1_lbt6_0#128#3C970E8A1B2C#0#0#0#4001#9"))
        XCTAssertEqual(feiq.protocolNumber, 1)
        XCTAssertEqual(feiq.client, "FeiQ")
        let iptux = IPMsgVersion(bytes("1_iptux 0.8.3"))
        XCTAssertEqual(iptux.client, "iptux")
        XCTAssertEqual(iptux.label, "iptux 0.8.3")
        XCTAssertTrue(iptux.speaksUTF8)
        let bare = IPMsgVersion(bytes("1"))
        XCTAssertEqual(bare.client, "IP Messenger")
        XCTAssertFalse(bare.speaksUTF8)
        let odd = IPMsgVersion(bytes("x#y"))
        XCTAssertNil(odd.protocolNumber)
        XCTAssertEqual(odd.client, "other")
        XCTAssertEqual(odd.label, "x")
    }

    func testPacketNumbersOnlyGrow() {
        var numbers = IPMsgPacketNumbers()
        XCTAssertEqual(numbers.next(unixSeconds: 1_000), 1_000)
        XCTAssertEqual(numbers.next(unixSeconds: 1_000), 1_001)
        // The wall clock going back does not make numbers go back.
        XCTAssertEqual(numbers.next(unixSeconds: 10), 1_002)
        XCTAssertEqual(numbers.next(unixSeconds: 5_000), 5_000)
        var restarted = IPMsgPacketNumbers(after: UInt32.max)
        XCTAssertEqual(restarted.next(unixSeconds: 7), 1)
    }

    func testFileEntriesWithEscapedColons() throws {
        let entries = [
            IPMsgFileEntry(id: 0, name: bytes("notes.txt"), size: 0x1234, modified: 0x5f00_0000),
            IPMsgFileEntry(id: 1, name: bytes("a:b::c:"), size: 0, modified: 1, attributes: 1),
            IPMsgFileEntry(id: 2, name: bytes(":lead"), size: UInt64.max, modified: 0, attributes: 2),
        ]
        let field = try IPMsgFileEntry.encode(entries)
        XCTAssertEqual(Array(field.prefix(29)), bytes("0:notes.txt:1234:5f000000:1:\u{7}"))
        XCTAssertTrue(String(decoding: field, as: UTF8.self).contains("1:a::b::::c:::0:1:1:\u{7}"))
        XCTAssertEqual(IPMsgFileEntry.decode(field), entries)
        // iptux's own form: BEL then ':' between entries, and a trailing one.
        let iptuxField = bytes("0:bashrc:ffffffffffffffff:0:1:\u{7}:1:x y:10:5:1:\u{7}:")
        XCTAssertEqual(
            IPMsgFileEntry.decode(iptuxField),
            [
                IPMsgFileEntry(id: 0, name: bytes("bashrc"), size: .max, modified: 0),
                IPMsgFileEntry(id: 1, name: bytes("x y"), size: 16, modified: 5),
            ])
        // Extended attributes after attr are skipped; decoding stops at a broken entry.
        XCTAssertEqual(IPMsgFileEntry.decode(bytes("3:f:2:3:1:14=5:\u{7}zz:bad\u{7}4:g:1:1:1:\u{7}")).map(\.id), [3])
        XCTAssertThrowsError(try IPMsgFileEntry.encode([IPMsgFileEntry(id: 0, name: [], size: 0, modified: 0)]))
    }

    func testFileRequest() {
        let request = IPMsgFileRequest(packetNumber: 0x6560_0000, fileID: 10, offset: 0x100)
        XCTAssertEqual(request.extra, bytes("65600000:a:100"))
        XCTAssertEqual(IPMsgFileRequest(extra: request.extra), request)
        XCTAssertNil(IPMsgFileRequest(extra: bytes("1:2")))
        XCTAssertNil(IPMsgFileRequest(extra: bytes("1:zz:0")))
    }

    func testHostileFileNames() {
        XCTAssertNil(IPMsgFileName.problem("report 2024.pdf"))
        XCTAssertNil(IPMsgFileName.problem("报告.txt"))
        for bad in [
            "", ".", "..", "../x", "/etc/passwd", "a/b", "a\\b", "a\0b", "a\nb", String(repeating: "x", count: 256),
        ] {
            XCTAssertNotNil(IPMsgFileName.problem(bad), bad)
        }
    }

    /// Whatever decodes re-encodes to bytes that decode to the same packet (seeded random inputs; the libFuzzer
    /// target in Fuzz/ does the same at scale).
    func testDecodeEncodeIsStableOnRandomInput() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let alphabet: [UInt8] = Array("0123::::45:ab\0\u{7}".utf8) + [0xff, 0x80]
        var decoded = 0
        for _ in 0..<20_000 {
            let length = Int(next() % 40)
            let input = (0..<length).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
            guard let packet = try? IPMsgPacket.decode(input) else { continue }
            decoded += 1
            guard let encoded = try? packet.encode() else { continue }
            XCTAssertEqual(try IPMsgPacket.decode(encoded), packet)
            _ = IPMsgFileEntry.decode(packet.extensions.first ?? [])
        }
        XCTAssertGreaterThan(decoded, 100)
    }
}
