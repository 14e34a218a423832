import NIOCore
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Request {
    /// A broadcast or multicast request answered by a connected socket would wait in vain: replies come from
    /// each host's own address.
    static let needsAll = CLIFailure.usage(
        "replies to a broadcast or multicast request come from other addresses; add --all to collect every one until --timeout"
    )

    /// Where `--all` sends: every subnet's broadcast address for `<broadcast>` (or --interface's only), otherwise
    /// the one address, with what a broadcast or multicast destination needs (as `udp send` does).
    func allPlan(_ endpoint: UDPEndpoint, family: UDPAddress.Family?) async throws -> SendPlan {
        if case .ip(.broadcast, let port) = endpoint.kind {
            // Resolving explains why IPv6 has no broadcast.
            if family == .ipv6 { _ = try await endpoint.resolve(family: family) }
            return try SendPlan.broadcast(port: port, interface: interface, limited: false)
        }
        var plan = SendPlan(destinations: [try await resolveOne(endpoint, family: family)])
        try plan.adapt(interface: interface, limited: false, loop: nil, ttl: nil)
        // A directed broadcast address of another host's subnet is not known here as one: allow it anyway.
        if plan.destinations[0].family == .ipv4 { plan.options.broadcast = true }
        return plan
    }

    /// `--all`: sends the request once to each destination of `plan`, from one unconnected socket, and prints
    /// every reply from any address until the timeout, each with its round trip. For a broadcast or multicast
    /// request: who is out there.
    func requestAll(_ bytes: [UInt8], plan: SendPlan, formatter: DatagramFormatter) async throws {
        let destinations = plan.destinations
        for destination in destinations {
            if let limit = destination.maximumPayload, bytes.count > limit {
                throw UDPError.messageTooLarge(size: bytes.count, limit: limit)
            }
        }
        var local = plan.local
        if let from = request.from {
            let first = destinations[0]
            let bound = try await resolveOne(
                try UDPEndpoint.parse(from, defaultHost: .any), family: first.family == .unix ? nil : first.family)
            local = local.map { $0.withPort(bound.port ?? 0) } ?? bound
        }
        let destination = destinations[0]
        let options = plan.options
        let socket = try await UDPSocket.client(for: destination, from: local, options: options)
        let raw = request.raw
        let quiet = request.json || request.raw
        let wait = request.timeout
        let (replies, senders) = try await closing(socket) {
            try await withSignalCancellation {
                let sentAt = Date()
                let deadline = ContinuousClock.now + wait.duration
                do {
                    for destination in destinations { try await socket.send(ByteBuffer(bytes: bytes), to: destination) }
                } catch UDPError.networkUnreachable(let address)
                    where destination.isLimitedBroadcast || destination.isMulticast
                {
                    // Both go by the default route unless an interface is named.
                    throw CLIFailure(
                        message:
                            "network unreachable for \(address): no default route to send it by; name an interface (--interface)",
                        code: ExitCode32.unavailable)
                }
                var replies = 0
                var senders = Set<UDPAddress>()
                do {
                    while true {
                        let left = deadline - ContinuousClock.now
                        if left <= .zero { break }
                        let batch = try await socket.receiveBatch(timeout: left)
                        if batch.isEmpty { break }
                        for datagram in batch {
                            replies += 1
                            if senders.count < 100_000 { senders.insert(datagram.sender) }
                            if raw {
                                Terminal.writeStdout(bytes: datagram.bytes)
                            } else {
                                let rtt = datagram.receivedAt.timeIntervalSince(sentAt) * 1000
                                let extra: [(key: String, value: JSONText.Value)] = [
                                    ("rtt_ms", .double((rtt * 1000).rounded() / 1000))
                                ]
                                Terminal.writeStdout(formatter.render(datagram, event: "reply", extra: extra))
                            }
                        }
                        Terminal.flushStdout()
                    }
                } catch is CancellationError {}
                return (replies, senders.count)
            }
        }
        Terminal.flushStdout()
        if !quiet && replies > 0 {
            Terminal.writeStderr(
                "\(replies) repl\(replies == 1 ? "y" : "ies") from \(senders) address\(senders == 1 ? "" : "es") in \(wait.defaultValueDescription)\n"
            )
        }
        if replies == 0 { throw UDPError.timedOut(seconds: wait.seconds) }
    }
}
