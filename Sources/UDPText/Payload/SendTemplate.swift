#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A payload that changes with every datagram sent (`udp send --template`, `udp request --template`).
///
/// Placeholders: `{counter}` the datagram's number (1, 2, 3...), `{time}` the send time (ISO 8601, UTC, ms),
/// `{unixtime}` the send time in whole seconds since 1970, `{random:N}` N random bytes written as 2N hex digits
/// (N from 1 to 1024), `{hex:48 69}` those bytes themselves. `{{` and `}}` are literal braces. Literal text is encoded
/// with the template's encoding. The syntax is the reply templates' (`TemplateSyntax`).
public struct SendTemplate: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case literal([UInt8])
        case counter, time, unixtime
        case random(Int)
    }

    let parts: [Part]
    /// The template as written.
    public let source: String

    /// Parses `template`, encoding its literal text with `encoding`.
    /// - Throws: `TemplateError` for an unknown placeholder, a bad `{random:N}` or `{hex:...}`, or a brace out of
    ///   place; `PayloadError` when literal text cannot be encoded.
    public init(_ template: String, encoding: TextEncoding = .utf8) throws {
        source = template
        var parts: [Part] = []
        func add(_ bytes: [UInt8]) {
            if case .literal(let before)? = parts.last {
                parts[parts.count - 1] = .literal(before + bytes)
            } else if !bytes.isEmpty {
                parts.append(.literal(bytes))
            }
        }
        for token in try TemplateSyntax.tokens(template, kind: "send") {
            switch token {
            case .literal(let text): add(try encoding.encode(text))
            case .placeholder("counter"): parts.append(.counter)
            case .placeholder("time"): parts.append(.time)
            case .placeholder("unixtime"): parts.append(.unixtime)
            case .placeholder(let name) where name.hasPrefix("random:"):
                guard let n = Int(name.dropFirst("random:".count)), (1...1024).contains(n) else {
                    throw TemplateError(
                        message: "{\(name)} in send template: N in {random:N} must be a number of bytes from 1 to 1024")
                }
                parts.append(.random(n))
            case .placeholder(let name) where name.hasPrefix("hex:"):
                do {
                    add(try Hex.parse(String(name.dropFirst("hex:".count))))
                } catch {
                    throw TemplateError(message: "{\(name)} in send template: \(error)")
                }
            case .placeholder(let name):
                throw TemplateError(
                    message:
                        "unknown placeholder {\(TerminalText.render(name, keepLines: false, escapeBackslash: false))} in send template (use {counter}, {time}, {unixtime}, {random:N}, {hex:...})"
                )
            }
        }
        self.parts = parts
    }

    /// Whether every datagram is the same (no counter, time or random placeholder).
    public var isConstant: Bool { parts.allSatisfy { if case .literal = $0 { return true } else { return false } } }

    /// The payload of the `counter`-th datagram, sent at `now`.
    public func render<R: RandomNumberGenerator>(counter: Int, now: Date = Date(), random: inout R) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts {
            switch part {
            case .literal(let bytes): out += bytes
            case .counter: out += Array(String(counter).utf8)
            case .time: out += Array(DatagramFormatter.isoTime(now).utf8)
            case .unixtime: out += Array(String(Int(now.timeIntervalSince1970.rounded(.down))).utf8)
            case .random(let n):
                let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &random) }
                out += Array(Hex.encode(bytes).utf8)
            }
        }
        return out
    }

    /// The payload of the `counter`-th datagram, sent at `now`, with the system's random numbers.
    public func render(counter: Int, now: Date = Date()) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return render(counter: counter, now: now, random: &generator)
    }
}
