/// Reads the UDP datagrams out of a pcap or pcapng capture, as tcpdump, tshark, dumpcap and Wireshark write them.
///
/// Link types: Ethernet (with 802.1Q/802.1ad VLAN tags), Linux cooked capture v1 (SLL) and v2 (SLL2), raw IP
/// (LINKTYPE_RAW, IPV4, IPV6), BSD loopback (NULL) and OpenBSD loopback (LOOP). IPv4 and IPv6 (skipping
/// hop-by-hop, routing and destination-options headers). Everything else (ARP, TCP, ICMP, IP fragments, packets cut
/// by the snap length, other link types in pcapng) is skipped and counted by reason in `skipped`.
///
/// A capture cut in the middle of a record, or a record whose lengths make no sense, is an error naming the record
/// and its byte offset; the records before it have already been returned by `next()`.
public struct CaptureReader: Sendable {
    /// The file formats.
    public enum Format: String, Sendable {
        case pcap, pcapng
    }

    /// The file's format.
    public let format: Format
    /// Records read so far (packets of every kind; pcapng: packet blocks).
    public private(set) var records = 0
    /// Records skipped, by reason ("not UDP", "IPv4 fragment"...).
    public private(set) var skipped: [String: Int] = [:]

    private let bytes: [UInt8]
    private var offset: Int
    private var bigEndian: Bool
    // pcap
    private var linkType: UInt32 = 0
    private var nanosecondTimestamps = false
    // pcapng: per interface of the current section, its link type and the length of one timestamp unit.
    private var interfaces: [(linkType: UInt32, unitsPerSecond: UInt64, snapLength: UInt32)] = []

    /// The link types understood.
    public static let supportedLinkTypes: [UInt32: String] = [
        0: "BSD loopback", 1: "Ethernet", 12: "raw IP", 14: "raw IP", 101: "raw IP", 108: "OpenBSD loopback",
        113: "Linux cooked v1", 228: "raw IPv4", 229: "raw IPv6", 276: "Linux cooked v2",
    ]

    /// Opens a capture held in memory.
    /// - Throws: `CaptureError` when it is neither pcap nor pcapng, or its header is cut or uses a link type not
    ///   understood.
    public init(_ bytes: [UInt8]) throws(CaptureError) {
        self.bytes = bytes
        guard bytes.count >= 4 else {
            throw CaptureError(message: "not a capture: \(bytes.count) bytes is shorter than any pcap or pcapng header")
        }
        let magic = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        switch magic {
        case 0x0A0D_0D0A:
            format = .pcapng
            bigEndian = false
            offset = 0
        // The section header block is read as the first block by `next()`.
        case 0xA1B2_C3D4, 0xA1B2_3C4D, 0xD4C3_B2A1, 0x4D3C_B2A1:
            format = .pcap
            bigEndian = magic == 0xD4C3_B2A1 || magic == 0x4D3C_B2A1
            nanosecondTimestamps = magic == 0xA1B2_3C4D || magic == 0x4D3C_B2A1
            guard bytes.count >= 24 else {
                throw CaptureError(message: "the pcap file header is cut short (\(bytes.count) of 24 bytes)")
            }
            offset = 24
            linkType = 0
            linkType = read32(20) & 0xFFFF
            guard Self.supportedLinkTypes[linkType] != nil else {
                throw CaptureError(
                    message:
                        "link type \(linkType) is not supported (use Ethernet, Linux cooked, raw IP or loopback captures; editcap -T can convert some)"
                )
            }
        default:
            throw CaptureError(
                message: "not a pcap or pcapng capture (the file starts with \(Self.hex(bytes.prefix(4))))")
        }
    }

