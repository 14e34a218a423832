/// The 128-bit secret that names one membership of a room.
///
/// The server draws a fresh token for every accepted JOIN and sends it only to the address the
/// JOIN came from. Every later packet of that membership, in both directions, carries it:
/// the server drops client packets whose token it does not know, and a client drops server
/// packets that do not carry its own token. Someone who merely knows a member's address (or
/// the server's) therefore cannot speak for either side. The token travels in clear text, so
/// this does not protect against an observer on the path.
///
/// `description` shows only the first 32 bits, so logging a token does not leak it.
public struct SessionToken: Hashable, Sendable, CustomStringConvertible {
    /// The first 8 bytes on the wire, as a big-endian integer.
    public let high: UInt64
    /// The last 8 bytes on the wire, as a big-endian integer.
    public let low: UInt64

    /// A token from its two halves (`high` is sent first).
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A token from exactly `RoomWire.tokenSize` (16) bytes in wire order; nil for any other
    /// length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == RoomWire.tokenSize else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 {
                high = high << 8 | UInt64(byte)
            } else {
                low = low << 8 | UInt64(byte)
            }
        }
        self.init(high: high, low: low)
    }

    /// The 16 bytes as they appear on the wire.
    public var bytes: [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(RoomWire.tokenSize)
        for shift in stride(from: 56, through: 0, by: -8) {
            result.append(UInt8(truncatingIfNeeded: high >> UInt64(shift)))
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            result.append(UInt8(truncatingIfNeeded: low >> UInt64(shift)))
        }
        return result
    }

    /// A token drawn from `generator`. Use a cryptographically secure generator for real
    /// sessions (`random()` does); a seeded one is for tests.
    public static func random(using generator: inout some RandomNumberGenerator) -> SessionToken {
        SessionToken(high: generator.next(), low: generator.next())
    }

    /// A token from the system's cryptographically secure generator.
    public static func random() -> SessionToken {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    public var description: String {
        let prefix = String(high >> 32, radix: 16)
        return "SessionToken(\(String(repeating: "0", count: 8 - prefix.count))\(prefix)…)"
    }
}
