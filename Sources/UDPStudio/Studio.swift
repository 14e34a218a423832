import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Exact counts of what a socket (or the whole studio) received and sent.
public struct TrafficCounters: Sendable, Codable, Equatable {
    /// Datagrams received.
    public var received = 0
    /// Payload bytes received.
    public var receivedBytes = 0
    /// Datagrams received cut to fit the receive buffer.
    public var truncated = 0
    /// Datagrams sent (by the user and by rules).
    public var sent = 0
    /// Payload bytes sent.
    public var sentBytes = 0
    /// Replies sent by auto-reply rules.
    public var autoReplies = 0
    /// Replies a rule asked for and the protections refused.
    public var refusedReplies = 0

    /// All zero.
    public init() {}
}

/// A listener as the API shows it.
public struct ListenerInfo: Sendable, Codable, Equatable {
    /// Its id, for removing it and for sending from it.
    public var id: Int
    /// The address as the user gave it.
    public var requested: String
    /// The address it is bound to.
    public var address: String
    /// The bound port.
    public var port: Int
    /// The multicast group it joined, if any.
    public var group: String?
    /// The interface it joined the group on, if one was given.
    public var interface: String?
    /// The only sender it receives the group from (source-specific multicast), if one was given.
    public var source: String?
    /// Its counters.
    public var counters: TrafficCounters
    /// Datagrams the kernel dropped at this socket because its receive buffer was full (Linux; nil where unknown).
    /// `counters.received + kernelDrops` is what reached this host for it.
    public var kernelDrops: Int?
    /// Its auto-reply rules.
    public var rules: [AutoReplyRule]
}

/// What to listen on.
public struct ListenerSpec: Sendable, Codable, Equatable {
    /// `[HOST:]PORT`, as for `udp listen`; a bare port listens on every address.
    public var address: String
    /// A multicast group to join (224.0.0.0/4, ff00::/8).
    public var group: String?
    /// The interface to join the group on (needed for IPv4 on a host without a default route).
    public var interface: String?
    /// Receive the group only from this sender (source-specific multicast, RFC 4607; groups 232.0.0.0/8, ff3x::).
    public var source: String?
    /// Auto-reply rules.
    public var rules: [AutoReplyRule]?

    /// A spec.
    public init(
        address: String, group: String? = nil, interface: String? = nil, source: String? = nil,
        rules: [AutoReplyRule]? = nil
    ) {
        self.address = address
        self.group = group
        self.interface = interface
        self.source = source
        self.rules = rules
    }

    /// The group, interface and source with empty strings (blank form fields) taken as absent.
    var membership: (group: String, interface: String?, source: String?)? {
        func given(_ text: String?) -> String? {
            guard let text = text?.trimmingHorizontalWhitespace(), !text.isEmpty else { return nil }
            return text
        }
        guard let group = given(group) else { return nil }
        return (group, given(interface), given(source))
    }
}

/// The whole state at one moment, for a page that just opened or a periodic update.
public struct StudioSnapshot: Sendable, Codable, Equatable {
    /// Every listener.
    public var listeners: [ListenerInfo]
    /// The studio's own sending sockets' counters plus every listener's.
    public var totals: TrafficCounters
    /// The id of the newest record (0 when none yet).
    public var lastID: Int
    /// How many records the history keeps now.
    public var historyCount: Int
    /// The history's record bound.
    public var historyCapacity: Int
    /// The local addresses of the studio's own sending sockets.
    public var sendSockets: [String]
}

/// The network debugging assistant's engine: listeners, a bounded history of every datagram in and out, exact
/// counters, sending, auto-replies and the saved-packets library. It works without any user interface; the web
/// page and the API are a thin layer over it. Several clients can share one studio.
///
/// A `Service`: `run()` waits for a graceful shutdown (or a cancellation) and then shuts the studio down, so a
/// `ServiceGroup` that runs it after its web server stops the web server first, then the studio.
public final class Studio: Service {
    /// Settings.
    public struct Configuration: Sendable {
        /// The most records the history keeps.
        public var historyCapacity = 10_000
        /// The most payload bytes the history keeps.
        public var historyBytes = 64 << 20
        /// Where the saved packets live.
        public var libraryLocation: URL = PacketLibrary.defaultLocation()
        /// The auto-reply protections.
        public var replyGuard = ReplyGuard()
        /// Makes the rule set for a listener's rules; `StudioRules` by default.
        public var makeRules: @Sendable ([AutoReplyRule]) throws -> any ReplyRuleSet = { try StudioRules($0) }

