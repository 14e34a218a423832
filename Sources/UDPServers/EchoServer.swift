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

/// An echo server (or, with a `ReplyTemplate`, a greeting server like the classic Python one) that is safe to leave running.
///
/// Abuse protection, on by default:
/// - no reply to a datagram sent to a broadcast or multicast address (the "fraggle" reflector), unless
///   `allowBroadcast`, and then under the rate limit; the socket must report arrivals
///   (`UDPSocketOptions.receivePacketInfo`), or every datagram counts as addressed to this host alone;
/// - no reply to a "sender" that is a broadcast or multicast address (a spoofed source), to source port 0, nor
///   to the classic UDP loop partners (echo 7, daytime 13, qotd 17, chargen 19, time 37);
/// - loops with other servers on ordinary ports are stopped: after `loopLimit` round trips in which a source sent
///   back exactly the reply it was just sent, the next such datagram gets no reply (see `DropReason.loop`);
/// - a reply is never larger than its request (no amplification) unless a template makes it so, and then
///   each source address gets at most `repliesPerSecond` such replies (token bucket with `burst`), and at most
///   three times the bytes it sent, counted with IP and UDP headers;
/// - `access` allow/deny lists.
/// Every datagram not answered is counted by reason in `EchoServer.Counters`.
///
/// A `Service`: bind, then `run()` until a graceful shutdown, a cancellation or the socket closing; the socket is
/// closed when `run()` returns.
///
/// ```swift
/// let server = try await EchoServer.bind(to: .parse("*:9999"), onEvent: { print($0.datagram) })
/// try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigint, .sigterm]).run()
/// print(server.counters)
/// ```
public final class EchoServer: Service {
    /// Why a datagram got no reply.
    public enum DropReason: String, Sendable, CaseIterable {
        /// The source port was 0 (not a real sender; a reply cannot be addressed).
        case sourcePortZero = "source-port-0"
        /// The source port is a UDP service that answers everything (7, 13, 17, 19, 37 by default).
        case loopPort = "loop-port"
        /// The sender is outside `--allow` or inside `--deny`.
        case accessDenied = "access-denied"
        /// The sender exceeded its reply rate.
        case rateLimited = "rate-limited"
        /// The reply would have been larger than the request and amplification is not allowed: it would have taken
        /// the bytes sent to the source above three times the bytes received from it (or past the largest datagram).
        case amplification = "amplification"
        /// No `--rule` matched and there is no fallback `--reply`.
        case noRule = "no-rule"
        /// `--exec`: as many commands as allowed were already running.
        case execBusy = "exec-limit"
        /// `--exec`: the command could not start, or exited with a failure status.
        case execFailed = "exec-failed"
        /// `--exec`: the command was killed for running too long.
        case execTimeout = "exec-timeout"
        /// `--exec`: the command printed nothing.
        case execEmpty = "exec-empty"
        /// `--exec`: the command printed more than one datagram can carry (refused, not cut).
        case execOversize = "exec-oversize"
        /// The datagram was sent to a broadcast address (255.255.255.255 or a subnet's), and `allowBroadcast` is off.
        case toBroadcast = "to-broadcast"
        /// The datagram was sent to a multicast group, and `allowBroadcast` is off.
        case toMulticast = "to-multicast"
        /// The sender's address is a broadcast or multicast address: a spoofed source; a reply would reach a subnet.
        case broadcastSender = "broadcast-sender"
        /// The source keeps sending back the very reply it was just sent: another server answering us (a loop).
        case loop = "loop"
        /// The reply was made but the system refused to send it (or it could not be queued).
        case sendFailed = "send-failed"
        /// A Unix-domain sender without a path (an unbound socket, or one in the abstract namespace): no reply
        /// can reach it.
        case unboundSender = "unbound-sender"
    }

