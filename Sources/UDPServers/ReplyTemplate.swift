import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A reply built from a template such as `Hello, {text}!` — the classic Python greeting server's reply.
///
/// Placeholders: `{text}` the request's bytes as they are, `{hex}` the request in hex, `{from}` the sender's IP,
/// `{port}` the sender's port, `{time}` the receive time (ISO 8601, UTC), `{count}` the number of this request
/// (from 1), `{length}` the request's length. `{{` and `}}` are literal braces. Literal text is encoded with the
/// template's encoding; `{text}` inserts the request's bytes unchanged, so any encoding round-trips exactly.
public struct ReplyTemplate: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case literal([UInt8])
        case text, hex, from, port, time, count, length
        /// `{1}`...`{9}`: a regex rule's capture group.
        case group(Int)
    }

    let parts: [Part]
    /// The template as written.
    public let source: String
    /// The highest capture group the template uses (`{1}`...`{9}`), 0 for none.
    public let highestGroup: Int

    /// Parses `template`, encoding its literal text with `encoding`. `groups` is how many capture groups `{1}`...
    /// may refer to (a regex rule's); 0 for a plain reply.
    /// - Throws: `TemplateError` for an unknown placeholder, a group beyond `groups`, or a brace out of place;
    ///   `PayloadError` when literal text cannot be encoded.
    public init(_ template: String, encoding: TextEncoding = .utf8, groups: Int = 0) throws {
        source = template
        var parts: [Part] = []
        var highest = 0
        for token in try TemplateSyntax.tokens(template, kind: "reply") {
            switch token {
            case .literal(let text): parts.append(.literal(try encoding.encode(text)))
            case .placeholder(let name):
                switch name {
                case "text": parts.append(.text)
                case "hex": parts.append(.hex)
                case "from": parts.append(.from)
                case "port": parts.append(.port)
                case "time": parts.append(.time)
                case "count": parts.append(.count)
                case "length": parts.append(.length)
                case "1", "2", "3", "4", "5", "6", "7", "8", "9":
                    let group = Int(name)!
                    guard group <= groups else {
                        throw TemplateError(
                            message: groups == 0
                                ? "{\(name)} in reply template: capture groups need a regex: rule"
                                : "{\(name)} in reply template: the regex has only \(groups) capture group\(groups == 1 ? "" : "s")"
                        )
                    }
                    highest = max(highest, group)
                    parts.append(.group(group))
                default:
                    let shown = TerminalText.escape(name)
                    throw TemplateError(
                        message:
                            "unknown placeholder {\(shown)} in reply template (use {text}, {hex}, {from}, {port}, {time}, {count}, {length}\(groups > 0 ? ", {1}..{\(min(groups, 9))}" : ""))"
                    )
                }
            }
        }
        self.parts = parts
        self.highestGroup = highest
    }

    /// The reply to `datagram`, the `count`-th request.
    /// `groups[i]` is the text of capture group i + 1 (nil when it did not take part in the match).
    public func render(_ datagram: Datagram, count: Int, groups: [[UInt8]?] = []) -> [UInt8] {
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
            case .group(let n): if n <= groups.count, let bytes = groups[n - 1] { out += bytes }
            }
        }
        return out
    }
}
