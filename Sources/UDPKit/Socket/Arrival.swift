import NIOCore

extension Datagram {
    /// How a datagram reached this host, from the packet information the system attaches to it
    /// (IP_PKTINFO / IPV6_PKTINFO): the address it was sent to and the interface it came in on.
    public struct Arrival: Sendable, Hashable {
        /// Whether a datagram was addressed to this host alone, to a subnet, or to a group.
        public enum Kind: String, Sendable, CaseIterable {
            /// Sent to one of this host's addresses.
            case unicast
            /// Sent to 255.255.255.255 or to the broadcast address of one of this host's subnets.
            case broadcast
            /// Sent to a multicast group (224.0.0.0/4, ff00::/8).
            case multicast
        }

        /// The destination address in the datagram's IP header, with the receiving socket's port.
        public var destination: UDPAddress
        /// The index of the interface the datagram came in on.
        public var interfaceIndex: Int
        /// That interface's name, when the system still knows the index.
        public var interfaceName: String?
        /// Unicast, broadcast or multicast, read from `destination`.
        public var kind: Kind

        /// An arrival with the given parts.
        public init(destination: UDPAddress, interfaceIndex: Int, interfaceName: String?, kind: Kind) {
            self.destination = destination
            self.interfaceIndex = interfaceIndex
            self.interfaceName = interfaceName
            self.kind = kind
        }
    }
}

/// Turns packet information into an `Arrival`. Lives in the channel pipeline, so only its event loop touches it, or
/// in a `BatchResponder`'s loop, so only its thread does.
///
/// Telling a directed broadcast (10.1.1.255) from unicast needs this host's subnets, so the classifier keeps a
/// snapshot of the interfaces. It re-reads them when a datagram names something the snapshot does not know (an
/// interface or address added since), at most once a second, so a stream of datagrams never costs a system call
/// each.
final class ArrivalClassifier {
    private var names: [Int: String] = [:]
    private var broadcastAddresses: Set<UInt32> = []
    private var localAddresses: Set<UInt32> = []
    private var readAt: NIODeadline = .distantPast

    init() {
        refresh()
    }

    func arrival(_ info: NIOPacketInfo, port: Int) -> Datagram.Arrival {
        arrival(to: UDPAddress(info.destinationAddress).withPort(port), interfaceIndex: info.interfaceIndex)
    }

    /// The arrival of a datagram sent to `destination` (with the socket's port) that came in on `interfaceIndex`.
    func arrival(to destination: UDPAddress, interfaceIndex: Int) -> Datagram.Arrival {
        var kind = Datagram.Arrival.Kind.unicast
        if destination.isMulticast {
            kind = .multicast
        } else if let value = destination.ipv4Value {
            if value == .max {
                kind = .broadcast
            } else {
                if !broadcastAddresses.contains(value) && !localAddresses.contains(value) { refreshIfStale() }
                if broadcastAddresses.contains(value) { kind = .broadcast }
            }
        }
        if names[interfaceIndex] == nil { refreshIfStale() }
        return Datagram.Arrival(
            destination: destination, interfaceIndex: interfaceIndex,
            interfaceName: names[interfaceIndex], kind: kind)
    }

    private func refreshIfStale() {
        if NIODeadline.now() - readAt >= .seconds(1) { refresh() }
    }

    private func refresh() {
        readAt = .now()
        guard let interfaces = try? NetworkInterface.all() else { return }
        names = [:]
        broadcastAddresses = []
        localAddresses = []
        for interface in interfaces {
            names[interface.index] = interface.name
            for address in interface.addresses {
                if let value = address.ipv4Value { localAddresses.insert(value) }
                if let value = address.broadcastValue { broadcastAddresses.insert(value) }
            }
        }
    }
}
