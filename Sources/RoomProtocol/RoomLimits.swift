/// Why a nick is not acceptable.
public enum NickError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The nick is empty.
    case empty
    /// The nick has `length` characters (Unicode scalars); `limit` is the maximum.
    case tooLong(length: Int, limit: Int)
    /// The nick contains a space, control, format or otherwise invisible character.
    case forbiddenCharacter(Unicode.Scalar)
    /// The nick starts with a combining mark, which has no character of the nick to sit on.
    case startsWithCombiningMark(Unicode.Scalar)

    public var description: String {
        switch self {
        case .empty: "a nick must not be empty"
        case .tooLong(let length, let limit): "a nick has at most \(limit) characters; this one has \(length)"
        case .forbiddenCharacter(let scalar): "a nick must not contain \(describe(scalar))"
        case .startsWithCombiningMark(let scalar): "a nick must not start with the combining mark \(describe(scalar))"
        }
    }
}

/// Why a message text is not acceptable.
public enum TextError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The text is empty.
    case empty
    /// The text has `bytes` bytes of UTF-8; `limit` is the maximum.
    case tooLong(bytes: Int, limit: Int)
    /// The text contains a control character other than tab, or a line or paragraph separator.
    case forbiddenCharacter(Unicode.Scalar)

    /// The NOTICE code a server reports this with.
    public var noticeCode: NoticeCode {
        switch self {
        case .tooLong: .textTooLong
        case .empty, .forbiddenCharacter: .invalidText
        }
    }

    public var description: String {
        switch self {
        case .empty: "a message must not be empty"
        case .tooLong(let bytes, let limit): "message too long: \(bytes) bytes of UTF-8, the limit is \(limit)"
        case .forbiddenCharacter(let scalar): "a message must not contain \(describe(scalar))"
        }
    }
}

private func describe(_ scalar: Unicode.Scalar) -> String {
    let code = String(scalar.value, radix: 16, uppercase: true)
    return "U+\(String(repeating: "0", count: max(0, 4 - code.count)))\(code)"
        + (scalar == " " ? " (space)" : "")
}

/// The room's policy limits, checked by the server (and by a client before sending, for an
/// immediate error). Distinct from the wire caps in `StringField`, which are looser so that a
/// slightly-too-long message still decodes and can be answered with a clear notice.
///
/// Nick rules: 1 to `maxNickLength` Unicode scalars, every one of them visible: none in a Unicode
/// "Other" (C*) or "Separator" (Z*) general category (spaces, controls, format characters,
/// surrogates, private-use or unassigned code points), none "default ignorable" (U+3164 HANGUL
/// FILLER, U+FFA0, U+115F, U+1160, variation selectors, ...: characters that render as nothing),
/// none of the symbols that render blank (U+2800 BRAILLE PATTERN BLANK, U+1D159 MUSICAL SYMBOL
/// NULL NOTEHEAD, U+FFFC OBJECT REPLACEMENT CHARACTER), and the first not a combining mark (M*),
/// which would sit on whatever is shown before the nick. So no nick shows as blank, and two nicks
/// cannot differ only by something invisible. Nicks are unique case-insensitively: compare
/// `nickKey` values.
///
/// Text rules: 1 to `maxTextBytes` bytes of UTF-8; no control characters except tab, and no
/// U+2028/U+2029 line/paragraph separators (one message is one line).
public struct RoomLimits: Hashable, Sendable {
    /// Longest message text in UTF-8 bytes; default 1,000.
    public let maxTextBytes: Int
    /// Longest nick in Unicode scalars; default 24.
    public let maxNickLength: Int
    /// Most members at once; default 64.
    public let maxMembers: Int
    /// Public messages kept and shown to a newcomer; default 20.
    public let historyLength: Int
    /// Commands a member may send in one burst; default 50.
    public let commandBurst: Int
    /// Nanoseconds to regain one command after a burst; default 200 ms (5 per second).
    public let commandRefillInterval: UInt64