    /// Settings.
    public struct Configuration: Sendable {
        /// The reply template; nil echoes the request unchanged.
        public var template: ReplyTemplate?
        /// Source ports never answered. Default: 0, 7, 13, 17, 19, 37.
        public var blockedSourcePorts: Set<Int> = [0, 7, 13, 17, 19, 37]
        /// Allow/deny lists.
        public var access = AccessControl()
        /// Replies per second per source address for replies larger than their request. Default 20.
        public var repliesPerSecond: Double = 20
        /// How many such replies a source may get at once before the rate applies. Default 40.
        public var burst: Double = 40
        /// When false (the default), a reply larger than its request is only sent by a template, under the rate
        /// limit; when true, neither check applies.
        public var allowAmplification = false
        /// Reply rules, tried before `template` (which then answers what no rule matches).
        public var rules: ReplyRules?
        /// A checksum appended to every reply.
        public var append: Checksum?
        /// Answer each datagram with a command's output instead (rules and template then do not apply).
        public var exec: ExecSettings?
        /// When false (the default), datagrams sent to a broadcast or multicast address get no reply; when true
        /// they do, under the rate limit of `repliesPerSecond` per source.
        public var allowBroadcast = false
        /// How many times in a row a source may send back the reply it was sent less than half a second before,
        /// until the next such datagram is treated as a loop and gets no reply (which ends a loop). Default 8.
        public var loopLimit = 8

        /// The defaults: echo, all protections on.
        public init() {}
    }

    /// What the server did, readable while it runs.
    public struct Counters: Sendable, Equatable {
        /// Datagrams received.
        public var received = 0
        /// Bytes received.
        public var receivedBytes = 0
        /// Replies sent.
        public var replied = 0
        /// Bytes sent.
        public var repliedBytes = 0
        /// Datagrams not answered, by reason.
        public var dropped: [DropReason: Int] = [:]
        /// Distinct senders (counted up to 100,000).
        public var senders = 0

        /// All datagrams not answered.
        public var droppedTotal: Int { dropped.values.reduce(0, +) }
    }

    /// One handled datagram, for logging.
    public struct Event: Sendable {
        /// The request.
        public var datagram: Datagram
        /// The reply made, or nil. A reply the system then refused is counted as `DropReason.sendFailed`.
        public var reply: [UInt8]?
        /// Why there was no reply, or nil.
        public var dropped: DropReason?
    }

    /// The socket the server answers on.
    public let socket: UDPSocket
    /// The settings.
    public let configuration: Configuration
    /// Sees every datagram with its reply or drop reason (after the batch's replies were sent), on the thread that
    /// answers: it must not block.
    public let onEvent: (@Sendable (Event) -> Void)?
    private let state: NIOLockedValueBox<(counters: Counters, engine: Engine)>
    private let runner: CommandRunner?
    /// The socket's kernel drop count as it was closed (the count belongs to the open socket).
    private let dropsAtClose = NIOLockedValueBox<Int??>(nil)

    /// A server answering on `socket`, which it closes when `run()` returns.
    public init(socket: UDPSocket, configuration: Configuration = .init(), onEvent: (@Sendable (Event) -> Void)? = nil)
    {
        self.socket = socket
        self.configuration = configuration
        self.onEvent = onEvent
        let limiter = RateLimiter(rate: configuration.repliesPerSecond, burst: configuration.burst)
        self.state = NIOLockedValueBox(
            (Counters(), Engine(limiter: limiter, loops: LoopGuard(limit: configuration.loopLimit))))
        self.runner = configuration.exec.map { CommandRunner(settings: $0, localPort: socket.localAddress.port ?? 0) }
    }

    /// Binds the server's socket to `endpoint`. Call `run()` to answer.
    ///
    /// With a wildcard address, give `options` with `receivePacketInfo` on, or datagrams sent to a broadcast or
    /// multicast address cannot be told apart (see the type's overview).
    /// - Throws: `UDPError` from binding (`.addressInUse`, ...).
    public static func bind(
        to endpoint: UDPEndpoint, family: UDPAddress.Family? = nil, options: UDPSocketOptions = .init(),
        configuration: Configuration = .init(), onEvent: (@Sendable (Event) -> Void)? = nil
    ) async throws -> EchoServer {
        EchoServer(
            socket: try await UDPSocket.bind(to: endpoint, family: family, options: options),
            configuration: configuration, onEvent: onEvent)
    }

    /// Binds the server's socket to a resolved address. See `bind(to:family:options:configuration:onEvent:)`.
    public static func bind(
        to address: UDPAddress, options: UDPSocketOptions = .init(),
        configuration: Configuration = .init(), onEvent: (@Sendable (Event) -> Void)? = nil
    ) async throws -> EchoServer {
        EchoServer(
            socket: try await UDPSocket.bind(to: address, options: options), configuration: configuration,
            onEvent: onEvent)
    }

    /// The address clients send to.
    public var localAddress: UDPAddress { socket.localAddress }

    /// The counters so far.
    public var counters: Counters { state.withLockedValue { $0.counters } }

