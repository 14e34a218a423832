import NIOCore
import RoomProtocol
import UDPKit

/// The room server's state and rules, without I/O: datagrams and clock readings in, datagrams out.
/// `RoomServer` feeds it from its socket; everything it decides is in here, in one task.
struct ServerCore {
    /// A JOIN is identified by where it came from and its nonce, so a repeated JOIN gets the same WELCOME.
    private struct JoinKey: Hashable {
        var address: UDPAddress
        var nonce: UInt64
    }

    /// An address the member's packets came from that it has not yet been seen to receive at (RFC 9000
    /// §8.2). It gets PATH_CHALLENGEs, and nothing else, and never more than three times the bytes that
    /// came from it (§8.1); the stream moves there once the challenge comes back from it.
    private struct PathProbe {
        let address: UDPAddress
        let challenge: UInt64
        /// Bytes of packets carrying the member's token that came from `address`.
        var received = 0
        /// Bytes sent to `address`.
        var sent = 0
        var lastChallenge: UInt64?
    }

    private struct Session {
        let token: SessionToken
        let serial: Int
        let welcome: Welcome
        let joinKey: JoinKey
        let created: UInt64
        var nick: String
        /// Where the member's packets go: the address the WELCOME went to (the token coming back proves the
        /// member received it there), or one that answered a PATH_CHALLENGE since.
        var address: UDPAddress
        var probe: PathProbe?
        var confirmed = false
        var lastHeard: UInt64
        var events: ReliableSender<RoomEvent>
        var commands: ReliableReceiver<ClientCommand>
        var bucket: TokenBucket
        var owesAck = false
        /// The LEAVE command's sequence number once it was processed: the member is gone from the room, and
        /// its stream drains before the LEAVE is acknowledged.
        var leaving: UInt64?
        /// When the LEAVE was processed: the session is forgotten `leaveGrace` later at the latest.
        var leftAt: UInt64 = 0

        /// What to acknowledge: everything received, except a LEAVE whose stream has not drained yet.
        var acknowledgement: Acknowledgement {
            guard let leaving, !events.isIdle else { return commands.acknowledgement }
            return Acknowledgement(cumulative: leaving - 1)
        }
    }

    let configuration: RoomServer.Configuration
    let instance: UInt64
    private(set) var counters = RoomServer.Counters()
    private var limits: RoomLimits { configuration.limits }
    private var timing: RoomTiming { configuration.timing }

    private var sessions: [SessionToken: Session] = [:]
    private var nicks: [String: SessionToken] = [:]
    private var joins: [JoinKey: SessionToken] = [:]
    private var history: [RoomEvent] = []
    private var nextSerial = 0
    /// Answers to packets with a token the server does not know (ENDED), per IP address.
    private var unknownTokenLimiter: AddressLimiter
    /// JOINs, per IP address: apart from the limit above, so a flood of forged tokens from one address
    /// does not lock out a member joining from behind the same NAT.
    private var joinLimiter: AddressLimiter
    /// REFUSED "rate limited" answers to JOINs over their limit: one a second per IP address, so a client
    /// can tell its user why it cannot get in.
    private var refusalLimiter: AddressLimiter
    /// Unconfirmed sessions per IP address (port 0), and in total.
    private var pendingByAddress: [UDPAddress: Int] = [:]
    private var pendingCount = 0
    private var outgoing: [OutgoingDatagram] = []
    private var events: [RoomServer.Event] = []
    /// Members whose stream overflowed while events were being queued; dropped once the command is done.
    private var overflowed: [SessionToken] = []

    init(configuration: RoomServer.Configuration, instance: UInt64) {
        self.configuration = configuration
        self.instance = instance
        let burst = max(1, configuration.addressBurst)
        let refill = max(1, configuration.addressRefillInterval)
        unknownTokenLimiter = AddressLimiter(capacity: burst, refillInterval: refill)
        joinLimiter = AddressLimiter(capacity: burst, refillInterval: refill)
        refusalLimiter = AddressLimiter(capacity: 1, refillInterval: 1_000_000_000)
    }

    /// Datagrams to send, in order; empties the queue.
    mutating func takeOutgoing() -> [OutgoingDatagram] {
        defer { outgoing.removeAll(keepingCapacity: true) }
        return outgoing
    }

    /// Membership changes since the last call.
    mutating func takeEvents() -> [RoomServer.Event] {
        defer { events.removeAll() }
        return events
    }

    // MARK: - Input

