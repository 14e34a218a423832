/// Writes UDP datagrams as a classic pcap file (microsecond timestamps, little-endian) with link type
/// LINKTYPE_RAW (101): each record is an IPv4 or IPv6 header and a UDP header made up around the payload, with the
/// real addresses and ports and valid checksums, so Wireshark and tshark decode it like captured traffic.
///
/// Pure value code: `header` and `record(_:)` return bytes; the caller writes them where it likes.
public struct PcapWriter: Sendable {
    /// LINKTYPE_RAW: the packet starts with its IP header; the version nibble says which.
    public static let linkTypeRawIP: UInt32 = 101
    /// The snapshot length written in the header: the largest record.
    public static let snapLength: UInt32 = 262_144

    private var identification: UInt16 = 0

    /// A writer. Write `header` first, then a record per packet.
    public init() {}

    /// The 24-byte file header.
    public var header: [UInt8] {
        var out: [UInt8] = []
        out.appendLE(UInt32(0xA1B2_C3D4))
        out.appendLE(UInt16(2))
        out.appendLE(UInt16(4))
        out.appendLE(UInt32(0))  // thiszone
        out.appendLE(UInt32(0))  // sigfigs
        out.appendLE(Self.snapLength)
        out.appendLE(Self.linkTypeRawIP)
        return out
    }

    /// One record: the record header and the synthesised IP/UDP packet.
    /// - Throws: `CaptureError.unwritable` when the addresses are not both IPv4 or both IPv6, or the payload does not
    ///   fit in one IP packet.
    public mutating func record(_ packet: UDPPacket) throws(CaptureError) -> [UInt8] {
        let body = try ipPacket(packet)
        var out: [UInt8] = []
        out.reserveCapacity(16 + body.count)
        out.appendLE(UInt32(truncatingIfNeeded: packet.time.seconds))
        out.appendLE(UInt32(packet.time.nanoseconds / 1000))
        out.appendLE(UInt32(body.count))
        out.appendLE(UInt32(body.count))
        out += body
        return out
    }

    /// The IP packet (header, UDP header, payload) for `packet`.
    public mutating func ipPacket(_ packet: UDPPacket) throws(CaptureError) -> [UInt8] {
        let udpLength = 8 + packet.payload.count
        var udp: [UInt8] = []
        udp.reserveCapacity(udpLength)
        udp.appendBE(packet.sourcePort)
        udp.appendBE(packet.destinationPort)
        udp.appendBE(UInt16(truncatingIfNeeded: udpLength))
        udp.appendBE(UInt16(0))
        udp += packet.payload
        // The pseudo-header: addresses, protocol, UDP length (RFC 768, RFC 8200 §8.1).
        var pseudo = packet.source + packet.destination
        switch (packet.source.count, packet.destination.count) {
        case (4, 4):
            guard udpLength + 20 <= 65_535 else {
                throw .unwritable("a \(packet.payload.count)-byte payload does not fit in an IPv4 packet")
            }
            pseudo += [0, 17]
            pseudo.appendBE(UInt16(udpLength))
            var checksum = Self.internetChecksum(pseudo + udp)
            if checksum == 0 { checksum = 0xFFFF }
            udp[6] = UInt8(checksum >> 8)
            udp[7] = UInt8(checksum & 0xFF)
            identification &+= 1
            var ip: [UInt8] = [0x45, 0]
            ip.appendBE(UInt16(20 + udpLength))
            ip.appendBE(identification)
            ip.appendBE(UInt16(0x4000))  // don't fragment
            ip += [64, 17, 0, 0]
            ip += packet.source + packet.destination
            let headerSum = Self.internetChecksum(ip)
            ip[10] = UInt8(headerSum >> 8)
            ip[11] = UInt8(headerSum & 0xFF)
            return ip + udp
        case (16, 16):
            guard udpLength <= 65_535 else {
                throw .unwritable("a \(packet.payload.count)-byte payload does not fit in an IPv6 packet")
            }
            pseudo.appendBE(UInt32(udpLength))
            pseudo += [0, 0, 0, 17]
            var checksum = Self.internetChecksum(pseudo + udp)
            if checksum == 0 { checksum = 0xFFFF }
            udp[6] = UInt8(checksum >> 8)
            udp[7] = UInt8(checksum & 0xFF)
            var ip: [UInt8] = [0x60, 0, 0, 0]
            ip.appendBE(UInt16(udpLength))
            ip += [17, 64]
            ip += packet.source + packet.destination
            return ip + udp
        default:
            throw .unwritable("source and destination must both be IPv4 or both IPv6 addresses")
        }
    }

    /// The Internet checksum (RFC 1071) of `bytes`.
    public static func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    mutating func appendBE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}