        /// The defaults.
        public init() {}
    }

    private final class Listener: Sendable {
        let id: Int
        let spec: ListenerSpec
        let socket: UDPSocket
        init(id: Int, spec: ListenerSpec, socket: UDPSocket) {
            self.id = id
            self.spec = spec
            self.socket = socket
        }
    }

    private struct ListenerState {
        var listener: Listener
        var counters = TrafficCounters()
        var rules: any ReplyRuleSet
        var ruleList: [AutoReplyRule]
    }

    private struct PeerKey: Hashable {
        var localPort: Int
        var remote: UDPAddress
    }

    private struct State {
        var history: History
        var listeners: [Int: ListenerState] = [:]
        var nextListenerID = 1
        var senders: [UDPAddress.Family: UDPSocket] = [:]
        var senderCounters = TrafficCounters()
        var library: PacketLibrary
        var subscribers: [Int: AsyncStream<Void>.Continuation] = [:]
        var nextSubscriber = 0
        var replyGuard: ReplyGuard
        var pendingReplies: [PeerKey: UInt64] = [:]
        /// How to cancel each send and sequence in progress.
        var sending: [Int: @Sendable () -> Void] = [:]
        var nextSend = 0
        /// The loops receiving on every socket, awaited by `shutdown()`.
        var receivers: [Int: Task<Void, Never>] = [:]
        var nextReceiver = 0
        var closed = false
        /// Ports of listeners with rules: a datagram from one of them is never answered automatically.
        var answeringPorts: Set<Int> {
            Set(listeners.values.filter { !$0.ruleList.isEmpty }.compactMap { $0.listener.socket.localAddress.port })
        }
    }

    /// The settings.
    public let configuration: Configuration
    private let state: NIOLockedValueBox<State>

    /// A studio with no listeners, reading the saved packets from `configuration.libraryLocation`.
    /// - Throws: `LibraryError` when the saved-packets file exists but is unreadable.
    public init(configuration: Configuration = .init()) throws(LibraryError) {
        self.configuration = configuration
        let library = try PacketLibrary.load(from: configuration.libraryLocation)
        state = NIOLockedValueBox(
            State(
                history: History(capacity: configuration.historyCapacity, byteLimit: configuration.historyBytes),
                library: library, replyGuard: configuration.replyGuard
            ))
    }

    // MARK: - Listeners

    /// Binds a listener and starts recording what it receives.
    /// - Throws: `UDPError` (address in use, not on this host...), `RuleError` for bad rules.
    @discardableResult
    public func addListener(_ spec: ListenerSpec) async throws -> ListenerInfo {
        let rules = try configuration.makeRules(spec.rules ?? [])
        let endpoint = try UDPEndpoint.parse(spec.address, defaultHost: .any)
        var options = UDPSocketOptions()
        // Tells broadcast- and multicast-addressed datagrams apart, which are marked and never auto-answered.
        options.receivePacketInfo = true
        options.broadcast = true
        // Room for bursts while the studio is busy elsewhere (the kernel caps it at net.core.rmem_max).
        options.receiveBufferSize = 4 << 20
        let membership = spec.membership
        if membership == nil,
            [spec.interface, spec.source].contains(where: { !($0 ?? "").trimmingHorizontalWhitespace().isEmpty })
        {
            throw StudioError.badListener("an interface or a source applies to a multicast group: give the group too")
        }
        // As `udp listen --join`: members of a group share their port, so other receivers on this host still get it.
        options.reuseAddress = membership != nil
        options.reusePort = membership != nil
        // A group is joined by a socket of its family: a bare port binds that family's wildcard, as `udp listen`.
        let group = try membership.map { try UDPAddress(ip: $0.group, port: 0) }
        let socket = try await UDPSocket.bind(to: endpoint, family: group?.family, options: options)
        if let membership, let address = group {
            do {
                let interface = try membership.interface.map(NetworkInterface.lookup)
                let source = try membership.source.map { try UDPAddress(ip: $0, port: 0) }
                try await socket.join(group: address, interface: interface, source: source)
            } catch {
                await socket.close()
                throw error
            }
        }
        let info: ListenerInfo? = state.withLockedValue { state in
            guard !state.closed else { return nil }
            let id = state.nextListenerID
            state.nextListenerID += 1
            let listener = Listener(id: id, spec: spec, socket: socket)
            state.listeners[id] = ListenerState(listener: listener, rules: rules, ruleList: spec.rules ?? [])
            return Self.info(state.listeners[id]!)
        }
        guard let info else {
            await socket.close()
            throw UDPError.closed
        }
        startReceiving(on: socket, listener: info.id)
        notify()
        return info
    }