    /// Handles one datagram that arrived at monotonic time `now` (nanoseconds), `unixMillis` on the wall clock.
    mutating func receive(
        _ bytes: some Collection<UInt8>, truncated: Bool, from address: UDPAddress, now: UInt64, unixMillis: UInt64
    ) {
        counters.received += 1
        let packet: ClientPacket
        do {
            guard !truncated else { throw DecodeError.datagramTooLarge(size: bytes.count) }
            packet = try RoomCodec.decodeClientPacket(bytes)
        } catch {
            drop(.malformed)
            // A JOIN of another version is the one malformed datagram that gets an answer (so a newer
            // client can say why it cannot join); it is as small as what provoked it, and limited.
            if let reply = RoomCodec.versionMismatchReply(to: bytes), joinLimiter.allow(address, now: now) {
                counters.refused += 1
                counters.sent += 1
                outgoing.append(OutgoingDatagram(bytes: reply, to: address))
            }
            return
        }
        let size = bytes.count
        switch packet {
        case .join(let nonce, let nick):
            join(nonce: nonce, nick: nick, from: address, size: size, now: now)
        case .ack(let token, let acknowledgement):
            guard authenticate(token, from: address, size: size, now: now) != nil else { return }
            updateSession(token) { $0.events.acknowledge(acknowledgement, now: now) }
        case .heartbeat(let token, let echo):
            // From an address not yet validated, the PATH_CHALLENGE is the answer.
            guard authenticate(token, from: address, size: size, now: now) == .validated else { return }
            send(.pong(token: token, echo: echo), to: address)
        case .pathResponse(let token, let challenge):
            if let probe = sessions[token]?.probe, probe.address == address, probe.challenge == challenge {
                migrate(token, to: address, now: now)
            } else {
                // A late or repeated answer, or one from elsewhere: it moves nothing.
                _ = authenticate(token, from: address, size: size, now: now)
            }
        case .command(let token, let sequence, let command):
            guard authenticate(token, from: address, size: size, now: now) != nil,
                let receipt = updateSession(
                    token,
                    { session in
                        // Duplicates too: a repeated command usually means the acknowledgement was lost.
                        session.owesAck = true
                        return session.commands.receive(sequence: sequence, payload: command)
                    })
            else { return }
            // The deliverable items are the received one and the buffered ones that follow it.
            var next = sequence
            for command in receipt.deliverable {
                guard sessions[token] != nil else { break }
                perform(command, sequence: next, from: token, now: now, unixMillis: unixMillis)
                next += 1
            }
            dropOverflowed(now: now)
        }
    }

    /// Changes `token`'s session in place and returns what `change` returns; nil, and nothing done, when there is
    /// no such session. One lookup, and no copy of the session: a copy would share its streams' storage and make
    /// the next change to them copy it all.
    @discardableResult
    private mutating func updateSession<Result>(_ token: SessionToken, _ change: (inout Session) -> Result) -> Result? {
        guard let index = sessions.index(forKey: token) else { return nil }
        return change(&sessions.values[index])
    }

    /// Where a packet carrying a known token came from.
    private enum Path {
        /// The session's address: the member is known to receive there.
        case validated
        /// Another address; it was sent a PATH_CHALLENGE (within its budget) and nothing else.
        case unvalidated
    }

    /// Finds the session of `token`, confirming it on its first packet; answers an unknown token with ENDED.
    /// The token proves the packet comes from the member, not that the member receives at its source
    /// address (the source may be forged), so a new address only gets a challenge.
    private mutating func authenticate(_ token: SessionToken, from address: UDPAddress, size: Int, now: UInt64) -> Path?
    {
        guard
            case (let home, let confirmed)? = updateSession(
                token,
                { session in
                    session.lastHeard = now
                    return (session.address, session.confirmed)
                })
        else {
            if unknownTokenLimiter.allow(address, now: now) {
                drop(.unknownSession)
                // ENDED (21 bytes) is smaller than any packet carrying a token (28 bytes at least).
                send(.ended(token: token, reason: .unknownSession), to: address)
            } else {
                drop(.addressRateLimited)
            }
            return nil
        }
        let path: Path
        if address == home {
            path = .validated
        } else {
            challenge(token, at: address, received: size, now: now)
            path = .unvalidated
        }
        if !confirmed {
            guard confirm(token, now: now) else { return nil }
        }
        return sessions[token] != nil ? path : nil
    }

