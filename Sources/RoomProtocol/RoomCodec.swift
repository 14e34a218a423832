/// Why a datagram is not a valid room packet. Receivers drop such datagrams (and count them);
/// none of these is ever answered, except that a JOIN of another version may get a REFUSED
/// (see `RoomCodec.versionMismatchReply(to:)`).
public enum DecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The datagram is longer than `RoomWire.maxDatagramSize`.
    case datagramTooLarge(size: Int)
    /// The datagram does not start with `"UR"`.
    case badMagic
    /// The version byte is not `RoomWire.version`.
    case unsupportedVersion(UInt8)
    /// The type byte names no packet of this version.
    case unknownType(UInt8)
    /// The type byte names a packet of the other direction (a server packet sent to a server,
    /// or a client packet sent to a client).
    case wrongDirection(UInt8)
    /// The datagram ends inside a field that starts at byte `offset`.
    case truncated(offset: Int)
    /// A string field's length prefix exceeds its cap.
    case stringTooLong(field: StringField, length: Int)
    /// A string field is not valid UTF-8.
    case invalidUTF8(field: StringField)
    /// The packet is complete but `count` bytes follow it.
    case trailingBytes(count: Int)
    /// A JOIN's padding (zero bytes up to `RoomWire.minimumJoinSize`) has a byte that is not zero.
    case nonzeroPadding

    public var description: String {
        switch self {
        case .datagramTooLarge(let size): "datagram of \(size) bytes exceeds \(RoomWire.maxDatagramSize)"
        case .badMagic: "not a room packet (bad magic)"
        case .unsupportedVersion(let version): "unsupported protocol version \(version)"
        case .unknownType(let type): "unknown packet type 0x\(hex(type))"
        case .wrongDirection(let type): "packet type 0x\(hex(type)) is for the other direction"
        case .truncated(let offset): "datagram ends inside the field at byte \(offset)"
        case .stringTooLong(let field, let length): "\(field) of \(length) bytes exceeds \(field.maxBytes)"
        case .invalidUTF8(let field): "\(field) is not valid UTF-8"
        case .trailingBytes(let count): "\(count) unexpected bytes after the packet"
        case .nonzeroPadding: "a JOIN's padding is not all zero bytes"
        }
    }
}

/// Why a packet cannot be encoded. Anything a decoder accepted encodes without error; these
/// only arise for values built in code.
public enum EncodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A string is longer than its field's cap.
    case stringTooLong(field: StringField, length: Int)
    /// A WHO event has more than `RoomWire.maxWhoNames` names.
    case tooManyNames(count: Int)
    /// An `unrecognized` command or event uses a code this module knows, so it would decode
    /// as something else.
    case reservedCode(UInt8)
    /// The packet would be longer than `RoomWire.maxDatagramSize`.
    case datagramTooLarge(size: Int)

    public var description: String {
        switch self {
        case .stringTooLong(let field, let length): "\(field) of \(length) bytes exceeds \(field.maxBytes)"
        case .tooManyNames(let count): "\(count) names exceed \(RoomWire.maxWhoNames) per WHO event"
        case .reservedCode(let code): "code 0x\(hex(code)) is a known command or event"
        case .datagramTooLarge(let size): "packet of \(size) bytes exceeds \(RoomWire.maxDatagramSize)"
        }
    }
}

/// Encodes and decodes room datagrams (wire format version 2, `docs/room-protocol.md`).
///
/// Pure and total: decoding never traps, whatever the bytes, and checks every length before
/// reading. The encoding is canonical: when decoding succeeds, encoding the result gives back
/// exactly the input bytes.
public enum RoomCodec {
    /// The bytes of `packet`, ready to send.
    public static func encode(_ packet: ClientPacket) throws(EncodeError) -> [UInt8] {
        var writer: ByteWriter
        switch packet {
        case .join(let nonce, let nick):
            writer = ByteWriter(type: PacketType.join)
            writer.u64(nonce)
            try writer.string(nick, .nick)
            writer.pad(to: RoomWire.minimumJoinSize)
        case .ack(let token, let ack):
            writer = ByteWriter(type: PacketType.clientAck)
            writer.token(token)
            writer.ack(ack)
        case .heartbeat(let token, let echo):
            writer = ByteWriter(type: PacketType.heartbeat)
            writer.token(token)
            writer.u64(echo)
        case .command(let token, let sequence, let command):
            writer = ByteWriter(type: PacketType.command)
            writer.token(token)
            writer.u64(sequence)
            try writer.command(command)
        case .pathResponse(let token, let challenge):
            writer = ByteWriter(type: PacketType.pathResponse)
            writer.token(token)
            writer.u64(challenge)
        }
        return try writer.finish()
    }

