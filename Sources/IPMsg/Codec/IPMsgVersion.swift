/// What a packet's Version field says about the client that sent it.
///
/// The specification puts a bare `1` there; clients append their own marks: FeiQ sends
/// `1_lbt6_0#128#<MAC>#0#0#0#...`, iptux `1_iptux 0.8.3`, others `1_somename`. Parsing never fails: the
/// protocol number is the leading decimal digits (nil without any) and the rest is kept for display.
public struct IPMsgVersion: Hashable, Sendable {
    /// The leading decimal protocol number (1 today), nil when the field does not start with a digit.
    public var protocolNumber: Int?
    /// What follows the protocol number and an optional '_' separator.
    public var suffix: String

    /// Parses a Version field.
    public init(_ field: [UInt8]) {
        let digits = field.prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }.prefix(9)
        protocolNumber = digits.isEmpty ? nil : Int(String(decoding: digits, as: UTF8.self))
        var rest = field.dropFirst(digits.count)
        if rest.first == UInt8(ascii: "_") { rest = rest.dropFirst() }
        suffix = String(decoding: rest, as: UTF8.self)
    }

    /// The client family: "iptux", "FeiQ", "IP Messenger" (bare version) or "other".
    public var client: String {
        if suffix.lowercased().hasPrefix("iptux") { return "iptux" }
        if suffix.hasPrefix("lbt") { return "FeiQ" }
        if suffix.isEmpty { return "IP Messenger" }
        return "other"
    }

    /// A short label for lists: the client family and, for iptux, its version (`iptux 0.8.3`).
    public var label: String {
        switch client {
        case "iptux": return suffix
        case "other": return suffix.split(separator: "#").first.map(String.init) ?? suffix
        default: return client
        }
    }

    /// Whether the client sends and expects UTF-8 without marking it (iptux does).
    public var speaksUTF8: Bool { client == "iptux" }
}

/// Packet numbers for one sender: they only grow, because receivers such as iptux drop any number not larger than
/// the last one from the same address. Like IP Messenger, the next number is the current Unix time in seconds or
/// one more than the last, whichever is larger, so a restarted client still starts above its previous run.
public struct IPMsgPacketNumbers: Sendable {
    /// The last number handed out (0 before the first).
    public private(set) var last: UInt32

    /// Starts a sequence; `after` is the last number already used.
    public init(after last: UInt32 = 0) { self.last = last }

    /// The next number, given the Unix time in seconds. Wraps to 1 only after 2^32 - 1.
    public mutating func next(unixSeconds: UInt32) -> UInt32 {
        let (plusOne, overflow) = last.addingReportingOverflow(1)
        last = overflow ? 1 : max(unixSeconds, plusOne)
        return last
    }
}
