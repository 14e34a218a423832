/// Backslash escapes in messages typed on a command line.
public enum Escapes {
    /// Turns a message typed on a command line into bytes.
    ///
    /// Text is encoded with `encoding`. These escapes are processed:
    /// - `\n` `\r` `\t` `\0` (NUL) `\\` `\"` `\'` `\a` (BEL) `\b` (BS) `\e` (ESC) `\f` (FF) `\v` (VT): the character,
    ///   encoded with `encoding` like the surrounding text. `\0` is always a single NUL: there are no octal escapes, so
    ///   `\012` is NUL followed by "12".
    /// - `\xNN` with exactly two hex digits (either case): that raw byte, inserted as is, not encoded (`\xff` is the
    ///   single byte 0xff in every encoding).
    /// - `\u{N...}` with 1 to 8 hex digits naming a Unicode scalar (not a surrogate, at most 10FFFF): that character,
    ///   encoded with `encoding` (`\u{4f60}` is e4 bd a0 in utf8 and c4 e3 in gbk).
    ///
    /// Text without any backslash is simply encoded. The output of ``TerminalText/escape(_:)`` uses only these escapes,
    /// so for UTF-8 it turns back into the original bytes.
    ///
    /// - Throws: ``PayloadError/invalidEscape(_:position:)`` for an unknown escape (`\q`), a malformed one (`\x4`,
    ///   `\xg0`, `\u1234`, `\u{}`, `\u{110000}`, `\u{d800}`), or a trailing lone backslash, with the 0-based `Character`
    ///   position of its backslash; ``PayloadError/unencodable(_:encoding:)`` when the text (or a `\u{...}` character)
    ///   cannot be represented in `encoding`.
    public static func bytes(from text: String, encoding: TextEncoding = .utf8) throws(PayloadError) -> [UInt8] {
        guard text.utf8.contains(UInt8(ascii: "\\")) else {
            return try encoding.encode(text)
        }

        let scalars = text.unicodeScalars
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var pending = ""  // text waiting to be encoded
        var index = scalars.startIndex
        let end = scalars.endIndex

        while index < end {
            let scalar = scalars[index]
            guard scalar == "\\" else {
                pending.unicodeScalars.append(scalar)
                index = scalars.index(after: index)
                continue
            }

            let escapeStart = index
            let kindIndex = scalars.index(after: index)
            guard kindIndex < end else {
                throw .invalidEscape("\\", position: PayloadError.characterPosition(of: escapeStart, in: text))
            }
            var next = scalars.index(after: kindIndex)

            func invalid(through last: String.Index) -> PayloadError {
                let upper = last < end ? scalars.index(after: last) : end
                return .invalidEscape(
                    String(Substring(scalars[escapeStart..<upper])),
                    position: PayloadError.characterPosition(of: escapeStart, in: text))
            }

            switch scalars[kindIndex] {
            case "n": pending += "\n"
            case "r": pending += "\r"
            case "t": pending += "\t"
            case "0": pending += "\0"
            case "\\": pending += "\\"
            case "\"": pending += "\""
            case "'": pending += "'"
            case "a": pending += "\u{07}"
            case "b": pending += "\u{08}"
            case "e": pending += "\u{1B}"
            case "f": pending += "\u{0C}"
            case "v": pending += "\u{0B}"
            case "x":
                var value: UInt8 = 0
                for _ in 0..<2 {
                    guard next < end else { throw invalid(through: end) }
                    guard let digit = hexDigit(scalars[next]) else { throw invalid(through: next) }
                    value = value << 4 | UInt8(digit)
                    next = scalars.index(after: next)
                }
                if !pending.isEmpty {
                    out += try encoding.encode(pending)
                    pending = ""
                }
                out.append(value)
            case "u":
                guard next < end else { throw invalid(through: end) }
                guard scalars[next] == "{" else { throw invalid(through: next) }
                // Find the closing brace (report the whole \u{...} when it is there but the content is wrong).
                var close = scalars.index(after: next)
                var value: UInt32 = 0
                var digitCount = 0
                var malformedAt: String.Index?
                while close < end, scalars[close] != "}" {
                    if let digit = hexDigit(scalars[close]), digitCount < 8 {
                        value = value << 4 | digit
                        digitCount += 1
                    } else if malformedAt == nil {
                        malformedAt = close
                    }
                    close = scalars.index(after: close)
                }
                guard close < end else {
                    // No closing brace: report up to the first bad character, or everything if none.
                    throw invalid(through: malformedAt ?? end)
                }
                guard malformedAt == nil, digitCount > 0, let decoded = Unicode.Scalar(value) else {
                    throw invalid(through: close)
                }
                pending.unicodeScalars.append(decoded)
                next = scalars.index(after: close)
            default:
                throw invalid(through: kindIndex)
            }
            index = next
        }

        if !pending.isEmpty {
            out += try encoding.encode(pending)
        }
        return out
    }

    @inline(__always)
    private static func hexDigit(_ scalar: Unicode.Scalar) -> UInt32? {
        switch scalar.value {
        case 0x30...0x39: return scalar.value - 0x30
        case 0x41...0x46: return scalar.value - 0x41 + 10
        case 0x61...0x66: return scalar.value - 0x61 + 10
        default: return nil
        }
    }
}
