import NIOConcurrencyHelpers
import NIOCore

/// Tells this host's broadcast addresses from other IPv4 addresses, cheaply enough to ask for every send.
///
/// Which addresses are broadcast addresses depends on this host's subnets: 255.255.255.255 always is, and a
/// directed broadcast address is the all-ones host part of one of the host's own IPv4 subnets (a remote subnet's
/// broadcast address is routed like unicast). Verdicts are kept, so repeated questions cost no system call.
///
/// The answer serves two rules: a socket sends to a broadcast address only when broadcast was asked for
/// (`UDPSocketOptions.broadcast`, or a client opened for a destination its user named), and a server never
/// answers a "sender" that is a broadcast or multicast address (a spoofed source would turn the reply into a
/// broadcast to a whole subnet).
final class BroadcastAddresses: Sendable {
    /// Shared by every socket of the process: the host's subnets are the same for all of them.
    static let shared = BroadcastAddresses()

    /// Addresses already checked against the interface list.
    private let verdicts = NIOLockedValueBox<[UInt32: Bool]>([:])

    /// True for 255.255.255.255 and for the broadcast address of one of this host's IPv4 subnets.
    func isBroadcast(_ address: UDPAddress) -> Bool {
        guard let value = address.ipv4Value else { return false }
        if value == .max { return true }
        // Every directed broadcast address ends in at least two one bits (/30 is the longest prefix with one), so
        // most unicast addresses are settled without a lookup.
        guard value & 3 == 3 else { return false }
        if let known = verdicts.withLockedValue({ $0[value] }) { return known }
        let isBroadcast = Self.localBroadcastAddresses().contains(value)
        verdicts.withLockedValue { verdicts in
            if verdicts.count >= 1024 { verdicts.removeAll() }
            verdicts[value] = isBroadcast
        }
        return isBroadcast
    }

    /// True when any of `destinations` is a broadcast address of this host.
    func containsBroadcast<S: Sequence>(_ destinations: S) -> Bool where S.Element == UDPAddress {
        destinations.contains { isBroadcast($0) }
    }

    private static func localBroadcastAddresses() -> Set<UInt32> {
        let interfaces = (try? NetworkInterface.all()) ?? []
        return Set(interfaces.flatMap(\.addresses).compactMap(\.broadcastValue))
    }
}

extension UDPAddress {
    /// The IPv4 address as a host-order number, or nil for other families.
    var ipv4Value: UInt32? {
        guard case .v4(let a) = socketAddress else { return nil }
        return UInt32(bigEndian: a.address.sin_addr.s_addr)
    }

    /// True for an address no reply may go to: 255.255.255.255, a broadcast address of one of this host's
    /// subnets, or a multicast group (224.0.0.0/4, ff00::/8).
    ///
    /// A datagram's source address is whatever its sender wrote, so a spoofed "sender" of 10.1.1.255 or
    /// 224.0.0.1 would make a server's reply a broadcast to a whole subnet or a group. Servers check the sender
    /// with this before answering.
    public var isBroadcastOrMulticast: Bool {
        isMulticast || BroadcastAddresses.shared.isBroadcast(self)
    }
}
