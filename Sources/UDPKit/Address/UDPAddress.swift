import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A resolved UDP socket address: an IPv4 or IPv6 address with a port, or a Unix-domain socket path.
///
/// IPv4 peers seen through a dual-stack IPv6 socket (`::ffff:a.b.c.d`) are normalized to plain IPv4, so one
/// peer has one address whichever socket saw it. `description` prints `1.2.3.4:80`, `[::1]:80` or the path.
public struct UDPAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address family.
    public enum Family: String, Sendable, CaseIterable {
        /// IPv4.
        case ipv4
        /// IPv6.
        case ipv6
        /// Unix-domain datagram socket (a file system path).
        case unix
    }

    /// The underlying SwiftNIO address, for interoperating with SwiftNIO code.
    public let socketAddress: SocketAddress

    /// Wraps a SwiftNIO address, normalizing an IPv4-mapped IPv6 address to IPv4.
    public init(_ socketAddress: SocketAddress) {
        if case .v6(let v6) = socketAddress, let v4 = Self.unmapped(v6.address) {
            self.socketAddress = SocketAddress(v4)
        } else {
            self.socketAddress = socketAddress
        }
    }

    /// An address from a numeric IP (`127.0.0.1`, `::1`, `fe80::1%eth0`) and a port.
    ///
    /// - Throws: `UDPError.invalidAddress` when `ip` is not a numeric address, `UDPError.invalidPort` when `port`
    ///   is outside 0...65535.
    public init(ip: String, port: Int) throws(UDPError) {
        guard (0...65535).contains(port) else { throw .invalidPort(String(port)) }
        if let address = try? SocketAddress(ipAddress: ip, port: port) {
            self.init(address)
            return
        }
        // Scoped IPv6 literals (fe80::1%eth0) need getaddrinfo with AI_NUMERICHOST.
        guard ip.contains("%"), let found = Resolver.numericScoped(ip, port: port) else {
            throw .invalidAddress(ip, reason: "not a numeric IPv4 or IPv6 address")
        }
        self.init(found)
    }

    /// The address of a Unix-domain datagram socket at `path`.
    ///
    /// - Throws: `UDPError.invalidAddress` when the path is empty or longer than the platform allows (about 100 bytes).
    public init(unixPath path: String) throws(UDPError) {
        guard !path.isEmpty else { throw .invalidAddress(path, reason: "empty socket path") }
        do {
            self.init(try SocketAddress(unixDomainSocketPath: path))
        } catch {
            throw .invalidAddress(
                path,
                reason:
                    "a Unix socket path must be shorter than \(MemoryLayout.size(ofValue: sockaddr_un().sun_path)) bytes"
            )
        }
    }

    /// The sender of a Unix-domain datagram as `recvfrom` gave it: a path, an abstract name (`@name`), or nothing
    /// at all (an unbound socket, shown as "(unbound)"). Only a path can be answered.
    init(unixSender name: sockaddr_un, length: socklen_t) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path) ?? 2
        let pathLength = max(0, min(Int(length) - pathOffset, MemoryLayout.size(ofValue: address.sun_path) - 1))
        if pathLength > 0 {
            withUnsafeBytes(of: name.sun_path) { source in
                withUnsafeMutableBytes(of: &address.sun_path) {
                    $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<pathLength]))
                }
            }
        }
        self.socketAddress = SocketAddress(address)
    }

    /// True for a Unix-domain sender that has no path: an unbound socket or one in the abstract namespace. Nothing
    /// can be sent back to it (an abstract name is not kept whole), so servers count such datagrams as unanswerable.
    public var isUnnamedUnix: Bool {
        guard case .unixDomainSocket = socketAddress else { return false }
        return path?.isEmpty ?? true
    }

    /// The abstract-namespace name of a Unix-domain sender (`@name`), or nil.
    private var abstractName: String? {
        guard case .unixDomainSocket(let unix) = socketAddress else { return nil }
        return withUnsafeBytes(of: unix.address.sun_path) { bytes -> String? in
            guard bytes.count > 1, bytes[0] == 0, bytes[1] != 0 else { return nil }
            let name = bytes[1...].prefix { $0 != 0 }
            return "@" + String(decoding: name, as: UTF8.self)
        }
    }

    /// The family of this address.
    public var family: Family {
        switch socketAddress {
        case .v4: return .ipv4
        case .v6: return .ipv6
        case .unixDomainSocket: return .unix
        }
    }

    /// The numeric IP address as text (`127.0.0.1`, `::1`), or nil for a Unix-domain address.
    public var ip: String? { socketAddress.ipAddress }

    /// The port, or nil for a Unix-domain address.
    public var port: Int? { socketAddress.port }

    /// The socket path of a Unix-domain address, else nil.
    public var path: String? { socketAddress.pathname }

    /// True for 0.0.0.0 and ::.
    public var isAny: Bool {
        switch socketAddress {
        case .v4(let a): return a.address.sin_addr.s_addr == 0
        case .v6(let a): return withUnsafeBytes(of: a.address.sin6_addr) { $0.allSatisfy { $0 == 0 } }
        case .unixDomainSocket: return false
        }
    }

    /// True for the limited broadcast address 255.255.255.255.
    public var isLimitedBroadcast: Bool {
        if case .v4(let a) = socketAddress { return a.address.sin_addr.s_addr == 0xFFFF_FFFF }
        return false
    }

    /// True for IPv4 224.0.0.0/4 and IPv6 ff00::/8.
    public var isMulticast: Bool {
        switch socketAddress {
        case .v4(let a): return (UInt32(bigEndian: a.address.sin_addr.s_addr) >> 28) == 0xE
        case .v6(let a): return withUnsafeBytes(of: a.address.sin6_addr) { $0[0] == 0xFF }
        case .unixDomainSocket: return false
        }
    }

    /// The same address with another port (Unix-domain addresses are returned unchanged).
    public func withPort(_ port: Int) -> UDPAddress {
        var copy = socketAddress
        if copy.port != nil { copy.port = port }
        return UDPAddress(copy)
    }

    /// The largest payload one datagram can carry to this address: 65,507 bytes over IPv4, 65,527 over IPv6;
    /// nil for Unix-domain sockets, where the system's buffer sizes decide.
    public var maximumPayload: Int? {
        switch family {
        case .ipv4: return 65_507
        case .ipv6: return 65_527
        case .unix: return nil
        }
    }

    public var description: String {
        switch socketAddress {
        case .v4: return "\(ip ?? "?"):\(port ?? 0)"
        case .v6(let a):
            var text = ip ?? "?"
            if a.address.sin6_scope_id != 0, !text.contains("%") {
                text += "%\(Self.interfaceName(a.address.sin6_scope_id))"
            }
            return "[\(text)]:\(port ?? 0)"
        case .unixDomainSocket:
            if let path, !path.isEmpty { return path }
            return abstractName ?? "(unbound)"
        }
    }

    /// This address as seen by an IPv6 socket: IPv4 becomes `::ffff:a.b.c.d`, others are unchanged.
    var mappedToIPv6: SocketAddress {
        guard case .v4(let v4) = socketAddress else { return socketAddress }
        var six = sockaddr_in6()
        six.sin6_family = sa_family_t(AF_INET6)
        six.sin6_port = v4.address.sin_port
        withUnsafeMutableBytes(of: &six.sin6_addr) { bytes in
            bytes[10] = 0xFF
            bytes[11] = 0xFF
            withUnsafeBytes(of: v4.address.sin_addr) { four in
                for i in 0..<4 { bytes[12 + i] = four[i] }
            }
        }
        return SocketAddress(six)
    }

    private static func unmapped(_ six: sockaddr_in6) -> sockaddr_in? {
        let isMapped = withUnsafeBytes(of: six.sin6_addr) { bytes in
            bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
        }
        guard isMapped else { return nil }
        var four = sockaddr_in()
        four.sin_family = sa_family_t(AF_INET)
        four.sin_port = six.sin6_port
        withUnsafeBytes(of: six.sin6_addr) { bytes in
            withUnsafeMutableBytes(of: &four.sin_addr) { out in
                for i in 0..<4 { out[i] = bytes[12 + i] }
            }
        }
        return four
    }

    private static func interfaceName(_ index: UInt32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(index, &buffer) != nil else { return String(index) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension UDPAddress {
    /// The IP address as network-order bytes (4 for IPv4, 16 for IPv6); nil for Unix-domain addresses.
    public var rawBytes: [UInt8]? {
        switch socketAddress {
        case .v4(let a): return withUnsafeBytes(of: a.address.sin_addr) { Array($0) }
        case .v6(let a): return withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
        case .unixDomainSocket: return nil
        }
    }

    /// An address from network-order bytes (4 or 16) and a port.
    /// - Throws: `UDPError.invalidAddress` for any other length.
    public init(rawBytes: [UInt8], port: Int = 0) throws(UDPError) {
        switch rawBytes.count {
        case 4:
            var four = sockaddr_in()
            four.sin_family = sa_family_t(AF_INET)
            four.sin_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeMutableBytes(of: &four.sin_addr) { $0.copyBytes(from: rawBytes) }
            self.init(SocketAddress(four))
        case 16:
            var six = sockaddr_in6()
            six.sin6_family = sa_family_t(AF_INET6)
            six.sin6_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeMutableBytes(of: &six.sin6_addr) { $0.copyBytes(from: rawBytes) }
            self.init(SocketAddress(six))
        default:
            throw .invalidAddress("\(rawBytes.count) bytes", reason: "an IP address has 4 or 16 bytes")
        }
    }
}