    /// Datagrams the system dropped for the socket before they could be read (its receive buffer was full), as
    /// `UDPSocket.kernelDrops`; after `run()` returned, the count when the socket closed. Nil where unknown.
    public var kernelDrops: Int? {
        dropsAtClose.withLockedValue { $0 } ?? socket.kernelDrops
    }

    /// Answers datagrams until a graceful shutdown, the task's cancellation or the socket closing from outside,
    /// then closes the socket and returns (without an error in those three cases).
    /// - Throws: `UDPError` when answering failed (see `UDPSocket.respond`); the socket is closed then too.
    public func run() async throws {
        do {
            // A graceful shutdown ends the answering loop as a cancellation would: an echo server owes nobody a
            // goodbye. Replies of `exec` commands still running are sent if they come before the socket closes.
            try await cancelWhenGracefulShutdown { [self] in try await serve() }
        } catch is CancellationError {
        } catch {
            await close()
            throw error
        }
        await close()
    }

    private func close() async {
        let drops = socket.kernelDrops
        dropsAtClose.withLockedValue { $0 = .some(drops) }
        await socket.close()
    }

    private func serve() async throws {
        let onEvent = self.onEvent
        do {
            // `respond` hands over one batch at a time; the lock only orders this against readers of `counters`.
            try await socket.respond(refused: { [self] failed in
                state.withLockedValue { state in
                    for reply in failed {
                        state.counters.replied -= 1
                        state.counters.repliedBytes -= reply.payload.readableBytes
                        state.counters.dropped[.sendFailed, default: 0] += 1
                    }
                }
            }) { [self] batch in
                var outgoing: [OutgoingDatagram] = []
                outgoing.reserveCapacity(batch.count)
                var events: [Event] = []
                let now = ContinuousClock.now
                // Plain nanoseconds for the per-datagram loop check: cheaper to compare than instants.
                let nanos = MonotonicClock.nanoseconds
                state.withLockedValue { state in
                    for datagram in batch {
                        state.engine.count += 1
                        state.counters.received += 1
                        state.counters.receivedBytes += datagram.payload.readableBytes
                        // A read cycle mostly holds one sender's datagrams: screen and count each address once.
                        if datagram.sender != state.engine.lastSender {
                            state.engine.lastSender = datagram.sender
                            state.engine.lastSenderRefusal = refusal(for: datagram.sender)
                            state.engine.loops.select(datagram.sender)
                            if state.engine.senders.count < 100_000,
                                state.engine.senders.insert(datagram.sender).inserted
                            {
                                state.counters.senders += 1
                            }
                        }
                        var reply: ByteBuffer?
                        var reason: DropReason?
                        if let refused = state.engine.lastSenderRefusal {
                            reason = refused
                        } else if let refused = screen(
                            kind: datagram.arrival?.kind, sender: datagram.sender, now: now,
                            limiter: &state.engine.limiter)
                        {
                            reason = refused
                        } else if state.engine.loops.isLoop(datagram.payload, now: nanos) {
                            reason = .loop
                        } else {
                            (reply, reason) = answer(
                                datagram, count: state.engine.count, now: now, limiter: &state.engine.limiter)
                        }
                        if let made = reply {
                            // Only a plain echo sends the payload back as it came (no template, rules or checksum).
                            let echoed =
                                configuration.template == nil && configuration.rules == nil
                                && configuration.append == nil
                            state.engine.loops.replied(made, echoed: echoed, now: nanos)
                            outgoing.append(OutgoingDatagram(payload: made, to: datagram.sender))
                            state.counters.replied += 1
                            state.counters.repliedBytes += made.readableBytes
                        } else if let reason {
                            state.counters.dropped[reason, default: 0] += 1
                        }
                        if onEvent != nil {
                            events.append(
                                Event(
                                    datagram: datagram, reply: reply.map { Array($0.readableBytesView) },
                                    dropped: reason))
                        }
                    }
                }
                if let onEvent { events.forEach(onEvent) }
                return outgoing
            }
        } catch UDPError.closed {}
    }

