#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// Reads the interface list from the C library and the kernel.
enum SystemInterfaces {
    static func snapshot() throws -> [NetworkInterface] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0 else {
            throw InterfaceError(operation: "getifaddrs", code: errno)
        }
        defer { freeifaddrs(head) }

        var names: [String] = []
        var interfaces: [String: NetworkInterface] = [:]
        var cursor = head
        while let entry = cursor?.pointee {
            cursor = entry.ifa_next
            guard let cName = entry.ifa_name else { continue }
            let name = deviceName(String(cString: cName))
            let flags = NetworkInterface.Flags(systemFlags: entry.ifa_flags)
            if interfaces[name] == nil {
                names.append(name)
                interfaces[name] = NetworkInterface(name: name, index: 0, flags: flags, mtu: nil, addresses: [])
            }
            if let address = InterfaceAddress(entry: entry, flags: flags) {
                interfaces[name]?.addresses.append(address)
            }
        }

        let probe = MTUProbe()
        var result = names.compactMap { interfaces[$0] }
        for position in result.indices {
            result[position].index = Int(if_nametoindex(result[position].name))
            result[position].mtu = probe.mtu(of: result[position].name)
        }
        // An index of 0 means the lookup failed, so those go last; positions
        // break ties so the order never depends on the sort algorithm.
        return result.enumerated().sorted { lhs, rhs in
            let left = lhs.element.index == 0 ? Int.max : lhs.element.index
            let right = rhs.element.index == 0 ? Int.max : rhs.element.index
            return (left, lhs.offset) < (right, rhs.offset)
        }.map(\.element)
    }

    /// Linux reports IPv4 addresses under their alias label ("eth0:1"), while
    /// device names themselves can never contain a colon, so everything from
    /// the first colon on is the label part.
    static func deviceName(_ reported: String) -> String {
        #if os(Linux)
        if let colon = reported.firstIndex(of: ":") {
            return String(reported[..<colon])
        }
        #endif
        return reported
    }
}

extension NetworkInterface.Flags {
    init(systemFlags: UInt32) {
        // Glibc imports IFF_* as Int and Darwin as Int32; widening both to Int
        // keeps a single mapping table.
        let system = Int(systemFlags)
        let mapping: [(Int, Self)] = [
            (Int(IFF_UP), .up),
            (Int(IFF_RUNNING), .running),
            (Int(IFF_LOOPBACK), .loopback),
            (Int(IFF_BROADCAST), .broadcast),
            (Int(IFF_POINTOPOINT), .pointToPoint),
            (Int(IFF_MULTICAST), .multicast),
        ]
        self = mapping.reduce(into: []) { flags, pair in
            if system & pair.0 != 0 { flags.insert(pair.1) }
        }
    }
}

extension InterfaceAddress {
    /// Returns `nil` for entries without an IPv4 or IPv6 address, such as the
    /// link-layer entries that exist for every interface.
    init?(entry: ifaddrs, flags: NetworkInterface.Flags) {
        guard let socketAddress = entry.ifa_addr else { return nil }
        let family: Family
        switch Int32(socketAddress.pointee.sa_family) {
        case AF_INET: family = .ipv4
        case AF_INET6: family = .ipv6
        default: return nil
        }

        var bytes = SocketAddressReader.addressBytes(socketAddress, family: family)
        var scopeID = family == .ipv6 ? SocketAddressReader.scopeID(socketAddress) : 0
        #if canImport(Darwin)
        if family == .ipv6 {
            (bytes, scopeID) = Self.separatingEmbeddedScope(bytes, scopeID: scopeID)
        }
        #endif

        let prefixLength =
            entry.ifa_netmask.map {
                Self.prefixLength(netmask: SocketAddressReader.addressBytes($0, family: family))
            } ?? family.byteCount * 8

        var broadcast: String?
        if family == .ipv4, flags.contains(.broadcast), !flags.contains(.pointToPoint) {
            // The C library puts the address itself into this field when no
            // broadcast address is configured, so that value means "unknown".
            let reported = Self.broadcastField(of: entry).flatMap { field -> [UInt8]? in
                guard Int32(field.pointee.sa_family) == AF_INET else { return nil }
                let candidate = SocketAddressReader.addressBytes(field, family: .ipv4)
                return candidate == [0, 0, 0, 0] || candidate == bytes ? nil : candidate
            }
            let chosen = reported ?? Self.directedBroadcast(address: bytes, prefixLength: prefixLength)
            broadcast = chosen.map { Self.numericText($0, family: .ipv4) }
        }

        self.init(
            family: family,
            address: Self.numericText(bytes, family: family),
            prefixLength: prefixLength,
            broadcast: broadcast,
            scopeID: scopeID,
            rawAddress: bytes
        )
    }

