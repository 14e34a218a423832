import RoomProtocol
import XCTest

final class CodecTests: XCTestCase {
    func testEveryClientPacketRoundTrips() throws {
        for packet in clientSamples {
            let bytes = try RoomCodec.encode(packet)
            XCTAssertEqual(try RoomCodec.decodeClientPacket(bytes), packet)
            XCTAssertEqual(try RoomCodec.encode(RoomCodec.decodeClientPacket(bytes)), bytes)
            XCTAssertEqual(Array(bytes.prefix(3)), [0x55, 0x52, 0x02])
        }
    }

    func testEveryServerPacketRoundTrips() throws {
        for packet in serverSamples {
            let bytes = try RoomCodec.encode(packet)
            XCTAssertEqual(try RoomCodec.decodeServerPacket(bytes), packet)
            XCTAssertEqual(try RoomCodec.encode(RoomCodec.decodeServerPacket(bytes)), bytes)
        }
    }

    func testDecodesFromSlicesAndNonContiguousCollections() throws {
        let packet = clientSamples[7]
        let bytes = try RoomCodec.encode(packet)
        let padded = [0xAA] + bytes + [0xBB]
        XCTAssertEqual(try RoomCodec.decodeClientPacket(padded[1..<padded.count - 1]), packet)
        XCTAssertEqual(try RoomCodec.decodeClientPacket(bytes.lazy.map { $0 }), packet)
    }