    /// The token came back, so the member received the WELCOME at the JOIN's address: only now does the room
    /// hear of it, and only now does its stream (history first) start flowing there. False when the room filled
    /// since the WELCOME: the session is ended (the member may try again).
    private mutating func confirm(_ token: SessionToken, now: UInt64) -> Bool {
        guard
            case (let nick, let home, let joinedFrom)? = updateSession(
                token, { ($0.nick, $0.address, $0.joinKey.address) })
        else { return false }
        guard counters.members < limits.maxMembers else {
            send(.ended(token: token, reason: .roomFull), to: home)
            remove(token, announce: .left(nick))
            return false
        }
        forgetPending(from: joinedFrom)
        updateSession(token) { $0.confirmed = true }
        counters.joined += 1
        counters.members += 1
        events.append(.joined(nick: nick, address: home))
        broadcast(.joined(nick))
        dropOverflowed(now: now)
        return true
    }

    /// Sends `address` a PATH_CHALLENGE for `token`'s session, unless that would take what went to the
    /// address beyond three times what came from it, or one went there less than a retransmission timeout
    /// ago. A packet from yet another address starts over with a new challenge: each address's bytes
    /// stay within three times its own.
    private mutating func challenge(_ token: SessionToken, at address: UDPAddress, received: Int, now: UInt64) {
        guard
            let probe = updateSession(
                token,
                { session -> PathProbe in
                    var probe =
                        session.probe.flatMap { $0.address == address ? $0 : nil }
                        ?? PathProbe(address: address, challenge: .random(in: 1...UInt64.max))
                    probe.received += received
                    session.probe = probe
                    return probe
                })
        else { return }
        if let last = probe.lastChallenge, now < last.plus(timing.stream.initialTimeout) { return }
        let packet = ServerPacket.pathChallenge(token: token, challenge: probe.challenge)
        guard let size = try? RoomCodec.encode(packet).count, probe.sent + size <= 3 * probe.received else { return }
        updateSession(token) { session in
            session.probe?.sent += size
            session.probe?.lastChallenge = now
        }
        counters.pathChallenges += 1
        send(packet, to: address)
    }

    /// The member answered the challenge from the address it was sent to: it receives there, so its packets go
    /// there from now on. Items in flight reach it there when their retransmission is due.
    private mutating func migrate(_ token: SessionToken, to address: UDPAddress, now: UInt64) {
        guard
            case (let from, let nick, let inRoom)? = updateSession(
                token,
                { session in
                    let from = session.address
                    session.address = address
                    session.probe = nil
                    session.lastHeard = now
                    return (from, session.nick, session.confirmed && session.leaving == nil)
                })
        else { return }
        counters.migrations += 1
        if inRoom {
            events.append(.moved(nick: nick, from: from, to: address))
        }
    }

    /// One fewer unconfirmed session from `address` (the address of its JOIN).
    private mutating func forgetPending(from address: UDPAddress) {
        let key = address.withPort(0)
        pendingCount -= 1
        if let count = pendingByAddress[key], count > 1 {
            pendingByAddress[key] = count - 1
        } else {
            pendingByAddress[key] = nil
        }
    }