    /// The bytes of `packet`, ready to send.
    public static func encode(_ packet: ServerPacket) throws(EncodeError) -> [UInt8] {
        var writer: ByteWriter
        switch packet {
        case .welcome(let welcome):
            writer = ByteWriter(type: PacketType.welcome)
            writer.u64(welcome.nonce)
            writer.token(welcome.token)
            writer.u64(welcome.serverInstance)
            writer.u16(welcome.maxTextBytes)
            writer.u16(welcome.historyCount)
            writer.u32(welcome.heartbeatMillis)
            writer.u32(welcome.timeoutMillis)
        case .refused(let nonce, let reason, let text):
            writer = ByteWriter(type: PacketType.refused)
            writer.u64(nonce)
            writer.u8(reason.rawValue)
            try writer.string(text, .reason)
        case .ended(let token, let reason):
            writer = ByteWriter(type: PacketType.ended)
            writer.token(token)
            writer.u8(reason.rawValue)
        case .ack(let token, let ack):
            writer = ByteWriter(type: PacketType.serverAck)
            writer.token(token)
            writer.ack(ack)
        case .pong(let token, let echo):
            writer = ByteWriter(type: PacketType.pong)
            writer.token(token)
            writer.u64(echo)
        case .deliver(let token, let sequence, let event):
            writer = ByteWriter(type: PacketType.deliver)
            writer.token(token)
            writer.u64(sequence)
            try writer.event(event)
        case .pathChallenge(let token, let challenge):
            writer = ByteWriter(type: PacketType.pathChallenge)
            writer.token(token)
            writer.u64(challenge)
        }
        return try writer.finish()
    }

    /// Decodes a datagram received by a server.
    public static func decodeClientPacket(_ bytes: some Collection<UInt8>) throws(DecodeError) -> ClientPacket {
        try withBuffer(bytes) { buffer in
            Result { () throws(DecodeError) in
                var reader = try ByteReader(buffer)
                let type = try reader.u8()
                let packet: ClientPacket
                switch type {
                case PacketType.join:
                    let nonce = try reader.u64()
                    packet = .join(nonce: nonce, nick: try reader.string(.nick))
                    try reader.padding(to: RoomWire.minimumJoinSize)
                case PacketType.clientAck:
                    let token = try reader.token()
                    packet = .ack(token: token, try reader.ack())
                case PacketType.heartbeat:
                    let token = try reader.token()
                    packet = .heartbeat(token: token, echo: try reader.u64())
                case PacketType.command:
                    let token = try reader.token()
                    let sequence = try reader.u64()
                    packet = .command(token: token, sequence: sequence, try reader.command())
                case PacketType.pathResponse:
                    let token = try reader.token()
                    packet = .pathResponse(token: token, challenge: try reader.u64())
                case 0x80...:
                    throw .wrongDirection(type)
                default:
                    throw .unknownType(type)
                }
                try reader.finish()
                return packet
            }
        }.get()
    }

