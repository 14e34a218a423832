import NIOCore
import UDPKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Renders datagrams for people (one escaped line, or a hex dump) and for scripts (one JSON object per line).
///
/// Text from the network never reaches a terminal raw: it goes through `TerminalText` / `DecodedText.escaped`.
public struct DatagramFormatter: Sendable {
    /// How payloads are shown.
    public enum Style: String, Sendable, CaseIterable {
        /// Decoded, escaped text on the same line.
        case text
        /// A `hexdump -C` style dump under the header line.
        case hex
        /// One JSON object per datagram.
        case json
    }

    /// How payloads are shown.
    public var style: Style
    /// The encoding used to decode payload text.
    public var encoding: TextEncoding

    /// A formatter with the given style and encoding.
    public init(style: Style = .text, encoding: TextEncoding = .utf8) {
        self.style = style
        self.encoding = encoding
    }

    /// The rendering of `datagram`, ending in a newline.
    ///
    /// Text style: `12:00:01.234  127.0.0.1:51234  5 bytes  hello`; a cut datagram says `(truncated)` after its
    /// length, and one that came as a broadcast or to a multicast group says so after that, with the interface:
    /// `broadcast to 10.1.1.255 on eth0`. Hex style: the same header without the text, then the dump. JSON
    /// style: an object with the fields `time` (ISO 8601, UTC), `from` (IP or path), `port` (null for Unix
    /// sockets), `length`, `truncated`, `payload` (base64), `text` (only when the payload decodes in the
    /// encoding); when the datagram has an `arrival`: `to` (the destination IP), `cast` (`unicast`, `broadcast`
    /// or `multicast`) and `interface` (its name, or null); then `extra` in order.
    /// - Parameters:
    ///   - datagram: the datagram to show.
    ///   - event: what the datagram is, as one word (e.g. "reply"): shown as `reply from 1.2.3.4:5` in text/hex
    ///     style and as the first field, `"event"`, in JSON. Nil for plain received datagrams.
    ///   - extra: additional fields, shown as `key=value` in text/hex style and as JSON fields.
    public func render(_ datagram: Datagram, event: String? = nil, extra: [(key: String, value: JSONText.Value)] = [])
        -> String
    {
        let bytes = datagram.payload.readableBytesView
        switch style {
        case .json:
            var fields: [(key: String, value: JSONText.Value)] = []
            if let event { fields.append(("event", .string(event))) }
            fields.append(("time", .string(Self.isoTime(datagram.receivedAt))))
            // A Unix-domain sender: its path, "@name" (abstract) or "(unbound)".
            fields.append(("from", .string(datagram.sender.ip ?? datagram.sender.description)))
            fields.append(("port", datagram.sender.port.map { .int($0) } ?? .null))
            fields.append(("length", .int(bytes.count)))
            fields.append(("truncated", .bool(datagram.truncated)))
            fields.append(("payload", .string(Data(bytes).base64EncodedString())))
            if let text = encoding.decode(bytes).string { fields.append(("text", .string(text))) }
            if let arrival = datagram.arrival {
                fields.append(("to", .string(arrival.destination.ip ?? "")))
                fields.append(("cast", .string(arrival.kind.rawValue)))
                fields.append(("interface", arrival.interfaceName.map { .string($0) } ?? .null))
            }
            fields.append(contentsOf: extra)
            return JSONText.object(fields) + "\n"
        case .text, .hex:
            var header = Self.clockTime(datagram.receivedAt) + "  "
            if let event { header += event + " from " }
            header += TerminalText.escape(datagram.sender.description)
            header += "  \(bytes.count) byte\(bytes.count == 1 ? "" : "s")"
            if datagram.truncated { header += " (truncated)" }
            if let arrival = datagram.arrival, arrival.kind != .unicast {
                // Unicast is the ordinary case and stays unmarked, so that plain listening reads as before.
                header += "  \(arrival.kind.rawValue) to \(arrival.destination.ip ?? "?")"
                header += " on " + TerminalText.escape(arrival.interfaceName ?? "interface \(arrival.interfaceIndex)")
            }
            for (key, value) in extra { header += "  \(key)=\(Self.plain(value))" }
            if style == .hex {
                return header + "\n" + Hex.dump(bytes)
            }
            return header + "  " + encoding.decode(bytes).escaped + "\n"
        }
    }

    private static func plain(_ value: JSONText.Value) -> String {
        switch value {
        case .string(let s): return TerminalText.escape(s)
        case .int(let n): return String(n)
        case .double(let d): return String(d)
        case .bool(let b): return String(b)
        case .null: return "-"
        case .raw(let json): return TerminalText.escape(json)
        }
    }

    /// Local wall-clock time with milliseconds: `23:10:31.123`.
    public static func clockTime(_ date: Date) -> String {
        let (parts, millis) = split(date, utc: false)
        return pad(Int(parts.tm_hour)) + ":" + pad(Int(parts.tm_min)) + ":" + pad(Int(parts.tm_sec)) + "."
            + pad(millis, 3)
    }

    /// UTC time in ISO 8601 with milliseconds: `2026-11-20T23:10:31.123Z`.
    public static func isoTime(_ date: Date) -> String {
        let (parts, millis) = split(date, utc: true)
        return "\(parts.tm_year + 1900)-" + pad(Int(parts.tm_mon) + 1) + "-" + pad(Int(parts.tm_mday)) + "T"
            + pad(Int(parts.tm_hour)) + ":" + pad(Int(parts.tm_min)) + ":" + pad(Int(parts.tm_sec)) + "."
            + pad(millis, 3) + "Z"
    }

    private static func split(_ date: Date, utc: Bool) -> (tm, Int) {
        let seconds = date.timeIntervalSince1970
        var t = time_t(seconds.rounded(.down))
        var parts = tm()
        if utc { gmtime_r(&t, &parts) } else { localtime_r(&t, &parts) }
        return (parts, Int((seconds - seconds.rounded(.down)) * 1000))
    }

    private static func pad(_ n: Int, _ width: Int = 2) -> String {
        let s = String(n)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