    /// Traps unless `1 <= maxTextBytes <= StringField.text.maxBytes`,
    /// `1 <= maxNickLength <= StringField.nick.maxBytes / 4`, `maxMembers >= 1`,
    /// `0 <= historyLength <= 65_535`, `commandBurst >= 1` and `commandRefillInterval >= 1`.
    public init(
        maxTextBytes: Int = 1000, maxNickLength: Int = 24, maxMembers: Int = 64, historyLength: Int = 20,
        commandBurst: Int = 50, commandRefillInterval: UInt64 = 200_000_000
    ) {
        precondition((1...StringField.text.maxBytes).contains(maxTextBytes), "maxTextBytes out of range")
        // A scalar is at most 4 bytes of UTF-8, so any valid nick fits the wire cap.
        precondition((1...StringField.nick.maxBytes / 4).contains(maxNickLength), "maxNickLength out of range")
        precondition(maxMembers >= 1, "maxMembers must be at least 1")
        precondition((0...Int(UInt16.max)).contains(historyLength), "historyLength out of range")
        precondition(commandBurst >= 1 && commandRefillInterval >= 1, "rate limit out of range")
        self.maxTextBytes = maxTextBytes
        self.maxNickLength = maxNickLength
        self.maxMembers = maxMembers
        self.historyLength = historyLength
        self.commandBurst = commandBurst
        self.commandRefillInterval = commandRefillInterval
    }

    /// The defaults.
    public static let standard = RoomLimits()

    /// Checks `nick` against the nick rules.
    public func checkNick(_ nick: String) throws(NickError) {
        var length = 0
        for scalar in nick.unicodeScalars {
            if Self.isForbiddenInNick(scalar) { throw .forbiddenCharacter(scalar) }
            if length == 0, Self.isCombiningMark(scalar) { throw .startsWithCombiningMark(scalar) }
            length += 1
        }
        if length == 0 { throw .empty }
        if length > maxNickLength { throw .tooLong(length: length, limit: maxNickLength) }
    }

    /// Checks `text` against the text rules.
    public func checkText(_ text: String) throws(TextError) {
        let bytes = text.utf8.count
        if bytes == 0 { throw .empty }
        if bytes > maxTextBytes { throw .tooLong(bytes: bytes, limit: maxTextBytes) }
        for scalar in text.unicodeScalars where Self.isForbiddenInText(scalar) {
            throw .forbiddenCharacter(scalar)
        }
    }

    /// The identity of a nick for uniqueness and lookup (`/msg`): its Unicode lowercase
    /// mapping. Compare keys with `==`, which in Swift also equates canonically equivalent
    /// forms (precomposed "é" and "e" + combining accent).
    public static func nickKey(_ nick: String) -> String {
        nick.lowercased()
    }

    /// A fresh per-member command rate limiter, full at `now`.
    public func makeCommandBucket(now: UInt64) -> TokenBucket {
        TokenBucket(capacity: commandBurst, refillInterval: commandRefillInterval, now: now)
    }

    /// Symbols with a visible general category that fonts draw as empty space (or a placeholder box
    /// with nothing in it), so a nick made of them would look blank.
    private static let blankSymbols: Set<UInt32> = [0x2800, 0x1D159, 0xFFFC]

    private static func isForbiddenInNick(_ scalar: Unicode.Scalar) -> Bool {
        // Default ignorable code points render as nothing by definition; it covers the Hangul fillers,
        // which are letters (Lo) by category, and the invisible marks such as U+034F.
        if scalar.properties.isDefaultIgnorableCodePoint || scalar.properties.isWhitespace { return true }
        if blankSymbols.contains(scalar.value) { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned,
            .spaceSeparator, .lineSeparator, .paragraphSeparator:
            return true
        default:
            return false
        }
    }