    /// Decodes a datagram received by a client.
    public static func decodeServerPacket(_ bytes: some Collection<UInt8>) throws(DecodeError) -> ServerPacket {
        try withBuffer(bytes) { buffer in
            Result { () throws(DecodeError) in
                var reader = try ByteReader(buffer)
                let type = try reader.u8()
                let packet: ServerPacket
                switch type {
                case PacketType.welcome:
                    let nonce = try reader.u64()
                    let token = try reader.token()
                    let instance = try reader.u64()
                    let maxText = try reader.u16()
                    let history = try reader.u16()
                    let heartbeat = try reader.u32()
                    let timeout = try reader.u32()
                    packet = .welcome(
                        Welcome(
                            nonce: nonce, token: token, serverInstance: instance, maxTextBytes: maxText,
                            historyCount: history, heartbeatMillis: heartbeat, timeoutMillis: timeout))
                case PacketType.refused:
                    let nonce = try reader.u64()
                    let reason = RefusalReason(rawValue: try reader.u8())
                    packet = .refused(nonce: nonce, reason: reason, text: try reader.string(.reason))
                case PacketType.ended:
                    let token = try reader.token()
                    packet = .ended(token: token, reason: EndReason(rawValue: try reader.u8()))
                case PacketType.serverAck:
                    let token = try reader.token()
                    packet = .ack(token: token, try reader.ack())
                case PacketType.pong:
                    let token = try reader.token()
                    packet = .pong(token: token, echo: try reader.u64())
                case PacketType.deliver:
                    let token = try reader.token()
                    let sequence = try reader.u64()
                    packet = .deliver(token: token, sequence: sequence, try reader.event())
                case PacketType.pathChallenge:
                    let token = try reader.token()
                    packet = .pathChallenge(token: token, challenge: try reader.u64())
                case ..<0x80:
                    throw .wrongDirection(type)
                default:
                    throw .unknownType(type)
                }
                try reader.finish()
                return packet
            }
        }.get()
    }

    /// The REFUSED (reason `unsupportedVersion`) a server sends back for a JOIN of another protocol
    /// version, or nil when `datagram` is not such a JOIN.
    ///
    /// Every version keeps the 4-byte header and starts the JOIN body with its u64 nonce, so the nonce can
    /// be echoed without understanding the rest. A version-1 JOIN gets its REFUSED with version byte 1
    /// (REFUSED has the same layout in both versions), so a version-1 client can tell its user why; any
    /// other version gets this version's. The reply is never longer than three times `datagram` (its text
    /// is cut to fit), so it cannot amplify. Other packets of an unknown version get no answer.
    public static func versionMismatchReply(to datagram: some Collection<UInt8>) -> [UInt8]? {
        let bytes = Array(datagram.prefix(RoomWire.headerSize + 8))
        guard bytes.count == RoomWire.headerSize + 8, datagram.count <= RoomWire.maxDatagramSize,
            bytes[0] == RoomWire.magic0, bytes[1] == RoomWire.magic1,
            bytes[2] != RoomWire.version, bytes[3] == PacketType.join
        else { return nil }
        let nonce = bytes[4...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        // ASCII, so cutting at a byte count cuts at a character boundary.
        let text = "this server speaks room protocol version \(RoomWire.version) only"
        let room = 3 * datagram.count - (RoomWire.headerSize + 8 + 1 + 2)
        guard
            var reply = try? encode(
                ServerPacket.refused(nonce: nonce, reason: .unsupportedVersion, text: String(text.prefix(room))))
        else {
            return nil
        }
        if bytes[2] == 1 { reply[2] = 1 }
        return reply
    }

    /// The nonce and text of a REFUSED in version 1 (whose REFUSED has this version's layout), as a
    /// version-1 server sends to a JOIN of this version; nil for anything else. A client uses it to
    /// tell its user that the server speaks an older version.
    public static func decodeVersionRefusal(_ datagram: some Collection<UInt8>) -> (nonce: UInt64, text: String)? {
        var bytes = Array(datagram.prefix(RoomWire.maxDatagramSize + 1))
        guard bytes.count > 3, bytes[2] == 1, bytes[3] == PacketType.refused else { return nil }
        bytes[2] = RoomWire.version
        guard case .refused(let nonce, .unsupportedVersion, let text)? = try? decodeServerPacket(bytes) else {
            return nil
        }
        return (nonce, text)
    }

    private static func withBuffer<R>(
        _ bytes: some Collection<UInt8>, _ body: (UnsafeRawBufferPointer) -> R
    ) -> R {
        if let result = bytes.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes(body)
    }
}

private func hex(_ byte: UInt8) -> String {
    byte < 0x10 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
}

struct ByteWriter {
    private(set) var bytes: [UInt8]

    init(type: UInt8) {
        bytes = [RoomWire.magic0, RoomWire.magic1, RoomWire.version, type]
        bytes.reserveCapacity(64)
    }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { integer(value) }
    mutating func u32(_ value: UInt32) { integer(value) }
    mutating func u64(_ value: UInt64) { integer(value) }

