import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A reply rule, "smart response" style: when a datagram matches, the reply is built from the rule's template.
///
/// Written `MATCH => TEMPLATE`. MATCH is one of:
/// - `TEXT`: the whole payload equals TEXT (encoded with the rules' encoding);
/// - `prefix:TEXT`: the payload starts with TEXT;
/// - `contains:TEXT`: TEXT occurs anywhere in the payload;
/// - `regex:PATTERN`: the payload, decoded as text, contains a match of PATTERN; its capture groups are `{1}`...`{9}`
///   in the template (a group that did not take part inserts nothing);
/// - `hex:HEX`: the payload starts with these bytes.
///
/// TEMPLATE is a `ReplyTemplate` (`{text}`, `{hex}`, `{from}`, `{port}`, `{time}`, `{count}`, `{length}`).
/// The rule knows nothing of sockets, so any front end (the echo server, a web page) can use it.
public struct ReplyRule: Sendable {
    /// How a rule matches.
    public enum Match: Sendable {
        /// The payload equals these bytes.
        case equals([UInt8])
        /// The payload starts with these bytes (`prefix:` and `hex:`).
        case prefix([UInt8])
        /// The payload contains these bytes.
        case contains([UInt8])
        /// The decoded payload contains a match of the pattern.
        case regex(RulePattern)
    }

    /// How the rule matches.
    public let match: Match
    /// The reply.
    public let template: ReplyTemplate
    /// The rule as written, for messages.
    public let source: String

    /// A rule from parts already checked, for front ends that take the match kind separately from its text (a web
    /// form), so a pattern such as `regex:x` can still be matched literally.
    public init(match: Match, template: ReplyTemplate, source: String) {
        self.match = match
        self.template = template
        self.source = source
    }

    /// Parses `MATCH => TEMPLATE`. `name` says which rule this is in errors ("rule 2", "rules.json rule 3").
    /// - Throws: `RuleError` naming the rule and saying what is wrong.
    public init(_ text: String, encoding: TextEncoding = .utf8, name: String = "rule") throws(RuleError) {
        guard let arrow = text.firstRange(of: "=>") else {
            throw RuleError(rule: name, source: text, reason: "no '=>': write 'MATCH => REPLY', e.g. 'ping => pong'")
        }
        var match = String(text[..<arrow.lowerBound])
        var reply = String(text[arrow.upperBound...])
        if match.hasSuffix(" ") { match.removeLast() }
        if reply.hasPrefix(" ") { reply.removeFirst() }
        try self.init(match: match, reply: reply, encoding: encoding, name: name, source: text)
    }

    /// A rule from its two halves (a rules file's `{"match": ..., "reply": ...}`).
    /// - Throws: `RuleError` naming the rule and saying what is wrong.
    public init(
        match: String, reply: String, encoding: TextEncoding = .utf8, name: String = "rule", source: String? = nil
    ) throws(RuleError) {
        let source = source ?? "\(match) => \(reply)"
        self.source = source
        func fail(_ reason: String) -> RuleError { RuleError(rule: name, source: source, reason: reason) }
        func encode(_ text: String) throws(RuleError) -> [UInt8] {
            do { return try encoding.encode(text) } catch { throw fail("\(error)") }
        }
        var groups = 0
        if match.hasPrefix("prefix:") {
            self.match = .prefix(try encode(String(match.dropFirst(7))))
        } else if match.hasPrefix("contains:") {
            let needle = try encode(String(match.dropFirst(9)))
            if needle.isEmpty { throw fail("contains: needs some text to look for") }
            self.match = .contains(needle)
        } else if match.hasPrefix("hex:") {
            do { self.match = .prefix(try Hex.parse(String(match.dropFirst(4)))) } catch { throw fail("\(error)") }
        } else if match.hasPrefix("regex:") {
            let pattern: RulePattern
            do { pattern = try RulePattern(String(match.dropFirst(6)), encoding: encoding) } catch {
                throw fail(error.reason)
            }
            groups = pattern.groupCount
            self.match = .regex(pattern)
        } else {
            self.match = .equals(try encode(match))
        }
        do {
            template = try ReplyTemplate(reply, encoding: encoding, groups: groups)
        } catch let error as TemplateError {
            throw fail(error.message)
        } catch {
            throw fail("\(error)")
        }
    }