    /// The broadcast address shares storage with the point-to-point peer
    /// address; the C headers expose that union under different names.
    private static func broadcastField(of entry: ifaddrs) -> UnsafeMutablePointer<sockaddr>? {
        #if canImport(Darwin)
        return entry.ifa_dstaddr
        #else
        return entry.ifa_ifu.ifu_broadaddr
        #endif
    }
}

/// Reads fields out of `sockaddr_in` / `sockaddr_in6` byte by byte instead of
/// rebinding memory, because BSD-derived systems hand out netmasks whose
/// storage is truncated to the significant bytes (`sa_len`) and whose family
/// field may not be set; the family of the interface address is used instead.
enum SocketAddressReader {
    static func addressBytes(_ socketAddress: UnsafePointer<sockaddr>, family: InterfaceAddress.Family) -> [UInt8] {
        let offset =
            switch family {
            case .ipv4: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!
            case .ipv6: MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
            }
        var available = family.byteCount
        #if canImport(Darwin)
        available = min(available, max(0, Int(socketAddress.pointee.sa_len) - offset))
        #endif
        let raw = UnsafeRawPointer(socketAddress)
        return (0..<family.byteCount).map { position in
            position < available ? raw.load(fromByteOffset: offset + position, as: UInt8.self) : 0
        }
    }

    static func scopeID(_ socketAddress: UnsafePointer<sockaddr>) -> UInt32 {
        let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_scope_id)!
        return UnsafeRawPointer(socketAddress).loadUnaligned(fromByteOffset: offset, as: UInt32.self)
    }
}

/// Asks the kernel for interface MTUs through one datagram socket that is
/// never bound, connected or used to send.
private final class MTUProbe {
    private let descriptor: Int32

    init() {
        // Any datagram socket can answer; IPv6 is the fallback for hosts with
        // IPv4 disabled.
        descriptor = [AF_INET, AF_INET6].lazy.map(Self.openDatagramSocket).first { $0 >= 0 } ?? -1
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    func mtu(of name: String) -> Int? {
        guard descriptor >= 0 else { return nil }
        var request = ifreq()
        let nameBytes = Array(name.utf8)
        // The kernel needs room for a terminating NUL inside the fixed field.
        guard !nameBytes.isEmpty, nameBytes.count < Int(IFNAMSIZ) else { return nil }
        #if canImport(Darwin)
        withUnsafeMutableBytes(of: &request.ifr_name) { $0.copyBytes(from: nameBytes) }
        #else
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { $0.copyBytes(from: nameBytes) }
        #endif
        guard ioctl(descriptor, Self.getMTURequest, &request) == 0 else { return nil }
        return Int(request.ifr_ifru.ifru_mtu)
    }

    private static func openDatagramSocket(_ family: Int32) -> Int32 {
        #if canImport(Darwin)
        return socket(family, SOCK_DGRAM, 0)
        #else
        return socket(family, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        #endif
    }

    #if canImport(Darwin)
    /// Darwin defines SIOCGIFMTU through the _IOWR macro, which Swift cannot
    /// import, so the request number is assembled the same way:
    /// direction in/out, parameter size, group 'i', number 51.
    private static let getMTURequest: UInt =
        0xC000_0000 | UInt((MemoryLayout<ifreq>.size & 0x1FFF) << 16) | UInt(UInt8(ascii: "i")) << 8 | 51
    #else
    private static let getMTURequest = UInt(SIOCGIFMTU)
    #endif
}
