import NIOConcurrencyHelpers
import NIOCore
import RoomProtocol
import ServiceLifecycle
import UDPKit

/// A chat room on one UDP socket: the server side of the room protocol (`docs/room-protocol.md`).
///
/// Members join with a nick and get a secret session token; every later packet must carry it, so knowing a
/// member's address is not enough to post as that member. Each member's commands and the room's events
/// travel in reliable streams (acknowledged, retransmitted, de-duplicated), so every message sent after a
/// member joined reaches it exactly once, each sender's messages in the order sent, despite loss,
/// duplication and reordering. Members that stop answering time out; nick rules, a per-member rate limit,
/// a message size limit and a room size limit apply (`RoomLimits`); malformed datagrams are dropped and
/// counted, never answered.
///
/// A `Service`: a graceful shutdown tells every member the server is stopping; a cancellation stops at once.
///
/// ```swift
/// let server = try await RoomServer.bind(to: .parse("*:9000"), onEvent: { print($0) })
/// let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigint, .sigterm])
/// try await group.run()   // members join server.localAddress; SIGINT or SIGTERM ends it, members told
/// ```
///
/// All state lives in the task that calls `run`; `counters` may be read from anywhere.
public final class RoomServer: Service {
    /// Limits and timing.
    public struct Configuration: Sendable {
        /// Nick and text rules, room size, history length, per-member command rate.
        public var limits: RoomLimits = .standard
        /// Heartbeat interval, member timeout, retransmission timeouts. Tests shorten these.
        public var timing: RoomTiming = .standard
        /// How many packets without a valid token one source IP address may send in a burst before the server
        /// stops answering it. JOINs and packets with unknown (stale or forged) tokens each have a bucket of
        /// their own, so a flood of one kind does not lock out the other. Default 32.
        public var addressBurst = 32
        /// Nanoseconds for an address to regain one such packet after a burst. Default 100 ms (10 per second).
        public var addressRefillInterval: UInt64 = 100_000_000
        /// Most unconfirmed sessions (WELCOME sent, token not yet back) from one IP address; a JOIN beyond
        /// is refused as rate limited. They do not count toward `limits.maxMembers`. Default 4.
        public var maxPendingJoinsPerAddress = 4
        /// Most unconfirmed sessions in all; a JOIN beyond replaces the oldest of them. Default 256.
        public var maxPendingJoins = 256

        /// The defaults of `docs/room-protocol.md`.
        public init() {}
    }

    /// Why a datagram, or the command in it, was not acted on.
    public enum DropReason: String, Sendable, CaseIterable {
        /// Not a version-1 room packet for a server: wrong magic, version or direction, truncated, bad
        /// UTF-8, oversized, trailing bytes.
        case malformed
        /// A token the server does not know: stale (the member left, timed out, or the server restarted)
        /// or forged. Answered with ENDED.
        case unknownSession = "unknown-session"
        /// A command over the member's rate limit; acknowledged, not acted on, answered with a NOTICE.
        case rateLimited = "rate-limited"
        /// A JOIN, or a packet with a token the server does not know, from an address over its limit; not
        /// answered. (A malformed datagram counts as malformed whether or not it was answered.)
        case addressRateLimited = "address-rate-limited"
        /// A command refused with a NOTICE: text too long or invalid, nick taken or invalid, no such
        /// member, unsupported command.
        case rejected
        /// A JOIN refused because its address has `maxPendingJoinsPerAddress` unconfirmed sessions, or an
        /// unconfirmed session dropped to make room under `maxPendingJoins` or because 64 events queued for it
        /// before it confirmed.
        case pendingJoinLimit = "pending-join-limit"
    }

    /// What the server did so far.
    public struct Counters: Sendable, Equatable {
        /// Members now (joined and confirmed).
        public var members = 0
        /// Sessions confirmed since the start.
        public var joined = 0
        /// Members that left.
        public var left = 0
        /// Members dropped for silence or for not acknowledging their stream.
        public var timedOut = 0
        /// JOINs refused (nick taken or invalid, room full, wrong version).
        public var refused = 0
        /// Public messages relayed.
        public var messages = 0
        /// Private messages relayed.
        public var privateMessages = 0
        /// Datagrams received.
        public var received = 0
        /// Datagrams sent.
        public var sent = 0
        /// Events sent again because no acknowledgement came in time.
        public var retransmissions = 0
        /// PATH_CHALLENGEs sent to addresses members' packets came from but that had not proven they receive.
        public var pathChallenges = 0
        /// Members whose packets moved to another address that answered its challenge (a NAT rebinding).
        public var migrations = 0
        /// Sessions that sent LEAVE and were forgotten at the end of the grace, their stream unacknowledged.
        public var expiredAfterLeave = 0
        /// Datagrams or commands not acted on, by reason.
        public var dropped: [DropReason: Int] = [:]

        /// All drops.
        public var droppedTotal: Int { dropped.values.reduce(0, +) }
    }

    /// Something that happened to the membership, for a log.
    public enum Event: Sendable, Equatable {
        /// A member's session was confirmed; `address` is where its packets come from.
        case joined(nick: String, address: UDPAddress)
        /// A member left.
        case left(nick: String)
        /// A member was dropped; `reason` says why, for people.
        case timedOut(nick: String, reason: String)
        /// A member changed its nick.
        case nickChanged(from: String, to: String)
        /// A member's packets now go to `to`: its packets came from there and it answered the challenge sent there.
        case moved(nick: String, from: UDPAddress, to: UDPAddress)
        /// A JOIN was refused.
        case refused(nick: String, address: UDPAddress, reason: RefusalReason)
    }