    /// The capture groups when `payload` matches (empty for rules without groups), or nil.
    public func matches(_ payload: some Collection<UInt8>) -> [[UInt8]?]? {
        switch match {
        case .equals(let bytes): return payload.elementsEqual(bytes) ? [] : nil
        case .prefix(let bytes): return payload.starts(with: bytes) ? [] : nil
        case .contains(let bytes): return Self.find(bytes, in: Array(payload)) ? [] : nil
        case .regex(let pattern): return pattern.groups(in: payload)
        }
    }

    /// The reply to `datagram` (the `count`-th request) when the rule matches, or nil.
    public func reply(to datagram: Datagram, count: Int) -> [UInt8]? {
        guard let groups = matches(datagram.payload.readableBytesView) else { return nil }
        return template.render(datagram, count: count, groups: groups)
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        let first = needle[0]
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}

/// A compiled `regex:` pattern and how many capture groups it has.
public struct RulePattern: Sendable {
    /// The pattern as written.
    public let pattern: String
    /// The number of capture groups.
    public let groupCount: Int
    let encoding: TextEncoding
    // Swift's Regex is not declared Sendable, but a compiled regex is immutable: matching creates its own state.
    nonisolated(unsafe) let regex: Regex<AnyRegexOutput>

    /// Compiles `pattern`; payloads are decoded with `encoding` before matching.
    /// - Throws: `RuleError` (with an empty rule name) saying why the pattern is not valid.
    public init(_ pattern: String, encoding: TextEncoding) throws(RuleError) {
        self.pattern = pattern
        self.encoding = encoding
        do {
            regex = try Regex(pattern)
        } catch {
            throw RuleError(
                rule: "", source: pattern,
                reason:
                    "bad regex '\(TerminalText.escape(pattern))': \(String(describing: error).split(separator: "\n").first ?? "")"
            )
        }
        groupCount = Self.countGroups(pattern)
    }

    /// The groups' bytes when the decoded payload contains a match; nil when it does not, or is not text.
    func groups(in payload: some Collection<UInt8>) -> [[UInt8]?]? {
        guard let text = encoding.decode(payload).string, let match = try? regex.firstMatch(in: text) else {
            return nil
        }
        var groups: [[UInt8]?] = []
        for index in 1..<max(1, match.output.count) {
            groups.append(match.output[index].substring.flatMap { try? encoding.encode(String($0)) })
        }
        return groups
    }

    /// Counts capturing groups: `(` not escaped, not in a character class, and not `(?:`, `(?=`... (but `(?<name>`
    /// and `(?P<name>` capture).
    static func countGroups(_ pattern: String) -> Int {
        let chars = Array(pattern)
        var count = 0
        var i = 0
        var inClass = false
        while i < chars.count {
            let c = chars[i]
            if c == "\\" {
                i += 2
                continue
            }
            if inClass {
                if c == "]" { inClass = false }
                i += 1
                continue
            }
            if c == "[" {
                inClass = true
                i += 1
                continue
            }
            if c == "(" {
                if i + 1 < chars.count, chars[i + 1] == "?" {
                    let rest = chars[(i + 2)...].prefix(2)
                    if rest.first == "<" && rest.dropFirst().first != "=" && rest.dropFirst().first != "!" {
                        count += 1
                    } else if rest.first == "P" && rest.dropFirst().first == "<" {
                        count += 1
                    } else if rest.first == "'" {
                        count += 1
                    }
                } else {
                    count += 1
                }
            }
            i += 1
        }
        return count
    }
}

/// Rules tried in order; the first that matches answers.
public struct ReplyRules: Sendable {
    /// The rules, in the order they are tried.
    public var rules: [ReplyRule]

    /// Rules in this order.
    public init(_ rules: [ReplyRule]) { self.rules = rules }