    private static func isCombiningMark(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: true
        default: false
        }
    }

    private static func isForbiddenInText(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control: scalar != "\t"
        case .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }
}

/// The room's timing, all in nanoseconds; the defaults are the values
/// `docs/room-protocol.md` gives.
public struct RoomTiming: Hashable, Sendable {
    /// How often a client sends HEARTBEAT; default 2 s.
    public var heartbeatInterval: UInt64
    /// Silence after which the server drops a member (and a client considers the server
    /// unreachable). Default 10 s.
    public var memberTimeout: UInt64
    /// The reliable streams' tuning; the same backoff (200 ms doubling to 2 s) paces JOIN
    /// retries.
    public var stream: ReliableStreamConfiguration
    /// How long the server keeps a member that sent LEAVE, at most, to deliver the rest of its
    /// stream and acknowledge the LEAVE; then it forgets the session whatever the member sends.
    /// Default 3 s: a little longer than a client waits for that acknowledgement (2 s).
    public var leaveGrace: UInt64

    public init(
        heartbeatInterval: UInt64 = 2_000_000_000, memberTimeout: UInt64 = 10_000_000_000,
        stream: ReliableStreamConfiguration = .standard, leaveGrace: UInt64 = 3_000_000_000
    ) {
        self.heartbeatInterval = heartbeatInterval
        self.memberTimeout = memberTimeout
        self.stream = stream
        self.leaveGrace = leaveGrace
    }

    /// The defaults.
    public static let standard = RoomTiming()

    /// The heartbeat intervals a client accepts from a WELCOME, in nanoseconds (100 ms to 60 s); it
    /// uses the nearest one for any other value.
    public static let clientHeartbeatRange: ClosedRange<UInt64> = 100_000_000...60_000_000_000
    /// The member timeouts a client accepts from a WELCOME, in nanoseconds (1 s to 10 min); it uses
    /// the nearest one for any other value.
    public static let clientTimeoutRange: ClosedRange<UInt64> = 1_000_000_000...600_000_000_000

    /// How long the server lets the oldest item of a member's stream go unacknowledged before it
    /// drops the member: three member timeouts (30 s by default). Longer than the silence limit on
    /// purpose: a member that still sends may be on a very lossy path, and within one member
    /// timeout an item is sent only about five times, which 20% loss defeats for one item in a few
    /// thousand; in three, about fifteen times.
    public var stallTimeout: UInt64 {
        let (product, overflow) = memberTimeout.multipliedReportingOverflow(by: 3)
        return overflow ? .max : product
    }

    /// The wait before repeating a JOIN that got no answer, after `attempts` JOINs were sent
    /// (1 after the first): `initialTimeout` doubled per further attempt, capped at
    /// `maximumTimeout`.
    public func joinRetryDelay(afterAttempts attempts: Int) -> UInt64 {
        var delay = stream.initialTimeout
        for _ in 1..<max(attempts, 1) {
            if delay >= stream.maximumTimeout / 2 { return stream.maximumTimeout }
            delay *= 2
        }
        return min(delay, stream.maximumTimeout)
    }
}

extension Welcome {
    /// A WELCOME announcing the server's `limits` and `timing` (times rounded down to whole
    /// milliseconds, clamped to 32 bits; `historyCount` clamped to 16 bits).
    public init(
        nonce: UInt64, token: SessionToken, serverInstance: UInt64, historyCount: Int,
        limits: RoomLimits, timing: RoomTiming
    ) {
        func millis(_ nanoseconds: UInt64) -> UInt32 { UInt32(min(nanoseconds / 1_000_000, UInt64(UInt32.max))) }
        self.init(
            nonce: nonce, token: token, serverInstance: serverInstance,
            maxTextBytes: UInt16(limits.maxTextBytes),
            historyCount: UInt16(clamping: historyCount),
            heartbeatMillis: millis(timing.heartbeatInterval),
            timeoutMillis: millis(timing.memberTimeout))
    }
}