    private mutating func join(nonce: UInt64, nick: String, from address: UDPAddress, size: Int, now: UInt64) {
        let key = JoinKey(address: address, nonce: nonce)
        func refuse(_ reason: RefusalReason, _ text: String) {
            counters.refused += 1
            events.append(.refused(nick: nick, address: address, reason: reason))
            // The JOIN's source may be forged: the answer stays within three times the JOIN (which is padded
            // to 64 bytes), its text cut to fit.
            let room = 3 * size - (RoomWire.headerSize + 8 + 1 + 2)
            send(
                .refused(nonce: nonce, reason: reason, text: clipped(text, to: min(room, StringField.reason.maxBytes))),
                to: address)
        }
        guard joinLimiter.allow(address, now: now) else {
            drop(.addressRateLimited)
            if refusalLimiter.allow(address, now: now) {
                refuse(.rateLimited, "too many JOINs from this address; try again in a few seconds")
            }
            return
        }
        if let token = joins[key], let session = sessions[token] {
            // The WELCOME was lost: the same one again, not a second session. 48 bytes, for a JOIN of 64 or more.
            send(.welcome(session.welcome), to: address)
            return
        }
        do {
            try limits.checkNick(nick)
        } catch {
            return refuse(.invalidNick, "invalid nick: \(error)")
        }
        if let holder = nicks[RoomLimits.nickKey(nick)], let held = sessions[holder], !held.confirmed,
            held.address == address
        {
            // The same address asks again for the nick its unconfirmed session holds, with a new nonce: it gave
            // that attempt up (a late repeat of an old JOIN can create such a session), so this one replaces it.
            remove(holder, announce: .left(held.nick))
        }
        guard nicks[RoomLimits.nickKey(nick)] == nil else {
            return refuse(.nickTaken, "the nick \(nick) is taken; choose another")
        }
        // Only confirmed members fill the room: JOINs nobody confirms must not keep real members out. They
        // have bounds of their own, per address and in total.
        // Members that left linger for the leave grace; they count toward a second, looser bound, so that
        // joining and leaving in a loop cannot pile up sessions either.
        let lingering = sessions.count - pendingCount - counters.members
        guard counters.members < limits.maxMembers, counters.members + lingering < 2 * limits.maxMembers else {
            return refuse(.roomFull, "the room is full (\(limits.maxMembers) members)")
        }
        let source = address.withPort(0)
        guard pendingByAddress[source, default: 0] < max(1, configuration.maxPendingJoinsPerAddress) else {
            drop(.pendingJoinLimit)
            return refuse(.rateLimited, "too many unconfirmed JOINs from this address; try again in a few seconds")
        }
        if pendingCount >= max(1, configuration.maxPendingJoins) {
            // The oldest unconfirmed session goes: a real member confirms within a round trip, so under a flood
            // of forged JOINs it still gets in, where refusing would keep everyone out.
            if let oldest = sessions.values.filter({ !$0.confirmed }).min(by: { $0.created < $1.created }) {
                drop(.pendingJoinLimit)
                remove(oldest.token, announce: .left(oldest.nick))
            }
        }
        var token = SessionToken.random()
        while sessions[token] != nil { token = SessionToken.random() }
        let welcome = Welcome(
            nonce: nonce, token: token, serverInstance: instance, historyCount: history.count, limits: limits,
            timing: timing)
        var stream = ReliableSender<RoomEvent>(configuration: timing.stream)
        // The history starts the stream; it waits there until the session is confirmed.
        for event in history { _ = stream.enqueue(event) }
        sessions[token] = Session(
            token: token, serial: nextSerial, welcome: welcome, joinKey: key, created: now, nick: nick,
            address: address,
            lastHeard: now, events: stream, commands: ReliableReceiver(window: timing.stream.window),
            bucket: limits.makeCommandBucket(now: now))
        nextSerial += 1
        nicks[RoomLimits.nickKey(nick)] = token
        joins[key] = token
        pendingCount += 1
        pendingByAddress[source, default: 0] += 1
        send(.welcome(welcome), to: address)
    }

    // MARK: - Commands

