#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import UDPKit
import UDPServers

/// One auto-reply rule of a listener: when an incoming payload matches, answer with the rendered template.
public struct AutoReplyRule: Sendable, Codable, Equatable {
    /// How `pattern` is compared with the payload.
    public enum Match: String, Sendable, Codable, CaseIterable {
        /// The payload, as UTF-8 text, equals the pattern.
        case exact
        /// The payload, as UTF-8 text, contains the pattern.
        case contains
        /// The pattern is a regular expression found anywhere in the payload's UTF-8 text; `{1}`...`{9}` in the
        /// reply insert its capture groups (`{0}` the whole match).
        case regex
        /// The payload's bytes start with the pattern's hex bytes.
        case hexPrefix = "hex-prefix"
    }

    /// How to compare.
    public var match: Match
    /// What to compare with.
    public var pattern: String
    /// The reply template: `udp echo --reply` placeholders (`{text}`, `{hex}`, `{from}`, `{port}`, `{time}`,
    /// `{count}`, `{length}`), plus capture groups for regex rules.
    public var reply: String

    /// A rule.
    public init(match: Match, pattern: String, reply: String) {
        self.match = match
        self.pattern = pattern
        self.reply = reply
    }
}

/// What answers datagrams automatically. The studio asks it for a reply and applies its own protections (loop
/// ports, broadcast/multicast, rate limit) to whatever it returns, so another rule engine can take its place.
public protocol ReplyRuleSet: Sendable {
    /// The reply to `datagram`, the `count`-th datagram the listener received; nil for no reply.
    func reply(to datagram: Datagram, count: Int) -> [UInt8]?
}

/// A bad rule, found before it is installed.
public struct RuleError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, in one line.
    public var message: String
    public var description: String { message }
}

/// An ordered list of `AutoReplyRule`s: the first that matches answers.
public struct StudioRules: ReplyRuleSet {
    /// The rules, in order.
    public let rules: [AutoReplyRule]
    private let compiled: [Compiled]

    private struct Compiled: @unchecked Sendable {
        // Sendable although `Regex<AnyRegexOutput>` is not declared so: the value is never mutated after `init`, and
        // the only state a Regex changes on use is its lowered matching program, which the standard library
        // initialises once with an atomic compare-and-store (Regex.Program.loweredProgram); AnyRegexOutput, the
        // reason for the missing conformance, is a match's result, created per call and never stored here.
        let rule: AutoReplyRule
        let regex: Regex<AnyRegexOutput>?
        let prefix: [UInt8]
        let template: ReplyTemplate?
    }

    /// At most this many rules per listener: matching runs for every datagram.
    public static let maximumRules = 32

    /// Checks and compiles `rules`.
    /// - Throws: `RuleError` naming the rule (from 1) and its problem: a bad regex, bad hex, an unknown
    ///   placeholder, an empty pattern.
    public init(_ rules: [AutoReplyRule]) throws(RuleError) {
        guard rules.count <= Self.maximumRules else { throw RuleError(message: "at most \(Self.maximumRules) rules per listener") }
        var compiled: [Compiled] = []
        for (index, rule) in rules.enumerated() {
            let name = "rule \(index + 1)"
            guard !rule.pattern.isEmpty || rule.match == .exact else { throw RuleError(message: "\(name): empty pattern") }
            guard rule.reply.utf8.count <= 65_507 else { throw RuleError(message: "\(name): reply longer than a UDP datagram") }
            var regex: Regex<AnyRegexOutput>?
            var prefix: [UInt8] = []
            switch rule.match {
            case .regex:
                do { regex = try Regex(rule.pattern) } catch {
                    throw RuleError(message: "\(name): invalid regular expression '\(rule.pattern)'")
                }
            case .hexPrefix:
                do { prefix = try Hex.parse(rule.pattern) } catch {
                    throw RuleError(message: "\(name): \(error)")
                }
            case .exact, .contains:
                break
            }
            // Templates with capture placeholders are parsed per reply, once the captures are known.
            var template: ReplyTemplate?
            if rule.match != .regex {
                do { template = try ReplyTemplate(rule.reply) } catch {
                    throw RuleError(message: "\(name): \(error)")
                }
            } else {
                do { _ = try ReplyTemplate(Self.substitute(rule.reply, captures: Array(repeating: "", count: 10))) } catch {
                    throw RuleError(message: "\(name): \(error)")
                }
            }
            compiled.append(Compiled(rule: rule, regex: regex, prefix: prefix, template: template))
        }
        self.rules = rules
        self.compiled = compiled
    }

