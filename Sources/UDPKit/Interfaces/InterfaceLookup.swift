import NIOCore

/// Interfaces as the socket layer needs them: found by name with a `UDPError` that says what to do, and turned
/// into socket addresses.
extension NetworkInterface {
    /// The interface called `name`.
    ///
    /// - Throws: `UDPError.interfaceUnavailable` when this host has no interface of that name;
    ///   `UDPError.system` when the interfaces cannot be listed.
    public static func lookup(_ name: String) throws(UDPError) -> NetworkInterface {
        guard let found = try listed().first(where: { $0.name == name }) else {
            throw .interfaceUnavailable(name, reason: "no such interface on this host (see 'udp interfaces')")
        }
        return found
    }

    /// Every interface, with a failure to list them as a `UDPError`.
    static func listed() throws(UDPError) -> [NetworkInterface] {
        do {
            return try all()
        } catch let error as InterfaceError {
            throw .system(operation: "listing the network interfaces (\(error.operation))", errno: error.code)
        } catch {
            throw .system(operation: "listing the network interfaces", errno: 0)
        }
    }

    /// The first address of `family` on this interface, as a socket address with `port`.
    public func firstAddress(_ family: UDPAddress.Family, port: Int = 0) -> UDPAddress? {
        addresses.first { $0.family.udpFamily == family }.flatMap { try? UDPAddress($0, port: port) }
    }
}

extension UDPAddress {
    /// The address of an interface, with `port`; IPv6 link-local addresses keep their zone.
    /// - Throws: `UDPError.invalidPort` when `port` is outside 0...65535.
    public init(_ address: InterfaceAddress, port: Int) throws(UDPError) {
        guard (0...65535).contains(port) else { throw .invalidPort(String(port)) }
        try self.init(rawBytes: address.rawAddress, port: port)
        if case .v6(let six) = socketAddress, address.scopeID != 0 {
            var scoped = six.address
            scoped.sin6_scope_id = address.scopeID
            self.init(SocketAddress(scoped))
        }
    }

    /// The directed broadcast address, with `port`, of every interface that is up and can broadcast (loopback
    /// excluded), or of `interface` only: what `<broadcast>` means.
    ///
    /// Unlike the limited broadcast address 255.255.255.255, a directed broadcast address is routed by the
    /// interface's own subnet route, so it works on a host without a default route, and it reaches exactly
    /// that subnet.
    /// - Throws: `UDPError.interfaceUnavailable` when `interface` does not exist or has no IPv4 broadcast
    ///   address, or when no interface has one.
    public static func broadcastAddresses(port: Int, interface: String? = nil) throws(UDPError) -> [UDPAddress] {
        guard (0...65535).contains(port) else { throw .invalidPort(String(port)) }
        var interfaces = try NetworkInterface.listed()
        if let interface {
            interfaces = [try NetworkInterface.lookup(interface)]
            if !interfaces[0].flags.contains(.up) {
                throw .interfaceUnavailable(interface, reason: "the interface is down")
            }
        }
        let found = NetworkInterface.directedBroadcastAddresses(from: interfaces)
        if found.isEmpty {
            if let interface {
                throw .interfaceUnavailable(interface, reason: "it has no IPv4 broadcast address")
            }
            throw .interfaceUnavailable(
                "",
                reason:
                    "no interface that is up has an IPv4 broadcast address; send to a directed broadcast address such as 10.1.1.255, or to 255.255.255.255 on a chosen interface"
            )
        }
        return found.compactMap { try? UDPAddress(ip: $0.address, port: port) }
    }
}

extension InterfaceAddress.Family {
    var udpFamily: UDPAddress.Family {
        switch self {
        case .ipv4: return .ipv4
        case .ipv6: return .ipv6
        }
    }
}

extension InterfaceAddress {
    /// An IPv4 address as a host-order number; nil for IPv6.
    var ipv4Value: UInt32? {
        guard family == .ipv4, rawAddress.count == 4 else { return nil }
        return rawAddress.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// The IPv4 broadcast address as a host-order number; nil when there is none.
    var broadcastValue: UInt32? {
        guard let broadcast, let (family, bytes) = Self.parseNumericAddress(broadcast), family == .ipv4 else {
            return nil
        }
        return bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }
}