    /// The byte-exact examples of docs/room-protocol.md.
    func testDocumentedVectors() throws {
        let token = SessionToken(high: 0x0011_2233_4455_6677, low: 0x8899_AABB_CCDD_EEFF)
        let client: [(ClientPacket, String)] = [
            (
                .join(nonce: 0x0102_0304_0506_0708, nick: "alice"),
                "5552 0201 0102030405060708 0005 616c696365" + String(repeating: "00", count: 45)
            ),
            (
                .ack(token: token, Acknowledgement(cumulative: 3, selective: 0b101)),
                "5552 0202 00112233445566778899aabbccddeeff 0000000000000003 0000000000000005"
            ),
            (
                .heartbeat(token: token, echo: 9),
                "5552 0203 00112233445566778899aabbccddeeff 0000000000000009"
            ),
            (
                .command(token: token, sequence: 1, .say(kind: .text, text: "hi")),
                "5552 0210 00112233445566778899aabbccddeeff 0000000000000001 01 00 0002 6869"
            ),
            (
                .command(token: token, sequence: 2, .say(kind: .action, text: "waves")),
                "5552 0210 00112233445566778899aabbccddeeff 0000000000000002 01 01 0005 7761766573"
            ),
            (
                .command(token: token, sequence: 3, .privateMessage(to: "bob", text: "é")),
                "5552 0210 00112233445566778899aabbccddeeff 0000000000000003 02 0003 626f62 0002 c3a9"
            ),
            (
                .command(token: token, sequence: 4, .changeNick("al")),
                "5552 0210 00112233445566778899aabbccddeeff 0000000000000004 03 0002 616c"
            ),
            (
                .command(token: token, sequence: 5, .who),
                "5552 0210 00112233445566778899aabbccddeeff 0000000000000005 04"
            ),
            (
                .command(token: token, sequence: 6, .leave),
                "5552 0210 00112233445566778899aabbccddeeff 0000000000000006 05"
            ),
            (
                .pathResponse(token: token, challenge: 0x0A0B_0C0D_0E0F_1011),
                "5552 0204 00112233445566778899aabbccddeeff 0a0b0c0d0e0f1011"
            ),
        ]
        let server: [(ServerPacket, String)] = [
            (
                .welcome(
                    Welcome(
                        nonce: 0x0102_0304_0506_0708, token: token, serverInstance: 0xCAFE_F00D_DEAD_BEEF,
                        maxTextBytes: 1000, historyCount: 2, heartbeatMillis: 2000, timeoutMillis: 10000)),
                "5552 0281 0102030405060708 00112233445566778899aabbccddeeff cafef00ddeadbeef 03e8 0002 000007d0 00002710"
            ),
            (
                .refused(nonce: 0x0102_0304_0506_0708, reason: .nickTaken, text: "taken"),
                "5552 0282 0102030405060708 01 0005 74616b656e"
            ),
            (
                .ended(token: token, reason: .unknownSession),
                "5552 0283 00112233445566778899aabbccddeeff 01"
            ),
            (
                .ack(token: token, Acknowledgement(cumulative: 7)),
                "5552 0284 00112233445566778899aabbccddeeff 0000000000000007 0000000000000000"
            ),
            (
                .pong(token: token, echo: 9),
                "5552 0285 00112233445566778899aabbccddeeff 0000000000000009"
            ),
            (
                .deliver(
                    token: token, sequence: 1,
                    .message(
                        from: "bob", kind: .text, text: "hi", unixMillis: 0x0000_018B_CFE5_6800, flags: .history)),
                "5552 0290 00112233445566778899aabbccddeeff 0000000000000001 01 01 00 0000018bcfe56800 0003 626f62 0002 6869"
            ),
            (
                .deliver(
                    token: token, sequence: 2,
                    .privateMessage(
                        from: "bob", to: "al", text: "yo", unixMillis: 1, flags: [])),
                "5552 0290 00112233445566778899aabbccddeeff 0000000000000002 02 00 0000000000000001 0003 626f62 0002 616c 0002 796f"
            ),
            (
                .deliver(token: token, sequence: 3, .joined("al")),
                "5552 0290 00112233445566778899aabbccddeeff 0000000000000003 03 0002 616c"
            ),
            (
                .deliver(token: token, sequence: 4, .left("al")),
                "5552 0290 00112233445566778899aabbccddeeff 0000000000000004 04 0002 616c"
            ),
            (
                .deliver(token: token, sequence: 5, .timedOut("al")),
                "5552 0290 00112233445566778899aabbccddeeff 0000000000000005 05 0002 616c"
            ),
            (
                .deliver(token: token, sequence: 6, .nickChanged(from: "al", to: "bo")),
                "5552 0290 00112233445566778899aabbccddeeff 0000000000000006 06 0002 616c 0002 626f"
            ),
            (
                .deliver(token: token, sequence: 7, .who(names: ["al", "bob"], flags: [])),
                "5552 0290 00112233445566778899aabbccddeeff 0000000000000007 07 00 02 0002 616c 0003 626f62"
            ),
            (
                .deliver(token: token, sequence: 8, .notice(code: .rateLimited, inReplyTo: 60, text: "slow down")),
                "5552 0290 00112233445566778899aabbccddeeff 0000000000000008 08 03 000000000000003c 0009 736c6f7720646f776e"
            ),
            (
                .pathChallenge(token: token, challenge: 0x0A0B_0C0D_0E0F_1011),
                "5552 0286 00112233445566778899aabbccddeeff 0a0b0c0d0e0f1011"
            ),
        ]
        for (packet, hex) in client {
            XCTAssertEqual(hexString(try RoomCodec.encode(packet)), hexString(bytes(hex: hex)), "\(packet)")
            XCTAssertEqual(try RoomCodec.decodeClientPacket(bytes(hex: hex)), packet)
        }
        for (packet, hex) in server {
            XCTAssertEqual(hexString(try RoomCodec.encode(packet)), hexString(bytes(hex: hex)), "\(packet)")
            XCTAssertEqual(try RoomCodec.decodeServerPacket(bytes(hex: hex)), packet)
        }
    }