    /// Stops a listener and closes its socket. Returns false when there is no such listener.
    @discardableResult
    public func removeListener(_ id: Int) async -> Bool {
        let removed = state.withLockedValue { $0.listeners.removeValue(forKey: id) }
        guard let removed else { return false }
        await removed.listener.socket.close()
        notify()
        return true
    }

    /// Replaces a listener's auto-reply rules.
    /// - Throws: `RuleError` for a bad rule (the old rules stay); `StudioError.noSuchListener`.
    public func setRules(_ rules: [AutoReplyRule], listener id: Int) throws {
        let compiled = try configuration.makeRules(rules)
        try state.withLockedValue { state in
            guard state.listeners[id] != nil else { throw StudioError.noSuchListener(id) }
            state.listeners[id]!.rules = compiled
            state.listeners[id]!.ruleList = rules
        }
        notify()
    }

    /// Every listener, by id.
    public var listeners: [ListenerInfo] {
        Self.withKernelDrops(
            state.withLockedValue { $0.listeners.values.sorted { $0.listener.id < $1.listener.id }.map(Self.info) })
    }

    private static func withKernelDrops(_ listeners: [ListenerInfo]) -> [ListenerInfo] {
        #if os(Linux)
        let drops = KernelDrops.read(ports: Set(listeners.map(\.port)))
        return listeners.map {
            var l = $0
            l.kernelDrops = drops[l.port] ?? 0
            return l
        }
        #else
        return listeners
        #endif
    }

    private static func info(_ s: ListenerState) -> ListenerInfo {
        ListenerInfo(
            id: s.listener.id, requested: s.listener.spec.address, address: s.listener.socket.localAddress.description,
            port: s.listener.socket.localAddress.port ?? 0, group: s.listener.spec.membership?.group,
            interface: s.listener.spec.membership?.interface, source: s.listener.spec.membership?.source,
            counters: s.counters,
            kernelDrops: nil, rules: s.ruleList)
    }

    // MARK: - History and updates

    /// Records with an id above `id`, oldest first; at most `limit` (the newest ones).
    public func records(after id: Int = 0, limit: Int = .max) -> [StudioRecord] {
        state.withLockedValue { $0.history.records(after: id, limit: limit) }
    }

    /// One record, if the history still keeps it.
    public func record(_ id: Int) -> StudioRecord? { state.withLockedValue { $0.history.record(id) } }

    /// Forgets the history (counters keep counting; ids keep increasing).
    public func clearHistory() {
        state.withLockedValue { $0.history.removeAll() }
        notify()
    }

    /// Listeners, totals and where the history stands.
    public func snapshot() -> StudioSnapshot {
        var snapshot = state.withLockedValue { state in
            var totals = state.senderCounters
            for listener in state.listeners.values {
                totals.received += listener.counters.received
                totals.receivedBytes += listener.counters.receivedBytes
                totals.truncated += listener.counters.truncated
                totals.sent += listener.counters.sent
                totals.sentBytes += listener.counters.sentBytes
                totals.autoReplies += listener.counters.autoReplies
                totals.refusedReplies += listener.counters.refusedReplies
            }
            return StudioSnapshot(
                listeners: state.listeners.values.sorted { $0.listener.id < $1.listener.id }.map(Self.info),
                totals: totals, lastID: state.history.nextID - 1, historyCount: state.history.count,
                historyCapacity: state.history.capacity,
                sendSockets: state.senders.values.map(\.localAddress.description).sorted()
            )
        }
        snapshot.listeners = Self.withKernelDrops(snapshot.listeners)
        return snapshot
    }

