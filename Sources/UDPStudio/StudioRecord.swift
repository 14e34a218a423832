import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One datagram the studio saw arrive or sent, as the traffic log shows it.
public struct StudioRecord: Sendable, Equatable {
    /// Which way the datagram went.
    public enum Direction: String, Sendable, Codable {
        /// Received by one of the studio's sockets.
        case incoming = "in"
        /// Sent by one of the studio's sockets.
        case outgoing = "out"
    }

    /// Position in the studio's log: 1 for the first datagram, one more for each after it, never reused.
    public var id: Int
    /// When it was received or sent.
    public var time: Date
    /// In or out.
    public var direction: Direction
    /// The listener whose socket received or sent it; nil for the studio's own sending socket.
    public var listener: Int?
    /// The local port of that socket.
    public var localPort: Int
    /// The peer's IP address (the sender of an incoming datagram, the destination of an outgoing one).
    public var remoteAddress: String
    /// The peer's port.
    public var remotePort: Int
    /// The payload, exactly as received or sent.
    public var bytes: [UInt8]
    /// The kernel cut the datagram to fit the receive buffer.
    public var truncated: Bool
    /// Labels for the log: "broadcast", "multicast" (how an incoming datagram was addressed), "auto-reply" (sent by a
    /// rule), "no-reply: REASON" (a rule matched but the protections refused the reply).
    public var marks: [String]
    /// For a reply to something this socket sent to the same address: the time since that send, in seconds.
    public var roundTrip: Double?

    /// A record with the given fields.
    public init(
        id: Int, time: Date, direction: Direction, listener: Int?, localPort: Int, remoteAddress: String,
        remotePort: Int,
        bytes: [UInt8], truncated: Bool = false, marks: [String] = [], roundTrip: Double? = nil
    ) {
        self.id = id
        self.time = time
        self.direction = direction
        self.listener = listener
        self.localPort = localPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.bytes = bytes
        self.truncated = truncated
        self.marks = marks
        self.roundTrip = roundTrip
    }

    /// The payload as UTF-8 text made safe to show: control characters, escape sequences and invalid bytes are
    /// written as escapes (`\n`, `\e`, `\xff`), the same rendering as everywhere else in `udp`.
    public var escapedText: String { TextEncoding.utf8.decode(bytes).escaped }
}

extension StudioRecord: Codable {
    private enum CodingKeys: String, CodingKey {
        case id, time, direction, listener, localPort, remoteAddress, remotePort, length, text, hex, truncated, marks,
            roundTrip
    }

    /// The JSON form: the payload as `hex` (exact) and `text` (escaped, for reading), plus `length`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(time.timeIntervalSince1970, forKey: .time)
        try c.encode(direction, forKey: .direction)
        try c.encodeIfPresent(listener, forKey: .listener)
        try c.encode(localPort, forKey: .localPort)
        try c.encode(remoteAddress, forKey: .remoteAddress)
        try c.encode(remotePort, forKey: .remotePort)
        try c.encode(bytes.count, forKey: .length)
        try c.encode(escapedText, forKey: .text)
        try c.encode(Hex.encode(bytes), forKey: .hex)
        try c.encode(truncated, forKey: .truncated)
        try c.encode(marks, forKey: .marks)
        try c.encodeIfPresent(roundTrip, forKey: .roundTrip)
    }

    /// Reads the JSON form back (the payload from `hex`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        time = Date(timeIntervalSince1970: try c.decode(Double.self, forKey: .time))
        direction = try c.decode(Direction.self, forKey: .direction)
        listener = try c.decodeIfPresent(Int.self, forKey: .listener)
        localPort = try c.decode(Int.self, forKey: .localPort)
        remoteAddress = try c.decode(String.self, forKey: .remoteAddress)
        remotePort = try c.decode(Int.self, forKey: .remotePort)
        let hex = try c.decode(String.self, forKey: .hex)
        do { bytes = try Hex.parse(hex) } catch {
            throw DecodingError.dataCorruptedError(forKey: .hex, in: c, debugDescription: "not hex")
        }
        truncated = try c.decode(Bool.self, forKey: .truncated)
        marks = try c.decode([String].self, forKey: .marks)
        roundTrip = try c.decodeIfPresent(Double.self, forKey: .roundTrip)
    }
}