    /// Counts and sends a command's reply (`exec`), made after its batch, under the same size and rate checks,
    /// and noted by the loop guard like any other reply: two servers whose commands answer each other with the
    /// same bytes are a loop too. A reply the system refuses is counted as `DropReason.sendFailed`.
    private func finish(_ outcome: CommandRunner.Outcome, for datagram: Datagram) {
        let reply: ByteBuffer? = state.withLockedValue { state in
            var result: (ByteBuffer?, DropReason?)
            switch outcome {
            case .dropped(let reason): result = (nil, reason)
            case .reply(let bytes):
                result = check(
                    configuration.append?.appended(to: bytes) ?? bytes, for: datagram, now: ContinuousClock.now,
                    limiter: &state.engine.limiter)
            }
            if let reply = result.0 {
                state.engine.loops.replied(reply, to: datagram.sender, now: MonotonicClock.nanoseconds)
                state.counters.replied += 1
                state.counters.repliedBytes += reply.readableBytes
            } else if let reason = result.1 {
                state.counters.dropped[reason, default: 0] += 1
            }
            return result.0
        }
        guard let reply else { return }
        let socket = self.socket
        let size = reply.readableBytes
        Task { [state] in
            do {
                try await socket.send(reply, to: datagram.sender)
            } catch {
                state.withLockedValue { state in
                    state.counters.replied -= 1
                    state.counters.repliedBytes -= size
                    state.counters.dropped[.sendFailed, default: 0] += 1
                }
            }
        }
    }

    /// What the server remembers between datagrams.
    private struct Engine {
        var limiter: RateLimiter
        var loops: LoopGuard
        var senders = Set<UDPAddress>()
        var lastSender: UDPAddress?
        var lastSenderRefusal: DropReason?
        var count = 0
    }

    /// Why `datagram` gets no reply whatever it holds, or nil: the checks on its sender and on where it was sent,
    /// without loop detection and without changing any count (for a server that answers by other means, such as
    /// a person typing the replies). With `allowBroadcast`, a datagram sent to a broadcast or multicast address is
    /// let through here; the caller applies its own rate limit.
    public func refusal(for datagram: Datagram) -> DropReason? {
        if let refused = refusal(for: datagram.sender) { return refused }
        switch datagram.arrival?.kind {
        case .broadcast? where !configuration.allowBroadcast: return .toBroadcast
        case .multicast? where !configuration.allowBroadcast: return .toMulticast
        default: return nil
        }
    }

    /// Why `sender` gets no reply at all, or nil.
    private func refusal(for sender: UDPAddress) -> DropReason? {
        if sender.isUnnamedUnix { return .unboundSender }
        let port = sender.port ?? -1
        if port == 0 { return .sourcePortZero }
        if configuration.blockedSourcePorts.contains(port) { return .loopPort }
        if sender.isBroadcastOrMulticast { return .broadcastSender }
        if !configuration.access.permits(sender) { return .accessDenied }
        return nil
    }

    /// Why a datagram from an acceptable sender gets no reply because of where it was sent, or nil.
    private func screen(
        kind: Datagram.Arrival.Kind?, sender: UDPAddress, now: ContinuousClock.Instant, limiter: inout RateLimiter
    ) -> DropReason? {
        guard let kind, kind != .unicast else { return nil }
        guard configuration.allowBroadcast else { return kind == .broadcast ? .toBroadcast : .toMulticast }
        return limiter.allow(sender, now: now) ? nil : .rateLimited
    }

    /// The reply to a datagram that passed every other check.
    private func answer(_ datagram: Datagram, count: Int, now: ContinuousClock.Instant, limiter: inout RateLimiter) -> (
        ByteBuffer?, DropReason?
    ) {
        if let runner {
            return runner.start(datagram, done: { [self] outcome in finish(outcome, for: datagram) })
                ? (nil, nil) : (nil, .execBusy)
        }
        let reply: [UInt8]
        switch configuration.choose(datagram, count: count) {
        case .echo: return (datagram.payload, nil)
        case .none(let reason): return (nil, reason)
        case .bytes(let bytes): reply = bytes
        }
        return check(reply, for: datagram, now: now, limiter: &limiter)
    }

    /// The protections that depend on a reply's size: what fits, and a reply larger than its request only under
    /// the rate limit and the per-source budget of three times the bytes received.
    private func check(
        _ reply: [UInt8], for datagram: Datagram, now: ContinuousClock.Instant, limiter: inout RateLimiter
    ) -> (ByteBuffer?, DropReason?) {
        if let limit = datagram.sender.maximumPayload, reply.count > limit { return (nil, .amplification) }
        if !configuration.allowAmplification, let refused = limiter.admit(reply: reply.count, to: datagram, now: now) {
            return (nil, refused == .rateLimited ? .rateLimited : .amplification)
        }
        return (ByteBuffer(bytes: reply), nil)
    }
}

