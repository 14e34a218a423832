#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// One IPv4 or IPv6 address assigned to a network interface.
///
/// Values produced by ``NetworkInterface/all()`` are consistent with each other:
/// `address` is the numeric text form of `rawAddress`, and `scopeID` is only
/// non-zero for IPv6 addresses whose scope requires an interface (link-local).
/// Values built with the memberwise initializer are not validated.
public struct InterfaceAddress: Sendable, Equatable, Hashable {
    /// The address family of an ``InterfaceAddress``.
    public enum Family: String, Sendable, Equatable, Hashable, CustomStringConvertible {
        /// IPv4; `rawAddress` holds 4 bytes.
        case ipv4
        /// IPv6; `rawAddress` holds 16 bytes.
        case ipv6

        /// The number of bytes in an address of this family (4 or 16).
        public var byteCount: Int {
            switch self {
            case .ipv4: 4
            case .ipv6: 16
            }
        }

        /// `"ipv4"` or `"ipv6"`.
        public var description: String { rawValue }
    }

    /// Whether this is an IPv4 or an IPv6 address.
    public var family: Family

    /// The address in numeric text form as produced by `inet_ntop`
    /// (`"192.0.2.1"`, `"fe80::1"`).
    ///
    /// The text never carries a `%zone` suffix, even for link-local IPv6
    /// addresses; the zone is reported separately in ``scopeID`` so that the
    /// text can be compared and parsed without stripping it first.
    public var address: String

    /// The number of leading one bits in the interface's netmask for this address.
    ///
    /// The netmask is read with `prefixLength(netmask:)`, so a
    /// non-contiguous mask yields the length of its leading run of ones. When the
    /// system reports no netmask the full address length (32 or 128) is used,
    /// which treats the address as a host route and never implies a broadcast
    /// domain.
    public var prefixLength: Int

    /// The IPv4 broadcast address of this address's subnet, in numeric text form.
    ///
    /// Only set for IPv4 addresses on interfaces that have the
    /// ``NetworkInterface/Flags/broadcast`` flag and not
    /// ``NetworkInterface/Flags/pointToPoint`` (on those the same system field
    /// holds the peer address). The value reported by the system is used when
    /// there is one; otherwise it is computed with
    /// `directedBroadcast(address:prefixLength:)`, which matches the
    /// broadcast route Linux installs for such an address even when none was
    /// configured. A reported `0.0.0.0`, or a reported value equal to the
    /// address itself, is treated as missing because that is how the C library
    /// fills the field when no broadcast address was configured. As a result,
    /// `/31` and `/32` addresses without a configured broadcast address have
    /// `nil` here. Always `nil` for IPv6.
    public var broadcast: String?

    /// The IPv6 scope zone (`sin6_scope_id`), which on Linux and Darwin is the
    /// index of the interface a link-local address belongs to.
    ///
    /// `0` for IPv4 and for IPv6 addresses that are not scoped to a link.
    public var scopeID: UInt32

    /// The address bytes in network order: 4 bytes for IPv4, 16 for IPv6.
    public var rawAddress: [UInt8]

    /// Creates an address from its parts without checking that they agree.
    public init(
        family: Family,
        address: String,
        prefixLength: Int,
        broadcast: String? = nil,
        scopeID: UInt32 = 0,
        rawAddress: [UInt8]
    ) {
        self.family = family
        self.address = address
        self.prefixLength = prefixLength
        self.broadcast = broadcast
        self.scopeID = scopeID
        self.rawAddress = rawAddress
    }
}

// MARK: - Pure address arithmetic

extension InterfaceAddress {
    /// The number of leading one bits in `netmask`.
    ///
    /// Counting stops at the first zero bit, so a non-contiguous mask such as
    /// `255.0.255.0` yields `8` rather than being rejected: the leading run is
    /// the only part that describes a prefix, and callers that need to detect
    /// such masks can compare the result against the population count.
    /// An empty array yields `0`. Any byte count is accepted, so the same
    /// function serves IPv4 (4 bytes) and IPv6 (16 bytes) masks.
    ///
    /// - Parameter netmask: The mask bytes in network order.
    /// - Returns: A value between `0` and `netmask.count * 8`.
    public static func prefixLength(netmask: [UInt8]) -> Int {
        var length = 0
        for byte in netmask {
            if byte == 0xFF {
                length += 8
                continue
            }
            length += (~byte).leadingZeroBitCount
            break
        }
        return length
    }

