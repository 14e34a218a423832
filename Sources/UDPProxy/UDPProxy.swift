#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Impairment
import NIOConcurrencyHelpers
import NIOCore
import UDPKit

/// A UDP relay between clients and one upstream address that can lose, delay, jitter, duplicate,
/// reorder, rate-limit and corrupt datagrams, each direction on its own settings.
///
/// Clients send to `localAddress`. Each client gets its own upstream socket (a NAT-like mapping), so
/// the upstream sees one source port per client and its replies find their way back; a mapping with
/// no traffic either way for `idleTimeout` is closed, and the next datagram from that client opens a
/// new one (with a new source port).
///
/// Every random decision comes from `Configuration.seed`: client mappings are numbered in order of
/// their first datagram, and mapping `k` draws from streams `2k` (up) and `2k + 1` (down), so a run
/// with the same seed and the same traffic makes the same decisions.
///
/// ```swift
/// var configuration = UDPProxy.Configuration(upstream: server.localAddress)
/// configuration.up.loss = 0.2
/// let proxy = try await UDPProxy.bind(to: UDPAddress(ip: "127.0.0.1", port: 0), configuration: configuration)
/// let task = Task { try await proxy.run() }   // clients now talk to proxy.localAddress
/// task.cancel()
/// ```
public final class UDPProxy: Sendable {
    /// What the proxy does.
    public struct Configuration: Sendable {
        /// Where datagrams from clients go.
        public var upstream: UDPAddress
        /// Impairments from clients to the upstream.
        public var up: ImpairmentSettings = .none
        /// Impairments from the upstream to clients.
        public var down: ImpairmentSettings = .none
        /// The seed of every random decision.
        public var seed: UInt64 = .random(in: 0...UInt64.max)
        /// A mapping with no datagram either way for this long is closed.
        public var idleTimeout: Duration = .seconds(60)
        /// Clients served at once; datagrams from further clients are dropped and counted.
        public var maximumClients = 1024

        /// A transparent proxy to `upstream` (no impairments, a random seed).
        public init(upstream: UDPAddress) {
            self.upstream = upstream
        }
    }

    /// Which way a datagram travels.
    public enum Direction: String, Sendable {
        /// From a client to the upstream.
        case up
        /// From the upstream to a client.
        case down
    }

    /// A datagram as the proxy received it, before any impairment.
    public struct Event: Sendable {
        /// Which way it travels.
        public var direction: Direction
        /// The client it belongs to.
        public var client: UDPAddress
        /// The datagram (its sender is the client for `up`, the upstream for `down`).
        public var datagram: Datagram
    }

    /// What the proxy did so far.
    public struct Counters: Sendable, Equatable {
        /// Client to upstream: received, forwarded, dropped, duplicated, reordered, corrupted, queued.
        public var up = ImpairmentCounters()
        /// Upstream to client.
        public var down = ImpairmentCounters()
        /// Mappings open now.
        public var clients = 0
        /// Mappings opened since the start.
        public var mappings = 0
        /// Mappings closed after `idleTimeout`.
        public var expired = 0
        /// Datagrams of new clients dropped because `maximumClients` were already served, or because the system
        /// had no descriptor (or memory) left for another upstream socket.
        public var refused = 0
        /// Sends that failed (an unreachable upstream, a vanished client).
        public var sendErrors = 0
    }

    /// The address clients send to.
    public let localAddress: UDPAddress
    /// The configuration the proxy runs with.
    public let configuration: Configuration

    private let listener: UDPSocket
    private let state = NIOLockedValueBox(State())

    private struct State {
        var mappings: [UDPAddress: Mapping] = [:]
        var opened = 0
        var expired = 0
        var refused = 0
        var sendErrors = 0
        /// Counters of unimpaired directions and of closed mappings.
        var up = ImpairmentCounters()
        var down = ImpairmentCounters()
    }

    private init(listener: UDPSocket, configuration: Configuration) {
        self.listener = listener
        self.localAddress = listener.localAddress
        self.configuration = configuration
    }

    /// Binds the client-facing socket. Call `run` to start relaying.
    /// - Throws: `UDPError` from binding (`.addressInUse`, ...).
    public static func bind(to endpoint: UDPEndpoint, family: UDPAddress.Family? = nil, configuration: Configuration) async throws -> UDPProxy {
        UDPProxy(listener: try await UDPSocket.bind(to: endpoint, family: family, options: socketOptions), configuration: configuration)
    }

