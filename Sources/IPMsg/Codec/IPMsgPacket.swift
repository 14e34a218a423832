/// One IP Messenger datagram: `Version:PacketNo:User:Host:Command:Extra`, then optional NUL-separated extension
/// fields.
///
/// Pure value code: bytes in, bytes out, no I/O and no text decoding. Text fields stay bytes because their
/// encoding depends on the command (``IPMsgCommand/Options/utf8``) and on the peer (GBK for FeiQ, CP932 for
/// Japanese IP Messenger); the messenger decodes them.
///
/// Decoding is lenient where real clients differ and strict where a mistake would be acted on:
/// - The header is split at the first five ':' only, so Extra may hold ':' (a message such as "at 10:30").
/// - Extra runs to the first NUL; the fields after it are NUL-separated; the final NUL may be missing (the
///   tutorial's `1:100:will:will-pc:32:will broadcast` has none) and is added when encoding.
/// - Version is any bytes without ':' (FeiQ sends `1_lbt6_0#128#<MAC>#...`, iptux `1_iptux 0.8.3`); see
///   ``IPMsgVersion``.
/// - PacketNo and Command must be decimal numbers that fit 32 bits; otherwise the packet is malformed.
public struct IPMsgPacket: Hashable, Sendable {
    /// iptux cuts every datagram at 8,192 bytes; packets are kept within that.
    public static let maximumSize = 8_192
    /// The port every IP Messenger client uses.
    public static let defaultPort = 2425

    /// The Version field as sent (ASCII in practice).
    public var version: [UInt8]
    /// The sender's packet number; acknowledgements name it.
    public var packetNumber: UInt32
    /// The sender's login name (bytes in the sender's encoding).
    public var user: [UInt8]
    /// The sender's host name.
    public var host: [UInt8]
    /// Mode and options.
    public var command: IPMsgCommand
    /// Everything after the fifth ':' up to the first NUL: the nick (presence), the text (SENDMSG), a
    /// packet number (RECVMSG).
    public var extra: [UInt8]
    /// The NUL-separated fields after Extra: the group on presence packets, file entries on SENDMSG with
    /// ``IPMsgCommand/Options/fileAttach``.
    public var extensions: [[UInt8]]

    /// Makes a packet.
    public init(
        version: [UInt8] = Array("1".utf8), packetNumber: UInt32, user: [UInt8], host: [UInt8],
        command: IPMsgCommand, extra: [UInt8] = [], extensions: [[UInt8]] = []
    ) {
        self.version = version
        self.packetNumber = packetNumber
        self.user = user
        self.host = host
        self.command = command
        self.extra = extra
        self.extensions = extensions
    }

    /// Why bytes are not a packet, or a packet cannot be sent.
    public enum CodecError: Error, Hashable, Sendable, CustomStringConvertible {
        /// Fewer than four ':' in the header.
        case missingFields
        /// PacketNo is not a decimal number below 2^32.
        case badPacketNumber
        /// Command is not a decimal number below 2^32.
        case badCommand
        /// A field holds a byte it cannot carry (':' in Version, User or Host; NUL anywhere but as separator).
        case forbiddenByte(field: String, byte: UInt8)
        /// The encoded packet is over ``IPMsgPacket/maximumSize`` bytes.
        case tooLarge(Int)

        public var description: String {
            switch self {
            case .missingFields: return "not an IP Messenger packet (fewer than 5 ':'-separated fields)"
            case .badPacketNumber: return "the packet number is not a decimal number"
            case .badCommand: return "the command is not a decimal number"
            case .forbiddenByte(let field, let byte):
                return "the \(field) field cannot hold byte 0x\(String(byte, radix: 16))"
            case .tooLarge(let size):
                return "the packet would be \(size) bytes; IP Messenger clients take at most \(IPMsgPacket.maximumSize)"
            }
        }
    }