    /// The number of leading one bits in a netmask given in numeric text form
    /// (`"255.255.255.0"`, `"ffff:ffff:ffff:ffff::"`).
    ///
    /// Follows the same rule as the byte-array form of `prefixLength(netmask:)`
    /// for non-contiguous masks.
    ///
    /// - Returns: The prefix length, or `nil` if `netmask` is not a numeric
    ///   IPv4 or IPv6 address (a `%zone` suffix is not accepted).
    public static func prefixLength(netmask: String) -> Int? {
        guard let (_, bytes) = parseNumericAddress(netmask) else { return nil }
        return prefixLength(netmask: bytes)
    }

    /// The directed (subnet) broadcast address of an IPv4 address and prefix
    /// length: the address with every host bit set.
    ///
    /// `/31` (RFC 3021 point-to-point links) and `/32` subnets have no host bits
    /// to spare for a broadcast address, so the result is `nil` for them. A `/0`
    /// prefix yields `255.255.255.255`.
    ///
    /// - Parameters:
    ///   - address: Exactly 4 bytes in network order.
    ///   - prefixLength: The subnet prefix length.
    /// - Returns: 4 bytes in network order, or `nil` if `address` is not 4
    ///   bytes long or `prefixLength` is outside `0...30`.
    public static func directedBroadcast(address: [UInt8], prefixLength: Int) -> [UInt8]? {
        guard address.count == 4, (0...30).contains(prefixLength) else { return nil }
        let value = address.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let hostMask: UInt32 = prefixLength == 0 ? .max : (1 << (32 - prefixLength)) - 1
        let result = value | hostMask
        return [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: result >> $0) }
    }

    /// The directed (subnet) broadcast address of an IPv4 address in numeric
    /// text form, such as `"10.1.1.255"` for `"10.1.1.7"` and `24`.
    ///
    /// Follows the same rules as the byte-array form: `nil` for `/31`, `/32`,
    /// any other prefix length outside `0...30`, IPv6 addresses and text that
    /// is not a numeric IPv4 address.
    public static func directedBroadcast(address: String, prefixLength: Int) -> String? {
        guard let (family, bytes) = parseNumericAddress(address), family == .ipv4,
            let broadcast = directedBroadcast(address: bytes, prefixLength: prefixLength)
        else { return nil }
        return numericText(broadcast, family: .ipv4)
    }
}

// MARK: - Conversions shared with the system reader

extension InterfaceAddress {
    /// Parses numeric IPv4 text first so that dotted quads never reach the
    /// IPv6 parser, whose notion of embedded IPv4 would accept different input.
    static func parseNumericAddress(_ text: String) -> (Family, [UInt8])? {
        for family in [Family.ipv4, .ipv6] {
            var bytes = [UInt8](repeating: 0, count: family.byteCount)
            let parsed = bytes.withUnsafeMutableBytes { buffer in
                inet_pton(family.systemValue, text, buffer.baseAddress)
            }
            if parsed == 1 { return (family, bytes) }
        }
        return nil
    }

    /// Formats `bytes` with `inet_ntop`, so the text matches what other system
    /// tools print (for example `::ffff:192.0.2.1` for IPv4-mapped addresses).
    static func numericText(_ bytes: [UInt8], family: Family) -> String {
        precondition(bytes.count == family.byteCount, "address byte count does not match its family")
        var text = [CChar](repeating: 0, count: 64)
        let formatted = bytes.withUnsafeBytes { source in
            text.withUnsafeMutableBufferPointer { destination in
                inet_ntop(family.systemValue, source.baseAddress, destination.baseAddress, socklen_t(destination.count))
                    != nil
            }
        }
        // inet_ntop only fails for an unknown family or a short buffer, neither
        // of which can happen here.
        precondition(formatted, "inet_ntop failed")
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Darwin's kernel stores the zone of link-scoped IPv6 addresses inside
    /// bytes 2 and 3 of the address, and that form can leak out of the routing
    /// socket data getifaddrs is built from. Those bytes are always zero on the
    /// wire for the affected scopes, so moving them into the scope ID is safe.
    static func separatingEmbeddedScope(_ bytes: [UInt8], scopeID: UInt32) -> (bytes: [UInt8], scopeID: UInt32) {
        guard bytes.count == 16 else { return (bytes, scopeID) }
        let linkLocalUnicast = bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80
        let linkScopedMulticast = bytes[0] == 0xFF && [0x1, 0x2].contains(bytes[1] & 0x0F)
        let embedded = UInt32(bytes[2]) << 8 | UInt32(bytes[3])
        guard linkLocalUnicast || linkScopedMulticast, embedded != 0 else { return (bytes, scopeID) }
        var cleared = bytes
        cleared[2] = 0
        cleared[3] = 0
        return (cleared, scopeID == 0 ? embedded : scopeID)
    }
}

extension InterfaceAddress.Family {
    var systemValue: Int32 {
        switch self {
        case .ipv4: AF_INET
        case .ipv6: AF_INET6
        }
    }
}
