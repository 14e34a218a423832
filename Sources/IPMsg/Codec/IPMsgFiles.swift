/// One file offered in a SENDMSG with ``IPMsgCommand/Options/fileAttach``: the entry
/// `fileID:name:size:mtime:attr:` (size, mtime and attr in hex, ':' in the name doubled) in the extension field
/// after the text. Entries are separated by BEL (`\a`), optionally followed by ':'.
public struct IPMsgFileEntry: Hashable, Sendable {
    /// The sender's number for the file, decimal on the wire.
    public var id: UInt32
    /// The file name exactly as sent (bytes in the packet's encoding). Check it with ``IPMsgFileName`` before
    /// using it as a path.
    public var name: [UInt8]
    /// Size in bytes.
    public var size: UInt64
    /// Modification time, Unix seconds.
    public var modified: UInt32
    /// Attributes: low 8 bits 1 regular file, 2 directory.
    public var attributes: UInt32

    /// A regular file (attribute type 1).
    public var isRegularFile: Bool { attributes & 0xFF == 1 }

    /// Makes an entry.
    public init(id: UInt32, name: [UInt8], size: UInt64, modified: UInt32, attributes: UInt32 = 1) {
        self.id = id
        self.name = name
        self.size = size
        self.modified = modified
        self.attributes = attributes
    }

    /// Encodes entries as one extension field: each `id:name:size:mtime:attr:` followed by BEL.
    /// Throws for an empty name (it would read back as an escaped ':') or a name holding NUL or BEL.
    public static func encode(_ entries: [IPMsgFileEntry]) throws(IPMsgPacket.CodecError) -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries {
            guard !entry.name.isEmpty else { throw .forbiddenByte(field: "file name", byte: UInt8(ascii: ":")) }
            if let bad = entry.name.first(where: { $0 == 0 || $0 == 7 }) {
                throw .forbiddenByte(field: "file name", byte: bad)
            }
            out += Array("\(entry.id):".utf8)
            for byte in entry.name {
                out.append(byte)
                if byte == UInt8(ascii: ":") { out.append(byte) }
            }
            out += Array(
                ":\(String(entry.size, radix: 16)):\(String(entry.modified, radix: 16)):\(String(entry.attributes, radix: 16)):"
                    .utf8)
            out.append(7)
        }
        return out
    }

    /// Decodes an extension field of entries. Stops at the first entry that does not parse (as iptux does) and
    /// returns the ones before it.
    public static func decode(_ field: [UInt8]) -> [IPMsgFileEntry] {
        var entries: [IPMsgFileEntry] = []
        var index = 0
        let colon = UInt8(ascii: ":")
        while index < field.count {
            if field[index] == colon {
                index += 1
                continue
            }
            guard let (entry, end) = decodeOne(field, from: index) else { break }
            entries.append(entry)
            index = end
            // Skip to past the separator.
            while index < field.count && field[index] != 7 { index += 1 }
            index += 1
        }
        return entries
    }

    private static func decodeOne(_ field: [UInt8], from start: Int) -> (IPMsgFileEntry, Int)? {
        let colon = UInt8(ascii: ":")
        var index = start
        func number(radix: Int) -> UInt64? {
            let begin = index
            while index < field.count && field[index] != colon && field[index] != 7 { index += 1 }
            guard index < field.count, field[index] == colon, index > begin, index - begin <= 16 else { return nil }
            let text = String(decoding: field[begin..<index], as: UTF8.self)
            index += 1
            return UInt64(text, radix: radix)
        }
        guard let id = number(radix: 10), id <= UInt64(UInt32.max) else { return nil }
        var name: [UInt8] = []
        while index < field.count {
            let byte = field[index]
            if byte == 7 { return nil }
            if byte == colon {
                if index + 1 < field.count && field[index + 1] == colon {
                    name.append(colon)
                    index += 2
                    continue
                }
                index += 1
                break
            }
            name.append(byte)
            index += 1
        }
        guard !name.isEmpty,
            let size = number(radix: 16),
            let modified = number(radix: 16), modified <= UInt64(UInt32.max)
        else { return nil }
        // The attribute may end at ':' or straight at the separator.
        let begin = index
        while index < field.count && field[index] != colon && field[index] != 7 { index += 1 }
        guard index > begin, index - begin <= 8,
            let attributes = UInt32(String(decoding: field[begin..<index], as: UTF8.self), radix: 16)
        else { return nil }
        return (
            IPMsgFileEntry(id: UInt32(id), name: name, size: size, modified: UInt32(modified), attributes: attributes),
            index
        )
    }
}

/// The Extra of a GETFILEDATA request sent over TCP: `packetNo:fileID:offset`, all hex.
public struct IPMsgFileRequest: Hashable, Sendable {
    /// The packet number of the SENDMSG that offered the file.
    public var packetNumber: UInt32
    /// The file's id in that offer.
    public var fileID: UInt32
    /// Where to start, in bytes.
    public var offset: UInt64

    /// Makes a request.
    public init(packetNumber: UInt32, fileID: UInt32, offset: UInt64 = 0) {
        self.packetNumber = packetNumber
        self.fileID = fileID
        self.offset = offset
    }

    /// The Extra text.
    public var extra: [UInt8] {
        Array("\(String(packetNumber, radix: 16)):\(String(fileID, radix: 16)):\(String(offset, radix: 16))".utf8)
    }

    /// Parses an Extra; nil unless it is three hex numbers separated by ':' (extra fields after them are ignored).
    public init?(extra: [UInt8]) {
        let parts = extra.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0].count <= 8, parts[1].count <= 8, parts[2].count <= 16,
            let number = UInt32(String(decoding: parts[0], as: UTF8.self), radix: 16),
            let id = UInt32(String(decoding: parts[1], as: UTF8.self), radix: 16),
            let offset = UInt64(String(decoding: parts[2], as: UTF8.self), radix: 16)
        else { return nil }
        self.init(packetNumber: number, fileID: id, offset: offset)
    }
}

/// The rule for file names offered by a peer: a name is used only as a single path component inside the download
/// directory. Refused: empty names, `.` and `..`, anything holding '/' or '\' or NUL or another control character
/// (which also rules out absolute paths), names over 255 bytes.
public enum IPMsgFileName {
    /// Why a name is refused, or nil when it is safe as one path component.
    public static func problem(_ name: String) -> String? {
        if name.isEmpty { return "the name is empty" }
        if name == "." || name == ".." { return "the name is '\(name)'" }
        if name.utf8.count > 255 { return "the name is over 255 bytes" }
        if name.contains("/") || name.contains("\\") { return "the name holds a path separator" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "the name holds a control character"
        }
        return nil
    }
}
