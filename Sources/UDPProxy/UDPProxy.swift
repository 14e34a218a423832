import Impairment
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import UDPKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A UDP relay between clients and one upstream address that can lose, delay, jitter, duplicate,
/// reorder, rate-limit and corrupt datagrams, each direction on its own settings.
///
/// Clients send to `localAddress`. Each client gets its own upstream socket (a NAT-like mapping), so
/// the upstream sees one source port per client and its replies find their way back; a mapping with
/// no traffic either way for `idleTimeout` is closed, and the next datagram from that client opens a
/// new one (with a new source port).
///
/// Memory is bounded: an unimpaired mapping costs a few KiB (its socket is read by one shared thread
/// into one shared buffer), at most `maximumClients` are open, and the impairment queues of all clients
/// hold at most `totalQueueLimit` bytes. The upstream must be an IP address.
///
/// Every random decision comes from `Configuration.seed`: client mappings are numbered in order of
/// their first datagram, and mapping `k` draws from streams `2k` (up) and `2k + 1` (down), so a run
/// with the same seed and the same traffic makes the same decisions.
///
/// A `Service`: `run()` relays until a graceful shutdown or a cancellation (both stop it at once: what the
/// impairment queues still hold is discarded and counted) and closes every socket before it returns.
///
/// ```swift
/// var configuration = UDPProxy.Configuration(upstream: server.localAddress)
/// configuration.up.loss = 0.2
/// let proxy = try await UDPProxy.bind(to: UDPAddress(ip: "127.0.0.1", port: 0), configuration: configuration)
/// let group = ServiceGroup(services: [proxy], gracefulShutdownSignals: [.sigint, .sigterm])
/// try await group.run()   // clients talk to proxy.localAddress until SIGINT or SIGTERM
/// ```
public final class UDPProxy: Service {
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
        /// Bytes that all clients' queues (rate, delay, reorder, both directions) may hold together; a datagram
        /// that would go over is dropped and counted as overflowed. Each direction of each client is bounded too,
        /// by `ImpairmentSettings.queueLimit` and `datagramLimit`.
        public var totalQueueLimit = 64 << 20

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
    /// Called for every datagram received, in either direction, before impairment, from the tasks that relay:
    /// it must not block.
    public let onEvent: (@Sendable (Event) -> Void)?

    private let listener: UDPSocket
    private let upstreams: UpstreamSockets
    private let state = NIOLockedValueBox(State())
    private let budget: QueueBudget
    /// Bytes of replies read from upstream sockets and not yet relayed (payloads plus `datagramOverhead` each).
    private let pendingReplies = NIOLockedValueBox(0)
    /// What replies may hold while they wait to be relayed: 8 MiB, a few milliseconds of a busy upstream.
    static let pendingRepliesLimit = 8 << 20
    /// What a datagram costs in memory beyond its payload (buffer header, allocator rounding), for the bounds.
    static let datagramOverhead = 64

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

    private init(
        listener: UDPSocket, upstreams: UpstreamSockets, configuration: Configuration,
        onEvent: (@Sendable (Event) -> Void)?
    ) {
        self.listener = listener
        self.upstreams = upstreams
        self.localAddress = listener.localAddress
        self.configuration = configuration
        self.onEvent = onEvent
        self.budget = QueueBudget(limit: configuration.totalQueueLimit)
    }

    /// Binds the client-facing socket. Call `run()` to start relaying.
    /// - Throws: `UDPError` from binding (`.addressInUse`, ...).
    /// - Throws: `UDPProxyError.upstreamIsItself` when the upstream is the address just bound.
    public static func bind(
        to endpoint: UDPEndpoint, family: UDPAddress.Family? = nil, configuration: Configuration,
        onEvent: (@Sendable (Event) -> Void)? = nil
    ) async throws -> UDPProxy {
        let upstreams = try UpstreamSockets(upstream: configuration.upstream)
        let listener = try await UDPSocket.bind(to: endpoint, family: family, options: socketOptions)
        return try await checked(
            UDPProxy(listener: listener, upstreams: upstreams, configuration: configuration, onEvent: onEvent))
    }

    /// Binds the client-facing socket to a resolved address. See `bind(to:family:configuration:onEvent:)`.
    public static func bind(
        to address: UDPAddress, configuration: Configuration,
        onEvent: (@Sendable (Event) -> Void)? = nil
    ) async throws -> UDPProxy {
        let upstreams = try UpstreamSockets(upstream: configuration.upstream)
        let listener = try await UDPSocket.bind(to: address, options: socketOptions)
        return try await checked(
            UDPProxy(listener: listener, upstreams: upstreams, configuration: configuration, onEvent: onEvent))
    }