    private mutating func perform(
        _ command: ClientCommand, sequence: UInt64, from token: SessionToken, now: UInt64, unixMillis: UInt64
    ) {
        // Nothing after a LEAVE counts: the nick may belong to someone else already.
        guard let nick = updateSession(token, { $0.leaving == nil ? $0.nick : nil }) ?? nil else { return }
        func notice(_ code: NoticeCode, _ text: String) {
            drop(code == .rateLimited ? .rateLimited : .rejected)
            deliver(.notice(code: code, inReplyTo: sequence, text: clipped(text)), to: token)
        }
        if command != .leave, updateSession(token, { $0.bucket.tryTake(now: now) }) != true {
            let limit = "\(limits.commandBurst) at once, then one per \(limits.commandRefillInterval / 1_000_000) ms"
            return notice(.rateLimited, "rate limited: not delivered (the room allows \(limit))")
        }
        switch command {
        case .say(let kind, let text):
            guard kind == .text || kind == .action else {
                return notice(.unsupportedCommand, "message kind \(kind.rawValue) is not supported here")
            }
            do {
                try limits.checkText(text)
            } catch {
                return notice(error.noticeCode, "not delivered: \(error)")
            }
            counters.messages += 1
            broadcast(.message(from: nick, kind: kind, text: text, unixMillis: unixMillis, flags: []))
            if limits.historyLength > 0 {
                if history.count == limits.historyLength { history.removeFirst() }
                history.append(.message(from: nick, kind: kind, text: text, unixMillis: unixMillis, flags: .history))
            }
        case .privateMessage(let to, let text):
            do {
                try limits.checkText(text)
            } catch {
                return notice(error.noticeCode, "not delivered: \(error)")
            }
            guard let recipient = nicks[RoomLimits.nickKey(to)], let other = sessions[recipient], other.confirmed else {
                return notice(.noSuchMember, "nobody called \(to) is in the room")
            }
            counters.privateMessages += 1
            let event = RoomEvent.privateMessage(
                from: nick, to: other.nick, text: text, unixMillis: unixMillis, flags: [])
            deliver(event, to: recipient)
            if recipient != token { deliver(event, to: token) }
        case .changeNick(let new):
            do {
                try limits.checkNick(new)
            } catch {
                return notice(.invalidNick, "invalid nick: \(error)")
            }
            let key = RoomLimits.nickKey(new)
            if let holder = nicks[key], holder != token {
                return notice(.nickTaken, "the nick \(new) is taken")
            }
            guard new != nick else {
                return deliver(
                    .notice(code: .info, inReplyTo: sequence, text: clipped("you are \(nick) already")), to: token)
            }
            nicks[RoomLimits.nickKey(nick)] = nil
            nicks[key] = token
            updateSession(token) { $0.nick = new }
            events.append(.nickChanged(from: nick, to: new))
            broadcast(.nickChanged(from: nick, to: new))
        case .who:
            let names = sessions.values.filter { $0.confirmed && $0.leaving == nil }.sorted { $0.serial < $1.serial }
                .map(\.nick)
            for page in RoomEvent.whoPages(names) { deliver(page, to: token) }
        case .leave:
            // Gone from the room at once (the nick is free); the events its earlier commands caused (a /who
            // answer, a private message's copy) are still delivered, and only then is the LEAVE acknowledged
            // and the token forgotten, so a script that leaves at the end of its input sees all of them.
            counters.left += 1
            counters.members -= 1
            events.append(.left(nick: nick))
            updateSession(token) { session in
                session.leaving = sequence
                session.leftAt = now
            }
            release(token)
            broadcast(.left(nick))
        case .unrecognized(let code, _):
            notice(.unsupportedCommand, "command 0x\(String(code, radix: 16)) is not supported by this server")
        }
    }

    // MARK: - Events

    /// Events an unconfirmed session may queue beyond its history: a real member confirms within a round trip,
    /// so this bounds what JOINs nobody confirms can hold (the history is shared with the room's own copy).
    static let pendingBacklog = 64

    /// Appends `event` to one member's stream; a member whose stream is full is dropped afterwards.
    private mutating func deliver(_ event: RoomEvent, to token: SessionToken) {
        let overflows = updateSession(token) { session in
            let full =
                !session.confirmed && session.events.count >= Int(session.welcome.historyCount) + Self.pendingBacklog
            return full || session.events.enqueue(event) == nil
        }
        if overflows == true, !overflowed.contains(token) {
            overflowed.append(token)
        }
    }

    /// Appends `event` to every member's stream, unconfirmed ones included (they must not miss anything said
    /// after their WELCOME).
    private mutating func broadcast(_ event: RoomEvent) {
        for (token, session) in sessions where session.leaving == nil { deliver(event, to: token) }
    }

    private mutating func dropOverflowed(now: UInt64) {
        // Announcing a drop can overflow another member; repeat until nobody is left over.
        while let token = overflowed.popLast() {
            guard let session = sessions[token] else { continue }
            // An unconfirmed session's address is unproven: it goes without a word (its client joins again).
            if session.confirmed {
                send(.ended(token: token, reason: .tooSlow), to: session.address)
            } else {
                drop(.pendingJoinLimit)
            }
            expire(token, reason: "fell more than \(timing.stream.capacity) events behind")
        }
    }

    private mutating func expire(_ token: SessionToken, reason: String) {
        guard let session = sessions[token] else { return }
        if session.confirmed {
            counters.timedOut += 1
            events.append(.timedOut(nick: session.nick, reason: reason))
        }
        remove(token, announce: .timedOut(session.nick))
    }

    /// Forgets a session; the others hear `announce` if the room ever heard of the member.
    private mutating func remove(_ token: SessionToken, announce: RoomEvent) {
        guard let session = sessions[token] else { return }
        release(token)
        if !session.confirmed { forgetPending(from: session.joinKey.address) }
        sessions[token] = nil
        if session.confirmed, session.leaving == nil {
            counters.members -= 1
            broadcast(announce)
        }
    }

    /// Frees the nick and the JOIN of `token`'s session, unless another session holds them by now.
    private mutating func release(_ token: SessionToken) {
        guard let session = sessions[token] else { return }
        let key = RoomLimits.nickKey(session.nick)
        if nicks[key] == token { nicks[key] = nil }
        if joins[session.joinKey] == token { joins[session.joinKey] = nil }
    }