    /// The next UDP datagram, or nil at the end of the capture.
    /// - Throws: `CaptureError` naming the record when the capture is cut short or corrupt.
    public mutating func next() throws(CaptureError) -> UDPPacket? {
        while offset < bytes.count {
            let result = format == .pcap ? try nextPcapRecord() : try nextPcapngBlock()
            guard let (link, frame, time) = result else { continue }
            switch PacketDecoder.decode(linkType: link, frame: frame) {
            case .udp(let source, let sourcePort, let destination, let destinationPort, let payload):
                return UDPPacket(
                    source: source, sourcePort: sourcePort, destination: destination, destinationPort: destinationPort,
                    payload: payload, time: time)
            case .skip(let reason):
                skipped[reason, default: 0] += 1
            }
        }
        return nil
    }

    /// Records skipped, in total.
    public var skippedTotal: Int { skipped.values.reduce(0, +) }

    // MARK: - pcap

    private mutating func nextPcapRecord() throws(CaptureError) -> (UInt32, ArraySlice<UInt8>, CaptureTime)? {
        let number = records + 1
        let at = offset
        guard bytes.count - offset >= 16 else {
            throw CaptureError(
                message:
                    "record \(number) (byte \(at)) is cut short: its 16-byte header has only \(bytes.count - offset) bytes; the capture ends in the middle of a record",
                record: number)
        }
        let seconds = read32(offset)
        let fraction = read32(offset + 4)
        let included = Int(read32(offset + 8))
        guard included <= 0x0400_0000 else {
            throw CaptureError(
                message: "record \(number) (byte \(at)) is corrupt: it claims \(included) bytes", record: number)
        }
        guard bytes.count - offset - 16 >= included else {
            throw CaptureError(
                message:
                    "record \(number) (byte \(at)) is cut short: it holds \(included) bytes but only \(bytes.count - offset - 16) remain; the capture ends in the middle of a record",
                record: number)
        }
        records = number
        let frame = bytes[(offset + 16)..<(offset + 16 + included)]
        offset += 16 + included
        let time = CaptureTime(
            seconds: Int64(seconds), nanoseconds: Int64(fraction) * (nanosecondTimestamps ? 1 : 1000))
        return (linkType, frame, time)
    }

    // MARK: - pcapng

