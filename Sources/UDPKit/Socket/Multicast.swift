import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension UDPSocket {
    /// Joins the multicast `group`, so that this socket receives the datagrams sent to the group on its port.
    ///
    /// Memberships are the socket's own and end when it closes. To receive a group on several interfaces, or
    /// from several sources, join once for each. Several sockets (in one program or several) can receive the
    /// same group and port when each binds with `reuseAddress` and `reusePort`.
    ///
    /// - Parameters:
    ///   - group: a multicast address (IPv4 224.0.0.0/4, IPv6 ff00::/8) of the socket's family: bind 0.0.0.0 to
    ///     join an IPv4 group, `::` for an IPv6 one. The port is ignored.
    ///   - interface: where to join. Nil lets the routing table pick the interface for the group; on a host
    ///     without a default route there is none for an IPv4 group, and joining fails.
    ///   - source: receive only what this address sends to the group (source-specific multicast, RFC 4607;
    ///     232.0.0.0/8 and ff3x::/32 are the groups meant for it). Nil receives from every sender.
    /// - Throws: `UDPError.invalidAddress` when `group` is not a multicast address of the socket's family or the
    ///   socket already joined it there; `UDPError.interfaceUnavailable` when no interface was given and none can
    ///   be picked; `UDPError.system` otherwise (for example, source-specific joins where the system lacks them).
    public func join(group: UDPAddress, interface: NetworkInterface? = nil, source: UDPAddress? = nil) async throws {
        try await changeMembership(.join, group: group, interface: interface, source: source)
    }

    /// Leaves a group joined with `join(group:interface:source:)`, with the same interface and source.
    /// - Throws: `UDPError.invalidAddress` when the socket is not a member of the group there.
    public func leave(group: UDPAddress, interface: NetworkInterface? = nil, source: UDPAddress? = nil) async throws {
        try await changeMembership(.leave, group: group, interface: interface, source: source)
    }

    private enum MembershipChange {
        case join, leave
    }

    /// Uses the protocol-independent membership options of RFC 3678 (MCAST_JOIN_GROUP, MCAST_JOIN_SOURCE_GROUP),
    /// which name the interface by index for both families; SwiftNIO's `joinGroup` needs an IPv4 address on the
    /// interface and has no source-specific form.
    private func changeMembership(
        _ change: MembershipChange, group: UDPAddress, interface: NetworkInterface?, source: UDPAddress?
    ) async throws {
        let groupText = group.ip ?? group.description
        let place = groupText + (interface.map { " on \($0.name)" } ?? "")
        guard group.isMulticast else {
            throw UDPError.invalidAddress(groupText, reason: "not a multicast group (IPv4 224.0.0.0/4, IPv6 ff00::/8)")
        }
        guard group.family == localAddress.family else {
            let wildcard = group.family == .ipv4 ? "0.0.0.0" : "::"
            throw UDPError.invalidAddress(
                groupText,
                reason: "a group of this family needs a socket bound to \(wildcard) or another address of its family")
        }
        if let source, source.family != group.family {
            throw UDPError.invalidAddress(
                source.ip ?? source.description, reason: "a source must be of the group's address family")
        }
        guard let provider = channel as? any SocketOptionProvider else {
            throw UDPError.system(operation: "joining \(place)", errno: EOPNOTSUPP)
        }
        #if os(Linux)
        if change == .join {
            // Linux hands a wildcard-bound socket the datagrams of every group any socket on the host joined
            // (IP_MULTICAST_ALL), so leaving would not stop delivery while another socket stays a member. Make
            // memberships the socket's own, as on other systems. IPV6_MULTICAST_ALL needs Linux 4.20.
            let option = group.family == .ipv4 ? RawSocketOption.ipMulticastAll : RawSocketOption.ipv6MulticastAll
            try? await channel.setOption(option, value: 0).get()
        }
        #endif
        let level = group.family == .ipv4 ? Int32(IPPROTO_IP) : Int32(IPPROTO_IPV6)
        let index = UInt32(interface?.index ?? 0)
        do {
            if let source {
                var request = group_source_req()
                request.gsr_interface = index
                Self.store(group, in: &request.gsr_group)
                Self.store(source, in: &request.gsr_source)
                let name = change == .join ? MCAST_JOIN_SOURCE_GROUP : MCAST_LEAVE_SOURCE_GROUP
                try await provider.unsafeSetSocketOption(level: .init(level), name: .init(name), value: request).get()
            } else {
                var request = group_req()
                request.gr_interface = index
                Self.store(group, in: &request.gr_group)
                let name = change == .join ? MCAST_JOIN_GROUP : MCAST_LEAVE_GROUP
                try await provider.unsafeSetSocketOption(level: .init(level), name: .init(name), value: request).get()
            }
        } catch {
            throw Self.membershipError(error, change: change, place: place, interface: interface, source: source)
        }
    }

    private static func membershipError(
        _ error: any Error, change: MembershipChange, place: String, interface: NetworkInterface?, source: UDPAddress?
    ) -> UDPError {
        guard let code = (error as? IOError)?.errnoCode else {
            return UDPError.from(
                error, address: place, operation: change == .join ? "joining \(place)" : "leaving \(place)")
        }
        if source != nil, [ENOPROTOOPT, EOPNOTSUPP, EINVAL].contains(code) {
            return .system(operation: "source-specific multicast for \(place)", errno: code)
        }
        switch (change, code) {
        case (.join, ENODEV):
            if let interface {
                return .interfaceUnavailable(interface.name, reason: "cannot receive multicast there")
            }
            return .interfaceUnavailable(
                "",
                reason:
                    "no route picks an interface for group \(place) (no default route?); name the interface to join on")
        case (.join, EADDRINUSE):
            return .invalidAddress(place, reason: "this socket has already joined that group there")
        case (.leave, EADDRNOTAVAIL), (.leave, EINVAL):
            return .invalidAddress(place, reason: "this socket is not a member of that group there")
        case (.join, ENOBUFS), (.join, ENOMEM):
            return .system(
                operation:
                    "joining \(place): too many memberships for one socket (Linux: net.ipv4.igmp_max_memberships)",
                errno: code)
        default:
            return .system(operation: change == .join ? "joining \(place)" : "leaving \(place)", errno: code)
        }
    }

    /// Writes `address` into a `sockaddr_storage` the way the membership requests expect it.
    private static func store(_ address: UDPAddress, in storage: inout sockaddr_storage) {
        func copy<Raw>(_ raw: Raw) {
            withUnsafeBytes(of: raw) { source in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) } }
        }
        switch address.socketAddress {
        case .v4(let v4):
            var raw = v4.address
            #if canImport(Darwin)
            // BSD kernels check the length field of the addresses in these requests.
            raw.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
            #endif
            copy(raw)
        case .v6(let v6):
            var raw = v6.address
            #if canImport(Darwin)
            raw.sin6_len = UInt8(MemoryLayout<sockaddr_in6>.size)
            #endif
            copy(raw)
        case .unixDomainSocket:
            break
        }
    }

    /// Applies the multicast sending options: TTL or hop limit, loop, outgoing interface.
    static func applyMulticastOptions(_ options: UDPSocketOptions, family: UDPAddress.Family, channel: any Channel)
        async throws
    {
        guard options.multicastTimeToLive != nil || options.multicastLoop != nil || options.multicastInterface != nil
        else { return }
        guard let provider = channel as? any SocketOptionProvider else {
            throw UDPError.system(operation: "setting multicast options", errno: EOPNOTSUPP)
        }
        func run(_ name: String, _ future: EventLoopFuture<Void>) async throws {
            do {
                try await future.get()
            } catch {
                throw UDPError.from(error, address: name, operation: "setting \(name)")
            }
        }
        let ttl = options.multicastTimeToLive
        let loop = options.multicastLoop
        if family == .ipv6 {
            if let ttl { try await run("multicast hop limit", provider.setIPv6MulticastHops(CInt(ttl))) }
            if let loop { try await run("multicast loop", provider.setIPv6MulticastLoop(loop ? 1 : 0)) }
            if let interface = options.multicastInterface {
                try await run("multicast interface", provider.setIPv6MulticastIF(CUnsignedInt(interface.index)))
            }
            // Dual-stack sockets also send IPv4; set the IPv4 equivalents where the system allows it.
            if let ttl { try? await provider.setIPMulticastTTL(CUnsignedChar(ttl)).get() }
            if let loop { try? await provider.setIPMulticastLoop(loop ? 1 : 0).get() }
            return
        }
        if let ttl { try await run("multicast TTL", provider.setIPMulticastTTL(CUnsignedChar(ttl))) }
        if let loop { try await run("multicast loop", provider.setIPMulticastLoop(loop ? 1 : 0)) }
        if let interface = options.multicastInterface {
            // The portable IPv4 form names the interface by one of its addresses.
            guard let address = interface.addresses.first(where: { $0.family == .ipv4 }) else {
                throw UDPError.interfaceUnavailable(
                    interface.name, reason: "it has no IPv4 address, which IPv4 multicast needs to go out there")
            }
            var chosen = in_addr()
            withUnsafeMutableBytes(of: &chosen) { $0.copyBytes(from: address.rawAddress) }
            try await run("multicast interface", provider.setIPMulticastIF(chosen))
        }
    }
}