    // MARK: - Time

    /// Drops silent and stalled members, then sends what is due: acknowledgements owed and events to
    /// (re)transmit.
    mutating func tick(now: UInt64) {
        let timeout = timing.memberTimeout
        for (token, session) in sessions {
            if session.leaving != nil {
                if session.events.isIdle {
                    send(.ack(token: token, session.acknowledgement), to: session.address)
                    sessions[token] = nil
                } else if now >= session.leftAt.plus(timing.leaveGrace) {
                    // It left without waiting for the rest of its stream, or keeps sending without acknowledging
                    // it: either way it is gone, or it could keep the server retransmitting for ever.
                    counters.expiredAfterLeave += 1
                    sessions[token] = nil
                }
                continue
            }
            if !session.confirmed {
                // Nothing was announced, so nothing is; the nick is free again.
                if now >= session.created.plus(timeout) { remove(token, announce: .left(session.nick)) }
            } else if now >= session.lastHeard.plus(timeout) {
                expire(token, reason: "no packet for \(timeout / 1_000_000) ms")
            } else if let since = session.events.oldestUnacknowledgedSince, now >= since.plus(timing.stallTimeout) {
                expire(token, reason: "acknowledged nothing for \(timing.stallTimeout / 1_000_000) ms")
            }
        }
        dropOverflowed(now: now)
        for token in sessions.keys.filter({ sessions[$0]?.confirmed == true }) {
            guard
                case (let packets, let address, let again)? = updateSession(
                    token,
                    { session in
                        var packets: [ServerPacket] = []
                        var again = 0
                        if session.owesAck {
                            session.owesAck = false
                            packets.append(.ack(token: token, session.acknowledgement))
                        }
                        for transmission in session.events.due(now: now) {
                            if transmission.attempt > 1 { again += 1 }
                            packets.append(
                                .deliver(token: token, sequence: transmission.sequence, transmission.payload))
                        }
                        return (packets, session.address, again)
                    })
            else { continue }
            counters.retransmissions += again
            for packet in packets { send(packet, to: address) }
        }
    }

    /// When `tick` has something to do next; nil when only a datagram can change anything.
    func nextDeadline(now: UInt64) -> UInt64? {
        let timeout = timing.memberTimeout
        var earliest: UInt64?
        func consider(_ deadline: UInt64?) {
            if let deadline { earliest = min(earliest ?? .max, deadline) }
        }
        for session in sessions.values {
            if !session.confirmed {
                consider(session.created.plus(timeout))
                continue
            }
            if session.owesAck { return now }
            if session.leaving != nil {
                if session.events.isIdle { return now }
                consider(session.leftAt.plus(timing.leaveGrace))
                consider(session.events.nextDeadline)
                continue
            }
            if session.owesAck { return now }
            consider(session.lastHeard.plus(timeout))
            consider(session.events.oldestUnacknowledgedSince?.plus(timing.stallTimeout))
            consider(session.events.nextDeadline)
        }
        return earliest
    }

    /// Tells every member the server is stopping, and forgets them.
    mutating func shutdown() {
        for session in sessions.values where session.confirmed {
            send(.ended(token: session.token, reason: .serverShutdown), to: session.address)
        }
        sessions.removeAll()
        nicks.removeAll()
        joins.removeAll()
        pendingByAddress.removeAll()
        pendingCount = 0
        counters.members = 0
    }

    // MARK: - Output

    private mutating func send(_ packet: ServerPacket, to address: UDPAddress) {
        // Everything built here fits the wire caps (texts are checked, notices clipped); an encoding error
        // would be a bug, and dropping that one packet is the safe way to survive it.
        guard let bytes = try? RoomCodec.encode(packet) else { return }
        counters.sent += 1
        outgoing.append(OutgoingDatagram(bytes: bytes, to: address))
    }

    private mutating func drop(_ reason: RoomServer.DropReason) {
        counters.dropped[reason, default: 0] += 1
    }
}

/// `text` cut to the wire cap of REFUSED and NOTICE texts, at a character boundary.
func clipped(_ text: String, to maxBytes: Int = StringField.reason.maxBytes) -> String {
    guard text.utf8.count > maxBytes else { return text }
    var result = ""
    var bytes = 0
    for character in text {
        bytes += character.utf8.count
        if bytes > maxBytes { break }
        result.append(character)
    }
    return result
}