    /// A JOIN is padded to 64 bytes, so nothing a server sends back to it (WELCOME, REFUSED) is more than
    /// three times its size; the padding is canonical.
    func testJoinsArePaddedToTheMinimumSize() throws {
        let short = try RoomCodec.encode(ClientPacket.join(nonce: 1, nick: "a"))
        XCTAssertEqual(short.count, RoomWire.minimumJoinSize)
        XCTAssertEqual(Array(short[15...]), Array(repeating: 0, count: RoomWire.minimumJoinSize - 15))
        let long = try RoomCodec.encode(ClientPacket.join(nonce: 1, nick: String(repeating: "n", count: 60)))
        XCTAssertEqual(long.count, 14 + 60, "a JOIN long enough has no padding")
        var dirty = short
        dirty[40] = 1
        XCTAssertThrowsError(try RoomCodec.decodeClientPacket(dirty)) {
            XCTAssertEqual($0 as? DecodeError, .nonzeroPadding)
        }
        XCTAssertThrowsError(try RoomCodec.decodeClientPacket(short.prefix(15))) {
            XCTAssertEqual($0 as? DecodeError, .truncated(offset: 15))
        }
        let welcome = try RoomCodec.encode(
            ServerPacket.welcome(
                Welcome(
                    nonce: 1, token: tokenA, serverInstance: 1, maxTextBytes: 1000, historyCount: 0, heartbeatMillis: 1,
                    timeoutMillis: 1)))
        XCTAssertLessThanOrEqual(welcome.count, 3 * RoomWire.minimumJoinSize)
    }

    /// A JOIN of another version gets a REFUSED no bigger than three times the JOIN; a version-1 JOIN gets it
    /// in version 1 (same layout), which a version-1 client understands.
    func testVersionMismatchReplies() throws {
        for version: UInt8 in [1, 3, 0xFF] {
            for extra in [0, 1, 3, 40] {
                let join: [UInt8] =
                    [0x55, 0x52, version, 0x01, 1, 2, 3, 4, 5, 6, 7, 8] + Array(repeating: 0x61, count: extra)
                var reply = try XCTUnwrap(RoomCodec.versionMismatchReply(to: join))
                XCTAssertLessThanOrEqual(reply.count, 3 * join.count, "\(join.count)-byte JOIN")
                XCTAssertEqual(reply[2], version == 1 ? 1 : RoomWire.version)
                reply[2] = RoomWire.version
                guard
                    case .refused(0x0102_0304_0506_0708, .unsupportedVersion, let text) =
                        try RoomCodec.decodeServerPacket(reply)
                else {
                    return XCTFail("not a refusal")
                }
                XCTAssertTrue(text.hasPrefix("this server"), text)
            }
        }
        XCTAssertNil(RoomCodec.versionMismatchReply(to: try RoomCodec.encode(ClientPacket.join(nonce: 1, nick: "a"))))
    }

    // MARK: - Malformed input

    func testEveryTruncationIsAnError() throws {
        for packet in clientSamples where !isUnrecognized(packet) {
            let bytes = try RoomCodec.encode(packet)
            for length in 0..<bytes.count {
                XCTAssertThrowsError(try RoomCodec.decodeClientPacket(bytes.prefix(length))) { error in
                    guard case DecodeError.truncated = error else { return XCTFail("\(packet) @\(length): \(error)") }
                }
            }
        }
        for packet in serverSamples where !isUnrecognized(packet) {
            let bytes = try RoomCodec.encode(packet)
            for length in 0..<bytes.count {
                XCTAssertThrowsError(try RoomCodec.decodeServerPacket(bytes.prefix(length))) { error in
                    guard case DecodeError.truncated = error else { return XCTFail("\(packet) @\(length): \(error)") }
                }
            }
        }
    }

    func testTruncatedUnrecognizedBodiesStillDecodeButTheirHeadersDoNot() throws {
        let bytes = try RoomCodec.encode(
            ClientPacket.command(token: tokenA, sequence: 1, .unrecognized(code: 0x40, body: [9, 9])))
        XCTAssertEqual(
            try RoomCodec.decodeClientPacket(bytes.dropLast()),
            .command(token: tokenA, sequence: 1, .unrecognized(code: 0x40, body: [9])))
        XCTAssertThrowsError(try RoomCodec.decodeClientPacket(bytes.prefix(4 + 16 + 8)))
    }

    func testTrailingBytesAreAnError() throws {
        for packet in clientSamples where !isUnrecognized(packet) {
            XCTAssertThrowsError(try RoomCodec.decodeClientPacket(try RoomCodec.encode(packet) + [0])) { error in
                XCTAssertEqual(error as? DecodeError, .trailingBytes(count: 1))
            }
        }
        for packet in serverSamples where !isUnrecognized(packet) {
            XCTAssertThrowsError(try RoomCodec.decodeServerPacket(try RoomCodec.encode(packet) + [0, 0])) { error in
                XCTAssertEqual(error as? DecodeError, .trailingBytes(count: 2))
            }
        }
    }

