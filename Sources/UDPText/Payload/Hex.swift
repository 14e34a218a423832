/// Hex parsing and formatting for payloads.
public enum Hex {
    /// Parses hex the way people paste it.
    ///
    /// Accepted:
    /// - hex digits `0-9`, `a-f`, `A-F` (ASCII only);
    /// - separators anywhere, ignored: whitespace (spaces, tabs, newlines, "\r\n", other Unicode whitespace), `:`, `-`
    ///   and `,`;
    /// - an optional `0x` / `0X` prefix at the start of the input and at the start of every group (a group starts at the
    ///   beginning of the input and after any separator). A prefix with no digits after it contributes nothing.
    ///
    /// So `"48 69 0a"`, `"48:69:0A"`, `"4869"`, `"0x4869"`, `"0x48 0x69"`, `"0x48,0x69"` and `"48-69\n0a"` all work.
    /// Digits are taken in order after removing separators and prefixes, two per byte (`"4 8"` is `[0x48]`).
    /// Empty input, or input with only separators, gives `[]`.
    ///
    /// - Throws: ``PayloadError/invalidHexDigit(_:position:)`` for the first character that is neither a digit, a
    ///   separator nor a prefix (e.g. `g`, or an `x` that does not follow a `0` at the start of a group), with its
    ///   0-based position in `text` counted in `Character`s; ``PayloadError/oddHexDigits(count:)`` when everything is
    ///   valid but the number of digits is odd.
    public static func parse(_ text: String) throws(PayloadError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count / 2)
        var digitCount = 0
        var high: UInt8 = 0
        var atGroupStart = true
        var position = 0
        var index = text.startIndex
        let end = text.endIndex

        while index < end {
            let character = text[index]
            var next = text.index(after: index)

            if let value = hexValue(character) {
                if atGroupStart, value == 0, next < end, text[next] == "x" || text[next] == "X" {
                    // "0x" / "0X" prefix: skip both characters.
                    next = text.index(after: next)
                    position += 2
                    atGroupStart = false
                    index = next
                    continue
                }
                if digitCount & 1 == 0 {
                    high = value
                } else {
                    bytes.append(high << 4 | value)
                }
                digitCount += 1
                atGroupStart = false
            } else if character.isWhitespace || character == ":" || character == "-" || character == "," {
                atGroupStart = true
            } else {
                throw .invalidHexDigit(character, position: position)
            }
            position += 1
            index = next
        }

        if digitCount & 1 != 0 {
            throw .oddHexDigits(count: digitCount)
        }
        return bytes
    }

    /// Lower-case contiguous hex, two digits per byte, no separators: `[0x48, 0x69, 0x0a]` -> `"48690a"`.
    /// Empty input gives `""`.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let count = bytes.count
        guard count > 0 else { return "" }
        return String(unsafeUninitializedCapacity: count * 2) { buffer in
            var offset = 0
            for byte in bytes {
                buffer[offset] = digit(byte >> 4)
                buffer[offset + 1] = digit(byte & 0x0F)
                offset += 2
            }
            return offset
        }
    }

    /// A canonical hex + ASCII dump, byte for byte like the lines `hexdump -C` prints, for example
    /// `"00000000  48 65 6c 6c 6f 0a                                 |Hello.|\n"`.
    ///
    /// - 16 bytes per line; each line is an offset of at least 8 lower-case hex digits, two spaces, the bytes as two
    ///   lower-case hex digits each followed by a space, with one extra space after the 8th byte; a short last line is
    ///   padded with spaces so the `|` column lines up, followed by a space and the bytes between `|` and `|`, where
    ///   printable ASCII 0x20...0x7e is shown as itself and every other byte as `.` (the ASCII column is not padded).
    /// - Every line ends with "\n". Empty input gives `""`.
    /// - Unlike `hexdump`, the trailing line with the total length is not printed, and repeated lines are not collapsed
    ///   into `*` (every byte is shown, as with `hexdump -C -v`).
    public static func dump<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        if let dumped = bytes.withContiguousStorageIfAvailable({ dumpContiguous($0) }) {
            return dumped
        }
        return Array(bytes).withUnsafeBufferPointer { dumpContiguous($0) }
    }

    // MARK: - Implementation

    /// The lower-case ASCII hex digit for a nibble (0...15).
    @inline(__always)
    private static func digit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? nibble &+ 0x30 : nibble &+ 0x57
    }

    private static func dumpContiguous(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let count = bytes.count
        guard count > 0 else { return "" }
        let lineCount = (count + 15) / 16
        // Per line: offset (at most 16 digits), 2 spaces, 49 columns of hex, " |", the ASCII column, "|\n".
        let capacity = lineCount * (16 + 2 + 49 + 2 + 2) + count
        return String(unsafeUninitializedCapacity: capacity) { out in
            var o = 0
            var lineStart = 0
            while lineStart < count {
                let lineEnd = min(lineStart + 16, count)
                // Offset: at least 8 digits, more if needed.
                var width = 8
                while width < 16, lineStart >> (4 * width) != 0 { width += 1 }
                for shift in stride(from: 4 * (width - 1), through: 0, by: -4) {
                    out[o] = digit(UInt8(truncatingIfNeeded: lineStart >> shift) & 0x0F)
                    o += 1
                }
                out[o] = 0x20
                out[o + 1] = 0x20
                o += 2
                // Hex columns: "xx " per byte, an extra space before the 9th; missing bytes are blank.
                for column in 0..<16 {
                    if column == 8 {
                        out[o] = 0x20
                        o += 1
                    }
                    let index = lineStart + column
                    if index < lineEnd {
                        let byte = bytes[index]
                        out[o] = digit(byte >> 4)
                        out[o + 1] = digit(byte & 0x0F)
                    } else {
                        out[o] = 0x20
                        out[o + 1] = 0x20
                    }
                    out[o + 2] = 0x20
                    o += 3
                }
                out[o] = 0x20
                out[o + 1] = UInt8(ascii: "|")
                o += 2
                for index in lineStart..<lineEnd {
                    let byte = bytes[index]
                    out[o] = byte >= 0x20 && byte <= 0x7E ? byte : UInt8(ascii: ".")
                    o += 1
                }
                out[o] = UInt8(ascii: "|")
                out[o + 1] = UInt8(ascii: "\n")
                o += 2
                lineStart = lineEnd
            }
            return o
        }
    }

    @inline(__always)
    private static func hexValue(_ character: Character) -> UInt8? {
        guard let ascii = character.asciiValue, character.utf8.count == 1 else { return nil }
        switch ascii {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return ascii &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return ascii &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return ascii &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }
}
