import NIOConcurrencyHelpers
import NIOCore
import RoomProtocol
import UDPKit
import UDPText

/// Why a room client could not join, or could not take a command.
public enum RoomClientError: Error, Sendable, CustomStringConvertible {
    /// The server refused the JOIN; `text` is its explanation.
    case refused(RefusalReason, String)
    /// No answer to the JOIN within the join timeout.
    case serverNotResponding(seconds: Double)
    /// The nick (to join with, change to, or send a private message to) breaks the nick rules.
    case invalidNick(NickError)
    /// The message text is empty, too long for the room, or contains control characters.
    case invalidText(TextError)
    /// As many commands as the stream holds are waiting already: the server is not keeping up.
    case backlogFull(Int)
    /// An `unrecognized` command that cannot be sent: its code is a known command's, or its body is too long.
    case unsupportedCommand(code: UInt8, bytes: Int)
    /// The client has left, was closed, or is leaving.
    case notInRoom

    public var description: String {
        switch self {
        case .refused(let reason, let text): "the room refused to let us in (\(reason)): \(TerminalText.escape(text))"
        case .serverNotResponding(let seconds):
            "no answer from the room server within \(seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)) s: is `udp room serve` running there?"
        case .invalidNick(let error): "\(error)"
        case .invalidText(let error): "\(error)"
        case .backlogFull(let count): "\(count) messages are waiting for the server already; wait until it catches up"
        case .unsupportedCommand(let code, let bytes):
            "command 0x\(String(code, radix: 16)) with \(bytes) bytes cannot be sent"
        case .notInRoom: "not in the room"
        }
    }
}

/// A member of a room run by `RoomServer` (or any server speaking `docs/room-protocol.md`).
///
/// `join` returns once the server accepted the nick. From then on everything the room says arrives in
/// `events`, exactly once and in order, whatever the network loses, duplicates or reorders; commands sent
/// with `send` reach the server exactly once and in order. The client sends heartbeats, notices when the
/// server stops answering, and when its session ends (the server restarted, or dropped it) it rejoins by
/// itself with the same nick and says so in `events`; commands the old session never confirmed are sent
/// again in the new one.
///
/// ```swift
/// let alice = try await RoomClient.join(server, nick: "alice")
/// try await alice.say("hello")
/// for await event in alice.events {
///     if case .room(.message(let from, _, let text, _, _)) = event { print("\(from): \(text)") }
/// }
/// _ = await alice.leave()
/// ```
///
/// A client runs until `leave()` or `close()` (or a rejoin refused for good); call one of them, or it keeps
/// its session alive.
public final class RoomClient: Sendable {
    /// Timing, pacing and socket settings of a member.
    public struct Configuration: Sendable {
        /// Retransmission timeouts and window of the command stream; the event stream's window too.
        public var stream: ReliableStreamConfiguration = .standard
        /// How long the first JOIN is retried before `join` gives up, in nanoseconds. Default 10 s.
        public var joinTimeout: UInt64 = 10_000_000_000
        /// How long `leave()` waits for the server to confirm, in nanoseconds. Default 2 s.
        public var leaveTimeout: UInt64 = 2_000_000_000
        /// How many more times a first join tries after the room answered "full" (within `joinTimeout`).
        /// Default 3.
        public var fullRoomRetries = 3
        /// Nanoseconds to wait before trying a full room again. Default 1 s.
        public var fullRoomRetryDelay: UInt64 = 1_000_000_000
        /// Commands sent at once before pacing starts; nil sends everything at once. Default 40: a little
        /// under the room's burst of 50, so a paste of a few dozen lines is never cut by the server's rate
        /// limit, and retransmission delays cannot make the server see more at once than it allows.
        public var commandBurst: Int? = 40
        /// Nanoseconds between paced commands. Default 200 ms, the room's refill rate.
        public var commandRefillInterval: UInt64 = 200_000_000
        /// Options of the member's socket.
        public var socketOptions: UDPSocketOptions = roomSocketOptions(buffer: nil)
        /// The local address to bind; nil picks a free port.
        public var localAddress: UDPAddress?

        /// The defaults of `docs/room-protocol.md`.
        public init() {}
    }

    /// What a member hears, in order.
    public enum Event: Sendable, Equatable {
        /// Something happened in the room (delivered exactly once, in the server's order).
        case room(RoomEvent)
        /// The session ended (`reason`); the client is rejoining.
        case sessionEnded(EndReason)
        /// The client is back in the room after its session ended. `serverRestarted` tells whether the server
        /// is a new instance (its room state is gone) or the old one had only dropped this session; `resent`
        /// commands the old session never confirmed went out again (one processed just before a crash may
        /// appear twice).
        case rejoined(serverRestarted: Bool, resent: Int)
        /// Nothing valid came from the server for the member timeout. The client keeps trying.
        case serverNotResponding
        /// The server answers again.
        case serverResponding
        /// The client stopped; the last event.
        case ended(Ending)
    }

