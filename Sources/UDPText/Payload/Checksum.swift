/// A checksum appended to outgoing payloads, as serial-protocol and device-test tools do (`--append crc16-modbus`).
///
/// Written `NAME` or `NAME:le` / `NAME:be` to choose the byte order of a 16- or 32-bit value. Defaults: crc16-modbus
/// low byte first (as Modbus RTU sends it); crc16-ccitt, crc16-xmodem and crc32 big-endian (network order).
///
/// | name | width | polynomial | init | reflected | xor out | check ("123456789") |
/// |---|---|---|---|---|---|---|
/// | sum8 | 8 | sum of bytes mod 256 | | | | 0xdd |
/// | xor8 | 8 | xor of bytes | | | | 0x31 |
/// | crc8 | 8 | 0x07 | 0x00 | no | 0x00 | 0xf4 |
/// | crc16-modbus | 16 | 0x8005 | 0xffff | yes | 0x0000 | 0x4b37 |
/// | crc16-ccitt | 16 | 0x1021 | 0xffff | no | 0x0000 | 0x29b1 (CCITT-FALSE) |
/// | crc16-xmodem | 16 | 0x1021 | 0x0000 | no | 0x0000 | 0x31c3 |
/// | crc32 | 32 | 0x04c11db7 | 0xffffffff | yes | 0xffffffff | 0xcbf43926 |
public struct Checksum: Sendable, Equatable, CustomStringConvertible {
    /// The algorithms.
    public enum Algorithm: String, Sendable, CaseIterable {
        case sum8, xor8, crc8
        case crc16Modbus = "crc16-modbus"
        case crc16CCITT = "crc16-ccitt"
        case crc16XMODEM = "crc16-xmodem"
        case crc32

        /// The value's size in bytes.
        public var width: Int {
            switch self {
            case .sum8, .xor8, .crc8: return 1
            case .crc16Modbus, .crc16CCITT, .crc16XMODEM: return 2
            case .crc32: return 4
            }
        }

        /// Whether the value is appended low byte first unless told otherwise.
        var littleEndianByDefault: Bool { self == .crc16Modbus }
    }

    /// The algorithm.
    public var algorithm: Algorithm
    /// True to append the value low byte first.
    public var littleEndian: Bool

    /// A checksum with the algorithm's default byte order.
    public init(_ algorithm: Algorithm) {
        self.algorithm = algorithm
        self.littleEndian = algorithm.littleEndianByDefault
    }

    /// Parses `crc16-modbus`, `crc32:le`, `crc16-ccitt:be`... (case-insensitive).
    /// - Throws: `ChecksumError` naming the accepted names, or saying that an 8-bit checksum has no byte order.
    public init(parsing text: String) throws(ChecksumError) {
        let parts = text.lowercased().split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard let algorithm = Algorithm(rawValue: String(parts[0])) else { throw .unknown(text) }
        self.init(algorithm)
        if parts.count == 2 {
            switch parts[1] {
            case "le": littleEndian = true
            case "be": littleEndian = false
            default: throw .unknownOrder(text)
            }
            if algorithm.width == 1 { throw .orderOfSingleByte(text) }
        }
    }

    /// The checksum of `bytes` as a number.
    public func value<C: Collection>(of bytes: C) -> UInt32 where C.Element == UInt8 {
        switch algorithm {
        case .sum8: return UInt32(bytes.reduce(UInt8(0), &+))
        case .xor8: return UInt32(bytes.reduce(UInt8(0), ^))
        case .crc8:
            var crc: UInt8 = 0
            for byte in bytes {
                crc ^= byte
                for _ in 0..<8 { crc = crc & 0x80 != 0 ? (crc << 1) ^ 0x07 : crc << 1 }
            }
            return UInt32(crc)
        case .crc16Modbus:
            var crc: UInt16 = 0xFFFF
            for byte in bytes {
                crc ^= UInt16(byte)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xA001 : crc >> 1 }
            }
            return UInt32(crc)
        case .crc16CCITT, .crc16XMODEM:
            var crc: UInt16 = algorithm == .crc16CCITT ? 0xFFFF : 0
            for byte in bytes {
                crc ^= UInt16(byte) << 8
                for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
            }
            return UInt32(crc)
        case .crc32:
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            return ~crc
        }
    }

    /// The bytes appended after `bytes`: the value in `algorithm.width` bytes, in the chosen order.
    public func suffix<C: Collection>(for bytes: C) -> [UInt8] where C.Element == UInt8 {
        let value = value(of: bytes)
        let width = algorithm.width
        let bigEndian = (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32(width - 1 - $0))) }
        return littleEndian ? bigEndian.reversed() : bigEndian
    }

    /// `bytes` followed by their checksum.
    public func appended(to bytes: [UInt8]) -> [UInt8] {
        bytes + suffix(for: bytes)
    }

    /// The name as it parses back: `crc32`, `crc32:le`.
    public var description: String {
        algorithm.rawValue + (littleEndian != algorithm.littleEndianByDefault ? (littleEndian ? ":le" : ":be") : "")
    }
}

/// A checksum name that is not known.
public enum ChecksumError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No such algorithm.
    case unknown(String)
    /// A suffix other than `:le` or `:be`.
    case unknownOrder(String)
    /// `:le`/`:be` on a one-byte checksum.
    case orderOfSingleByte(String)

    /// One line saying what is wrong and what is accepted.
    public var description: String {
        let names = Checksum.Algorithm.allCases.map(\.rawValue).joined(separator: ", ")
        switch self {
        case .unknown(let text):
            return
                "unknown checksum '\(TerminalText.render(text, keepLines: false, escapeBackslash: false))' (use one of: \(names); add :le or :be to choose the byte order)"
        case .unknownOrder(let text):
            return
                "unknown byte order in checksum '\(TerminalText.render(text, keepLines: false, escapeBackslash: false))' (use :le or :be)"
        case .orderOfSingleByte(let text):
            return
                "checksum '\(TerminalText.render(text, keepLines: false, escapeBackslash: false))' is one byte: :le and :be apply to crc16 and crc32"
        }
    }
}