    /// A signal each time something changed (new records, listeners, library). Many changes in a row may arrive as
    /// one signal: read `records(after:)` to see what is new. The stream ends when the studio shuts down.
    public func changes() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id: Int? = state.withLockedValue { state in
            guard !state.closed else { return nil }
            state.nextSubscriber += 1
            state.subscribers[state.nextSubscriber] = continuation
            return state.nextSubscriber
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLockedValue { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    private func notify() {
        let subscribers = state.withLockedValue { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield() }
    }

    // MARK: - Receiving

    /// Receives on `socket` until it closes, in a task `shutdown()` waits for.
    private func startReceiving(on socket: UDPSocket, listener: Int?) {
        state.withLockedValue { state in
            state.nextReceiver += 1
            let id = state.nextReceiver
            // Made under the lock, so the task's own removal (which takes the lock) comes after its insertion.
            state.receivers[id] = Task {
                await self.receive(on: socket, listener: listener)
                _ = self.state.withLockedValue { $0.receivers.removeValue(forKey: id) }
            }
        }
    }

    private func receive(on socket: UDPSocket, listener: Int?) async {
        do {
            for try await batch in socket.batches {
                let replies = handle(batch, on: socket, listener: listener)
                if !replies.isEmpty {
                    do {
                        try await socket.send(replies.map { OutgoingDatagram(bytes: $0.bytes, to: $0.to) })
                        record(
                            replies.map { ($0.bytes, $0.to, ["auto-reply"]) }, from: socket, listener: listener,
                            sentAt: Date())
                    } catch {
                        // A reply that could not leave (ICMP unreachable from an earlier one): nothing to record.
                    }
                }
                notify()
            }
        } catch {
            // The socket closed (listener removed, studio shut down) or failed: the listener simply stops.
        }
    }

    private struct Reply {
        var bytes: [UInt8]
        var to: UDPAddress
    }

    /// Records a received batch and computes the auto-replies, all under one lock.
    private func handle(_ batch: [Datagram], on socket: UDPSocket, listener: Int?) -> [Reply] {
        let localPort = socket.localAddress.port ?? 0
        let now = MonotonicClock.nanoseconds
        return state.withLockedValue { state in
            var replies: [Reply] = []
            var counters = listener.flatMap { state.listeners[$0]?.counters } ?? state.senderCounters
            let rules = listener.flatMap { state.listeners[$0]?.rules }
            let answering = rules == nil ? [] : state.answeringPorts
            for datagram in batch {
                let bytes = datagram.bytes
                counters.received += 1
                counters.receivedBytes += bytes.count
                if datagram.truncated { counters.truncated += 1 }
                var marks: [String] = []
                if let kind = datagram.arrival?.kind, kind != .unicast { marks.append(kind.rawValue) }
                var roundTrip: Double?
                if !state.pendingReplies.isEmpty,
                    let sentAt = state.pendingReplies.removeValue(
                        forKey: PeerKey(localPort: localPort, remote: datagram.sender))
                {
                    roundTrip = Double(now &- sentAt) / 1e9
                }
                if let rules, let reply = rules.reply(to: datagram, count: counters.received) {
                    if let refusal = state.replyGuard.check(reply: reply.count, to: datagram, ownPorts: answering) {
                        counters.refusedReplies += 1
                        marks.append("no-reply: \(refusal.rawValue)")
                    } else {
                        replies.append(Reply(bytes: reply, to: datagram.sender))
                        counters.autoReplies += 1
                        counters.sent += 1
                        counters.sentBytes += reply.count
                    }
                }
                state.history.append(
                    StudioRecord(
                        id: 0, time: datagram.receivedAt, direction: .incoming, listener: listener,
                        localPort: localPort,
                        remoteAddress: datagram.sender.ip ?? datagram.sender.path ?? "",
                        remotePort: datagram.sender.port ?? 0,
                        bytes: bytes, truncated: datagram.truncated, marks: marks, roundTrip: roundTrip
                    ))
            }
            if let listener {
                state.listeners[listener]?.counters = counters
            } else {
                state.senderCounters = counters
            }
            return replies
        }
    }

    /// Adds sent datagrams to the history (counters are counted by the caller).
    private func record(_ sent: [([UInt8], UDPAddress, [String])], from socket: UDPSocket, listener: Int?, sentAt: Date)
    {
        let localPort = socket.localAddress.port ?? 0
        state.withLockedValue { state in
            for (bytes, to, marks) in sent {
                state.history.append(
                    StudioRecord(
                        id: 0, time: sentAt, direction: .outgoing, listener: listener, localPort: localPort,
                        remoteAddress: to.ip ?? to.path ?? "", remotePort: to.port ?? 0, bytes: bytes, marks: marks
                    ))
            }
        }
    }

    // MARK: - Sending

    /// Sends what `request` asks, `count` times with `interval` between, and records each datagram.
    ///
    /// Everything is checked before the first datagram leaves: bad input sends nothing. Returns when the last
    /// datagram was sent; `stopSending()` ends it early.
    /// - Throws: `SendError`.
    @discardableResult
    public func send(_ request: SendRequest) async throws(SendError) -> SendResult {
        let payload = try request.payload()
        let (count, interval) = try request.repeats()
        let destinations = try await Self.destinations(request.to)
        for destination in destinations {
            if let limit = destination.maximumPayload, payload.count > limit {
                throw .badInput(
                    "\(payload.count) bytes do not fit in one datagram to \(destination) (at most \(limit))")
            }
        }
        let multicast = try request.multicastOptions(for: destinations)
        let (socket, listener) =
            multicast == nil
            ? try await sendingSocket(from: request.from, family: destinations[0].family)
            : (try await multicastSocket(multicast!, family: destinations[0].family), nil)
        let result: Result<SendResult, SendError>
        do {
            result = .success(
                try await stoppable {
                    try await self.deliver(
                        payload, to: destinations, count: count, interval: interval, socket: socket, listener: listener)
                })
        } catch let error as SendError {
            result = .failure(error)
        } catch {
            result = .failure(.failed("\(error)", sent: 0))
        }
        // A socket opened for these multicast options is this send's own: closing it also ends its receiving.
        if multicast != nil { await socket.close() }
        return try result.get()
    }

    /// Runs `work` as a task that `stopSending()` (and `shutdown()`) cancel.
    private func stoppable<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await work() }
        let id = state.withLockedValue { state in
            state.nextSend += 1
            state.sending[state.nextSend] = { task.cancel() }
            return state.nextSend
        }
        defer { _ = state.withLockedValue { $0.sending.removeValue(forKey: id) } }
        return try await task.value
    }