    /// Why a client stopped.
    public enum Ending: Sendable, Equatable {
        /// `leave()` ran: `confirmed` when the server acknowledged the LEAVE (and so everything before it).
        case left(confirmed: Bool)
        /// The server refused the JOIN, or a rejoin (someone took the nick meanwhile).
        case refused(RefusalReason, String)
        /// The first JOIN got no answer.
        case serverNotResponding
        /// `close()` ran.
        case closed
    }

    /// What the client did so far.
    public struct Counters: Sendable, Equatable {
        /// Datagrams received from the server.
        public var received = 0
        /// Datagrams sent.
        public var sent = 0
        /// Datagrams dropped as not a valid room packet.
        public var malformed = 0
        /// Valid packets for another session (wrong token or nonce): stale, or forged.
        public var foreign = 0
        /// Events received more than once (dropped).
        public var duplicates = 0
        /// Commands sent again for want of an acknowledgement.
        public var retransmissions = 0
        /// Sessions begun again after one ended.
        public var rejoins = 0
        /// History messages not shown after a rejoin because the earlier session had shown them.
        public var historySkipped = 0
        /// The last heartbeat round trip, in nanoseconds.
        public var roundTrip: UInt64?
    }

    private struct Shared {
        var core: ClientCore
        var sleepingUntil: UInt64?
        var outcome: Result<Welcome, any Error>?
        var outcomeWaiter: CheckedContinuation<Welcome, any Error>?
        var endWaiters: [CheckedContinuation<Void, Never>] = []
        /// The core ended and one `apply` is closing the socket.
        var closing = false
        /// The socket is closed: nothing more happens.
        var closed = false
    }

    /// What one state change asks of the I/O side.
    private struct Effects {
        var datagrams: [[UInt8]] = []
        var ring = false
        var ended = false
    }

    /// The server's address.
    public let server: UDPAddress
    /// The configuration.
    public let configuration: Configuration
    /// Everything the member hears, in order; ends after `.ended`.
    public let events: AsyncStream<Event>

    private let socket: UDPSocket
    private let continuation: AsyncStream<Event>.Continuation
    private let shared: NIOLockedValueBox<Shared>
    private let alarm = Alarm()