    private mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func token(_ token: SessionToken) {
        u64(token.high)
        u64(token.low)
    }

    mutating func ack(_ ack: Acknowledgement) {
        u64(ack.cumulative)
        u64(ack.selective)
    }

    mutating func string(_ string: String, _ field: StringField) throws(EncodeError) {
        let length = string.utf8.count
        guard length <= field.maxBytes else { throw .stringTooLong(field: field, length: length) }
        u16(UInt16(length))
        bytes.append(contentsOf: string.utf8)
    }

    /// Zero bytes until the datagram is `size` bytes long; nothing when it is that long already.
    mutating func pad(to size: Int) {
        if bytes.count < size { bytes.append(contentsOf: repeatElement(0, count: size - bytes.count)) }
    }

    mutating func command(_ command: ClientCommand) throws(EncodeError) {
        switch command {
        case .say(let kind, let text):
            u8(CommandType.say)
            u8(kind.rawValue)
            try string(text, .text)
        case .privateMessage(let to, let text):
            u8(CommandType.privateMessage)
            try string(to, .nick)
            try string(text, .text)
        case .changeNick(let nick):
            u8(CommandType.nick)
            try string(nick, .nick)
        case .who:
            u8(CommandType.who)
        case .leave:
            u8(CommandType.leave)
        case .unrecognized(let code, let body):
            guard !CommandType.known.contains(code) else { throw .reservedCode(code) }
            u8(code)
            bytes.append(contentsOf: body)
        }
    }

    mutating func event(_ event: RoomEvent) throws(EncodeError) {
        switch event {
        case .message(let from, let kind, let text, let unixMillis, let flags):
            u8(EventType.message)
            u8(flags.rawValue)
            u8(kind.rawValue)
            u64(unixMillis)
            try string(from, .nick)
            try string(text, .text)
        case .privateMessage(let from, let to, let text, let unixMillis, let flags):
            u8(EventType.privateMessage)
            u8(flags.rawValue)
            u64(unixMillis)
            try string(from, .nick)
            try string(to, .nick)
            try string(text, .text)
        case .joined(let nick):
            u8(EventType.joined)
            try string(nick, .nick)
        case .left(let nick):
            u8(EventType.left)
            try string(nick, .nick)
        case .timedOut(let nick):
            u8(EventType.timedOut)
            try string(nick, .nick)
        case .nickChanged(let from, let to):
            u8(EventType.nickChanged)
            try string(from, .nick)
            try string(to, .nick)
        case .who(let names, let flags):
            guard names.count <= RoomWire.maxWhoNames else { throw .tooManyNames(count: names.count) }
            u8(EventType.who)
            u8(flags.rawValue)
            u8(UInt8(names.count))
            for name in names { try string(name, .nick) }
        case .notice(let code, let inReplyTo, let text):
            u8(EventType.notice)
            u8(code.rawValue)
            u64(inReplyTo)
            try string(text, .reason)
        case .unrecognized(let code, let body):
            guard !EventType.known.contains(code) else { throw .reservedCode(code) }
            u8(code)
            bytes.append(contentsOf: body)
        }
    }

    func finish() throws(EncodeError) -> [UInt8] {
        guard bytes.count <= RoomWire.maxDatagramSize else { throw .datagramTooLarge(size: bytes.count) }
        return bytes
    }
}

/// Reads fields off a datagram, checking each length before touching the bytes. The
/// initializer consumes magic and version; `u8()` then yields the type byte.
struct ByteReader {
    private let buffer: UnsafeRawBufferPointer
    private var offset = 0

    init(_ buffer: UnsafeRawBufferPointer) throws(DecodeError) {
        self.buffer = buffer
        guard buffer.count <= RoomWire.maxDatagramSize else { throw .datagramTooLarge(size: buffer.count) }
        guard try u8() == RoomWire.magic0, try u8() == RoomWire.magic1 else { throw .badMagic }
        let version = try u8()
        guard version == RoomWire.version else { throw .unsupportedVersion(version) }
    }

    private var remaining: Int { buffer.count - offset }

