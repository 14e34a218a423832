#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import UDPKit

/// A reply built from a template such as `Hello, {text}!` — the seeds' greeting server.
///
/// Placeholders: `{text}` the request's bytes as they are, `{hex}` the request in hex, `{from}` the sender's IP,
/// `{port}` the sender's port, `{time}` the receive time (ISO 8601, UTC), `{count}` the number of this request
/// (from 1), `{length}` the request's length. `{{` and `}}` are literal braces. Literal text is encoded with the
/// template's encoding; `{text}` inserts the request's bytes unchanged, so any encoding round-trips exactly.
public struct ReplyTemplate: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case literal([UInt8])
        case text, hex, from, port, time, count, length
    }

    let parts: [Part]
    /// The template as written.
    public let source: String

    /// Parses `template`, encoding its literal text with `encoding`.
    /// - Throws: `TemplateError` for an unknown placeholder or an unclosed brace; `PayloadError` when literal
    ///   text cannot be encoded.
    public init(_ template: String, encoding: TextEncoding = .utf8) throws {
        source = template
        var parts: [Part] = []
        var literal = ""
        var index = template.startIndex
        func flush() throws {
            if !literal.isEmpty { parts.append(.literal(try encoding.encode(literal))) }
            literal = ""
        }
        while index < template.endIndex {
            let c = template[index]
            let next = template.index(after: index)
            if c == "{", next < template.endIndex, template[next] == "{" {
                literal.append("{"); index = template.index(after: next); continue
            }
            if c == "}", next < template.endIndex, template[next] == "}" {
                literal.append("}"); index = template.index(after: next); continue
            }
            if c == "}" { throw TemplateError(message: "unmatched '}' in reply template (write }} for a literal brace)") }
            if c == "{" {
                guard let close = template[next...].firstIndex(of: "}") else {
                    throw TemplateError(message: "unclosed '{' in reply template (write {{ for a literal brace)")
                }
                let name = String(template[next..<close])
                let part: Part
                switch name {
                case "text": part = .text
                case "hex": part = .hex
                case "from": part = .from
                case "port": part = .port
                case "time": part = .time
                case "count": part = .count
                case "length": part = .length
                default:
                    throw TemplateError(message: "unknown placeholder {\(name)} in reply template (use {text}, {hex}, {from}, {port}, {time}, {count}, {length})")
                }
                try flush()
                parts.append(part)
                index = template.index(after: close)
                continue
            }
            literal.append(c)
            index = next
        }
        try flush()
        self.parts = parts
    }

    /// The reply to `datagram`, the `count`-th request.
    public func render(_ datagram: Datagram, count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(datagram.payload.readableBytes + 32)
        for part in parts {
            switch part {
            case .literal(let bytes): out += bytes
            case .text: out += datagram.payload.readableBytesView
            case .hex: out += Array(Hex.encode(datagram.payload.readableBytesView).utf8)
            case .from: out += Array((datagram.sender.ip ?? datagram.sender.path ?? "").utf8)
            case .port: out += Array((datagram.sender.port.map(String.init) ?? "").utf8)
            case .time: out += Array(DatagramFormatter.isoTime(datagram.receivedAt).utf8)
            case .count: out += Array(String(count).utf8)
            case .length: out += Array(String(datagram.payload.readableBytes).utf8)
            }
        }
        return out
    }
}

/// A malformed reply template.
public struct TemplateError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, in one line.
    public var message: String
    public var description: String { message }
}