    private mutating func nextPcapngBlock() throws(CaptureError) -> (UInt32, ArraySlice<UInt8>, CaptureTime)? {
        let at = offset
        let remaining = bytes.count - offset
        guard remaining >= 12 else {
            throw CaptureError(
                message:
                    "block at byte \(at) (after record \(records)) is cut short: \(remaining) bytes; the capture ends in the middle of a block",
                record: records + 1)
        }
        let rawType =
            UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(
                bytes[offset + 3]) << 24
        if rawType == 0x0A0D_0D0A {
            // A section header sets the byte order of everything up to the next one.
            let orderMagic =
                UInt32(bytes[offset + 8]) | UInt32(bytes[offset + 9]) << 8 | UInt32(bytes[offset + 10]) << 16 | UInt32(
                    bytes[offset + 11]) << 24
            switch orderMagic {
            case 0x1A2B_3C4D: bigEndian = false
            case 0x4D3C_2B1A: bigEndian = true
            default:
                throw CaptureError(
                    message: "section header at byte \(at) is corrupt: unknown byte-order magic", record: records + 1)
            }
            interfaces = []
        }
        let type = read32(offset)
        let length = Int(read32(offset + 4))
        guard length >= 12, length % 4 == 0, length <= 0x0400_0000 else {
            throw CaptureError(
                message: "block at byte \(at) (after record \(records)) is corrupt: length \(length)",
                record: records + 1)
        }
        guard length <= remaining else {
            let what = type == 6 || type == 3 || type == 2 ? "record \(records + 1)" : "block"
            throw CaptureError(
                message:
                    "\(what) (byte \(at)) is cut short: it holds \(length) bytes but only \(remaining) remain; the capture ends in the middle of a record",
                record: records + 1)
        }
        guard read32(offset + length - 4) == UInt32(length) else {
            throw CaptureError(
                message: "block at byte \(at) (after record \(records)) is corrupt: its trailing length does not match",
                record: records + 1)
        }
        let body = offset + 8
        let bodyEnd = offset + length - 4
        offset += length
        switch type {
        case 1:  // interface description
            guard bodyEnd - body >= 8 else {
                throw CaptureError(message: "interface block at byte \(at) is corrupt", record: records + 1)
            }
            let link = UInt32(read16(body))
            let snap = read32(body + 4)
            var units: UInt64 = 1_000_000
            var option = body + 8
            while option + 4 <= bodyEnd {
                let code = read16(option)
                let size = Int(read16(option + 2))
                if code == 0 { break }
                if code == 9, size >= 1, option + 4 < bodyEnd {
                    let value = bytes[option + 4]
                    let exponent = UInt64(value & 0x7F)
                    if exponent < 19 || (value & 0x80 != 0 && exponent < 63) {
                        units = value & 0x80 != 0 ? 1 << exponent : (0..<exponent).reduce(UInt64(1)) { r, _ in r * 10 }
                    }
                }
                option += 4 + (size + 3) / 4 * 4
            }
            interfaces.append((link, max(1, units), snap))
            return nil
        case 6, 2:  // enhanced packet, obsolete packet
            let number = records + 1
            guard bodyEnd - body >= 20 else {
                throw CaptureError(
                    message: "record \(number) (byte \(at)) is corrupt: packet block too short", record: number)
            }
            let interface = type == 6 ? Int(read32(body)) : Int(read16(body))
            let high = UInt64(read32(body + 4))
            let low = UInt64(read32(body + 8))
            let captured = Int(read32(body + 12))
            guard captured <= bodyEnd - body - 20 else {
                throw CaptureError(
                    message:
                        "record \(number) (byte \(at)) is corrupt: it claims \(captured) bytes of packet in a \(length)-byte block",
                    record: number)
            }
            guard interface < interfaces.count else {
                throw CaptureError(
                    message:
                        "record \(number) (byte \(at)) is corrupt: it names interface \(interface), which no interface block described",
                    record: number)
            }
            records = number
            let info = interfaces[interface]
            let stamp = high << 32 | low
            let time = CaptureTime(
                seconds: Int64(stamp / info.unitsPerSecond),
                nanoseconds: Int64((stamp % info.unitsPerSecond) * 1_000_000_000 / info.unitsPerSecond))
            return (info.linkType, bytes[(body + 20)..<(body + 20 + captured)], time)
        case 3:  // simple packet: interface 0, no timestamp
            let number = records + 1
            guard let info = interfaces.first, bodyEnd - body >= 4 else {
                throw CaptureError(
                    message: "record \(number) (byte \(at)) is corrupt: a simple packet block without an interface",
                    record: number)
            }
            records = number
            let original = Int(read32(body))
            let captured = min(original, info.snapLength == 0 ? original : Int(info.snapLength), bodyEnd - body - 4)
            return (info.linkType, bytes[(body + 4)..<(body + 4 + captured)], CaptureTime(seconds: 0, nanoseconds: 0))
        default:
            return nil
        }
    }

    // MARK: - bytes

    private func read32(_ at: Int) -> UInt32 {
        let b0 = UInt32(bytes[at])
        let b1 = UInt32(bytes[at + 1])
        let b2 = UInt32(bytes[at + 2])
        let b3 = UInt32(bytes[at + 3])
        return bigEndian ? b0 << 24 | b1 << 16 | b2 << 8 | b3 : b3 << 24 | b2 << 16 | b1 << 8 | b0
    }

    private func read16(_ at: Int) -> UInt16 {
        let b0 = UInt16(bytes[at])
        let b1 = UInt16(bytes[at + 1])
        return bigEndian ? b0 << 8 | b1 : b1 << 8 | b0
    }

    static func hex(_ bytes: some Collection<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
    }
}
