import RoomProtocol
import XCTest

final class TokenBucketTests: XCTestCase {
    func testBurstThenRefillRate() {
        var bucket = RoomLimits.standard.makeCommandBucket(now: 1_000 * ms)
        XCTAssertEqual(bucket.available(now: 1_000 * ms), 50)
        for _ in 0..<50 { XCTAssertTrue(bucket.tryTake(now: 1_000 * ms)) }
        XCTAssertFalse(bucket.tryTake(now: 1_000 * ms))
        XCTAssertEqual(bucket.delayUntilAvailable(now: 1_000 * ms), 200 * ms)
        XCTAssertFalse(bucket.tryTake(now: 1_199 * ms))
        XCTAssertEqual(bucket.delayUntilAvailable(now: 1_199 * ms), 1 * ms)
        XCTAssertTrue(bucket.tryTake(now: 1_200 * ms))
        XCTAssertFalse(bucket.tryTake(now: 1_200 * ms))
        // A sustained sender gets 5 per second.
        var accepted = 0
        for tick in 0...1000 where bucket.tryTake(now: 1_200 * ms + UInt64(tick) * 10 * ms) { accepted += 1 }
        XCTAssertEqual(accepted, 50)
    }

    func testRefillsOnlyUpToCapacity() {
        var bucket = TokenBucket(capacity: 3, refillInterval: 100 * ms, now: 0)
        for _ in 0..<3 { XCTAssertTrue(bucket.tryTake(now: 0)) }
        XCTAssertEqual(bucket.available(now: 250 * ms), 2)
        XCTAssertEqual(bucket.available(now: 3_600_000 * ms), 3)
        XCTAssertEqual(bucket.available(now: .max), 3)
        for _ in 0..<3 { XCTAssertTrue(bucket.tryTake(now: .max)) }
        XCTAssertFalse(bucket.tryTake(now: .max))
    }

    func testClockGoingBackwardsGivesNothingAndTakesNothing() {
        var bucket = TokenBucket(capacity: 1, refillInterval: 100 * ms, now: 1_000 * ms)
        XCTAssertTrue(bucket.tryTake(now: 1_000 * ms))
        XCTAssertFalse(bucket.tryTake(now: 0))
        XCTAssertTrue(bucket.tryTake(now: 1_100 * ms))
    }
}

final class RoomLimitsTests: XCTestCase {
    let limits = RoomLimits.standard

    func testAcceptableNicks() {
        for nick in [
            "alice", "a", "Zoë", "李雷", "🙂", "x-y_z.1", "e\u{301}", "한글", "\u{1100}\u{1161}", "⠁⠃", "हिंदी",
            String(repeating: "n", count: 24), String(repeating: "界", count: 24),
        ] {
            XCTAssertNoThrow(try limits.checkNick(nick), nick)
        }
    }

    func testRejectedNicks() {
        let cases: [(String, NickError)] = [
            ("", .empty),
            (String(repeating: "n", count: 25), .tooLong(length: 25, limit: 24)),
            ("a b", .forbiddenCharacter(" ")),
            ("tab\t", .forbiddenCharacter("\t")),
            ("bell\u{7}", .forbiddenCharacter("\u{7}")),
            ("del\u{7F}", .forbiddenCharacter("\u{7F}")),
            ("esc\u{1B}[31m", .forbiddenCharacter("\u{1B}")),
            ("zero\u{200B}width", .forbiddenCharacter("\u{200B}")),
            ("rtl\u{202E}", .forbiddenCharacter("\u{202E}")),
            ("nbsp\u{A0}", .forbiddenCharacter("\u{A0}")),
            ("ideo\u{3000}", .forbiddenCharacter("\u{3000}")),
            ("private\u{E000}", .forbiddenCharacter("\u{E000}")),
            ("line\u{2028}", .forbiddenCharacter("\u{2028}")),
            // Characters that render as nothing or as blank space, whatever their category.
            ("\u{3164}", .forbiddenCharacter("\u{3164}")),
            ("a\u{3164}", .forbiddenCharacter("\u{3164}")),
            ("\u{FFA0}", .forbiddenCharacter("\u{FFA0}")),
            ("\u{115F}\u{1160}", .forbiddenCharacter("\u{115F}")),
            ("\u{2800}", .forbiddenCharacter("\u{2800}")),
            ("\u{1D159}", .forbiddenCharacter("\u{1D159}")),
            ("\u{FFFC}", .forbiddenCharacter("\u{FFFC}")),
            ("cgj\u{34F}", .forbiddenCharacter("\u{34F}")),
            ("vs\u{FE0F}", .forbiddenCharacter("\u{FE0F}")),
            ("tag\u{E0041}", .forbiddenCharacter("\u{E0041}")),
            ("\u{180E}", .forbiddenCharacter("\u{180E}")),
            // A combining mark with nothing of the nick to sit on.
            ("\u{301}", .startsWithCombiningMark("\u{301}")),
            ("\u{301}abc", .startsWithCombiningMark("\u{301}")),
            ("\u{20DD}", .startsWithCombiningMark("\u{20DD}")),
            ("\u{93F}", .startsWithCombiningMark("\u{93F}")),
        ]
        for (nick, expected) in cases {
            XCTAssertThrowsError(try limits.checkNick(nick), nick.debugDescription) {
                XCTAssertEqual($0 as? NickError, expected, nick.debugDescription)
            }
        }
        XCTAssertEqual(NickError.forbiddenCharacter(" ").description, "a nick must not contain U+0020 (space)")
        XCTAssertEqual(
            NickError.tooLong(length: 25, limit: 24).description, "a nick has at most 24 characters; this one has 25")
    }

