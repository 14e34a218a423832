/// Minimal JSON writing with a fixed field order, so `--json` output has stable, diffable lines.
public enum JSONText {
    /// A JSON value for `object(_:)`.
    public enum Value: Sendable, Equatable {
        /// A string (escaped on output).
        case string(String)
        /// An integer.
        case int(Int)
        /// A floating-point number (non-finite values are written as null).
        case double(Double)
        /// true / false.
        case bool(Bool)
        /// null.
        case null
        /// JSON text written as is, such as a nested `object(_:)`; the caller vouches that it is valid JSON.
        case raw(String)
    }

    /// A JSON string literal for `text`: quotes, backslashes and all control characters (U+0000-001F, U+007F-009F,
    /// U+2028, U+2029) are escaped, and so are the Unicode bidi controls (U+061C, U+200E, U+200F, U+202A-202E,
    /// U+2066-2069, as `\u202e` and so on), so the result is safe on one line and on a terminal, and a value cannot
    /// reorder what is shown after it. The escapes decode to the same text in any JSON parser.
    public static func quote(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                let v = scalar.value
                if v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || isBidiControl(v) {
                    let hex = String(v, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
        return out
    }

    private static func isBidiControl(_ value: UInt32) -> Bool {
        switch value {
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    /// One JSON object on one line, fields in the given order.
    public static func object(_ fields: KeyValuePairs<String, Value>) -> String {
        object(Array(fields))
    }

    /// One JSON object on one line, fields in the given order.
    public static func object(_ fields: [(key: String, value: Value)]) -> String {
        "{" + fields.map { quote($0.key) + ":" + text($0.value) }.joined(separator: ",") + "}"
    }

    /// One JSON array on one line, values in the given order.
    public static func array(_ values: [Value]) -> String {
        "[" + values.map(text).joined(separator: ",") + "]"
    }

    private static func text(_ value: Value) -> String {
        switch value {
        case .string(let s): return quote(s)
        case .int(let n): return String(n)
        case .raw(let json): return json
        case .double(let d): return d.isFinite ? String(d) : "null"
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        }
    }
}
