import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings for a `UDPSocket`. The defaults receive every datagram whole and suit both clients and servers.
public struct UDPSocketOptions: Sendable {
    /// The largest datagram received whole. Longer datagrams are cut to this size and flagged `truncated`.
    /// Default 65,535: the largest UDP payload, so nothing is cut. Range 1...1,048,576.
    public var maximumDatagramSize: Int = 65_535
    /// How many datagrams one system call may read (`recvmmsg` on Linux; ignored elsewhere). Default 16 on
    /// Linux, 1 elsewhere. Larger batches cost memory (`maximumDatagramSize + 1` bytes each, per read).
    public var receiveBatchSize: Int = {
        #if UDPKIT_LINUX_FAST_PATH
        return 16
        #else
        return 1
        #endif
    }()
    /// How many bytes of received datagrams may wait for the reader before the socket stops reading and lets
    /// the kernel buffer (and then drop) further datagrams. Default 4 MiB.
    public var receiveQueueLimit: Int = 4 << 20
    /// SO_BROADCAST: allow sending to broadcast addresses. Off by default: without it, a send to 255.255.255.255
    /// or to the broadcast address of one of this host's subnets is refused (`UDPError.permissionDenied`).
    /// `UDPSocket.client(for:)` and `UDPSocket.connect(to:)` turn it on when the destination they are given is
    /// such an address; a send never does, so a reply to a spoofed broadcast "sender" cannot reach a subnet.
    public var broadcast = false
    /// SO_REUSEADDR: allow binding while an old socket on the port lingers; with multicast and broadcast, lets
    /// several sockets bind one port and each receive every datagram.
    public var reuseAddress = false
    /// SO_REUSEPORT: let several sockets bind the same address and port (the kernel spreads datagrams on Linux).
    public var reusePort = false
    /// SO_RCVBUF in bytes; nil leaves the system default.
    public var receiveBufferSize: Int?
    /// SO_SNDBUF in bytes; nil leaves the system default.
    public var sendBufferSize: Int?
    /// IP_TTL (IPv4) or IPV6_UNICAST_HOPS (IPv6), 1...255; nil leaves the system default.
    public var timeToLive: Int?
    /// IP_TOS (IPv4) or IPV6_TCLASS (IPv6), 0...255, e.g. 0xb8 for DSCP EF; nil leaves the default.
    public var typeOfService: Int?
    /// IPV6_V6ONLY: when false (the default) a socket bound to `::` also receives IPv4.
    public var ipv6Only = false
    /// For Unix-domain sockets: remove a stale socket file at the path before binding. Default true.
    public var removeExistingSocketFile = true
    /// Lets the kernel hand over a run of same-sized datagrams from one sender in a single read (UDP GRO,
    /// Linux 5.10 and later; ignored elsewhere). They are split back into datagrams before delivery, so a
    /// receiver sees exactly what it would without it, only faster, above all when the sender uses
    /// segmentation offload. Off by default.
    public var receiveOffload = false
    /// Report, for each datagram, the address it was sent to and the interface it came in on
    /// (`Datagram.arrival`), which tells broadcast and multicast from unicast (IP_PKTINFO, IPV6_RECVPKTINFO).
    /// IP sockets only; off by default.
    public var receivePacketInfo = false
    /// IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS: how many routers the multicast datagrams this socket sends may
    /// cross, 0...255 (0 keeps them on this host); nil leaves the system default, 1 (the local network).
    public var multicastTimeToLive: Int?
    /// IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP: whether group members on this host (other sockets, other
    /// programs) receive what this socket sends to the group; nil leaves the system default (they do).
    public var multicastLoop: Bool?
    /// IP_MULTICAST_IF / IPV6_MULTICAST_IF: the interface multicast datagrams go out on; nil lets the routing
    /// table choose (on a host without a default route there may be no choice, and sending fails). For an IPv4
    /// socket the interface needs an IPv4 address.
    public var multicastInterface: NetworkInterface?

    /// The default options.
    public init() {}

    /// Checks the ranges documented on each property.
    /// - Throws: `UDPOptionError` naming the option and the accepted range.
    public func validate() throws(UDPOptionError) {
        func check(_ name: String, _ value: Int?, _ range: ClosedRange<Int>) throws(UDPOptionError) {
            if let value, !range.contains(value) { throw UDPOptionError(option: name, value: value, range: range) }
        }
        try check("maximum datagram size", maximumDatagramSize, 1...1_048_576)
        try check("receive batch size", receiveBatchSize, 1...1024)
        try check("receive queue limit", receiveQueueLimit, 1...(1 << 30))
        try check("receive buffer size", receiveBufferSize, 1...(1 << 30))
        try check("send buffer size", sendBufferSize, 1...(1 << 30))
        try check("TTL", timeToLive, 1...255)
        try check("multicast TTL", multicastTimeToLive, 0...255)
        try check("TOS", typeOfService, 0...255)
    }
}

/// An option value outside its accepted range.
public struct UDPOptionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The option's name, as a person would say it.
    public var option: String
    /// The rejected value.
    public var value: Int
    /// The accepted range.
    public var range: ClosedRange<Int>

    public var description: String {
        "\(option) \(value) is out of range (\(range.lowerBound)-\(range.upperBound))"
    }
}

/// Raw socket option names that SwiftNIO does not name.
enum RawSocketOption {
    static let reusePort = option(SOL_SOCKET, SO_REUSEPORT)
    static let ipTTL = option(IPPROTO_IP, IP_TTL)
    static let ipTOS = option(IPPROTO_IP, IP_TOS)
    static let ipv6Hops = option(IPPROTO_IPV6, IPV6_UNICAST_HOPS)
    static let ipv6TrafficClass = option(IPPROTO_IPV6, IPV6_TCLASS)
    static let ipv6Only = option(IPPROTO_IPV6, IPV6_V6ONLY)
    #if os(Linux)
    static let ipMulticastAll = option(IPPROTO_IP, IP_MULTICAST_ALL)
    static let ipv6MulticastAll = option(IPPROTO_IPV6, IPV6_MULTICAST_ALL)
    #endif

    private static func option(_ level: some BinaryInteger, _ name: some BinaryInteger)
        -> ChannelOptions.Types.SocketOption
    {
        ChannelOptions.Types.SocketOption(level: .init(level), name: .init(name))
    }
}
