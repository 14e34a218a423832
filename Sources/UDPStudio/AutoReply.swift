import UDPKit
import UDPServers
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One auto-reply rule of a listener, as the page and the API write it: a match kind, a pattern and a reply.
/// It becomes a `ReplyRule`, the rule `udp echo --rule` uses, so both answer alike.
public struct AutoReplyRule: Sendable, Codable, Equatable {
    /// How `pattern` is compared with the payload (the kinds of `udp echo --rule`).
    public enum Match: String, Sendable, Codable, CaseIterable {
        /// The payload equals the pattern's UTF-8 bytes (`udp echo --rule 'TEXT => ...'`).
        case exact
        /// The payload starts with the pattern's UTF-8 bytes (`prefix:`).
        case prefix
        /// The pattern's UTF-8 bytes occur anywhere in the payload (`contains:`).
        case contains
        /// The pattern is a regular expression found anywhere in the payload's UTF-8 text; `{1}`...`{9}` in the
        /// reply insert its capture groups (`regex:`).
        case regex
        /// The payload's bytes start with the pattern's hex bytes (`hex:`).
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

    /// The rule as `udp echo --rule` would be given it, for messages and logs.
    public var ruleText: String {
        switch match {
        case .exact: "\(pattern) => \(reply)"
        case .prefix: "prefix:\(pattern) => \(reply)"
        case .contains: "contains:\(pattern) => \(reply)"
        case .regex: "regex:\(pattern) => \(reply)"
        case .hexPrefix: "hex:\(pattern) => \(reply)"
        }
    }

    /// The `ReplyRule` that matches and answers like this rule. `name` says which rule this is in errors.
    /// - Throws: `RuleError` with `name` and the problem: a bad regex, bad hex, an unknown placeholder, an empty
    ///   pattern.
    public func replyRule(name: String) throws(RuleError) -> ReplyRule {
        func fail(_ reason: String) -> RuleError { RuleError(rule: name, source: "", reason: reason) }
        guard !pattern.isEmpty || match == .exact else { throw fail("empty pattern") }
        guard reply.utf8.count <= 65_507 else { throw fail("reply longer than a UDP datagram") }
        let kind: ReplyRule.Match
        var groups = 0
        switch match {
        case .exact: kind = .equals(Array(pattern.utf8))
        case .prefix: kind = .prefix(Array(pattern.utf8))
        case .contains: kind = .contains(Array(pattern.utf8))
        case .hexPrefix:
            do { kind = .prefix(try Hex.parse(pattern)) } catch { throw fail("\(error)") }
        case .regex:
            let compiled: RulePattern
            do { compiled = try RulePattern(pattern, encoding: .utf8) } catch {
                // RulePattern says "bad regex 'P': why"; keep only the why after the studio's own wording.
                let why = error.reason.firstRange(of: "': ").map { String(error.reason[$0.upperBound...]) }
                throw fail("invalid regular expression '\(pattern)'" + (why.map { ": \($0)" } ?? ""))
            }
            groups = compiled.groupCount
            kind = .regex(compiled)
        }
        let template: ReplyTemplate
        do { template = try ReplyTemplate(reply, encoding: .utf8, groups: groups) } catch let error as TemplateError {
            throw fail(error.message)
        } catch {
            throw fail("\(error)")
        }
        return ReplyRule(match: kind, template: template, source: ruleText)
    }
}

/// What answers datagrams automatically. The studio asks it for a reply and applies its own protections (loop
/// ports, broadcast/multicast, rate limit) to whatever it returns, so another rule engine can take its place.
public protocol ReplyRuleSet: Sendable {
    /// The reply to `datagram`, the `count`-th datagram the listener received; nil for no reply.
    func reply(to datagram: Datagram, count: Int) -> [UInt8]?
}

/// A listener's rules: `AutoReplyRule`s compiled into the `ReplyRules` of `udp echo --rule`; the first that matches
/// answers.
public struct StudioRules: ReplyRuleSet {
    /// The rules, in order, as given.
    public let rules: [AutoReplyRule]
    /// The same rules, compiled.
    public let compiled: ReplyRules

