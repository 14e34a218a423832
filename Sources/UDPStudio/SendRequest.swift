import UDPKit

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

    /// A request.
    public init(to: String, text: String? = nil, hex: String? = nil, escapes: Bool? = nil, encoding: String? = nil,
                from: Int? = nil, count: Int? = nil, interval: Double? = nil) {
        self.to = to
        self.text = text
        self.hex = hex
        self.escapes = escapes
        self.encoding = encoding
        self.from = from
        self.count = count
        self.interval = interval
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

    /// Checks the repeat settings.
    func repeats() throws(SendError) -> (count: Int, interval: Double) {
        let count = self.count ?? 1
        let interval = self.interval ?? 0
        guard (1...Self.maximumCount).contains(count) else { throw .badInput("count must be from 1 to \(Self.maximumCount)") }
        guard interval.isFinite, (0...60_000).contains(interval) else { throw .badInput("interval must be from 0 to 60000 ms") }
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