/// Finds loops with other servers: a source that sends back, again and again, exactly the reply it was just sent.
///
/// Two echo servers that each answer the other bounce one spoofed datagram forever, whatever their ports. What
/// marks the bounce: the datagram from a source is the reply this server sent to that source (same length and
/// fingerprint) and it comes within half a second of it. After `limit` such returns in a row, the source
/// gets no reply; the loop ends at once, the other side having nothing left to answer. A client repeating the
/// same request faster than twice a second loses one reply in `limit + 1`.
///
/// Memory: one entry per source (address and port) answered recently, at most `capacity`; when full, entries
/// older than the window (which can no longer count) are forgotten first.
struct LoopGuard {
    /// Enough of a payload to tell a returning reply from other traffic: its length and a hash of its first and
    /// last 256 bytes (all of it, up to 512 bytes), so counters and timestamps anywhere in a header tell requests
    /// apart.
    struct Fingerprint: Equatable {
        var length: Int
        var hash: UInt64

        init(_ payload: ByteBuffer) {
            length = payload.readableBytes
            hash = payload.withUnsafeReadableBytes { bytes in
                var hash: UInt64 = 0xcbf2_9ce4_8422_2325
                func mix(_ range: Range<Int>) {
                    var offset = range.lowerBound
                    while offset + 8 <= range.upperBound {
                        hash =
                            (hash ^ bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                            &* 0x0000_0100_0000_01B3
                        hash ^= hash >> 29
                        offset += 8
                    }
                    while offset < range.upperBound {
                        hash = (hash ^ UInt64(bytes[offset])) &* 0x0000_0100_0000_01B3
                        offset += 1
                    }
                }
                if bytes.count <= 512 {
                    mix(0..<bytes.count)
                } else {
                    mix(0..<256)
                    mix(bytes.count - 256..<bytes.count)
                }
                return hash
            }
        }
    }

    struct Entry {
        var reply: Fingerprint
        /// When the reply was sent (`MonotonicClock` nanoseconds).
        var at: UInt64
        var streak = 0
    }

    let limit: Int
    let capacity = 16_384
    /// How soon a returning reply counts: a loop's round trip, which is far shorter on any network where a loop
    /// matters; a client repeating itself every half second or slower is never taken for one. In nanoseconds.
    static let window: UInt64 = 500_000_000
    private var entries: [UDPAddress: Entry] = [:]
    /// The source being handled, and its entry: held outside the table while its datagrams come in a row.
    private var current: UDPAddress?
    private var entry: Entry?
    /// The fingerprint of the datagram `isLoop` looked at last, when it took one.
    private var incoming: Fingerprint?

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Makes `source` the source of the next datagrams.
    mutating func select(_ source: UDPAddress) {
        guard source != current else { return }
        store()
        current = source
        entry = entries[source]
    }

    /// Whether `payload`, from the selected source, continues a loop (and must get no reply).
    mutating func isLoop(_ payload: ByteBuffer, now: UInt64) -> Bool {
        incoming = nil
        guard var entry else { return false }
        var returned = false
        if now &- entry.at < Self.window && entry.reply.length == payload.readableBytes {
            let fingerprint = Fingerprint(payload)
            incoming = fingerprint
            returned = entry.reply == fingerprint
        }
        if returned {
            entry.streak += 1
        } else {
            entry.streak = 0
        }
        guard entry.streak > limit else {
            self.entry = entry
            return false
        }
        // One reply withheld ends a loop: the other side only ever answered us. A client that simply repeats
        // itself goes on sending and is answered again, losing one datagram in `limit + 1`.
        entry.streak = 0
        self.entry = entry
        return true
    }

    /// Notes the reply sent to the selected source; `echoed` when it is the request itself, whose fingerprint
    /// `isLoop` may already have taken.
    mutating func replied(_ reply: ByteBuffer, echoed: Bool, now: UInt64) {
        guard current != nil else { return }
        let fingerprint = echoed ? (incoming ?? Fingerprint(reply)) : Fingerprint(reply)
        if var entry {
            entry.reply = fingerprint
            entry.at = now
            self.entry = entry
        } else {
            entry = Entry(reply: fingerprint, at: now)
        }
    }

