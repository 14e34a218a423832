import NIOCore
import RoomProtocol
import UDPKit

/// A room member's state and rules, without I/O: datagrams, commands and clock readings in; datagrams to
/// the server and events for the user out. `RoomClient` drives it from its socket, its timer and its callers.
struct ClientCore {
    private struct Joining {
        var nonce: UInt64
        var attempts = 0
        var nextAttempt: UInt64
        let started: UInt64
        let rejoin: Bool
        /// "Room full" answers so far; a first join tries `fullRoomRetries` more times before giving up.
        var fullRefusals = 0
        /// The last refusal worth waiting out ("rate limited", "room full"): what to report if the join times out.
        var lastRefusal: (reason: RefusalReason, text: String)?
    }

    private struct Session {
        let welcome: Welcome
        var events: ReliableReceiver<RoomEvent>
        var commands: ReliableSender<ClientCommand>
        var lastHeard: UInt64
        var nextHeartbeat: UInt64
        var silent = false
        var owesAck = false
        /// The sender's window or capacity was full at the last try; an acknowledgement clears it.
        var blocked = false
        var leaveSequence: UInt64?
        /// On a rejoin, history messages up to this time were shown in an earlier session.
        let seenUntilMillis: UInt64?

        var token: SessionToken { welcome.token }
        /// The announced timeout, within `RoomTiming.clientTimeoutRange`: whatever a server says, the client
        /// neither declares it gone within a second nor waits for ever.
        var timeout: UInt64 { clamp(UInt64(welcome.timeoutMillis) * 1_000_000, to: RoomTiming.clientTimeoutRange) }
        /// The announced interval, within `RoomTiming.clientHeartbeatRange` and at most half the timeout: a
        /// server announcing 0 ms must not make the client send a hundred heartbeats a second, nor one
        /// announcing more than its timeout make it drop the member.
        var heartbeatInterval: UInt64 {
            min(clamp(UInt64(welcome.heartbeatMillis) * 1_000_000, to: RoomTiming.clientHeartbeatRange), timeout / 2)
        }
    }

    let configuration: RoomClient.Configuration
    private(set) var nick: String
    private(set) var counters = RoomClient.Counters()
    private(set) var ending: RoomClient.Ending?
    /// The WELCOME of the current (or last) session.
    private(set) var welcome: Welcome?

    private var joining: Joining?
    private var session: Session?
    /// Commands not yet in a session's stream: waiting for the pace, for a session, or for room in the window.
    private var outbox = CircularBuffer<ClientCommand>()
    private var pacer: TokenBucket?
    private var leaveDeadline: UInt64?
    private var resent = 0
    private var lastMessageMillis: UInt64 = 0
    private var outgoing: [[UInt8]] = []
    private var events: [RoomClient.Event] = []
    private var outcome: Result<Welcome, any Error>?

    init(nick: String, configuration: RoomClient.Configuration, now: UInt64) {
        self.nick = nick
        self.configuration = configuration
        if let burst = configuration.commandBurst {
            pacer = TokenBucket(
                capacity: max(1, burst), refillInterval: max(1, configuration.commandRefillInterval), now: now)
        }
    }

    /// Datagrams for the server, in order; empties the queue.
    mutating func takeOutgoing() -> [[UInt8]] {
        defer { outgoing.removeAll(keepingCapacity: true) }
        return outgoing
    }

