/// Rendering of untrusted text (for example a received datagram) so it can be printed on a terminal without the
/// terminal interpreting any of it.
public enum TerminalText {
    /// Makes untrusted text safe to print on a terminal, on one line.
    ///
    /// Replaced by escapes (everything is processed per Unicode scalar):
    /// - C0 controls U+0000-001F: `\0` `\a` `\b` `\t` `\n` `\v` `\f` `\r` `\e` for NUL, BEL, BS, HT, LF, VT, FF, CR and
    ///   ESC, `\xNN` (two lower-case hex digits) for the others;
    /// - DEL U+007F: `\x7f`;
    /// - C1 controls U+0080-009F: `\u{NN}` (lower-case hex, e.g. `\u{9b}`);
    /// - Unicode bidi controls U+061C, U+200E, U+200F, U+202A-202E and U+2066-2069: `\u{NNNN}` (lower-case hex, e.g.
    ///   `\u{202e}`), so they cannot reorder the rest of the line;
    /// - the line and paragraph separators U+2028 and U+2029: `\u{2028}`, `\u{2029}`, so text stays on one line
    ///   (some terminals and most viewers break the line there);
    /// - backslash: `\\`, so the output is unambiguous (a literal `\n` in the input renders as `\\n`).
    ///
    /// Everything else (all other printable Unicode, CJK, emoji, combining marks) is kept as is. The escapes use the
    /// syntax ``Escapes/bytes(from:encoding:)`` understands, so for UTF-8 the output can be turned back into the
    /// original bytes. A string with nothing to escape is returned unchanged, after a scan that does not allocate.
    public static func escape(_ text: String) -> String {
        render(text, keepLines: false, escapeBackslash: true)
    }

    /// Same as ``escape(_:)``, but keeps "\n" (LF) as a real newline and "\t" as a real tab, for multi-line display.
    ///
    /// Everything else, including "\r" (so "\r\n" renders as `\r` followed by a real newline), is escaped exactly as by
    /// ``escape(_:)``.
    public static func escapeKeepingLines(_ text: String) -> String {
        render(text, keepLines: true, escapeBackslash: true)
    }

    // MARK: - Implementation

    /// Shared implementation; `escapeBackslash: false` is used for quoting user text inside error messages.
    static func render(_ text: String, keepLines: Bool, escapeBackslash: Bool) -> String {
        guard needsEscaping(text, keepLines: keepLines, escapeBackslash: escapeBackslash) else { return text }

        let scalars = text.unicodeScalars
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        var runStart = scalars.startIndex
        var index = runStart
        while index < scalars.endIndex {
            let value = scalars[index].value
            let next = scalars.index(after: index)
            if isEscaped(value, keepLines: keepLines, escapeBackslash: escapeBackslash) {
                if runStart < index {
                    out.append(contentsOf: Substring(scalars[runStart..<index]))
                }
                appendEscape(for: value, to: &out)
                runStart = next
            }
            index = next
        }
        if runStart < scalars.endIndex {
            out.append(contentsOf: Substring(scalars[runStart...]))
        }
        return out
    }

    /// Fast check without allocation: first a byte scan for bytes that can start something that needs escaping, then, only
    /// if one is seen, an exact per-scalar check.
    private static func needsEscaping(_ text: String, keepLines: Bool, escapeBackslash: Bool) -> Bool {
        var suspicious = false
        for byte in text.utf8 {
            // < 0x20: C0; 0x5C: backslash; 0x7F: DEL; 0xC2: lead byte of U+0080-00BF (C1);
            // 0xD8: lead byte of U+061C; 0xE2: lead byte of U+2000-2FFF (bidi controls).
            if byte < 0x20 || byte == 0x5C || byte == 0x7F || byte == 0xC2 || byte == 0xD8 || byte == 0xE2 {
                suspicious = true
                break
            }
        }
        guard suspicious else { return false }
        for scalar in text.unicodeScalars
        where isEscaped(scalar.value, keepLines: keepLines, escapeBackslash: escapeBackslash) {
            return true
        }
        return false
    }

    @inline(__always)
    private static func isEscaped(_ value: UInt32, keepLines: Bool, escapeBackslash: Bool) -> Bool {
        switch value {
        case 0x0A, 0x09:
            return !keepLines
        case 0x5C:
            return escapeBackslash
        case 0x00...0x1F, 0x7F, 0x80...0x9F:
            return true
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069, 0x2028, 0x2029:
            return true
        default:
            return false
        }
    }

    private static func appendEscape(for value: UInt32, to out: inout String) {
        switch value {
        case 0x00: out += "\\0"
        case 0x07: out += "\\a"
        case 0x08: out += "\\b"
        case 0x09: out += "\\t"
        case 0x0A: out += "\\n"
        case 0x0B: out += "\\v"
        case 0x0C: out += "\\f"
        case 0x0D: out += "\\r"
        case 0x1B: out += "\\e"
        case 0x5C: out += "\\\\"
        case 0x00...0x1F, 0x7F:
            out += "\\x"
            appendHex(value, minimumDigits: 2, to: &out)
        default:
            out += "\\u{"
            appendHex(value, minimumDigits: 2, to: &out)
            out += "}"
        }
    }

    private static func appendHex(_ value: UInt32, minimumDigits: Int, to out: inout String) {
        let hex = String(value, radix: 16, uppercase: false)
        if hex.count < minimumDigits {
            out += String(repeating: "0", count: minimumDigits - hex.count)
        }
        out += hex
    }
}
