/// The report a flood sends after its last probe, so that the receiving end learns how many were sent and can
/// count a lost tail (probes after the last one that arrived), which sequence numbers alone cannot show.
///
/// UDP may lose the report too, so a sender repeats it a few times; a receiver uses the first copy for a stream
/// and ignores the others. Its magic differs from `Probe.magic`, so a receiver that does not know it counts it as
/// a datagram that is not a probe, never as one.
///
/// Wire layout (all integers big-endian, 28 bytes in total):
///
/// | offset | size | field                                                   |
/// |-------:|-----:|---------------------------------------------------------|
/// |      0 |    4 | magic `0x55445045` (ASCII "UDPE")                        |
/// |      4 |    1 | version, currently `1`                                  |
/// |      5 |    3 | reserved: written as 0, ignored when decoding           |
/// |      8 |    4 | stream id (the `Probe.stream` of the flood)             |
/// |     12 |    8 | last sequence number sent (`UInt64.max` when none)      |
/// |     20 |    8 | probes sent                                             |
public struct FloodEnd: Equatable, Sendable {
    /// Size of the encoded report in bytes (28).
    public static let size: Int = 28

    /// The magic number at offset 0 (`0x55445045`, ASCII "UDPE").
    public static let magic: UInt32 = 0x5544_5045

    /// The version written by `encode`; decoding rejects every other version.
    public static let version: UInt8 = 1

    /// The flood's stream id.
    public var stream: UInt32
    /// The sequence number of the last probe sent; nil when none was sent.
    public var lastSequence: UInt64?
    /// How many probes were sent (sequence numbers 0 to `sent - 1`).
    public var sent: UInt64

    /// A report for `stream` after `sent` probes numbered from 0; `lastSequence` is derived from it.
    public init(stream: UInt32, sent: UInt64) {
        self.stream = stream
        self.sent = sent
        self.lastSequence = sent > 0 ? sent - 1 : nil
    }

    /// The encoded report, `FloodEnd.size` bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
        }
        append(Self.magic)
        out.append(Self.version)
        out.append(contentsOf: [0, 0, 0])
        append(stream)
        append(lastSequence ?? .max)
        append(sent)
        return out
    }

    /// Decodes a report at the start of `raw`; nil when shorter than `FloodEnd.size`, with another magic or
    /// version, or inconsistent (a last sequence that is not `sent - 1`). Trailing bytes are ignored; never traps.
    public init?(decoding raw: UnsafeRawBufferPointer) {
        guard raw.count >= Self.size,
            UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == Self.magic,
            raw[4] == Self.version
        else { return nil }
        let stream = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let last = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt64.self))
        let sent = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 20, as: UInt64.self))
        guard sent > 0 ? last == sent - 1 : last == .max else { return nil }
        self.init(stream: stream, sent: sent)
    }

    /// Decodes a report from any collection of bytes; same rules as `init(decoding:)` for raw buffers.
    public init?<C: Collection>(decoding bytes: C) where C.Element == UInt8 {
        let copy = Array(bytes)
        guard let report = copy.withUnsafeBytes({ FloodEnd(decoding: $0) }) else { return nil }
        self = report
    }
}