    /// Events for the user, in order; empties the queue.
    mutating func takeEvents() -> [RoomClient.Event] {
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    /// How the first join ended (WELCOME or the error), once; nil before, and after it was taken.
    mutating func takeOutcome() -> Result<Welcome, any Error>? {
        defer { outcome = nil }
        return outcome
    }

    // MARK: - Joining

    /// Sends the first JOIN.
    mutating func start(now: UInt64) {
        beginJoin(now: now, rejoin: false)
    }

    private mutating func beginJoin(now: UInt64, rejoin: Bool) {
        session = nil
        joining = Joining(nonce: .random(in: 1...UInt64.max), nextAttempt: now, started: now, rejoin: rejoin)
        tick(now: now)
    }

    private mutating func established(_ welcome: Welcome, rejoin: Bool, now: UInt64) {
        let previous = self.welcome?.serverInstance
        joining = nil
        self.welcome = welcome
        session = Session(
            welcome: welcome, events: ReliableReceiver(window: configuration.stream.window),
            commands: ReliableSender(configuration: configuration.stream), lastHeard: now, nextHeartbeat: now,
            seenUntilMillis: rejoin ? lastMessageMillis : nil)
        session!.nextHeartbeat = now.plus(session!.heartbeatInterval)
        // The first packet carrying the token confirms the session; until then the server sends nothing else.
        send(.ack(token: welcome.token, Acknowledgement(cumulative: 0)))
        if rejoin {
            counters.rejoins += 1
            events.append(.rejoined(serverRestarted: previous != welcome.serverInstance, resent: resent))
            resent = 0
        } else {
            outcome = .success(welcome)
        }
        transmit(now: now)
    }

    // MARK: - Input from the user

    /// Queues a command; it goes out as the pace and the window allow.
    mutating func submit(_ command: ClientCommand, now: UInt64) throws(RoomClientError) {
        guard ending == nil, leaveDeadline == nil else { throw .notInRoom }
        if command == .leave { return leave(within: configuration.leaveTimeout, now: now) }
        try check(command)
        guard outbox.count < configuration.stream.capacity else { throw .backlogFull(configuration.stream.capacity) }
        outbox.append(command)
        transmit(now: now)
    }

    /// The room's own checks, made here too so that the user hears at once, not after a round trip.
    private func check(_ command: ClientCommand) throws(RoomClientError) {
        let limit =
            welcome.map { min(max(Int($0.maxTextBytes), 1), StringField.text.maxBytes) }
            ?? RoomLimits.standard.maxTextBytes
        let limits = RoomLimits(maxTextBytes: limit)
        func checkText(_ text: String) throws(RoomClientError) {
            do { try limits.checkText(text) } catch { throw .invalidText(error) }
        }
        func checkNick(_ nick: String) throws(RoomClientError) {
            do { try limits.checkNick(nick) } catch { throw .invalidNick(error) }
        }
        switch command {
        case .say(_, let text):
            try checkText(text)
        case .privateMessage(let to, let text):
            try checkNick(to)
            try checkText(text)
        case .changeNick(let new):
            try checkNick(new)
        case .who, .leave:
            break
        case .unrecognized(let code, let body):
            // A known code would encode as that command; a body must fit in a datagram.
            guard
                (try? RoomCodec.encode(ClientPacket.command(token: SessionToken(high: 0, low: 0), sequence: 1, command)))
                    != nil
            else {
                throw .unsupportedCommand(code: code, bytes: body.count)
            }
        }
    }

    /// Sends LEAVE after everything queued; the client ends when the server confirms it or at `within`.
    mutating func leave(within: UInt64, now: UInt64) {
        guard ending == nil, leaveDeadline == nil else { return }
        guard session != nil else { return finish(.left(confirmed: false)) }
        outbox.append(.leave)
        leaveDeadline = now.plus(within)
        transmit(now: now)
    }

    /// Ends without telling the server (it will time the member out).
    mutating func close() {
        finish(.closed)
    }

    // MARK: - Input from the network

    /// Handles one datagram from the server.
    mutating func receive(_ bytes: some Collection<UInt8>, truncated: Bool, now: UInt64) {
        guard ending == nil else { return }
        counters.received += 1
        guard !truncated, let packet = try? RoomCodec.decodeServerPacket(bytes) else {
            counters.malformed += 1
            if !truncated, let refusal = RoomCodec.decodeVersionRefusal(bytes), let joining,
                refusal.nonce == joining.nonce
            {
                // An older server: it cannot let us in, and says so in its own version.
                if !joining.rejoin { outcome = .failure(RoomClientError.refused(.unsupportedVersion, refusal.text)) }
                finish(.refused(.unsupportedVersion, refusal.text))
            }
            return
        }
        switch packet {
        case .welcome(let welcome):
            // A WELCOME repeated because a JOIN was repeated is harmless.
            if session?.welcome == welcome { return }
            guard let joining, welcome.nonce == joining.nonce else { return foreign() }
            established(welcome, rejoin: joining.rejoin, now: now)
        case .refused(let nonce, let reason, let text):
            guard var joining, nonce == joining.nonce else { return foreign() }
            // Worth waiting out: the next JOIN (already scheduled) may get in. A full room may have a place
            // again in a moment (a member leaves, or the room counted one that never confirmed).
            var transient =
                reason == .rateLimited || (joining.rejoin && (reason == .shuttingDown || reason == .roomFull))
            if reason == .roomFull, !joining.rejoin, joining.fullRefusals < configuration.fullRoomRetries {
                joining.fullRefusals += 1
                // The server answered, so nothing was lost: no backoff, just the pause.
                joining.nextAttempt = now.plus(configuration.fullRoomRetryDelay)
                transient = true
            }
            if transient {
                joining.lastRefusal = (reason, text)
                self.joining = joining
                return
            }
            if !joining.rejoin { outcome = .failure(RoomClientError.refused(reason, text)) }
            finish(.refused(reason, text))
        case .ended(let token, let reason):
            guard let current = session, token == current.token else { return foreign() }
            if current.leaveSequence != nil {
                // The server processed the LEAVE and forgot the token before its acknowledgement got here.
                return finish(.left(confirmed: true))
            }
            events.append(.sessionEnded(reason))
            // What the old session never confirmed goes first into the new one.
            let unconfirmed = session!.commands.drainUnacknowledged()
            resent = unconfirmed.count
            for command in unconfirmed.reversed() { outbox.prepend(command) }
            beginJoin(now: now, rejoin: true)
        case .ack(let token, let acknowledgement):
            guard session?.token == token else { return foreign() }
            heard(now: now)
            session!.commands.acknowledge(acknowledgement, now: now)
            session!.blocked = false
            if let leave = session!.leaveSequence, acknowledgement.covers(leave) {
                return finish(.left(confirmed: true))
            }
        case .pong(let token, let echo):
            guard session?.token == token else { return foreign() }
            heard(now: now)
            if echo <= now { counters.roundTrip = now - echo }
        case .pathChallenge(let token, let challenge):
            guard session?.token == token else { return foreign() }
            // The server saw our packets come from a new address (a NAT rebinding, a new socket): answering
            // from it proves we receive there, and the server moves our stream to it.
            heard(now: now)
            send(.pathResponse(token: token, challenge: challenge))
        case .deliver(let token, let sequence, let event):
            guard session?.token == token else { return foreign() }
            heard(now: now)
            let receipt = session!.events.receive(sequence: sequence, payload: event)
            // Duplicates too: a repeated event usually means the acknowledgement was lost.
            session!.owesAck = true
            if receipt.disposition == .duplicate { counters.duplicates += 1 }
            for event in receipt.deliverable { present(event) }
        }
    }

    private mutating func foreign() {
        counters.foreign += 1
    }

    private mutating func heard(now: UInt64) {
        session!.lastHeard = now
        if session!.silent {
            session!.silent = false
            events.append(.serverResponding)
        }
    }

    private mutating func present(_ event: RoomEvent) {
        if case .message(_, _, _, let millis, let flags) = event {
            if flags.contains(.history), let seen = session!.seenUntilMillis, millis <= seen {
                // Shown in the session before the rejoin; the rest of the history was missed meanwhile.
                counters.historySkipped += 1
                return
            }
            lastMessageMillis = max(lastMessageMillis, millis)
        }
        if case .nickChanged(let from, let to) = event, from == nick { nick = to }
        events.append(.room(event))
    }

    // MARK: - Time

    /// Does what is due at `now`: JOIN retries, heartbeats, the silence check, retransmissions, paced commands.
    mutating func tick(now: UInt64) {
        guard ending == nil else { return }
        if let leaveDeadline, now >= leaveDeadline { return finish(.left(confirmed: false)) }
        if var joining {
            if !joining.rejoin, now >= joining.started.plus(configuration.joinTimeout) {
                if let refusal = joining.lastRefusal {
                    // The server answers, but would not let us in: say why, not that it is silent.
                    outcome = .failure(RoomClientError.refused(refusal.reason, refusal.text))
                    return finish(.refused(refusal.reason, refusal.text))
                }
                outcome = .failure(
                    RoomClientError.serverNotResponding(seconds: Double(configuration.joinTimeout) / 1e9))
                return finish(.serverNotResponding)
            }
            guard now >= joining.nextAttempt else { return }
            send(.join(nonce: joining.nonce, nick: nick))
            joining.attempts += 1
            joining.nextAttempt = now.plus(
                RoomTiming(stream: configuration.stream).joinRetryDelay(afterAttempts: joining.attempts))
            self.joining = joining
            return
        }
        guard let current = session else { return }
        if now >= current.nextHeartbeat {
            send(.heartbeat(token: current.token, echo: now))
            session!.nextHeartbeat = now.plus(current.heartbeatInterval)
        }
        if !current.silent, now >= current.lastHeard.plus(current.timeout) {
            session!.silent = true
            events.append(.serverNotResponding)
        }
        transmit(now: now)
    }

    /// Moves paced commands into the stream and sends what the stream has due, and any acknowledgement owed.
    mutating func transmit(now: UInt64) {
        guard ending == nil, session != nil else { return }
        let token = session!.token
        if session!.owesAck {
            session!.owesAck = false
            send(.ack(token: token, session!.events.acknowledgement))
        }
        while let next = outbox.first, !session!.blocked {
            let paced = next != .leave && pacer != nil
            if paced, pacer!.available(now: now) == 0 { break }
            guard let sequence = session!.commands.enqueue(next) else {
                session!.blocked = true
                break
            }
            if paced { _ = pacer!.tryTake(now: now) }
            if next == .leave { session!.leaveSequence = sequence }
            outbox.removeFirst()
        }
        for transmission in session!.commands.due(now: now) {
            if transmission.attempt > 1 { counters.retransmissions += 1 }
            send(.command(token: token, sequence: transmission.sequence, transmission.payload))
        }
    }

    /// When `tick` has something to do next; nil once ended.
    func nextDeadline(now: UInt64) -> UInt64? {
        guard ending == nil else { return nil }
        var earliest = leaveDeadline ?? .max
        if let joining {
            earliest = min(earliest, joining.nextAttempt)
            if !joining.rejoin { earliest = min(earliest, joining.started.plus(configuration.joinTimeout)) }
        }
        if let session {
            if session.owesAck { return now }
            earliest = min(earliest, session.nextHeartbeat, session.commands.nextDeadline ?? .max)
            if !session.silent { earliest = min(earliest, session.lastHeard.plus(session.timeout)) }
            if let next = outbox.first, !session.blocked {
                let wait = next == .leave ? 0 : pacer?.delayUntilAvailable(now: now) ?? 0
                earliest = min(earliest, now.plus(wait))
            }
        }
        return earliest
    }

    // MARK: - Output

    private mutating func finish(_ reason: RoomClient.Ending) {
        guard ending == nil else { return }
        ending = reason
        joining = nil
        session = nil
        if outcome == nil, welcome == nil { outcome = .failure(RoomClientError.notInRoom) }
        events.append(.ended(reason))
    }

    private mutating func send(_ packet: ClientPacket) {
        // Commands are checked before they are queued and nicks before joining, so encoding cannot fail;
        // if it did, dropping that one packet is the safe way to survive the bug.
        guard let bytes = try? RoomCodec.encode(packet) else { return }
        counters.sent += 1
        outgoing.append(bytes)
    }
}

private func clamp(_ value: UInt64, to range: ClosedRange<UInt64>) -> UInt64 {
    min(max(value, range.lowerBound), range.upperBound)
}
