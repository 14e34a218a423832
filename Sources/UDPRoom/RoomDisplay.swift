import RoomProtocol
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Renders what a member hears as lines for a terminal, the way `udp room join` shows them:
///
/// ```
/// [12:04] alice: hello
/// [12:04] * bob waves
/// [12:05] alice -> bob (private): psst
/// --> carol joined
/// <-- bob left
/// --- in the room (2): alice, carol
/// -!- not delivered: message too long: 1200 bytes of UTF-8, the limit is 1000
/// ```
///
/// Every nick and text from the network goes through `TerminalText.escape`, so no control character or
/// escape sequence reaches the terminal, and a message is always one line. Times are local wall-clock time
/// of when the server accepted the message.
public struct RoomDisplay: Sendable {
    private var whoNames: [String] = []

    /// A display with no WHO listing in progress.
    public init() {}

    /// The lines for `event`; none for a WHO event that continues in the next one, nor for the client's end.
    public mutating func lines(for event: RoomClient.Event) -> [String] {
        switch event {
        case .room(let event):
            return lines(for: event)
        case .sessionEnded(let reason):
            let why =
                reason == .serverShutdown
                ? "the server is shutting down"
                : reason == .tooSlow
                    ? "we fell too far behind"
                    : reason == .roomFull ? "the room filled up before we got in" : "\(reason)"
            return ["-!- session ended (\(why)); rejoining"]
        case .rejoined(let restarted, let resent):
            var line = restarted ? "-!- server restarted; rejoined" : "-!- session expired; rejoined"
            if resent > 0 {
                line += "; \(resent) unconfirmed message\(resent == 1 ? "" : "s") sent again (one may show twice)"
            }
            return [line]
        case .serverNotResponding:
            return ["-!- the server is not responding; still trying"]
        case .serverResponding:
            return ["-!- the server is responding again"]
        case .ended(.refused(let reason, let text)):
            return ["-!- the room refused us (\(reason)): \(Self.escape(text))"]
        case .ended:
            return []
        }
    }

    /// The lines for one room event.
    public mutating func lines(for event: RoomEvent) -> [String] {
        switch event {
        case .message(let from, let kind, let text, let millis, _):
            let time = Self.time(millis)
            switch kind {
            case .text: return ["\(time) \(Self.escape(from)): \(Self.escape(text))"]
            case .action: return ["\(time) * \(Self.escape(from)) \(Self.escape(text))"]
            default: return ["\(time) \(Self.escape(from)) (\(kind)): \(Self.escape(text))"]
            }
        case .privateMessage(let from, let to, let text, let millis, _):
            return ["\(Self.time(millis)) \(Self.escape(from)) -> \(Self.escape(to)) (private): \(Self.escape(text))"]
        case .joined(let nick):
            return ["--> \(Self.escape(nick)) joined"]
        case .left(let nick):
            return ["<-- \(Self.escape(nick)) left"]
        case .timedOut(let nick):
            return ["<-- \(Self.escape(nick)) timed out"]
        case .nickChanged(let from, let to):
            return ["--- \(Self.escape(from)) is now \(Self.escape(to))"]
        case .who(let names, let flags):
            whoNames += names
            guard !flags.contains(.more) else { return [] }
            defer { whoNames = [] }
            return ["--- in the room (\(whoNames.count)): \(whoNames.map(Self.escape).joined(separator: ", "))"]
        case .notice(_, _, let text):
            return ["-!- \(Self.escape(text))"]
        case .unrecognized(let code, let body):
            return ["-!- an event this client does not know (code 0x\(String(code, radix: 16)), \(body.count) bytes)"]
        }
    }

    /// `[HH:MM]` in local time; `[--:--]` when the server did not say.
    static func time(_ unixMillis: UInt64) -> String {
        guard unixMillis > 0 else { return "[--:--]" }
        let date = Date(timeIntervalSince1970: Double(unixMillis) / 1000)
        return "[\(DatagramFormatter.clockTime(date).prefix(5))]"
    }

    static func escape(_ text: String) -> String {
        TerminalText.escape(text)
    }
}