    func testBadMagicVersionAndType() throws {
        let join = try RoomCodec.encode(ClientPacket.join(nonce: 1, nick: "a"))
        func decodeError(_ bytes: [UInt8]) -> DecodeError? {
            do {
                _ = try RoomCodec.decodeClientPacket(bytes)
                return nil
            } catch { return error }
        }
        var bad = join
        bad[0] = 0x56
        XCTAssertEqual(decodeError(bad), .badMagic)
        bad = join
        bad[1] = 0x72
        XCTAssertEqual(decodeError(bad), .badMagic)
        XCTAssertEqual(decodeError([0x00]), .badMagic)
        for version: UInt8 in [0, 1, 3, 0xFF] {
            bad = join
            bad[2] = version
            XCTAssertEqual(decodeError(bad), .unsupportedVersion(version))
        }
        for type: UInt8 in [0x00, 0x05, 0x0F, 0x11, 0x40, 0x7F] {
            bad = join
            bad[3] = type
            XCTAssertEqual(decodeError(bad), .unknownType(type))
        }
        for type: UInt8 in [0x80, 0x81, 0x90, 0xFF] {
            bad = join
            bad[3] = type
            XCTAssertEqual(decodeError(bad), .wrongDirection(type))
        }
        let pong = try RoomCodec.encode(ServerPacket.pong(token: tokenA, echo: 1))
        for (type, expected) in [
            (UInt8(0x01), DecodeError.wrongDirection(1)), (0x87, .unknownType(0x87)), (0xFF, .unknownType(0xFF)),
        ] {
            bad = pong
            bad[3] = type
            XCTAssertThrowsError(try RoomCodec.decodeServerPacket(bad)) { XCTAssertEqual($0 as? DecodeError, expected) }
        }
    }

    func testOverlongStringsAreRejectedBeforeReading() throws {
        // Length prefix over the cap, with the bytes present.
        var join: [UInt8] = [0x55, 0x52, 2, 0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0, 129]
        join += Array(repeating: 0x61, count: 129)
        XCTAssertThrowsError(try RoomCodec.decodeClientPacket(join)) {
            XCTAssertEqual($0 as? DecodeError, .stringTooLong(field: .nick, length: 129))
        }
        // Length prefix over the cap, bytes absent: the cap is reported, not truncation.
        let huge: [UInt8] = [0x55, 0x52, 2, 0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0x61]
        XCTAssertThrowsError(try RoomCodec.decodeClientPacket(huge)) {
            XCTAssertEqual($0 as? DecodeError, .stringTooLong(field: .nick, length: 65535))
        }
        // Exactly at the caps is fine.
        let atCap = ClientPacket.command(
            token: tokenA, sequence: 1, .say(kind: .text, text: String(repeating: "x", count: 4096)))
        XCTAssertEqual(try RoomCodec.decodeClientPacket(RoomCodec.encode(atCap)), atCap)
        XCTAssertThrowsError(
            try RoomCodec.encode(
                ClientPacket.command(
                    token: tokenA, sequence: 1, .say(kind: .text, text: String(repeating: "x", count: 4097))))
        ) {
            XCTAssertEqual($0 as? EncodeError, .stringTooLong(field: .text, length: 4097))
        }
        XCTAssertThrowsError(try RoomCodec.encode(ClientPacket.join(nonce: 1, nick: String(repeating: "é", count: 65))))
        {
            XCTAssertEqual($0 as? EncodeError, .stringTooLong(field: .nick, length: 130))
        }
        XCTAssertThrowsError(
            try RoomCodec.encode(
                ServerPacket.refused(nonce: 1, reason: .roomFull, text: String(repeating: "r", count: 513)))
        ) {
            XCTAssertEqual($0 as? EncodeError, .stringTooLong(field: .reason, length: 513))
        }
    }