    /// The socket the room runs on.
    public let socket: UDPSocket
    /// The configuration.
    public let configuration: Configuration
    /// A random number drawn at start, sent in every WELCOME: a member that rejoins and sees another value
    /// knows the server restarted.
    public let instance: UInt64
    /// Called for every join, leave, timeout, nick change, move and refused JOIN, from the task that runs the
    /// room: it must not block.
    public let onEvent: (@Sendable (Event) -> Void)?
    private let published = NIOLockedValueBox(Counters())

    /// A room on `socket`, which it closes when `run()` returns. Use `bind` for a socket with suitable options
    /// (receive buffer, datagram size).
    public init(
        socket: UDPSocket, configuration: Configuration = .init(), instance: UInt64 = .random(in: 1...UInt64.max),
        onEvent: (@Sendable (Event) -> Void)? = nil
    ) {
        self.socket = socket
        self.configuration = configuration
        self.instance = instance
        self.onEvent = onEvent
    }

    /// Binds a room's socket to `endpoint`. Call `run()` to serve.
    /// - Throws: `UDPError` from binding (`.addressInUse`, ...).
    public static func bind(
        to endpoint: UDPEndpoint, family: UDPAddress.Family? = nil, configuration: Configuration = .init(),
        onEvent: (@Sendable (Event) -> Void)? = nil
    ) async throws -> RoomServer {
        RoomServer(
            socket: try await UDPSocket.bind(to: endpoint, family: family, options: roomSocketOptions(buffer: 4 << 20)),
            configuration: configuration, onEvent: onEvent)
    }

    /// Binds a room's socket to a resolved address. See `bind(to:family:configuration:onEvent:)`.
    public static func bind(
        to address: UDPAddress, configuration: Configuration = .init(),
        onEvent: (@Sendable (Event) -> Void)? = nil
    ) async throws -> RoomServer {
        RoomServer(
            socket: try await UDPSocket.bind(to: address, options: roomSocketOptions(buffer: 4 << 20)),
            configuration: configuration, onEvent: onEvent)
    }

    /// The address members send to.
    public var localAddress: UDPAddress { socket.localAddress }

    /// The counters now.
    public var counters: Counters { published.withLockedValue { $0 } }

    /// Serves until a graceful shutdown, the task's cancellation or the socket closing from outside; closes the
    /// socket before it returns.
    ///
    /// - A graceful shutdown sends every member ENDED (reason `serverShutdown`), so clients know to rejoin when
    ///   the server is back; then the socket is closed and `run` returns normally.
    /// - A cancellation closes the socket at once, telling nobody; `run` returns normally. Members notice the
    ///   silence, and a restarted server answers their old tokens with ENDED (`unknownSession`).
    /// - When the socket is closed from outside, `run` returns without telling anyone (as a crash would).
    public func run() async throws {
        let goodbyes: [OutgoingDatagram]
        do {
            goodbyes = try await cancelWhenGracefulShutdown { [self] in try await serve() }
        } catch {
            await socket.close()
            throw error
        }
        // Sent from this task, which a graceful shutdown does not cancel: the receiving loop was stopped by
        // cancelling the child task it ran in.
        if !goodbyes.isEmpty {
            do {
                try await socket.send(goodbyes)
            } catch {
                // Nobody left to tell: the socket failed, or the members' addresses refuse; they time out instead.
            }
        }
        await socket.close()
    }

    /// The receiving loop. Returns, when cancelled, the ENDED packets owed to the members if the cancellation
    /// came from a graceful shutdown (none otherwise), or none when the socket closed.
    private func serve() async throws -> [OutgoingDatagram] {
        var core = ServerCore(configuration: configuration, instance: instance)
        defer { publish(core.counters) }
        do {
            while true {
                let now = RoomClock.now()
                // The idle cap keeps a quiet server checking its members' timeouts.
                let wait = min(now.elapsed(until: core.nextDeadline(now: now) ?? .max), 1_000_000_000)
                let batch = try await socket.receiveBatch(timeout: .nanoseconds(Int64(wait)))
                let arrival = RoomClock.now()
                let millis = RoomClock.unixMillis()
                // A broadcast or multicast "sender" is a spoofed source: any answer (WELCOME, ENDED, REFUSED) would
                // go to a whole subnet or group.
                for datagram in batch where !datagram.sender.isBroadcastOrMulticast {
                    core.receive(
                        datagram.payload.readableBytesView, truncated: datagram.truncated, from: datagram.sender,
                        now: arrival, unixMillis: millis)
                }
                core.tick(now: RoomClock.now())
                try await flush(&core)
            }
        } catch is CancellationError {
            guard Task.isShuttingDownGracefully else { return [] }
            core.shutdown()
            return core.takeOutgoing()
        } catch UDPError.closed {
            return []
        }
    }

    private func flush(_ core: inout ServerCore) async throws {
        // Counters first: whoever sees an answer then sees it counted.
        publish(core.counters)
        let outgoing = core.takeOutgoing()
        if !outgoing.isEmpty {
            do {
                try await socket.send(outgoing)
            } catch let error as UDPError {
                // A member that cannot be reached must not stop the room; it times out like any other.
                if case .closed = error { throw error }
            }
        }
        let events = core.takeEvents()
        if let onEvent { events.forEach(onEvent) }
    }

    private func publish(_ counters: Counters) {
        published.withLockedValue { $0 = counters }
    }
}

/// Options for a room socket: datagrams up to the protocol's maximum (a longer one arrives flagged
/// `truncated` and is dropped as malformed), so each receive slot stays small, and a larger receive buffer
/// where many members answer at once.
func roomSocketOptions(buffer: Int?) -> UDPSocketOptions {
    var options = UDPSocketOptions()
    options.maximumDatagramSize = RoomWire.maxDatagramSize
    options.receiveBufferSize = buffer
    options.sendBufferSize = buffer
    return options
}
