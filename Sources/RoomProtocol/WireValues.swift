/// What a receiver of one reliable stream has got so far, as carried by an ACK packet.
///
/// Sequence numbers of each stream start at 1. `cumulative` is the highest sequence number
/// `n` such that every sequence number `1...n` has been received (0 when none has).
/// `selective` reports what has arrived beyond that gap: bit `i` (bit 0 being the least
/// significant) is set when sequence number `cumulative + 2 + i` has been received; sequence
/// `cumulative + 1` is by definition missing, so it has no bit. A sender may ignore
/// `selective`; it only saves retransmissions.
public struct Acknowledgement: Hashable, Sendable, CustomStringConvertible {
    /// Every sequence number up to and including this one has been received.
    public var cumulative: UInt64
    /// Bitmap of received sequence numbers `cumulative + 2 ... cumulative + 65`.
    public var selective: UInt64

    public init(cumulative: UInt64, selective: UInt64 = 0) {
        self.cumulative = cumulative
        self.selective = selective
    }

    /// Whether this acknowledgement says `sequence` was received.
    public func covers(_ sequence: UInt64) -> Bool {
        if sequence <= cumulative { return true }
        let distance = sequence - cumulative
        guard distance >= 2, distance <= 65 else { return false }
        return selective & (1 << (distance - 2)) != 0
    }

    public var description: String {
        selective == 0 ? "ack \(cumulative)" : "ack \(cumulative) +sack 0x\(String(selective, radix: 16))"
    }
}

/// How a chat message is meant: plain text or an action (`/me waves` shown as `* alice waves`).
///
/// An open set: codes this module does not name decode fine (so a newer peer's message still
/// arrives) and a server decides whether to accept them.
public struct MessageKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// An ordinary line of text (code 0).
    public static let text = MessageKind(rawValue: 0)
    /// An action, as typed with `/me` (code 1).
    public static let action = MessageKind(rawValue: 1)

    public var description: String {
        switch self {
        case .text: "text"
        case .action: "action"
        default: "kind \(rawValue)"
        }
    }
}

/// Why the server refused a JOIN (packet REFUSED). An open set; unknown codes decode and
/// should be shown with the accompanying text.
public struct RefusalReason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Another member already uses this nick (compared case-insensitively).
    public static let nickTaken = RefusalReason(rawValue: 1)
    /// The nick breaks the nick rules (length or characters).
    public static let invalidNick = RefusalReason(rawValue: 2)
    /// The room has as many members as it allows.
    public static let roomFull = RefusalReason(rawValue: 3)
    /// The JOIN used a protocol version the server does not speak. The REFUSED has the same
    /// layout in versions 1 and 2 and is sent in the JOIN's version when that is 1, so either
    /// side can tell the other's user (`RoomCodec.decodeVersionRefusal(_:)`).
    public static let unsupportedVersion = RefusalReason(rawValue: 4)
    /// Too many JOINs from this address recently.
    public static let rateLimited = RefusalReason(rawValue: 5)
    /// The server is shutting down.
    public static let shuttingDown = RefusalReason(rawValue: 6)

    public var description: String {
        switch self {
        case .nickTaken: "nick taken"
        case .invalidNick: "invalid nick"
        case .roomFull: "room full"
        case .unsupportedVersion: "unsupported version"
        case .rateLimited: "rate limited"
        case .shuttingDown: "shutting down"
        default: "refusal \(rawValue)"
        }
    }
}

/// Why a session is over (packet ENDED). An open set. Whatever the reason, the session's
/// token is dead; a client that wants to stay joins again with a new JOIN.
public struct EndReason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The server knows no session with this token: it restarted, or the member timed out or
    /// left earlier.
    public static let unknownSession = EndReason(rawValue: 1)
    /// The server is shutting down; it may come back.
    public static let serverShutdown = EndReason(rawValue: 2)
    /// The member fell too far behind (its stream backlog overflowed).
    public static let tooSlow = EndReason(rawValue: 3)
    /// The room filled up between the WELCOME and the member's confirmation of it; the member may
    /// join again.
    public static let roomFull = EndReason(rawValue: 4)

    public var description: String {
        switch self {
        case .unknownSession: "unknown session"
        case .serverShutdown: "server shutdown"
        case .tooSlow: "too slow"
        case .roomFull: "room full"
        default: "end \(rawValue)"
        }
    }
}

/// What a NOTICE event reports. An open set; unknown codes should be shown with their text.
public struct NoticeCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Information, not an error.
    public static let info = NoticeCode(rawValue: 0)
    /// The message text is longer than the room allows; it was not delivered.
    public static let textTooLong = NoticeCode(rawValue: 1)
    /// The message text is empty or contains forbidden characters; it was not delivered.
    public static let invalidText = NoticeCode(rawValue: 2)
    /// The member sends faster than the room allows; the command was dropped.
    public static let rateLimited = NoticeCode(rawValue: 3)
    /// The requested nick is in use.
    public static let nickTaken = NoticeCode(rawValue: 4)
    /// The requested nick breaks the nick rules.
    public static let invalidNick = NoticeCode(rawValue: 5)
    /// A private message named a nick nobody in the room has.
    public static let noSuchMember = NoticeCode(rawValue: 6)
    /// The server does not support this command (or this message kind).
    public static let unsupportedCommand = NoticeCode(rawValue: 7)

    public var description: String {
        switch self {
        case .info: "info"
        case .textTooLong: "text too long"
        case .invalidText: "invalid text"
        case .rateLimited: "rate limited"
        case .nickTaken: "nick taken"
        case .invalidNick: "invalid nick"
        case .noSuchMember: "no such member"
        case .unsupportedCommand: "unsupported command"
        default: "notice \(rawValue)"
        }
    }
}

/// Flag bits of MESSAGE, PRIVATE and WHO events. Bits this module does not name are kept, so a
/// decoded event re-encodes to the same bytes.
public struct EventFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// MESSAGE: sent before the receiving member joined; part of the history a newcomer gets.
    public static let history = EventFlags(rawValue: 1 << 0)
    /// WHO: more WHO events follow with the rest of the member list.
    public static let more = EventFlags(rawValue: 1 << 1)
}