    /// Sends a saved packet.
    /// - Throws: `StudioError.noSuchPacket`, `SendError`.
    @discardableResult
    public func sendSaved(_ name: String) async throws -> SendResult {
        guard let packet = library.packet(named: name) else { throw StudioError.noSuchPacket(name) }
        return try await send(packet.request)
    }

    /// Runs a saved sequence: each step's packet, then its delay. `stopSending()` ends it, in a delay too.
    /// - Throws: `StudioError.noSuchPacket`, `SendError` (`.stopped` with what was sent when stopped).
    @discardableResult
    public func runSequence(_ name: String) async throws -> Int {
        let library = self.library
        guard let sequence = library.sequences.first(where: { $0.name == name }) else {
            throw StudioError.noSuchPacket(name)
        }
        return try await stoppable {
            var sent = 0
            for step in sequence.steps {
                // A stop between two steps: the next step's send is a task of its own, which the stop did not reach.
                if Task.isCancelled { throw SendError.stopped(sent: sent) }
                guard let packet = library.packet(named: step.packet) else {
                    throw StudioError.noSuchPacket(step.packet)
                }
                do {
                    sent += try await self.send(packet.request).sent
                } catch SendError.stopped(let more) {
                    throw SendError.stopped(sent: sent + more)
                }
                if step.delay > 0 {
                    do { try await Task.sleep(for: .milliseconds(step.delay)) } catch {
                        throw SendError.stopped(sent: sent)
                    }
                }
            }
            return sent
        }
    }