    /// Refuses a proxy whose upstream is its own listening socket: each datagram would come back as a new client,
    /// and the proxy would open upstream sockets until none were left.
    private static func checked(_ proxy: UDPProxy) async throws -> UDPProxy {
        let upstream = proxy.configuration.upstream
        if isOwnAddress(upstream, listening: proxy.localAddress) {
            await proxy.listener.close()
            throw UDPProxyError.upstreamIsItself(
                upstream: upstream.description, listening: proxy.localAddress.description)
        }
        return proxy
    }

    /// Whether a datagram sent to `upstream` would reach a socket bound to `local`.
    static func isOwnAddress(_ upstream: UDPAddress, listening local: UDPAddress) -> Bool {
        guard let port = local.port, upstream.port == port, let ip = upstream.ip else { return false }
        // Sent to 0.0.0.0 or ::, a datagram goes to this host.
        if upstream.isAny { return true }
        if !local.isAny { return upstream.ip == local.ip }
        // A dual-stack :: socket also receives IPv4; an IPv4 wildcard receives no IPv6.
        if local.family == .ipv4 && upstream.family == .ipv6 { return false }
        if ip.hasPrefix("127.") || ip == "::1" { return true }
        let own = (try? NetworkInterface.all())?.flatMap { $0.addresses.map(\.address) } ?? []
        return own.contains(ip)
    }

    private static var socketOptions: UDPSocketOptions {
        var options = UDPSocketOptions()
        options.receiveBufferSize = 4 << 20
        options.sendBufferSize = 4 << 20
        return options
    }

    /// Bytes waiting in the queues of all clients now (at most `Configuration.totalQueueLimit`).
    public var queuedBytes: Int { budget.held }

    /// The counters now.
    public var counters: Counters {
        let (mappings, base) = state.withLockedValue { state in
            (
                Array(state.mappings.values),
                Counters(
                    up: state.up, down: state.down, clients: state.mappings.count, mappings: state.opened,
                    expired: state.expired, refused: state.refused, sendErrors: state.sendErrors
                )
            )
        }
        var counters = base
        for mapping in mappings {
            if let lane = mapping.upLane { counters.up.add(lane.counters) }
            if let lane = mapping.downLane { counters.down.add(lane.counters) }
        }
        return counters
    }