    /// At most this many rules per listener: matching runs for every datagram.
    public static let maximumRules = 32

    /// Checks and compiles `rules`.
    /// - Throws: `RuleError` naming the rule ("rule 2") and its problem: a bad regex, bad hex, an unknown
    ///   placeholder, an empty pattern.
    public init(_ rules: [AutoReplyRule]) throws(RuleError) {
        guard rules.count <= Self.maximumRules else {
            throw RuleError(rule: "rules", source: "", reason: "at most \(Self.maximumRules) rules per listener")
        }
        var compiled: [ReplyRule] = []
        for (index, rule) in rules.enumerated() {
            compiled.append(try rule.replyRule(name: "rule \(index + 1)"))
        }
        self.rules = rules
        self.compiled = ReplyRules(compiled)
    }

    /// The reply of the first rule that matches, or nil.
    public func reply(to datagram: Datagram, count: Int) -> [UInt8]? {
        compiled.rules.isEmpty ? nil : compiled.reply(to: datagram, count: count)?.reply
    }
}

/// The protections every automatic reply passes, whatever rule produced it (the same as `udp echo`'s): a reply
/// larger than its request goes only under `repliesPerSecond` per source address and within three times the bytes
/// received from that address (`RateLimiter.admit`).
public struct ReplyGuard: Sendable {
    /// Why an automatic reply was not sent.
    public enum Refusal: String, Sendable, CaseIterable {
        /// Source port 0 or a UDP service that answers everything (7, 13, 17, 19, 37): two such answer each other forever.
        case loopPort = "loop-port"
        /// The datagram was sent to a broadcast or multicast address: answering every such datagram multiplies traffic.
        case broadcast = "broadcast"
        /// The datagram came from one of the studio's own sockets: two listeners with rules would answer each other.
        case ownSocket = "own-socket"
        /// The reply is larger than the request and the sender used up its allowance of such replies per second.
        case rateLimited = "rate-limited"
        /// The reply is larger than the request and would take the bytes sent to the sender's address above three
        /// times the bytes received from it (`udp echo`'s budget).
        case amplification = "amplification"
        /// The reply does not fit in a datagram to that address.
        case tooLarge = "too-large"
    }

    /// Source ports never answered.
    public var blockedSourcePorts: Set<Int> = [0, 7, 13, 17, 19, 37]
    /// Replies larger than their request, per second per source address.
    public var repliesPerSecond: Double = 20 { didSet { limiter = RateLimiter(rate: repliesPerSecond, burst: burst) } }
    /// How many such replies a source may get at once.
    public var burst: Double = 40 { didSet { limiter = RateLimiter(rate: repliesPerSecond, burst: burst) } }
    /// `udp echo`'s limiter, so both answer a source at the same rate and within the same byte budget.
    private var limiter = RateLimiter(rate: 20, burst: 40)

    /// The default protections.
    public init() {}

    /// Whether `reply` to `datagram` may be sent; `ownPorts` are the local ports of the studio's sockets.
    public mutating func check(
        reply: Int, to datagram: Datagram, ownPorts: Set<Int>, now: ContinuousClock.Instant = .now
    ) -> Refusal? {
        let port = datagram.sender.port ?? 0
        if blockedSourcePorts.contains(port) { return .loopPort }
        if let kind = datagram.arrival?.kind, kind != .unicast { return .broadcast }
        if datagram.sender.isMulticast || datagram.sender.isLimitedBroadcast { return .broadcast }
        if ownPorts.contains(port), Self.isLocal(datagram.sender) { return .ownSocket }
        if let limit = datagram.sender.maximumPayload, reply > limit { return .tooLarge }
        switch limiter.admit(reply: reply, to: datagram, now: now) {
        case .rateLimited?: return .rateLimited
        case .overBudget?: return .amplification
        case nil: return nil
        }
    }

    private static func isLocal(_ address: UDPAddress) -> Bool {
        guard let ip = address.ip else { return true }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}
