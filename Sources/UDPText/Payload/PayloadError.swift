/// Errors for payload input that cannot be turned into bytes: malformed hex, unknown encoding names, characters an
/// encoding cannot represent, and malformed escape sequences.
///
/// `description` is always a single line that starts with a lower-case letter and says what is wrong and what to do
/// instead, e.g. `invalid hex digit 'g' at position 3 (use 0-9, a-f; ...)`. Any user text it quotes is made
/// terminal-safe first (control and bidi characters are shown as escapes), so the message can be printed as is and never
/// spans more than one line.
public enum PayloadError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Hex input contains a character that is neither a hex digit nor an accepted separator.
    ///
    /// `position` is the 0-based index of that character in the input string, counted in `Character`s (what a person
    /// sees, so "é" or "\r\n" count as one).
    case invalidHexDigit(Character, position: Int)

    /// Hex input has an odd number of hex digits, so the last byte would be incomplete.
    ///
    /// `count` is the number of hex digits after removing separators and `0x` prefixes.
    case oddHexDigits(count: Int)

    /// ``TextEncoding/init(name:)`` does not know the name (the associated value, as given). The description lists the
    /// accepted names.
    case unknownEncoding(String)

    /// `encoding` cannot represent the character, e.g. an emoji in gbk or shift-jis, or "€" in latin1.
    ///
    /// The character is the whole user-perceived character that contains the first unencodable Unicode scalar (so
    /// "e" + U+0301 in latin1 reports "é").
    case unencodable(Character, encoding: TextEncoding)

    /// A malformed escape sequence in text given to ``Escapes/bytes(from:encoding:)``.
    ///
    /// The string is the offending escape as written, starting at its backslash and ending at the first character that
    /// makes it invalid: `\q` (unknown), `\x4` (truncated at the end of input), `\x4g` (not a hex digit),
    /// `\u{110000}` (whole braced form when it is closed but its value is not a Unicode scalar). A trailing lone backslash
    /// is reported as the one-character string `\`. `position` is the 0-based index, in `Character`s, of the backslash
    /// in the input string.
    case invalidEscape(String, position: Int)

    /// A one-line, human-readable explanation that says what is wrong and how to fix it.
    public var description: String {
        switch self {
        case .invalidHexDigit(let character, let position):
            return "invalid hex digit '\(Self.quote(String(character)))' at position \(position)"
                + " (use 0-9, a-f; separate bytes with spaces, ':', '-' or ',')"
        case .oddHexDigits(let count):
            return "odd number of hex digits (\(count)): every byte needs exactly two digits (write 0a, not a)"
        case .unknownEncoding(let name):
            let names = TextEncoding.allCases.map(\.rawValue).joined(separator: ", ")
            return "unknown encoding '\(Self.quote(name))' (use one of: \(names))"
        case .unencodable(let character, let encoding):
            let scalars = character.unicodeScalars.map { Self.codePoint($0.value) }.joined(separator: " ")
            let hint: String
            switch encoding {
            case .utf8, .gb18030:
                hint = "send the bytes as \\xNN escapes instead"
            case .gbk, .shiftJIS, .latin1:
                hint = "use utf8 or gb18030, which can encode every character, or send the bytes as \\xNN escapes"
            }
            return "cannot encode '\(Self.quote(String(character)))' (\(scalars)) in \(encoding.rawValue) (\(hint))"
        case .invalidEscape(let text, let position):
            if text == "\\" {
                return
                    "lone backslash at the end of the input (position \(position)); write \\\\ for a literal backslash"
            }
            return "invalid escape '\(Self.quote(text))' at position \(position)"
                + " (use \\n \\r \\t \\0 \\\\ \\\" \\' \\a \\b \\e \\f \\v, \\xNN with exactly two hex digits,"
                + " or \\u{1F600}; write \\\\ for a literal backslash)"
        }
    }

    /// User text made safe for a one-line message: controls and bidi characters become escapes, backslashes stay as they
    /// are so that quoted escapes such as `\q` read naturally.
    private static func quote(_ text: String) -> String {
        TerminalText.render(text, keepLines: false, escapeBackslash: false)
    }

    /// "U+00E9", "U+1F600".
    private static func codePoint(_ value: UInt32) -> String {
        let hex = String(value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    // MARK: - Helpers shared by the payload parsers

    /// The 0-based `Character` offset of the character that contains `index` (any index of `text`'s views).
    static func characterPosition(of index: String.Index, in text: String) -> Int {
        var position = 0
        var current = text.startIndex
        while current < text.endIndex {
            let next = text.index(after: current)
            if index < next { return position }
            position += 1
            current = next
        }
        return position
    }

    /// The `Character` of `text` that contains the UTF-8 code unit at `utf8Offset`.
    static func character(in text: String, atUTF8Offset utf8Offset: Int) -> Character {
        let target = text.utf8.index(
            text.utf8.startIndex, offsetBy: min(max(0, utf8Offset), text.utf8.count))
        var current = text.startIndex
        while current < text.endIndex {
            let next = text.index(after: current)
            if target < next { return text[current] }
            current = next
        }
        return text.last ?? "\u{FFFD}"
    }
}