    /// The reply of the first rule that matches, or nil.
    public func reply(to datagram: Datagram, count: Int) -> [UInt8]? {
        guard !compiled.isEmpty else { return nil }
        let bytes = datagram.payload.readableBytesView
        let text = String(decoding: bytes, as: UTF8.self)
        for entry in compiled {
            switch entry.rule.match {
            case .exact:
                if text == entry.rule.pattern, let template = entry.template { return template.render(datagram, count: count) }
            case .contains:
                if text.contains(entry.rule.pattern), let template = entry.template { return template.render(datagram, count: count) }
            case .hexPrefix:
                if bytes.starts(with: entry.prefix), let template = entry.template { return template.render(datagram, count: count) }
            case .regex:
                guard let regex = entry.regex, let found = try? regex.firstMatch(in: text) else { continue }
                var captures: [String] = []
                for index in 0..<min(found.output.count, 10) {
                    captures.append(found.output[index].substring.map(String.init) ?? "")
                }
                guard let template = try? ReplyTemplate(Self.substitute(entry.rule.reply, captures: captures)) else { continue }
                return template.render(datagram, count: count)
            }
        }
        return nil
    }

    /// Replaces `{0}`...`{9}` with captures (braces in them doubled, so they stay literal); `{{` stays as it is.
    static func substitute(_ template: String, captures: [String]) -> String {
        var out = ""
        var chars = Array(template)
        var i = 0
        while i < chars.count {
            if chars[i] == "{", i + 1 < chars.count, chars[i + 1] == "{" {
                out += "{{"; i += 2; continue
            }
            if chars[i] == "{", i + 2 < chars.count, let digit = chars[i + 1].wholeNumberValue, chars[i + 1].isASCII, chars[i + 2] == "}" {
                let value = digit < captures.count ? captures[digit] : ""
                out += value.replacingOccurrences(of: "{", with: "{{").replacingOccurrences(of: "}", with: "}}")
                i += 3
                continue
            }
            out.append(chars[i])
            i += 1
        }
        chars.removeAll()
        return out
    }
}

/// The protections every automatic reply passes, whatever rule produced it (the same as `udp echo`'s).
public struct ReplyGuard: Sendable {
    /// Why an automatic reply was not sent.
    public enum Refusal: String, Sendable, CaseIterable {
        /// Source port 0 or a UDP service that answers everything (7, 13, 17, 19, 37): two such answer each other forever.
        case loopPort = "loop-port"
        /// The datagram was sent to a broadcast or multicast address: answering every such datagram multiplies traffic.
        case broadcast = "broadcast"
        /// The datagram came from one of the studio's own sockets: two listeners with rules would answer each other.
        case ownSocket = "own-socket"
        /// The reply is larger than the request and the sender used up its allowance of such replies.
        case rateLimited = "rate-limited"
        /// The reply does not fit in a datagram to that address.
        case tooLarge = "too-large"
    }

    /// Source ports never answered.
    public var blockedSourcePorts: Set<Int> = [0, 7, 13, 17, 19, 37]
    /// Replies larger than their request, per second per source address.
    public var repliesPerSecond: Double = 20
    /// How many such replies a source may get at once.
    public var burst: Double = 40
    private var buckets: [UDPAddress: (tokens: Double, at: ContinuousClock.Instant)] = [:]

    /// The default protections.
    public init() {}

    /// Whether `reply` to `datagram` may be sent; `ownPorts` are the local ports of the studio's sockets.
    public mutating func check(reply: Int, to datagram: Datagram, ownPorts: Set<Int>, now: ContinuousClock.Instant = .now) -> Refusal? {
        let port = datagram.sender.port ?? 0
        if blockedSourcePorts.contains(port) { return .loopPort }
        if let kind = datagram.arrival?.kind, kind != .unicast { return .broadcast }
        if datagram.sender.isMulticast || datagram.sender.isLimitedBroadcast { return .broadcast }
        if ownPorts.contains(port), Self.isLocal(datagram.sender) { return .ownSocket }
        if let limit = datagram.sender.maximumPayload, reply > limit { return .tooLarge }
        if reply > datagram.payload.readableBytes && !allow(datagram.sender, now: now) { return .rateLimited }
        return nil
    }

    private static func isLocal(_ address: UDPAddress) -> Bool {
        guard let ip = address.ip else { return true }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }

    private mutating func allow(_ source: UDPAddress, now: ContinuousClock.Instant) -> Bool {
        // Keyed by address without port: changing ports does not earn a new allowance.
        let key = source.withPort(0)
        var bucket = buckets[key] ?? (burst, now)
        let elapsed = now - bucket.at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        bucket.tokens = min(burst, bucket.tokens + seconds * repliesPerSecond)
        bucket.at = now
        let allowed = bucket.tokens >= 1
        if allowed { bucket.tokens -= 1 }
        if buckets.count >= 16_384 && buckets[key] == nil { buckets.removeAll() }
        buckets[key] = bucket
        return allowed
    }
}