    func testNicksAreUniqueCaseInsensitivelyAndUpToCanonicalEquivalence() {
        XCTAssertEqual(RoomLimits.nickKey("Alice"), RoomLimits.nickKey("aLICE"))
        XCTAssertEqual(RoomLimits.nickKey("ZOË"), RoomLimits.nickKey("zoë"))
        XCTAssertEqual(RoomLimits.nickKey("Ze\u{301}"), RoomLimits.nickKey("z\u{E9}"))
        XCTAssertNotEqual(RoomLimits.nickKey("alice"), RoomLimits.nickKey("alice2"))
        let members: Set<String> = [RoomLimits.nickKey("Bob")]
        XCTAssertTrue(members.contains(RoomLimits.nickKey("BOB")))
    }

    func testTextRules() {
        XCTAssertNoThrow(try limits.checkText(String(repeating: "x", count: 1000)))
        XCTAssertNoThrow(try limits.checkText("tab\tis fine, so are emoji 👨‍👩‍👧 and bidi \u{202E}marks"))
        let cases: [(String, TextError)] = [
            ("", .empty),
            (String(repeating: "x", count: 1001), .tooLong(bytes: 1001, limit: 1000)),
            (String(repeating: "€", count: 334), .tooLong(bytes: 1002, limit: 1000)),
            ("two\nlines", .forbiddenCharacter("\n")),
            ("\u{1B}[2J", .forbiddenCharacter("\u{1B}")),
            ("nul\u{0}", .forbiddenCharacter("\u{0}")),
            ("c1\u{9B}", .forbiddenCharacter("\u{9B}")),
            ("para\u{2029}", .forbiddenCharacter("\u{2029}")),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try limits.checkText(text), text.debugDescription) {
                XCTAssertEqual($0 as? TextError, expected, text.debugDescription)
            }
        }
        XCTAssertEqual(TextError.tooLong(bytes: 1234, limit: 1000).noticeCode, .textTooLong)
        XCTAssertEqual(TextError.empty.noticeCode, .invalidText)
        XCTAssertEqual(
            TextError.tooLong(bytes: 1234, limit: 1000).description,
            "message too long: 1234 bytes of UTF-8, the limit is 1000")
    }

    func testWelcomeFromConfiguration() throws {
        let welcome = Welcome(
            nonce: 1, token: tokenA, serverInstance: 2, historyCount: 70_000, limits: .standard, timing: .standard)
        XCTAssertEqual(welcome.maxTextBytes, 1000)
        XCTAssertEqual(welcome.historyCount, 65_535)
        XCTAssertEqual(welcome.heartbeatMillis, 2000)
        XCTAssertEqual(welcome.timeoutMillis, 10_000)
    }

    func testJoinRetryDelays() {
        let timing = RoomTiming.standard
        XCTAssertEqual(
            (1...6).map { timing.joinRetryDelay(afterAttempts: $0) / ms }, [200, 400, 800, 1600, 2000, 2000])
    }
}
