/// Fixed facts of the room wire format, version 2. `docs/room-protocol.md` describes every
/// packet byte by byte; the values here are the ones that document refers to.
///
/// Every datagram starts with the same 4-byte header: the magic `"UR"` (`0x55 0x52`), the
/// version byte, and a packet type byte. Integers are big-endian. Strings are a `u16` byte
/// count followed by that many bytes of UTF-8; each string field has a hard cap (see
/// `StringField`) that both the encoder and the decoder enforce.
public enum RoomWire {
    /// The first byte of every datagram: ASCII `U`.
    public static let magic0: UInt8 = 0x55
    /// The second byte of every datagram: ASCII `R`.
    public static let magic1: UInt8 = 0x52
    /// The protocol version this module speaks, carried in byte 2 of every datagram.
    public static let version: UInt8 = 2
    /// The shortest JOIN datagram: a shorter JOIN is padded with zero bytes up to this size. Everything
    /// a server sends back to a JOIN (WELCOME, REFUSED) is then at most three times what it received,
    /// so a JOIN with a forged source address cannot make the server a reflector that amplifies.
    public static let minimumJoinSize = 64
    /// Bytes before the packet body: magic (2), version (1), type (1).
    public static let headerSize = 4
    /// The largest datagram the codec produces or accepts. Larger datagrams are rejected
    /// before any parsing, so a receiver can size its buffer once.
    public static let maxDatagramSize = 8192
    /// The byte length of a session token on the wire.
    public static let tokenSize = 16
    /// The most names a single WHO event can carry (its count is one byte); longer member lists
    /// are split over several events, see `RoomEvent.whoPages(_:maxBytes:)`.
    public static let maxWhoNames = 255
}

/// The classes of string field in the wire format, each with a hard size cap in UTF-8 bytes.
///
/// The caps are deliberately looser than the room's policy limits (`RoomLimits`): a text a few
/// bytes over the policy limit must still decode, so the server can answer it with a clear
/// notice instead of dropping it as malformed.
public enum StringField: Sendable, Hashable, CustomStringConvertible {
    /// A nick name: 128 bytes (the policy limit of 24 characters needs at most 96).
    case nick
    /// Message text: 4,096 bytes (the default policy limit is 1,000).
    case text
    /// Human-readable text in REFUSED and NOTICE: 512 bytes.
    case reason

    /// The cap in UTF-8 bytes.
    public var maxBytes: Int {
        switch self {
        case .nick: 128
        case .text: 4096
        case .reason: 512
        }
    }

    public var description: String {
        switch self {
        case .nick: "nick"
        case .text: "text"
        case .reason: "reason"
        }
    }
}

/// Packet type codes (byte 3 of the header). Client-to-server types are below 0x80,
/// server-to-client types have the high bit set, so a misdirected packet is recognisable.
enum PacketType {
    static let join: UInt8 = 0x01
    static let clientAck: UInt8 = 0x02
    static let heartbeat: UInt8 = 0x03
    static let pathResponse: UInt8 = 0x04
    static let command: UInt8 = 0x10

    static let welcome: UInt8 = 0x81
    static let refused: UInt8 = 0x82
    static let ended: UInt8 = 0x83
    static let serverAck: UInt8 = 0x84
    static let pong: UInt8 = 0x85
    static let pathChallenge: UInt8 = 0x86
    static let deliver: UInt8 = 0x90
}

/// Command codes inside a COMMAND packet.
enum CommandType {
    static let say: UInt8 = 0x01
    static let privateMessage: UInt8 = 0x02
    static let nick: UInt8 = 0x03
    static let who: UInt8 = 0x04
    static let leave: UInt8 = 0x05
    static let known: ClosedRange<UInt8> = 0x01...0x05
}

/// Event codes inside a DELIVER packet.
enum EventType {
    static let message: UInt8 = 0x01
    static let privateMessage: UInt8 = 0x02
    static let joined: UInt8 = 0x03
    static let left: UInt8 = 0x04
    static let timedOut: UInt8 = 0x05
    static let nickChanged: UInt8 = 0x06
    static let who: UInt8 = 0x07
    static let notice: UInt8 = 0x08
    static let known: ClosedRange<UInt8> = 0x01...0x08
}
