/// A network interface of this host together with its IPv4 and IPv6 addresses.
///
/// Instances are snapshots: nothing is updated after ``all()`` returns, and an
/// interface may have been renamed, reconfigured or removed by the time the
/// value is used.
public struct NetworkInterface: Sendable, Equatable, Hashable {
    /// The interface's state and capability flags.
    ///
    /// The raw values are this library's own and are the same on every
    /// platform; they are not the system's `IFF_*` values.
    public struct Flags: OptionSet, Sendable, Hashable {
        public var rawValue: UInt32

        public init(rawValue: UInt32) {
            self.rawValue = rawValue
        }

        /// The interface is administratively enabled (`IFF_UP`).
        public static let up = Flags(rawValue: 1 << 0)
        /// The interface is operational, for example it has a carrier (`IFF_RUNNING`).
        public static let running = Flags(rawValue: 1 << 1)
        /// The interface is a loopback interface (`IFF_LOOPBACK`).
        public static let loopback = Flags(rawValue: 1 << 2)
        /// The interface supports broadcast (`IFF_BROADCAST`).
        public static let broadcast = Flags(rawValue: 1 << 3)
        /// The interface is a point-to-point link (`IFF_POINTOPOINT`).
        public static let pointToPoint = Flags(rawValue: 1 << 4)
        /// The interface supports multicast (`IFF_MULTICAST`).
        public static let multicast = Flags(rawValue: 1 << 5)

        private static let named: [(flag: Flags, name: String)] = [
            (.up, "up"),
            (.running, "running"),
            (.loopback, "loopback"),
            (.broadcast, "broadcast"),
            (.pointToPoint, "pointToPoint"),
            (.multicast, "multicast"),
        ]

        /// The names of the flags that are set, spelled like the static
        /// properties above and always in the order `up`, `running`,
        /// `loopback`, `broadcast`, `pointToPoint`, `multicast`, for example
        /// `["up", "running", "broadcast", "multicast"]`.
        ///
        /// Bits that do not correspond to a known flag are left out, so the
        /// array is empty when no known flag is set.
        public var names: [String] {
            Self.named.filter { contains($0.flag) }.map(\.name)
        }
    }

    /// The interface name, such as `"eth0"` or `"en0"`.
    ///
    /// On Linux, IPv4 addresses that carry an alias label such as `"eth0:1"`
    /// are reported under the device they belong to (`"eth0"`); the label
    /// itself is not kept, because it names no interface that could be bound
    /// to or indexed.
    public var name: String

    /// The interface index as reported by `if_nametoindex`.
    ///
    /// `0` if the interface disappeared between being listed and being looked
    /// up; such interfaces are sorted last by ``all()``.
    public var index: Int

    /// The interface's flags at the time it was listed.
    public var flags: Flags

    /// The maximum transmission unit in bytes, read with the `SIOCGIFMTU`
    /// ioctl; `nil` if the system would not report it (for example because the
    /// interface disappeared, or no IPv4 or IPv6 datagram socket could be
    /// opened to ask through).
    public var mtu: Int?

    /// The interface's IPv4 and IPv6 addresses in the order the system listed
    /// them. Empty for interfaces that have none, such as one that is down.
    /// Addresses of other families (link-layer addresses) are not included.
    public var addresses: [InterfaceAddress]

    /// Creates an interface description from its parts without checking them.
    public init(name: String, index: Int, flags: Flags, mtu: Int?, addresses: [InterfaceAddress]) {
        self.name = name
        self.index = index
        self.flags = flags
        self.mtu = mtu
        self.addresses = addresses
    }
}

extension NetworkInterface {
    /// Lists every network interface of this host, including interfaces that
    /// are down or have no IPv4 or IPv6 address.
    ///
    /// The list is built from one `getifaddrs` call, grouped by interface name
    /// and sorted by ascending ``index``; interfaces whose index could not be
    /// determined come last, in the order the system listed them.
    ///
    /// - Throws: ``InterfaceError`` if `getifaddrs` fails. Failing to read an
    ///   interface's MTU or index is not an error; see ``mtu`` and ``index``.
    public static func all() throws -> [NetworkInterface] {
        try SystemInterfaces.snapshot()
    }

    /// The interface whose name is exactly `name`, or `nil` if there is none.
    ///
    /// Names are compared byte for byte (case-sensitively). On Linux an IPv4
    /// alias label such as `"eth0:1"` does not match, since aliases are folded
    /// into their device; see ``name``.
    ///
    /// - Throws: ``InterfaceError`` if the interfaces cannot be listed.
    public static func named(_ name: String) throws -> NetworkInterface? {
        try all().first { $0.name == name }
    }

    /// The IPv4 directed broadcast addresses of every interface that can carry
    /// broadcasts to a local network, in interface order.
    ///
    /// Meant for expanding a "broadcast everywhere" destination into one
    /// datagram per attached subnet, which, unlike `255.255.255.255`, does not
    /// depend on a default route to pick an outgoing interface.
    ///
    /// - Throws: ``InterfaceError`` if the interfaces cannot be listed.
    /// - Returns: The same as ``directedBroadcastAddresses(from:)`` applied to
    ///   ``all()``.
    public static func directedBroadcastAddresses() throws -> [(interface: String, address: String)] {
        directedBroadcastAddresses(from: try all())
    }

    /// The IPv4 directed broadcast addresses of the given interfaces.
    ///
    /// An interface contributes when it is ``Flags/up``, has the
    /// ``Flags/broadcast`` flag and is not ``Flags/loopback``; each of its IPv4
    /// addresses with a non-`nil` ``InterfaceAddress/broadcast`` then contributes
    /// that broadcast address. ``Flags/running`` is not required: it only
    /// reflects whether a carrier is currently detected, and whether such a
    /// link is worth sending to is left to the caller.
    /// Pairs are reported once even when several addresses of one interface
    /// share a subnet, and keep the order of `interfaces` and their addresses.
    ///
    /// - Returns: `(interface name, broadcast address in numeric text form)`
    ///   pairs; empty if no interface qualifies.
    public static func directedBroadcastAddresses(
        from interfaces: [NetworkInterface]
    ) -> [(interface: String, address: String)] {
        var result: [(interface: String, address: String)] = []
        var seen: Set<[String]> = []
        for interface in interfaces
        where interface.flags.contains([.up, .broadcast]) && !interface.flags.contains(.loopback) {
            for address in interface.addresses where address.family == .ipv4 {
                guard let broadcast = address.broadcast,
                    seen.insert([interface.name, broadcast]).inserted
                else { continue }
                result.append((interface: interface.name, address: broadcast))
            }
        }
        return result
    }
}