    /// Binds the client-facing socket to a resolved address. See `bind(to:family:configuration:)`.
    public static func bind(to address: UDPAddress, configuration: Configuration) async throws -> UDPProxy {
        UDPProxy(listener: try await UDPSocket.bind(to: address, options: socketOptions), configuration: configuration)
    }

    private static var socketOptions: UDPSocketOptions {
        var options = UDPSocketOptions()
        options.receiveBufferSize = 4 << 20
        options.sendBufferSize = 4 << 20
        return options
    }

    /// The counters now.
    public var counters: Counters {
        let (mappings, base) = state.withLockedValue { state in
            (Array(state.mappings.values), Counters(
                up: state.up, down: state.down, clients: state.mappings.count, mappings: state.opened,
                expired: state.expired, refused: state.refused, sendErrors: state.sendErrors
            ))
        }
        var counters = base
        for mapping in mappings {
            if let lane = mapping.upLane { counters.up.add(lane.counters) }
            if let lane = mapping.downLane { counters.down.add(lane.counters) }
        }
        return counters
    }

    /// Relays until the task is cancelled (then returns normally) or the client-facing socket fails.
    /// Closes every socket it opened, the client-facing one included, before returning.
    /// - Parameter onEvent: called for every datagram received, in either direction, before impairment.
    public func run(onEvent: (@Sendable (Event) -> Void)? = nil) async throws {
        do {
            try await relay(onEvent: onEvent)
        } catch {
            await listener.close()
            throw error
        }
        await listener.close()
    }

