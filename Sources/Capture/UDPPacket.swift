/// A UDP datagram as a capture holds it: addresses, ports, payload and when it was seen.
public struct UDPPacket: Sendable, Equatable {
    /// The source IP address: 4 bytes (IPv4) or 16 (IPv6).
    public var source: [UInt8]
    /// The source port.
    public var sourcePort: UInt16
    /// The destination IP address, the same family as `source`.
    public var destination: [UInt8]
    /// The destination port.
    public var destinationPort: UInt16
    /// The UDP payload.
    public var payload: [UInt8]
    /// When it was seen.
    public var time: CaptureTime

    /// A packet with the given parts.
    public init(
        source: [UInt8], sourcePort: UInt16, destination: [UInt8], destinationPort: UInt16, payload: [UInt8],
        time: CaptureTime
    ) {
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
        self.payload = payload
        self.time = time
    }
}

/// A capture timestamp: seconds since 1970 and nanoseconds.
public struct CaptureTime: Sendable, Equatable, Comparable {
    /// Whole seconds since 1970-01-01 UTC.
    public var seconds: Int64
    /// Nanoseconds within the second (0..<1,000,000,000).
    public var nanoseconds: Int64

    /// A time from its parts; nanoseconds out of range carry into seconds.
    public init(seconds: Int64, nanoseconds: Int64) {
        self.seconds = seconds + nanoseconds / 1_000_000_000
        self.nanoseconds = nanoseconds % 1_000_000_000
        if self.nanoseconds < 0 {
            self.nanoseconds += 1_000_000_000
            self.seconds -= 1
        }
    }

    /// A time from seconds since 1970 (as `Date.timeIntervalSince1970` gives).
    public init(secondsSince1970 value: Double) {
        let whole = value.rounded(.down)
        self.init(seconds: Int64(whole), nanoseconds: Int64(((value - whole) * 1e9).rounded()))
    }

    /// Seconds since 1970 as a floating-point number.
    public var secondsSince1970: Double { Double(seconds) + Double(nanoseconds) / 1e9 }

    public static func < (a: CaptureTime, b: CaptureTime) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }
}