    /// Parses `MATCH => TEMPLATE` lines (as given to `--rule`), naming them "rule 1", "rule 2"... in errors.
    public init(parsing texts: [String], encoding: TextEncoding = .utf8) throws(RuleError) {
        var rules: [ReplyRule] = []
        for (index, text) in texts.enumerated() {
            rules.append(try ReplyRule(text, encoding: encoding, name: "rule \(index + 1)"))
        }
        self.rules = rules
    }

    /// Loads a rules file: a JSON array (or `{"rules": [...]}`) whose items are `"MATCH => TEMPLATE"` strings or
    /// `{"match": "...", "reply": "..."}` objects. `file` names the file in errors.
    /// - Throws: `RuleError` naming the file and the rule (from 1).
    public init(json: [UInt8], file: String, encoding: TextEncoding = .utf8) throws(RuleError) {
        let entries: [RuleEntry]
        do {
            let data = Data(json)
            if let list = try? JSONDecoder().decode([RuleEntry].self, from: data) {
                entries = list
            } else {
                entries = try JSONDecoder().decode(RuleFile.self, from: data).rules
            }
        } catch {
            throw RuleError(
                rule: file, source: "",
                reason:
                    "not a rules file: expected a JSON array of \"MATCH => REPLY\" strings or {\"match\": ..., \"reply\": ...} objects"
            )
        }
        var rules: [ReplyRule] = []
        for (index, entry) in entries.enumerated() {
            let name = "\(file) rule \(index + 1)"
            switch entry {
            case .text(let text): rules.append(try ReplyRule(text, encoding: encoding, name: name))
            case .pair(let match, let reply):
                rules.append(try ReplyRule(match: match, reply: reply, encoding: encoding, name: name))
            }
        }
        self.rules = rules
    }

    /// The first matching rule's index and reply to `datagram` (the `count`-th request), or nil.
    public func reply(to datagram: Datagram, count: Int) -> (rule: Int, reply: [UInt8])? {
        for (index, rule) in rules.enumerated() {
            if let reply = rule.reply(to: datagram, count: count) { return (index, reply) }
        }
        return nil
    }

    private enum RuleEntry: Decodable {
        case text(String)
        case pair(String, String)

        private enum Keys: String, CodingKey { case match, reply }

        init(from decoder: any Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self) {
                self = .text(text)
                return
            }
            let object = try decoder.container(keyedBy: Keys.self)
            self = .pair(try object.decode(String.self, forKey: .match), try object.decode(String.self, forKey: .reply))
        }
    }

    private struct RuleFile: Decodable {
        var rules: [RuleEntry]
    }
}

/// A rule that cannot be used, with its name and what is wrong.
public struct RuleError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Which rule: "rule 2", "rules.json rule 3".
    public var rule: String
    /// The rule as written (may be empty).
    public var source: String
    /// What is wrong.
    public var reason: String

    /// An error for `rule` (its name), written as `source` (may be empty), with what is wrong.
    public init(rule: String, source: String, reason: String) {
        self.rule = rule
        self.source = source
        self.reason = reason
    }

    /// One line: `rule 2 ('regex:( => x'): bad regex ...`.
    public var description: String {
        let shown = source.isEmpty ? "" : " ('\(TerminalText.escape(source))')"
        return "\(rule)\(shown): \(reason)"
    }
}

extension EchoServer.Configuration {
    /// What the server should answer to `datagram`, before the protections that depend on the reply's size.
    enum ReplyChoice {
        /// The request itself.
        case echo
        /// These bytes.
        case bytes([UInt8])
        /// Nothing, for this reason.
        case none(EchoServer.DropReason)
    }

    /// Rules first (first match wins), then the template, then the request itself; `append` is added to any of them.
    func choose(_ datagram: Datagram, count: Int) -> ReplyChoice {
        var reply: [UInt8]?
        if let rules, !rules.rules.isEmpty {
            reply = rules.reply(to: datagram, count: count)?.reply
            if reply == nil && template == nil { return .none(.noRule) }
        }
        if reply == nil, let template { reply = template.render(datagram, count: count) }
        guard let append else { return reply.map(ReplyChoice.bytes) ?? .echo }
        let base = reply ?? datagram.bytes
        return .bytes(append.appended(to: base))
    }
}