    private init(socket: UDPSocket, server: UDPAddress, nick: String, configuration: Configuration) {
        self.socket = socket
        self.server = server
        self.configuration = configuration
        (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        shared = NIOLockedValueBox(
            Shared(core: ClientCore(nick: nick, configuration: configuration, now: RoomClock.now())))
    }

    /// Joins the room at `server` as `nick`, retrying the JOIN until the server answers or `joinTimeout`.
    /// - Throws: `RoomClientError.refused` (nick taken, room full, ...), `.serverNotResponding`,
    ///   `.invalidNick` (checked against the default nick rules before sending), `UDPError`s from opening
    ///   the socket, `CancellationError`.
    public static func join(_ server: UDPAddress, nick: String, configuration: Configuration = .init()) async throws
        -> RoomClient
    {
        do {
            try RoomLimits.standard.checkNick(nick)
        } catch {
            throw RoomClientError.invalidNick(error)
        }
        // Not connected: on Linux a connected socket that sends after an ICMP "port unreachable" (a server
        // restarting) is closed by the failed send, and the member could not rejoin. Tokens and nonces, not
        // source addresses, tell the server's packets from others, so a server answering from another of its
        // addresses is fine too.
        let socket = try await UDPSocket.client(
            for: server, from: configuration.localAddress, options: configuration.socketOptions)
        let client = RoomClient(socket: socket, server: server, nick: nick, configuration: configuration)
        client.startTasks()
        await client.apply(client.update { core, now in core.start(now: now) })
        do {
            try await client.firstOutcome()
            return client
        } catch {
            await client.close()
            throw error
        }
    }

    /// The member's nick now (it follows `/nick` changes).
    public var nick: String { shared.withLockedValue { $0.core.nick } }
    /// The WELCOME of the current (or last) session: token, server instance, limits, timing.
    public var welcome: Welcome? { shared.withLockedValue { $0.core.welcome } }
    /// Why the client stopped; nil while it runs.
    public var ending: Ending? { shared.withLockedValue { $0.core.ending } }
    /// The counters now.
    public var counters: Counters { shared.withLockedValue { $0.core.counters } }
    /// The local address of the member's socket.
    public var localAddress: UDPAddress { socket.localAddress }

    /// Queues `command` for the server; it goes out at once unless pacing or the window holds it back.
    /// `.leave` is `leave()` without waiting.
    /// - Throws: `RoomClientError.invalidText` (empty, too long for the room, control characters),
    ///   `.invalidNick`, `.backlogFull`, `.notInRoom` after leaving.
    public func send(_ command: ClientCommand) async throws(RoomClientError) {
        var failure: RoomClientError?
        let effects = update { core, now in
            do throws(RoomClientError) {
                try core.submit(command, now: now)
            } catch {
                failure = error
            }
        }
        await apply(effects)
        if let failure { throw failure }
    }

    /// Says `text` to the room. See `send(_:)`.
    public func say(_ text: String) async throws(RoomClientError) {
        try await send(.say(kind: .text, text: text))
    }

    /// Leaves the room: LEAVE goes after everything queued, and the client waits up to `timeout`
    /// nanoseconds (default `leaveTimeout`) for the server to confirm it, then stops.
    /// - Returns: true when the server confirmed the LEAVE, and with it every command sent before.
    @discardableResult
    public func leave(timeout: UInt64? = nil) async -> Bool {
        let within = timeout ?? configuration.leaveTimeout
        await apply(update { core, now in core.leave(within: within, now: now) })
        await waitUntilEnded()
        return ending == .left(confirmed: true)
    }

    /// Stops without telling the server, which times the member out (as if it had vanished).
    public func close() async {
        await apply(update { core, _ in core.close() })
        await waitUntilEnded()
    }

    // MARK: - Driving the core

    private func startTasks() {
        // Both tasks end by themselves once the client has ended (the socket is closed then).
        Task { [self] in
            do {
                for try await batch in socket.batches {
                    await apply(
                        update { core, now in
                            for datagram in batch {
                                core.receive(
                                    datagram.payload.readableBytesView, truncated: datagram.truncated, now: now)
                            }
                            core.transmit(now: now)
                        })
                }
            } catch {
                // The socket failed under us: nothing more can arrive, so the client stops.
                await apply(update { core, _ in core.close() })
            }
        }
        Task { [self] in
            while true {
                let now = RoomClock.now()
                let (deadline, ended) = shared.withLockedValue { state -> (UInt64?, Bool) in
                    let deadline = state.core.nextDeadline(now: now)
                    state.sleepingUntil = deadline
                    return (deadline, state.core.ending != nil)
                }
                if ended { return }
                await alarm.sleep(nanoseconds: deadline.map { now.elapsed(until: $0) })
                await apply(update { core, now in core.tick(now: now) })
            }
        }
    }

    /// Runs `body` on the core under the lock, hands its events to `events` (in order, under the lock) and
    /// resolves waiters; returns what must be sent.
    private func update(_ body: (inout ClientCore, UInt64) -> Void) -> Effects {
        let now = RoomClock.now()
        return shared.withLockedValue { state -> Effects in
            body(&state.core, now)
            var effects = Effects(datagrams: state.core.takeOutgoing())
            for event in state.core.takeEvents() { continuation.yield(event) }
            if let outcome = state.core.takeOutcome(), state.outcome == nil {
                state.outcome = outcome
                state.outcomeWaiter?.resume(with: outcome)
                state.outcomeWaiter = nil
            }
            if state.core.ending != nil, !state.closing {
                state.closing = true
                effects.ended = true
                effects.ring = true
            } else if let deadline = state.core.nextDeadline(now: now), deadline < (state.sleepingUntil ?? .max) {
                effects.ring = true
            }
            return effects
        }
    }

    private func apply(_ effects: Effects) async {
        if !effects.datagrams.isEmpty {
            // A failed send is a lost datagram: retransmission or the next heartbeat covers it.
            try? await socket.send(effects.datagrams.map { OutgoingDatagram(bytes: $0, to: server) })
        }
        if effects.ring { alarm.ring() }
        if effects.ended {
            continuation.finish()
            await socket.close()
            let waiters = shared.withLockedValue { state in
                state.closed = true
                defer { state.endWaiters.removeAll() }
                return state.endWaiters
            }
            waiters.forEach { $0.resume() }
        }
    }

    private func firstOutcome() async throws {
        _ = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Welcome, any Error>) in
                shared.withLockedValue { state in
                    if let outcome = state.outcome {
                        waiter.resume(with: outcome)
                    } else {
                        state.outcomeWaiter = waiter
                    }
                }
            }
        } onCancel: {
            let waiter = shared.withLockedValue { state in
                defer { state.outcomeWaiter = nil }
                if state.outcome == nil { state.outcome = .failure(CancellationError()) }
                return state.outcomeWaiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func waitUntilEnded() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let done = shared.withLockedValue { state -> Bool in
                if state.closed { return true }
                state.endWaiters.append(waiter)
                return false
            }
            if done { waiter.resume() }
        }
    }
}
