/// The header at the start of every `udp bench` datagram, followed by zero padding up to the
/// chosen datagram size.
///
/// Wire layout (all integers big-endian, 28 bytes in total):
///
/// | offset | size | field                                                    |
/// |-------:|-----:|----------------------------------------------------------|
/// |      0 |    4 | magic `0x55445042` (ASCII "UDPB")                         |
/// |      4 |    1 | version, currently `1`                                   |
/// |      5 |    1 | flags, reserved: written as 0, ignored when decoding     |
/// |      6 |    2 | reserved: written as 0, ignored when decoding            |
/// |      8 |    4 | stream id (random per run, to reject strays of other runs)|
/// |     12 |    8 | sequence number (starts at 0, +1 per datagram)           |
/// |     20 |    8 | send time, sender's monotonic clock in nanoseconds       |
///
/// An echo server returns probes verbatim, so the sender can compute the round-trip time as
/// `now - sendTime` on its own clock.
public struct Probe: Equatable, Sendable {
    /// Size of the encoded header in bytes (28). A bench datagram is never smaller than this.
    public static let headerSize: Int = 28

    /// The magic number at offset 0 (`0x55445042`, ASCII "UDPB"); decoding rejects anything else.
    public static let magic: UInt32 = 0x5544_5042

    /// The header version written by `encode`; decoding rejects every other version.
    public static let version: UInt8 = 1

    /// Identifies one bench run; receivers should drop probes whose stream differs from the
    /// one they expect. Any value is valid (no value is reserved).
    public var stream: UInt32

    /// Position of this datagram in its stream. Senders start at 0 and add 1 per datagram, which
    /// `SequenceStats` relies on to compute the expected count.
    public var sequence: UInt64

    /// When the sender sent this datagram, in nanoseconds of the sender's monotonic clock. Its
    /// epoch is arbitrary; only differences between values from the same clock are meaningful.
    public var sendTime: UInt64

    /// Creates a probe header with the given fields. All values are valid.
    public init(stream: UInt32, sequence: UInt64, sendTime: UInt64) {
        self.stream = stream
        self.sequence = sequence
        self.sendTime = sendTime
    }

    /// Appends a complete datagram of exactly `size` bytes to `buffer`: the 28-byte header
    /// followed by `size - headerSize` zero bytes of padding. Existing contents of `buffer` are
    /// kept. Traps (precondition) when `size < Probe.headerSize`.
    public func encode(into buffer: inout [UInt8], size: Int) {
        precondition(size >= Self.headerSize, "probe size \(size) is below the \(Self.headerSize)-byte header")
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0 as UInt8, count: size))
        buffer.withUnsafeMutableBytes { raw in
            encode(into: UnsafeMutableRawBufferPointer(rebasing: raw[start..<start + Self.headerSize]))
        }
    }

    /// Writes the 28-byte header at the start of `raw`, in place and without allocating; bytes
    /// after the header (the padding) are left untouched, so a sender can reuse one buffer and
    /// rewrite only the header per datagram. No alignment is required. Traps (precondition) when
    /// `raw.count < Probe.headerSize`.
    public func encode(into raw: UnsafeMutableRawBufferPointer) {
        precondition(
            raw.count >= Self.headerSize, "buffer of \(raw.count) bytes is below the \(Self.headerSize)-byte header")
        raw.storeBytes(of: Self.magic.bigEndian, toByteOffset: 0, as: UInt32.self)
        raw.storeBytes(of: Self.version, toByteOffset: 4, as: UInt8.self)
        raw.storeBytes(of: 0, toByteOffset: 5, as: UInt8.self)
        raw.storeBytes(of: 0, toByteOffset: 6, as: UInt16.self)
        raw.storeBytes(of: stream.bigEndian, toByteOffset: 8, as: UInt32.self)
        raw.storeBytes(of: sequence.bigEndian, toByteOffset: 12, as: UInt64.self)
        raw.storeBytes(of: sendTime.bigEndian, toByteOffset: 20, as: UInt64.self)
    }

    /// Decodes the header at the start of `bytes` (any collection of bytes, e.g. `[UInt8]`,
    /// `ArraySlice<UInt8>`, `Data`). Bytes after the header are ignored, as are the flags and
    /// reserved fields. Returns nil when there are fewer than `headerSize` bytes, the magic is
    /// wrong, or the version is not `Probe.version`. Never traps, whatever the input.
    public init?<C: Collection>(decoding bytes: C) where C.Element == UInt8 {
        if let fast = bytes.withContiguousStorageIfAvailable({ Probe(decoding: UnsafeRawBufferPointer($0)) }) {
            guard let probe = fast else { return nil }
            self = probe
            return
        }
        var iterator = bytes.makeIterator()
        func read(_ count: Int) -> UInt64? {
            var value: UInt64 = 0
            for _ in 0..<count {
                guard let byte = iterator.next() else { return nil }
                value = value << 8 | UInt64(byte)
            }
            return value
        }
        guard let magic = read(4), magic == UInt64(Self.magic),
            let version = read(1), version == UInt64(Self.version),
            read(3) != nil,  // flags + reserved
            let stream = read(4), let sequence = read(8), let sendTime = read(8)
        else { return nil }
        self.init(stream: UInt32(truncatingIfNeeded: stream), sequence: sequence, sendTime: sendTime)
    }

    /// Decodes the header at the start of `raw`; same rules as `init(decoding:)` for
    /// collections: nil when shorter than `headerSize`, wrong magic or unknown version; trailing
    /// bytes, flags and reserved fields are ignored. No alignment is required; never traps.
    public init?(decoding raw: UnsafeRawBufferPointer) {
        guard raw.count >= Self.headerSize,
            UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == Self.magic,
            raw[4] == Self.version
        else { return nil }
        self.init(
            stream: UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
            sequence: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt64.self)),
            sendTime: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 20, as: UInt64.self))
        )
    }
}