    func testInvalidUTF8IsRejected() throws {
        let invalid: [[UInt8]] = [
            [0xFF], [0x80], [0xC0, 0x80], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80],
            [0xF4, 0x90, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0x61, 0xFE, 0x62],
        ]
        for sequence in invalid {
            let join: [UInt8] =
                [0x55, 0x52, 2, 0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0, UInt8(sequence.count)] + sequence
                + Array(repeating: 0, count: 64)
            XCTAssertThrowsError(try RoomCodec.decodeClientPacket(join), "\(sequence)") {
                XCTAssertEqual($0 as? DecodeError, .invalidUTF8(field: .nick))
            }
        }
        // A literal U+FFFD and a NUL are valid UTF-8 (the nick rules reject such nicks later).
        let valid: [UInt8] =
            [0x55, 0x52, 2, 0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 0xEF, 0xBF, 0xBD, 0x00] + Array(repeating: 0, count: 46)
        XCTAssertEqual(try RoomCodec.decodeClientPacket(valid), .join(nonce: 1, nick: "\u{FFFD}\u{0}"))
    }

    func testOversizedDatagramIsRejectedAndOversizedPacketIsNotEncoded() throws {
        var big = try RoomCodec.encode(
            ClientPacket.command(token: tokenA, sequence: 1, .unrecognized(code: 0x20, body: [])))
        big += Array(repeating: 0, count: RoomWire.maxDatagramSize - big.count)
        XCTAssertNoThrow(try RoomCodec.decodeClientPacket(big))
        XCTAssertThrowsError(try RoomCodec.decodeClientPacket(big + [0])) {
            XCTAssertEqual($0 as? DecodeError, .datagramTooLarge(size: RoomWire.maxDatagramSize + 1))
        }
        let names = Array(repeating: String(repeating: "n", count: 100), count: 255)
        XCTAssertThrowsError(
            try RoomCodec.encode(ServerPacket.deliver(token: tokenA, sequence: 1, .who(names: names, flags: [])))
        ) {
            guard case EncodeError.datagramTooLarge = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(
            try RoomCodec.encode(
                ServerPacket.deliver(
                    token: tokenA, sequence: 1, .who(names: Array(repeating: "a", count: 256), flags: [])))
        ) {
            XCTAssertEqual($0 as? EncodeError, .tooManyNames(count: 256))
        }
    }

    func testUnrecognizedWithKnownCodeCannotBeEncoded() {
        XCTAssertThrowsError(
            try RoomCodec.encode(ClientPacket.command(token: tokenA, sequence: 1, .unrecognized(code: 0x01, body: [])))
        ) {
            XCTAssertEqual($0 as? EncodeError, .reservedCode(1))
        }
        XCTAssertThrowsError(
            try RoomCodec.encode(ServerPacket.deliver(token: tokenA, sequence: 1, .unrecognized(code: 0x08, body: [])))
        ) {
            XCTAssertEqual($0 as? EncodeError, .reservedCode(8))
        }
    }

    func testVersionMismatchReply() throws {
        var join = try RoomCodec.encode(ClientPacket.join(nonce: 0xABCD, nick: "alice"))
        XCTAssertNil(RoomCodec.versionMismatchReply(to: join), "a version-2 JOIN is not a mismatch")
        join[2] = 3
        let reply = try XCTUnwrap(RoomCodec.versionMismatchReply(to: join))
        guard case .refused(let nonce, let reason, let text) = try RoomCodec.decodeServerPacket(reply) else {
            return XCTFail("not a REFUSED")
        }
        XCTAssertEqual(nonce, 0xABCD)
        XCTAssertEqual(reason, .unsupportedVersion)
        XCTAssertTrue(text.contains("version 2"))
        XCTAssertNil(RoomCodec.versionMismatchReply(to: join.prefix(11)), "too short to carry a nonce")
        var heartbeat = try RoomCodec.encode(ClientPacket.heartbeat(token: tokenA, echo: 1))
        heartbeat[2] = 3
        XCTAssertNil(RoomCodec.versionMismatchReply(to: heartbeat), "only JOINs are answered")
        join[0] = 0
        XCTAssertNil(RoomCodec.versionMismatchReply(to: join))
    }

    /// An in-process cousin of the libFuzzer target: random and mutated datagrams never trap,
    /// and whatever decodes re-encodes to the same bytes.
    func testRandomAndMutatedDatagramsNeverCrashAndRoundTrip() throws {
        var rng = SplitMix64(seed: 0x5EED)
        let seeds = try clientSamples.map { try RoomCodec.encode($0) } + serverSamples.map { try RoomCodec.encode($0) }
        var decoded = 0
        for round in 0..<200_000 {
            var bytes: [UInt8]
            if round % 4 == 0 {
                bytes = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if rng.chance(0.5) && bytes.count >= 4 {
                    bytes[0] = 0x55
                    bytes[1] = 0x52
                    bytes[2] = 1
                }
            } else {
                bytes = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0 where !bytes.isEmpty:
                        bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    case 1 where !bytes.isEmpty:
                        bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng))
                    case 2:
                        bytes.insert(
                            UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
                    default:
                        if !bytes.isEmpty { bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng)) }
                    }
                }
            }
            if let packet = try? RoomCodec.decodeClientPacket(bytes) {
                decoded += 1
                XCTAssertEqual(try RoomCodec.encode(packet), bytes)
            }
            if let packet = try? RoomCodec.decodeServerPacket(bytes) {
                decoded += 1
                XCTAssertEqual(try RoomCodec.encode(packet), bytes)
            }
        }
        XCTAssertGreaterThan(decoded, 1000, "the mutations should keep many datagrams valid")
    }

    // MARK: - Values

    func testTokenBytesAndRedactedDescription() throws {
        XCTAssertEqual(hexString(tokenA.bytes), "00112233445566778899aabbccddeeff")
        XCTAssertEqual(SessionToken(bytes: tokenA.bytes), tokenA)
        XCTAssertNil(SessionToken(bytes: tokenA.bytes.dropLast()))
        XCTAssertEqual(tokenA.description, "SessionToken(00112233…)")
        var rng = SplitMix64(seed: 1)
        let a = SessionToken.random(using: &rng)
        let b = SessionToken.random(using: &rng)
        XCTAssertNotEqual(a, b)
        XCTAssertNotEqual(SessionToken.random(), SessionToken.random())
    }

    func testAcknowledgementCovers() {
        let ack = Acknowledgement(cumulative: 10, selective: 0b1 | 1 << 63)
        XCTAssertTrue(ack.covers(1))
        XCTAssertTrue(ack.covers(10))
        XCTAssertFalse(ack.covers(11))
        XCTAssertTrue(ack.covers(12))
        XCTAssertFalse(ack.covers(13))
        XCTAssertTrue(ack.covers(75))
        XCTAssertFalse(ack.covers(76))
    }

    func testWhoPages() throws {
        XCTAssertEqual(RoomEvent.whoPages([]), [.who(names: [], flags: [])])
        let names = (0..<300).map { "member\($0)" }
        let pages = RoomEvent.whoPages(names, maxBytes: 200)
        var collected: [String] = []
        for (index, page) in pages.enumerated() {
            guard case .who(let pageNames, let flags) = page else { return XCTFail("not WHO") }
            XCTAssertEqual(flags.contains(.more), index < pages.count - 1)
            XCTAssertFalse(pageNames.isEmpty)
            XCTAssertLessThanOrEqual(2 + pageNames.reduce(0) { $0 + 2 + $1.utf8.count }, 200)
            XCTAssertNoThrow(try RoomCodec.encode(ServerPacket.deliver(token: tokenA, sequence: 1, page)))
            collected += pageNames
        }
        XCTAssertEqual(collected, names)
        let counts = RoomEvent.whoPages(Array(repeating: "a", count: 600), maxBytes: 100_000).map { event -> Int in
            guard case .who(let names, _) = event else { return -1 }
            return names.count
        }
        XCTAssertEqual(counts, [255, 255, 90])
    }

    func testErrorDescriptionsAreReadable() {
        XCTAssertEqual(DecodeError.unknownType(0x4).description, "unknown packet type 0x04")
        XCTAssertEqual(
            DecodeError.stringTooLong(field: .text, length: 5000).description, "text of 5000 bytes exceeds 4096")
        XCTAssertEqual(EncodeError.reservedCode(0x1).description, "code 0x01 is a known command or event")
    }
}