    /// Relays until a graceful shutdown or the task's cancellation (then returns normally) or until the
    /// client-facing socket fails (then throws). Every socket it opened, the client-facing one included, is closed
    /// and the thread reading the upstream sockets has stopped before it returns.
    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { [self] in try await relay() }
        } catch {
            await listener.close()
            throw error
        }
        await listener.close()
    }

    private func relay() async throws {
        let onEvent = self.onEvent
        // Replies from the upstream, handed over from the reading thread; when they come faster than they can be
        // relayed, the newest are dropped (and counted as overflowed) rather than queued without bound.
        let (replies, deliver) = AsyncStream.makeStream(of: UpstreamSockets.Delivery.self, bufferingPolicy: .unbounded)
        let reader = NIOThreadPool(numberOfThreads: 1)
        reader.start()
        let upstreams = self.upstreams
        let pending = self.pendingReplies
        // Without impairment, replies go to their clients from the reading thread itself, with no hop to a task.
        let unimpaired = configuration.up.isNone && configuration.down.isNone
        let reading = reader.runIfActive(eventLoop: listener.channel.eventLoop) {
            upstreams.run { delivery in
                let bytes = delivery.payloads.reduce(0) { $0 + $1.readableBytes + Self.datagramOverhead }
                let admitted = pending.withLockedValue { pending in
                    guard pending + bytes <= Self.pendingRepliesLimit else { return false }
                    pending += bytes
                    return true
                }
                if admitted && unimpaired {
                    self.relayDownNow(delivery, bytes: bytes, onEvent: onEvent)
                } else if admitted {
                    deliver.yield(delivery)
                } else {
                    self.state.withLockedValue {
                        $0.down.received += delivery.payloads.count
                        $0.down.overflowed += delivery.payloads.count
                    }
                }
            }
            deliver.finish()
        }
        let relayed: Result<Void, any Error>
        do {
            try await relayUntilStopped(replies: replies, onEvent: onEvent)
            relayed = .success(())
        } catch {
            relayed = .failure(error)
        }
        // Awaited here rather than left to a task of their own, so that nothing of the proxy runs after `run()`.
        upstreams.stop()
        _ = try? await reading.get()
        try? await reader.shutdownGracefully()
        try relayed.get()
    }

    /// The relay's tasks: client to upstream here, expiry, upstream to client and the impairment lanes in child
    /// tasks. Every mapping is closed before it returns.
    private func relayUntilStopped(
        replies: AsyncStream<UpstreamSockets.Delivery>, onEvent: (@Sendable (Event) -> Void)?
    ) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.expireIdleMappings() }
            group.addTask { await self.relayDown(replies, onEvent: onEvent) }
            defer {
                group.cancelAll()
                closeAll()
            }
            do {
                if configuration.up.isNone && configuration.down.isNone {
                    // Nothing to queue or delay: each batch from clients goes upstream from the thread that received
                    // it (on Linux, the socket's own recvmmsg thread), with no hop to a task on the way.
                    try await listener.respond { [self] batch in
                        relayUnimpaired(batch, onEvent: onEvent)
                        return []
                    }
                    return
                }
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
                            state.withLockedValue {
                                $0.up.received += datagrams.count
                                $0.up.forwarded += datagrams.count
                            }
                            sendUp(datagrams.map(\.payload), on: mapping)
                        }
                    }
                }
            } catch is CancellationError {
            } catch UDPError.closed {
            }
        }
    }

    /// Client to upstream without impairment: runs of datagrams from one client (a batch is mostly one or a few
    /// clients) go out on that client's upstream socket together.
    private func relayUnimpaired(_ batch: [Datagram], onEvent: (@Sendable (Event) -> Void)?) {
        var start = 0
        while start < batch.count {
            let client = batch[start].sender
            var end = start + 1
            while end < batch.count && batch[end].sender == client { end += 1 }
            let run = batch[start..<end]
            start = end
            if let onEvent {
                for datagram in run { onEvent(Event(direction: .up, client: client, datagram: datagram)) }
            }
            // A broadcast or multicast "client" is a spoofed source: refused before any mapping exists.
            guard !client.isBroadcastOrMulticast, let mapping = unimpairedMapping(for: client) else {
                state.withLockedValue { $0.refused += run.count }
                continue
            }
            mapping.touch()
            state.withLockedValue {
                $0.up.received += run.count
                $0.up.forwarded += run.count
            }
            sendUp(run.map(\.payload), on: mapping)
        }
    }

    /// The mapping of `client` when the proxy impairs nothing (no lanes, so no tasks); nil when the proxy is full
    /// or the system has no descriptor left for another upstream socket.
    private func unimpairedMapping(for client: UDPAddress) -> Mapping? {
        if let existing = state.withLockedValue({ $0.mappings[client] }) { return existing }
        let admitted = state.withLockedValue { state -> Bool in
            guard state.mappings.count < configuration.maximumClients else { return false }
            state.opened += 1
            return true
        }
        guard admitted else { return nil }
        do {
            let mapping = try upstreams.open { fd in Mapping(client: client, descriptor: fd, upLane: nil, downLane: nil)
            }
            state.withLockedValue { $0.mappings[client] = mapping }
            return mapping
        } catch {
            // Out of descriptors or memory (or any other refusal of socket or connect): this client's datagrams are
            // refused; the clients served go on.
            state.withLockedValue { $0.opened -= 1 }
            return nil
        }
    }

    /// The mapping of `client`, opened (with its tasks) when it has none; nil when the proxy is full or the system
    /// has no descriptor left for another upstream socket.
    private func mapping(
        for client: UDPAddress, group: inout ThrowingDiscardingTaskGroup<any Error>,
        onEvent: (@Sendable (Event) -> Void)?
    ) async throws -> Mapping? {
        if let existing = state.withLockedValue({ $0.mappings[client] }) { return existing }
        let index: Int? = state.withLockedValue { state in
            guard state.mappings.count < configuration.maximumClients else { return nil }
            state.opened += 1
            return state.opened - 1
        }
        guard let index else { return nil }
        let seed = configuration.seed
        let mapping: Mapping
        do {
            mapping = try upstreams.open { fd in
                Mapping(
                    client: client, descriptor: fd,
                    upLane: configuration.up.isNone
                        ? nil
                        : Lane(
                            settings: configuration.up,
                            generator: SeededGenerator(seed: seed, stream: UInt64(2 * index)), budget: budget),
                    downLane: configuration.down.isNone
                        ? nil
                        : Lane(
                            settings: configuration.down,
                            generator: SeededGenerator(seed: seed, stream: UInt64(2 * index + 1)), budget: budget)
                )
            }
        } catch UDPError.system(_, let code) where [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(code) {
            // Out of descriptors or memory: this client's datagrams are refused; the clients served go on.
            state.withLockedValue { $0.opened -= 1 }
            return nil
        } catch {
            state.withLockedValue { $0.opened -= 1 }
            throw error
        }
        state.withLockedValue { $0.mappings[client] = mapping }
        if let lane = mapping.upLane {
            group.addTask {
                await lane.run { payloads in self.sendUp(payloads, on: mapping) }
            }
        }
        if let lane = mapping.downLane {
            group.addTask {
                await lane.run { payloads in
                    await self.send(payloads.map { OutgoingDatagram(payload: $0, to: client) }, on: self.listener)
                }
            }
        }
        return mapping
    }

    /// Upstream to clients, for every mapping, until the reading thread stops or the task is cancelled.
    private func relayDown(_ replies: AsyncStream<UpstreamSockets.Delivery>, onEvent: (@Sendable (Event) -> Void)?)
        async
    {
        for await (mapping, payloads) in replies {
            let bytes = payloads.reduce(0) { $0 + $1.readableBytes + Self.datagramOverhead }
            defer { pendingReplies.withLockedValue { $0 -= bytes } }
            if Task.isCancelled { return }
            noteReplies(payloads, of: mapping, onEvent: onEvent)
            if let lane = mapping.downLane {
                lane.submit(payloads)
            } else {
                state.withLockedValue {
                    $0.down.received += payloads.count
                    $0.down.forwarded += payloads.count
                }
                await send(payloads.map { OutgoingDatagram(payload: $0, to: mapping.client) }, on: listener)
            }
        }
    }

    /// Upstream to a client from the reading thread (no impairment): sent without waiting; what the system does not
    /// take at once waits in SwiftNIO's queue, and its `bytes` count as pending replies until it is written.
    private func relayDownNow(
        _ delivery: UpstreamSockets.Delivery, bytes: Int, onEvent: (@Sendable (Event) -> Void)?
    ) {
        let (mapping, payloads) = delivery
        noteReplies(payloads, of: mapping, onEvent: onEvent)
        state.withLockedValue {
            $0.down.received += payloads.count
            $0.down.forwarded += payloads.count
        }
        let pending = pendingReplies
        listener.sendWithoutWaiting(payloads.map { OutgoingDatagram(payload: $0, to: mapping.client) }) {
            [state] failed in
            pending.withLockedValue { $0 -= bytes }
            if !failed.isEmpty { state.withLockedValue { $0.sendErrors += failed.count } }
        }
    }

    /// What every reply from the upstream does first: keeps its mapping alive and is reported.
    private func noteReplies(_ payloads: [ByteBuffer], of mapping: Mapping, onEvent: (@Sendable (Event) -> Void)?) {
        mapping.touch()
        guard let onEvent else { return }
        for payload in payloads {
            onEvent(
                Event(
                    direction: .down, client: mapping.client,
                    datagram: Datagram(payload: payload, sender: configuration.upstream)))
        }
    }

    /// Client to upstream on the mapping's own socket; a datagram the socket does not take at once (its buffer
    /// full) is counted as a send error rather than waited for.
    private func sendUp(_ payloads: [ByteBuffer], on mapping: Mapping) {
        let failed = upstreams.send(payloads, on: mapping)
        if failed > 0 { state.withLockedValue { $0.sendErrors += failed } }
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
        let timeout =
            UInt64(configuration.idleTimeout.components.seconds) * 1_000_000_000
            + UInt64(configuration.idleTimeout.components.attoseconds / 1_000_000_000)
        let interval = max(timeout / 4, 10_000_000)
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: interval)
            let now = MonotonicClock.nanoseconds
            let idle = state.withLockedValue { state in
                // A mapping with datagrams still waiting to be sent (a delay longer than the timeout) is not idle.
                let idle = state.mappings.values.filter {
                    now - min(now, $0.lastActive) >= timeout && $0.upLane?.isEmpty != false
                        && $0.downLane?.isEmpty != false
                }
                for mapping in idle {
                    state.mappings[mapping.client] = nil
                    state.expired += 1
                }
                return idle
            }
            for mapping in idle {
                retire(mapping)
                upstreams.close(mapping)
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
        }
        upstreams.closeAll()
    }
}
/// What `UDPProxy` refuses to do.
public enum UDPProxyError: Error, Equatable, CustomStringConvertible {
    /// The upstream is the proxy's own listening address (or reaches it): the proxy would relay to itself.
    case upstreamIsItself(upstream: String, listening: String)

    public var description: String {
        switch self {
        case .upstreamIsItself(let upstream, let listening):
            return
                "the server address \(upstream) is the proxy's own (listening on \(listening)): it would relay to itself; give the server's address"
        }
    }
}

/// One client's upstream socket and lanes.
final class Mapping: Sendable {
    let client: UDPAddress
    /// The upstream socket, owned by `UpstreamSockets` (which closes it).
    let descriptor: CInt
    let upLane: Lane?
    let downLane: Lane?
    private let active = NIOLockedValueBox(MonotonicClock.nanoseconds)

    init(client: UDPAddress, descriptor: CInt, upLane: Lane?, downLane: Lane?) {
        self.client = client
        self.descriptor = descriptor
        self.upLane = upLane
        self.downLane = downLane
    }

    var lastActive: UInt64 { active.withLockedValue { $0 } }

    func touch() {
        let now = MonotonicClock.nanoseconds
        active.withLockedValue { $0 = now }
    }
}