    /// Decodes one datagram.
    ///
    /// A header with exactly four ':' (no Extra at all) decodes with an empty Extra, as the clients' own parsers
    /// do. Throws ``CodecError`` for anything else that is not a packet.
    public static func decode(_ bytes: some Collection<UInt8>) throws(CodecError) -> IPMsgPacket {
        let bytes = Array(bytes)
        let nul = bytes.firstIndex(of: 0) ?? bytes.endIndex
        var fields: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index < nul && fields.count < 5 {
            if bytes[index] == UInt8(ascii: ":") {
                fields.append(bytes[start..<index])
                start = index + 1
            }
            index += 1
        }
        let extra: ArraySlice<UInt8>
        if fields.count == 5 {
            extra = bytes[start..<nul]
        } else if fields.count == 4 {
            fields.append(bytes[start..<nul])
            extra = []
        } else {
            throw .missingFields
        }
        guard let number = decimal(fields[1]) else { throw .badPacketNumber }
        guard let command = decimal(fields[4]) else { throw .badCommand }

        var extensions: [[UInt8]] = []
        if nul < bytes.endIndex {
            var rest = bytes[(nul + 1)...]
            // The last field's NUL is optional: a trailing NUL ends the list rather than starting an empty field.
            if rest.last == 0 { rest = rest.dropLast() }
            if nul + 1 < bytes.endIndex {
                extensions = rest.split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
            }
        }
        return IPMsgPacket(
            version: Array(fields[0]), packetNumber: number, user: Array(fields[2]), host: Array(fields[3]),
            command: IPMsgCommand(rawValue: command), extra: Array(extra), extensions: extensions)
    }

    /// Encodes the packet: header, Extra, NUL, then each extension field followed by a NUL.
    ///
    /// Throws when a field holds a byte it cannot carry (so the receiver would split it differently) or the result
    /// is over ``maximumSize``.
    public func encode() throws(CodecError) -> [UInt8] {
        for (name, field) in [("version", version), ("user", user), ("host", host)] {
            if let bad = field.first(where: { $0 == UInt8(ascii: ":") || $0 == 0 }) {
                throw .forbiddenByte(field: name, byte: bad)
            }
        }
        if extra.contains(0) { throw .forbiddenByte(field: "extra", byte: 0) }
        if extensions.contains(where: { $0.contains(0) }) { throw .forbiddenByte(field: "extension", byte: 0) }
        var out: [UInt8] = []
        out.reserveCapacity(64 + extra.count + extensions.reduce(0) { $0 + $1.count + 1 })
        out += version
        out += Array(":\(packetNumber):".utf8)
        out += user
        out.append(UInt8(ascii: ":"))
        out += host
        out += Array(":\(command.rawValue):".utf8)
        out += extra
        out.append(0)
        for field in extensions {
            out += field
            out.append(0)
        }
        guard out.count <= Self.maximumSize else { throw .tooLarge(out.count) }
        return out
    }

    /// 1-10 decimal digits with a value below 2^32.
    static func decimal(_ digits: ArraySlice<UInt8>) -> UInt32? {
        guard !digits.isEmpty, digits.count <= 10 else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value <= UInt64(UInt32.max) ? UInt32(value) : nil
    }
}

extension IPMsgPacket {
    /// For RECVMSG (and READMSG, ANSREADMSG): the acknowledged packet number, decimal in Extra.
    public var acknowledgedNumber: UInt32? {
        let trimmed = extra.prefix { $0 != UInt8(ascii: " ") }
        return Self.decimal(trimmed[...])
    }

    /// For presence packets: the group, the first extension field (empty when absent).
    public var group: [UInt8] { extensions.first ?? [] }

    /// The encoding the sender declares in an extension field (iptux adds `utf-8` as its third), lower-cased; nil
    /// when it declares none.
    public var declaredEncoding: String? {
        guard command.mode == .entry || command.mode == .answerEntry || command.mode == .absence else { return nil }
        for field in extensions.dropFirst() {
            let text = String(decoding: field, as: UTF8.self).lowercased()
            if ["utf-8", "utf8", "gbk", "gb18030", "gb2312", "cp936", "cp932", "shift_jis", "shift-jis"].contains(text)
            {
                return text
            }
        }
        return nil
    }
}