    /// Notes a reply sent to `source` outside the batch being handled (a command's reply, made later), without
    /// changing which source is selected.
    mutating func replied(_ reply: ByteBuffer, to source: UDPAddress, now: UInt64) {
        let fingerprint = Fingerprint(reply)
        if source == current {
            if var entry {
                entry.reply = fingerprint
                entry.at = now
                self.entry = entry
            } else {
                entry = Entry(reply: fingerprint, at: now)
            }
            return
        }
        var stored = entries[source] ?? Entry(reply: fingerprint, at: now)
        stored.reply = fingerprint
        stored.at = now
        if entries.count >= capacity && entries[source] == nil {
            entries = entries.filter { now &- $0.value.at < Self.window }
            if entries.count >= capacity { entries.removeAll() }
        }
        entries[source] = stored
    }

    private mutating func store() {
        guard let current, let entry else { return }
        if entries.count >= capacity && entries[current] == nil {
            let now = MonotonicClock.nanoseconds
            entries = entries.filter { now &- $0.value.at < Self.window }
            if entries.count >= capacity { entries.removeAll() }
        }
        entries[current] = entry
    }
}

/// Per-source token buckets and byte budgets with a bounded table: the allowance for replies larger than their
/// request, shared by every server that answers automatically (`udp echo`, the studio's rules).
public struct RateLimiter: Sendable {
    /// Replies per second per source address, once the burst is spent.
    public let rate: Double
    /// Replies a source address may get at once.
    public let burst: Double
    /// A source may be sent at most this many times the bytes it sent (QUIC's limit for an unproven address).
    static let amplificationLimit = 3
    /// Unspent budget is kept up to this many bytes, so a quiet source cannot save up for a burst.
    static let budgetCap = 3 * 65_536
    private var buckets: [UDPAddress: (tokens: Double, at: ContinuousClock.Instant)] = [:]
    private var budgets: [UDPAddress: Int] = [:]

    /// A limiter of `rate` replies per second per source address, `burst` at once.
    public init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    /// Whether `source` (its address; the port does not matter) may get one more reply now; takes it if so.
    public mutating func allow(_ source: UDPAddress, now: ContinuousClock.Instant) -> Bool {
        // An address is keyed without its port: changing ports does not earn a new bucket.
        let key = source.withPort(0)
        var bucket = buckets[key] ?? (burst, now)
        let elapsed = now - bucket.at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        bucket.tokens = min(burst, bucket.tokens + seconds * rate)
        bucket.at = now
        let allowed = bucket.tokens >= 1
        if allowed { bucket.tokens -= 1 }
        if buckets.count >= 65_536 && buckets[key] == nil {
            // Forget full buckets first: they carry no state worth keeping.
            buckets = buckets.filter { $0.value.tokens < burst - 1e-9 }
            if buckets.count >= 65_536 { buckets.removeAll() }
        }
        buckets[key] = bucket
        return allowed
    }

    /// Why `admit` refused a reply.
    public enum Refusal: Sendable, Equatable {
        /// The source address used up its replies per second (`rate`, `burst`).
        case rateLimited
        /// The reply would take the bytes sent to the source address above three times the bytes received from it.
        case overBudget
    }

    /// The allowance every automatic reply larger than its request needs: one of the source address's replies per
    /// second, and room in its byte budget, which each request from it raises by three times its size and each
    /// reply lowers by its own; IP and UDP headers count (28 bytes over IPv4, 48 over IPv6), so what is sent to
    /// an address never exceeds three times what came from it, on the wire. A reply no larger than its request
    /// needs nothing (nil). Returns why the reply must not be sent, or nil (and takes the allowance).
    public mutating func admit(reply size: Int, to request: Datagram, now: ContinuousClock.Instant) -> Refusal? {
        let received = request.payload.readableBytes
        guard size > received else { return nil }
        if !allow(request.sender, now: now) { return .rateLimited }
        let overhead = request.sender.family == .ipv6 ? 48 : 28
        return spend(request.sender, received: received + overhead, sending: size + overhead) ? nil : .overBudget
    }

    /// Adds three times `received` bytes to the source's budget and takes `sending` bytes from it; false (and
    /// nothing taken) when the budget does not cover them.
    public mutating func spend(_ source: UDPAddress, received: Int, sending: Int) -> Bool {
        let key = source.withPort(0)
        var budget = min(Self.budgetCap, (budgets[key] ?? 0) + Self.amplificationLimit * received)
        let allowed = budget >= sending
        if allowed { budget -= sending }
        if budgets.count >= 65_536 && budgets[key] == nil { budgets.removeAll() }
        budgets[key] = budget
        return allowed
    }
}