    /// Stops every send in progress (repeats and sequences end after the datagram being sent).
    public func stopSending() {
        let cancels = state.withLockedValue { Array($0.sending.values) }
        for cancel in cancels { cancel() }
    }

    private static func destinations(_ text: String) async throws(SendError) -> [UDPAddress] {
        let endpoint: UDPEndpoint
        do { endpoint = try UDPEndpoint.parse(text) } catch { throw .badInput("\(error)") }
        switch endpoint.kind {
        case .ip(.any, _):
            throw .badInput("the destination needs a host, as in 127.0.0.1:9000")
        case .ip(.broadcast, let port):
            do {
                let addresses = try UDPAddress.broadcastAddresses(port: port)
                guard !addresses.isEmpty else { throw SendError.badInput("no interface has a broadcast address") }
                return addresses
            } catch let error as SendError {
                throw error
            } catch {
                throw .badInput("\(error)")
            }
        case .ip(_, let port) where port == 0:
            throw .badInput("port 0 cannot be sent to; give the port the receiver listens on")
        default:
            do { return [try await endpoint.resolve()[0]] } catch { throw .badInput("\(error)") }
        }
    }

    private func sendingSocket(from listener: Int?, family: UDPAddress.Family) async throws(SendError) -> (
        UDPSocket, Int?
    ) {
        if let listener {
            guard let socket = state.withLockedValue({ $0.listeners[listener]?.listener.socket }) else {
                throw .badInput("no listener \(listener)")
            }
            return (socket, listener)
        }
        if let socket = state.withLockedValue({ $0.senders[family] }) { return (socket, nil) }
        var options = UDPSocketOptions()
        options.broadcast = true
        let socket: UDPSocket
        do {
            let wildcard = try UDPAddress(ip: family == .ipv6 ? "::" : "0.0.0.0", port: 0)
            socket = try await UDPSocket.bind(to: wildcard, options: options)
        } catch {
            throw .failed("cannot open a socket to send from: \(error)", sent: 0)
        }
        let winner = state.withLockedValue { state -> UDPSocket? in
            if let existing = state.senders[family] { return existing }
            if state.closed { return nil }
            state.senders[family] = socket
            return socket
        }
        guard let winner else {
            await socket.close()
            throw .failed("the studio is shutting down", sent: 0)
        }
        if winner !== socket {
            await socket.close()
        } else {
            // Replies to what the studio sends come back to this socket: record them too.
            startReceiving(on: socket, listener: nil)
        }
        return (winner, nil)
    }

    /// A socket for one send to a multicast group with its own interface or TTL, receiving (and recording) replies
    /// until the send ends.
    private func multicastSocket(_ options: UDPSocketOptions, family: UDPAddress.Family) async throws(SendError)
        -> UDPSocket
    {
        let socket: UDPSocket
        do {
            let wildcard = try UDPAddress(ip: family == .ipv6 ? "::" : "0.0.0.0", port: 0)
            socket = try await UDPSocket.bind(to: wildcard, options: options)
        } catch {
            throw .badInput("\(error)")
        }
        startReceiving(on: socket, listener: nil)
        return socket
    }