    private func relay(onEvent: (@Sendable (Event) -> Void)?) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.expireIdleMappings() }
            defer {
                group.cancelAll()
                closeAll()
            }
            do {
                while true {
                    let batch = try await listener.receiveBatch()
                    try Task.checkCancellation()
                    var byClient: [UDPAddress: [Datagram]] = [:]
                    for datagram in batch {
                        onEvent?(Event(direction: .up, client: datagram.sender, datagram: datagram))
                        byClient[datagram.sender, default: []].append(datagram)
                    }
                    for (client, datagrams) in byClient {
                        // A broadcast or multicast "client" is a spoofed source: the upstream's replies would go to a
                        // whole subnet or group. Refused before any mapping exists.
                        if client.isBroadcastOrMulticast {
                            state.withLockedValue { $0.refused += datagrams.count }
                            continue
                        }
                        guard let mapping = try await mapping(for: client, group: &group, onEvent: onEvent) else {
                            state.withLockedValue { $0.refused += datagrams.count }
                            continue
                        }
                        mapping.touch()
                        if let lane = mapping.upLane {
                            lane.submit(datagrams.map(\.payload))
                        } else {
                            state.withLockedValue { $0.up.received += datagrams.count; $0.up.forwarded += datagrams.count }
                            await send(datagrams.map { OutgoingDatagram(payload: $0.payload, to: configuration.upstream) }, on: mapping.socket)
                        }
                    }
                }
            } catch is CancellationError {
            } catch UDPError.closed {
            }
        }
    }

    /// The mapping of `client`, opened (with its tasks) when it has none; nil when the proxy is full or the system
    /// has no descriptor left for another upstream socket.
    private func mapping(for client: UDPAddress, group: inout ThrowingDiscardingTaskGroup<any Error>, onEvent: (@Sendable (Event) -> Void)?) async throws -> Mapping? {
        if let existing = state.withLockedValue({ $0.mappings[client] }) { return existing }
        let index: Int? = state.withLockedValue { state in
            guard state.mappings.count < configuration.maximumClients else { return nil }
            state.opened += 1
            return state.opened - 1
        }
        guard let index else { return nil }
        let socket: UDPSocket
        do {
            socket = try await UDPSocket.connect(to: configuration.upstream)
        } catch UDPError.system(_, let code) where [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(code) {
            // Out of descriptors or memory: this client's datagrams are refused; the clients served go on.
            state.withLockedValue { $0.opened -= 1 }
            return nil
        }
        let seed = configuration.seed
        let mapping = Mapping(
            client: client, socket: socket,
            upLane: configuration.up.isNone ? nil : Lane(settings: configuration.up, generator: SeededGenerator(seed: seed, stream: UInt64(2 * index))),
            downLane: configuration.down.isNone ? nil : Lane(settings: configuration.down, generator: SeededGenerator(seed: seed, stream: UInt64(2 * index + 1)))
        )
        state.withLockedValue { $0.mappings[client] = mapping }
        if let lane = mapping.upLane {
            group.addTask {
                await lane.run { payloads in
                    await self.send(payloads.map { OutgoingDatagram(payload: $0, to: self.configuration.upstream) }, on: socket)
                }
            }
        }
        if let lane = mapping.downLane {
            group.addTask {
                await lane.run { payloads in
                    await self.send(payloads.map { OutgoingDatagram(payload: $0, to: client) }, on: self.listener)
                }
            }
        }
        group.addTask { await self.relayDown(mapping, onEvent: onEvent) }
        return mapping
    }

    /// Upstream to client for one mapping, until its socket closes.
    private func relayDown(_ mapping: Mapping, onEvent: (@Sendable (Event) -> Void)?) async {
        while !Task.isCancelled {
            let batch: [Datagram]
            do {
                batch = try await mapping.socket.receiveBatch()
            } catch UDPError.connectionRefused {
                // Nothing listens upstream (yet): the client will find out by the silence, as without a proxy.
                continue
            } catch {
                return
            }
            mapping.touch()
            if let onEvent {
                for datagram in batch { onEvent(Event(direction: .down, client: mapping.client, datagram: datagram)) }
            }
            if let lane = mapping.downLane {
                lane.submit(batch.map(\.payload))
            } else {
                state.withLockedValue { $0.down.received += batch.count; $0.down.forwarded += batch.count }
                await send(batch.map { OutgoingDatagram(payload: $0.payload, to: mapping.client) }, on: listener)
            }
        }
    }

    private func send(_ datagrams: [OutgoingDatagram], on socket: UDPSocket) async {
        do {
            try await socket.send(datagrams)
        } catch {
            state.withLockedValue { $0.sendErrors += datagrams.count }
        }
    }

    /// Closes mappings idle for `idleTimeout`, checking a few times per timeout.
    private func expireIdleMappings() async {
        let timeout = UInt64(configuration.idleTimeout.components.seconds) * 1_000_000_000
            + UInt64(configuration.idleTimeout.components.attoseconds / 1_000_000_000)
        let interval = max(timeout / 4, 10_000_000)
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: interval)
            let now = MonotonicClock.nanoseconds
            let idle = state.withLockedValue { state in
                let idle = state.mappings.values.filter { now - min(now, $0.lastActive) >= timeout }
                for mapping in idle {
                    state.mappings[mapping.client] = nil
                    state.expired += 1
                }
                return idle
            }
            for mapping in idle {
                retire(mapping)
                await mapping.socket.close()
            }
        }
    }

    /// Stops a mapping's lanes and keeps their counters; the caller closes its socket.
    private func retire(_ mapping: Mapping) {
        mapping.upLane?.finish()
        mapping.downLane?.finish()
        let up = mapping.upLane?.counters
        let down = mapping.downLane?.counters
        state.withLockedValue { state in
            if let up { state.up.add(up) }
            if let down { state.down.add(down) }
        }
    }

    private func closeAll() {
        let all = state.withLockedValue { state in
            let all = Array(state.mappings.values)
            state.mappings.removeAll()
            return all
        }
        for mapping in all {
            retire(mapping)
            Task { await mapping.socket.close() }
        }
    }
}
/// One client's upstream socket and lanes.
final class Mapping: Sendable {
    let client: UDPAddress
    let socket: UDPSocket
    let upLane: Lane?
    let downLane: Lane?
    private let active = NIOLockedValueBox(MonotonicClock.nanoseconds)

    init(client: UDPAddress, socket: UDPSocket, upLane: Lane?, downLane: Lane?) {
        self.client = client
        self.socket = socket
        self.upLane = upLane
        self.downLane = downLane
    }

    var lastActive: UInt64 { active.withLockedValue { $0 } }

    func touch() {
        let now = MonotonicClock.nanoseconds
        active.withLockedValue { $0 = now }
    }
}
