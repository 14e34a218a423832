import NIOCore
import NIOConcurrencyHelpers

/// Decides when a socket must turn SO_BROADCAST on before a send.
///
/// The kernel refuses (EACCES) a datagram to a broadcast address from a socket without SO_BROADCAST, and SwiftNIO
/// then closes the socket, so the option has to be on before the first such send. Which addresses are broadcast
/// addresses depends on this host's subnets: 255.255.255.255 always is, and a directed broadcast address is the
/// all-ones host part of one of the host's own IPv4 subnets (a remote subnet's broadcast address is routed like
/// unicast and needs no permission).
final class BroadcastPermission: Sendable {
    private struct State {
        var enabled: Bool
        /// Addresses already checked against the interface list, so that repeated sends cost no system call.
        var verdicts: [UInt32: Bool] = [:]
    }

    private let state: NIOLockedValueBox<State>

    init(enabled: Bool) {
        state = NIOLockedValueBox(State(enabled: enabled))
    }

    var isEnabled: Bool { state.withLockedValue { $0.enabled } }

    func markEnabled() {
        state.withLockedValue { $0.enabled = true }
    }

    /// True when broadcast is still off and one of `destinations` is a broadcast address of this host.
    func isNeeded<S: Sequence>(for destinations: S) -> Bool where S.Element == UDPAddress {
        state.withLockedValue { state in
            guard !state.enabled else { return false }
            for destination in destinations {
                guard let value = destination.ipv4Value else { continue }
                if value == .max { return true }
                // Every directed broadcast address ends in at least two one bits (/30 is the longest prefix
                // with one), so most unicast destinations are settled without a lookup.
                guard value & 3 == 3 else { continue }
                if let known = state.verdicts[value] {
                    if known { return true }
                    continue
                }
                let isBroadcast = Self.localBroadcastAddresses().contains(value)
                if state.verdicts.count >= 1024 { state.verdicts.removeAll() }
                state.verdicts[value] = isBroadcast
                if isBroadcast { return true }
            }
            return false
        }
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
}