    private mutating func take(_ count: Int) throws(DecodeError) -> UnsafeRawBufferPointer {
        guard remaining >= count else { throw .truncated(offset: offset) }
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
        offset += count
        return slice
    }

    mutating func u8() throws(DecodeError) -> UInt8 { try take(1)[0] }
    mutating func u16() throws(DecodeError) -> UInt16 { try integer() }
    mutating func u32() throws(DecodeError) -> UInt32 { try integer() }
    mutating func u64() throws(DecodeError) -> UInt64 { try integer() }

    private mutating func integer<T: FixedWidthInteger>() throws(DecodeError) -> T {
        try take(MemoryLayout<T>.size).reduce(T.zero) { $0 << 8 | T($1) }
    }

    mutating func token() throws(DecodeError) -> SessionToken {
        let high = try u64()
        return SessionToken(high: high, low: try u64())
    }

    mutating func ack() throws(DecodeError) -> Acknowledgement {
        let cumulative = try u64()
        return Acknowledgement(cumulative: cumulative, selective: try u64())
    }

    mutating func string(_ field: StringField) throws(DecodeError) -> String {
        let length = Int(try u16())
        guard length <= field.maxBytes else { throw .stringTooLong(field: field, length: length) }
        let raw = try take(length)
        // Decoding repairs invalid sequences with U+FFFD, so the input was valid exactly when
        // the repaired string has the same bytes; this also keeps re-encoding byte-exact.
        let string = String(decoding: raw, as: UTF8.self)
        guard string.utf8.elementsEqual(raw) else { throw .invalidUTF8(field: field) }
        return string
    }

    /// Reads the padding up to a datagram of `size` bytes: it must be there in full, and all zero, so that
    /// the encoding stays canonical.
    mutating func padding(to size: Int) throws(DecodeError) {
        guard offset < size else { return }
        for byte in try take(size - offset) where byte != 0 { throw .nonzeroPadding }
    }

    private mutating func rest() -> [UInt8] {
        let bytes = Array(buffer[offset...])
        offset = buffer.count
        return bytes
    }

    mutating func command() throws(DecodeError) -> ClientCommand {
        let code = try u8()
        switch code {
        case CommandType.say:
            let kind = MessageKind(rawValue: try u8())
            return .say(kind: kind, text: try string(.text))
        case CommandType.privateMessage:
            let to = try string(.nick)
            return .privateMessage(to: to, text: try string(.text))
        case CommandType.nick:
            return .changeNick(try string(.nick))
        case CommandType.who:
            return .who
        case CommandType.leave:
            return .leave
        default:
            return .unrecognized(code: code, body: rest())
        }
    }

    mutating func event() throws(DecodeError) -> RoomEvent {
        let code = try u8()
        switch code {
        case EventType.message:
            let flags = EventFlags(rawValue: try u8())
            let kind = MessageKind(rawValue: try u8())
            let time = try u64()
            let from = try string(.nick)
            return .message(from: from, kind: kind, text: try string(.text), unixMillis: time, flags: flags)
        case EventType.privateMessage:
            let flags = EventFlags(rawValue: try u8())
            let time = try u64()
            let from = try string(.nick)
            let to = try string(.nick)
            return .privateMessage(from: from, to: to, text: try string(.text), unixMillis: time, flags: flags)
        case EventType.joined:
            return .joined(try string(.nick))
        case EventType.left:
            return .left(try string(.nick))
        case EventType.timedOut:
            return .timedOut(try string(.nick))
        case EventType.nickChanged:
            let from = try string(.nick)
            return .nickChanged(from: from, to: try string(.nick))
        case EventType.who:
            let flags = EventFlags(rawValue: try u8())
            let count = Int(try u8())
            var names: [String] = []
            names.reserveCapacity(count)
            for _ in 0..<count { names.append(try string(.nick)) }
            return .who(names: names, flags: flags)
        case EventType.notice:
            let code = NoticeCode(rawValue: try u8())
            let inReplyTo = try u64()
            return .notice(code: code, inReplyTo: inReplyTo, text: try string(.reason))
        default:
            return .unrecognized(code: code, body: rest())
        }
    }

    func finish() throws(DecodeError) {
        guard remaining == 0 else { throw .trailingBytes(count: remaining) }
    }
}
