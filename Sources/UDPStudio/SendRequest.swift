import UDPKit
import UDPText

/// What the user asked the studio to send.
public struct SendRequest: Sendable, Codable, Equatable {
    /// The destination: `HOST:PORT`, `[V6]:PORT`, or `<broadcast>:PORT` (every interface's broadcast address).
    public var to: String
    /// The payload as text; exclusive with `hex`.
    public var text: String?
    /// The payload as hex (spaces, colons and 0x prefixes allowed); exclusive with `text`.
    public var hex: String?
    /// Interpret backslash escapes in `text` (`\n`, `\xNN`, `\u{NNNN}`).
    public var escapes: Bool?
    /// The text encoding of `text` (utf8, gb18030, gbk, shift-jis, latin1); utf8 when absent.
    public var encoding: String?
    /// Send from this listener's socket (so replies come back to it); the studio's own socket when absent.
    public var from: Int?
    /// How many times to send it: 1 to 100,000 (default 1).
    public var count: Int?
    /// Milliseconds between sends: 0 to 60,000 (default 0).
    public var interval: Double?
    /// For a multicast group: the interface it leaves by (needed for IPv4 on a host without a default route).
    public var interface: String?
    /// For a multicast group: how many routers it may cross, 0 to 255 (the system's default, 1, when absent).
    public var ttl: Int?

    /// A request.
    public init(
        to: String, text: String? = nil, hex: String? = nil, escapes: Bool? = nil, encoding: String? = nil,
        from: Int? = nil, count: Int? = nil, interval: Double? = nil, interface: String? = nil, ttl: Int? = nil
    ) {
        self.to = to
        self.text = text
        self.hex = hex
        self.escapes = escapes
        self.encoding = encoding
        self.from = from
        self.count = count
        self.interval = interval
        self.interface = interface
        self.ttl = ttl
    }

    /// The most repeats one request may ask for.
    public static let maximumCount = 100_000
    /// The longest one request may keep sending, in milliseconds (count × interval).
    public static let maximumDuration = 600_000.0

    /// The payload bytes.
    /// - Throws: `SendError.badInput` for bad hex, an unknown encoding, text the encoding cannot carry, or both or
    ///   neither of `text` and `hex`.
    public func payload() throws(SendError) -> [UInt8] {
        switch (text, hex) {
        case (nil, nil): throw .badInput("give the payload as \"text\" or \"hex\"")
        case (.some, .some): throw .badInput("give the payload as \"text\" or \"hex\", not both")
        case (_, .some(let hex)):
            do { return try Hex.parse(hex) } catch { throw .badInput("\(error)") }
        case (.some(let text), nil):
            do {
                let encoding = try TextEncoding(name: encoding ?? "utf8")
                return escapes == true ? try Escapes.bytes(from: text, encoding: encoding) : try encoding.encode(text)
            } catch {
                throw .badInput("\(error)")
            }
        }
    }

    /// The socket options a send to a multicast group needs for its interface and TTL; nil when neither is given
    /// (blank form fields count as not given), so the shared sending socket serves.
    /// - Throws: `SendError.badInput` when they are given for something else than one multicast group, with a
    ///   listener's socket (whose options are its own), or out of range.
    func multicastOptions(for destinations: [UDPAddress]) throws(SendError) -> UDPSocketOptions? {
        let name = interface?.trimmingHorizontalWhitespace().nilIfEmpty
        guard name != nil || ttl != nil else { return nil }
        guard destinations.count == 1, destinations[0].isMulticast else {
            throw .badInput("an interface and a TTL apply to a multicast group destination")
        }
        guard from == nil else {
            throw .badInput("a multicast interface or TTL needs a new socket: leave \"from\" empty")
        }
        var options = UDPSocketOptions()
        if let ttl {
            guard (0...255).contains(ttl) else { throw .badInput("ttl must be from 0 to 255") }
            options.multicastTimeToLive = ttl
        }
        if let name {
            do { options.multicastInterface = try NetworkInterface.lookup(name) } catch { throw .badInput("\(error)") }
        }
        return options
    }

    /// Checks the repeat settings.
    func repeats() throws(SendError) -> (count: Int, interval: Double) {
        let count = self.count ?? 1
        let interval = self.interval ?? 0
        guard (1...Self.maximumCount).contains(count) else {
            throw .badInput("count must be from 1 to \(Self.maximumCount)")
        }
        guard interval.isFinite, (0...60_000).contains(interval) else {
            throw .badInput("interval must be from 0 to 60000 ms")
        }
        guard Double(count - 1) * interval <= Self.maximumDuration else {
            throw .badInput("count × interval must stay within \(Int(Self.maximumDuration / 1000)) s")
        }
        return (count, interval)
    }
}

/// Why the studio did not (or could not fully) send.
public enum SendError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The request is wrong: nothing was sent.
    case badInput(String)
    /// The network refused: `sent` datagrams went out before it did.
    case failed(String, sent: Int)
    /// Stopped by the user after `sent` datagrams.
    case stopped(sent: Int)

    public var description: String {
        switch self {
        case .badInput(let message): return message
        case .failed(let message, let sent): return sent == 0 ? message : "\(message) (after \(sent) sent)"
        case .stopped(let sent): return "stopped after \(sent) sent"
        }
    }
}

/// What a send did.
public struct SendResult: Sendable, Codable, Equatable {
    /// Datagrams sent.
    public var sent: Int
    /// Payload bytes sent.
    public var bytes: Int
    /// The addresses sent to.
    public var to: [String]
    /// The local address they left from.
    public var from: String
}

extension String {
    fileprivate var nilIfEmpty: String? { isEmpty ? nil : self }
}