    private func deliver(
        _ payload: [UInt8], to destinations: [UDPAddress], count: Int, interval: Double,
        socket: UDPSocket, listener: Int?
    ) async throws(SendError) -> SendResult {
        let buffer = ByteBuffer(bytes: payload)
        let localPort = socket.localAddress.port ?? 0
        var sent = 0
        for round in 0..<count {
            if round > 0 && interval > 0 {
                do { try await Task.sleep(for: .milliseconds(interval)) } catch { throw .stopped(sent: sent) }
            }
            if Task.isCancelled { throw .stopped(sent: sent) }
            for destination in destinations {
                // Noted before sending: on loopback the reply can be handled before `send` returns.
                let now = MonotonicClock.nanoseconds
                state.withLockedValue { state in
                    if state.pendingReplies.count >= 4096 { state.pendingReplies.removeAll() }
                    state.pendingReplies[PeerKey(localPort: localPort, remote: destination)] = now
                }
                do { try await socket.send(buffer, to: destination) } catch { throw .failed("\(error)", sent: sent) }
                sent += 1
                let marks =
                    destination.isLimitedBroadcast || destinations.count > 1
                    ? ["broadcast"] : destination.isMulticast ? ["multicast"] : []
                state.withLockedValue { state in
                    if let listener {
                        state.listeners[listener]?.counters.sent += 1
                        state.listeners[listener]?.counters.sentBytes += payload.count
                    } else {
                        state.senderCounters.sent += 1
                        state.senderCounters.sentBytes += payload.count
                    }
                }
                record([(payload, destination, marks)], from: socket, listener: listener, sentAt: Date())
            }
            notify()
        }
        return SendResult(
            sent: sent, bytes: sent * payload.count, to: destinations.map(\.description),
            from: socket.localAddress.description)
    }

    // MARK: - Saved packets

    /// The saved packets and sequences.
    public var library: PacketLibrary { state.withLockedValue { $0.library } }

    /// Saves a packet (replacing one of the same name) and writes the library file.
    /// - Throws: `LibraryError`.
    public func save(_ packet: SavedPacket) throws(LibraryError) {
        try updateLibrary { library throws(LibraryError) in try library.put(packet) }
    }

    /// Saves a sequence and writes the library file.
    /// - Throws: `LibraryError`.
    public func save(_ sequence: SavedSequence) throws(LibraryError) {
        try updateLibrary { library throws(LibraryError) in try library.put(sequence) }
    }

    /// Deletes a saved packet or sequence by name; false when neither exists.
    @discardableResult
    public func deleteSaved(_ name: String) throws(LibraryError) -> Bool {
        var found = false
        try updateLibrary { library in
            let before = library.packets.count + library.sequences.count
            library.packets.removeAll { $0.name == name }
            library.sequences.removeAll { $0.name == name }
            found = before != library.packets.count + library.sequences.count
        }
        return found
    }

    private func updateLibrary(_ change: (inout PacketLibrary) throws(LibraryError) -> Void) throws(LibraryError) {
        let location = configuration.libraryLocation
        let result: Result<Void, LibraryError> = state.withLockedValue { state in
            var library = state.library
            do {
                try change(&library)
                try library.save(to: location)
            } catch let error as LibraryError {
                return .failure(error)
            } catch {
                return .failure(LibraryError(message: "\(error)"))
            }
            state.library = library
            return .success(())
        }
        try result.get()
        notify()
    }

    // MARK: - Shutting down

    /// Stops sending, closes every socket, waits until nothing receives on them any more, and ends every
    /// `changes()` stream.
    public func shutdown() async {
        let (sockets, subscribers, tasks) = state.withLockedValue { state in
            state.closed = true
            let sockets = state.listeners.values.map(\.listener.socket) + Array(state.senders.values)
            state.listeners.removeAll()
            state.senders.removeAll()
            let subscribers = Array(state.subscribers.values)
            state.subscribers.removeAll()
            return (sockets, subscribers, Array(state.sending.values))
        }
        for cancel in tasks { cancel() }
        for socket in sockets { await socket.close() }
        // Receivers of sockets closed just now, and of sends' own sockets, which their sends close as they end.
        let receivers = state.withLockedValue { Array($0.receivers.values) }
        for receiver in receivers { await receiver.value }
        for subscriber in subscribers { subscriber.finish() }
    }

    /// Waits for a graceful shutdown or the task's cancellation, then `shutdown()`. The studio works without
    /// this (listeners and sends start when asked); it is what lets a `ServiceGroup` stop it in its turn.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}

/// A request naming something the studio does not have.
public enum StudioError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No listener with that id.
    case noSuchListener(Int)
    /// No saved packet or sequence with that name.
    case noSuchPacket(String)
    /// A listener spec that does not make sense, with why.
    case badListener(String)

    public var description: String {
        switch self {
        case .badListener(let message): return message
        case .noSuchListener(let id): return "no listener \(id)"
        case .noSuchPacket(let name): return "no saved packet or sequence named '\(name)'"
        }
    }
}
