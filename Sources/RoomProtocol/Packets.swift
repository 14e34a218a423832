/// What a member asks of the room. Commands travel in the member's reliable client-to-server
/// stream (COMMAND packets), so each is processed exactly once and in the order sent; the
/// server acknowledges every command it receives, and reports a refused one (too long, rate
/// limited, ...) with a NOTICE event whose `inReplyTo` is the command's sequence number.
public enum ClientCommand: Hashable, Sendable {
    /// Say `text` to the whole room (`kind` `.text`), or act it (`.action`, for `/me`).
    case say(kind: MessageKind, text: String)
    /// Say `text` to the member called `to` only.
    case privateMessage(to: String, text: String)
    /// Change this member's nick to the given one.
    case changeNick(String)
    /// Ask for the member list; it arrives as WHO events.
    case who
    /// End the membership. Processed in order, so everything sent before it is delivered
    /// first; once it is acknowledged the token is dead.
    case leave
    /// A command code this module does not know (from a newer client), with its body bytes.
    /// A server acknowledges it like any command and answers `NoticeCode.unsupportedCommand`.
    /// Encoding one with a known code is an error.
    case unrecognized(code: UInt8, body: [UInt8])
}

/// A datagram from a client to the server.
public enum ClientPacket: Hashable, Sendable {
    /// Ask to join with `nick`. `nonce` is a random number the client picks per join attempt
    /// and reuses when it repeats the JOIN; the answer (WELCOME or REFUSED) echoes it, which is
    /// how the client matches answers and rejects forged ones.
    case join(nonce: UInt64, nick: String)
    /// Acknowledge the server-to-client stream.
    case ack(token: SessionToken, Acknowledgement)
    /// "Still here". The server answers with PONG carrying the same `echo`.
    case heartbeat(token: SessionToken, echo: UInt64)
    /// Command number `sequence` of the client-to-server stream.
    case command(token: SessionToken, sequence: UInt64, ClientCommand)
    /// The answer to a PATH_CHALLENGE: the same `challenge`, sent at once. It proves to the server that
    /// the member receives at the address this packet comes from, so the server may move the member's
    /// stream there (after a NAT rebinding, say).
    case pathResponse(token: SessionToken, challenge: UInt64)

    /// The session token, for every packet but JOIN.
    public var token: SessionToken? {
        switch self {
        case .join: nil
        case .ack(let token, _), .heartbeat(let token, _), .command(let token, _, _), .pathResponse(let token, _): token
        }
    }
}

/// The server's acceptance of a JOIN.
public struct Welcome: Hashable, Sendable {
    /// The nonce of the JOIN being answered.
    public var nonce: UInt64
    /// The new membership's secret; every later packet carries it.
    public var token: SessionToken
    /// A random number the server draws when it starts. A client that rejoins and sees a
    /// different value knows the server restarted (and its room state is gone).
    public var serverInstance: UInt64
    /// The room's limit on message text, in UTF-8 bytes, so a client can refuse an over-long
    /// line before sending it.
    public var maxTextBytes: UInt16
    /// How many history MESSAGE events (flag `history`) start the member's stream.
    public var historyCount: UInt16
    /// How often the client should send HEARTBEAT, in milliseconds.
    public var heartbeatMillis: UInt32
    /// After this many milliseconds without a valid packet from a member, the server drops it.
    public var timeoutMillis: UInt32

    public init(
        nonce: UInt64, token: SessionToken, serverInstance: UInt64, maxTextBytes: UInt16,
        historyCount: UInt16, heartbeatMillis: UInt32, timeoutMillis: UInt32
    ) {
        self.nonce = nonce
        self.token = token
        self.serverInstance = serverInstance
        self.maxTextBytes = maxTextBytes
        self.historyCount = historyCount
        self.heartbeatMillis = heartbeatMillis
        self.timeoutMillis = timeoutMillis
    }
}

/// Something that happened in the room, as delivered in a member's reliable server-to-client
/// stream (DELIVER packets). Every member gets every event exactly once, in the order the
/// server produced them.
public enum RoomEvent: Hashable, Sendable {
    /// A public message. `unixMillis` is when the server accepted it (milliseconds since
    /// 1970, 0 if unknown). Flag `history` marks messages from before the receiver joined.
    case message(from: String, kind: MessageKind, text: String, unixMillis: UInt64, flags: EventFlags)
    /// A private message from `from` to `to`. The receiver is one of the two: the recipient
    /// gets it, and the sender gets a copy as confirmation.
    case privateMessage(from: String, to: String, text: String, unixMillis: UInt64, flags: EventFlags)
    /// A member joined (also sent to the newcomer itself, after its history).
    case joined(String)
    /// A member left.
    case left(String)
    /// A member stopped answering and was dropped.
    case timedOut(String)
    /// A member changed its nick.
    case nickChanged(from: String, to: String)
    /// (Part of) the member list, in answer to a WHO command. Flag `more` means another WHO
    /// event with further names follows; the list is complete at the first event without it.
    case who(names: [String], flags: EventFlags)
    /// A notice, usually the answer to a refused command: `inReplyTo` is the sequence number
    /// of that command in the member's client-to-server stream, 0 when it answers none.
    case notice(code: NoticeCode, inReplyTo: UInt64, text: String)
    /// An event code this module does not know (from a newer server), with its body bytes.
    /// It still occupies its place in the stream and must be acknowledged. Encoding one with
    /// a known code is an error.
    case unrecognized(code: UInt8, body: [UInt8])

    /// Splits a member list into WHO events that each encode to at most `maxBytes` of event
    /// body (`RoomWire.maxWhoNames` names at most), all but the last flagged `more`. An empty
    /// list gives one empty event. A single name longer than `maxBytes` still gets an event of
    /// its own.
    public static func whoPages(_ names: [String], maxBytes: Int = 1000) -> [RoomEvent] {
        var pages: [RoomEvent] = []
        var current: [String] = []
        var size = 2
        for name in names {
            let cost = 2 + name.utf8.count
            if !current.isEmpty && (size + cost > maxBytes || current.count == RoomWire.maxWhoNames) {
                pages.append(.who(names: current, flags: .more))
                current = []
                size = 2
            }
            current.append(name)
            size += cost
        }
        pages.append(.who(names: current, flags: []))
        return pages
    }
}

/// A datagram from the server to a client.
public enum ServerPacket: Hashable, Sendable {
    /// The JOIN was accepted.
    case welcome(Welcome)
    /// The JOIN with this `nonce` was refused, with a human-readable `text`.
    case refused(nonce: UInt64, reason: RefusalReason, text: String)
    /// The session with this token is over (or was never known); the client should stop using
    /// the token and may JOIN again.
    case ended(token: SessionToken, reason: EndReason)
    /// Acknowledge the client-to-server stream.
    case ack(token: SessionToken, Acknowledgement)
    /// The answer to a HEARTBEAT, with its `echo`.
    case pong(token: SessionToken, echo: UInt64)
    /// Event number `sequence` of this member's server-to-client stream.
    case deliver(token: SessionToken, sequence: UInt64, RoomEvent)
    /// The member's packets came from an address the server has not seen it receive at: the client
    /// answers with `ClientPacket.pathResponse` carrying the same `challenge`, a random number sent only
    /// to that address. Until then the server keeps the member's stream where it was.
    case pathChallenge(token: SessionToken, challenge: UInt64)

    /// The session token this packet is about, for every packet but REFUSED.
    public var token: SessionToken? {
        switch self {
        case .welcome(let welcome): welcome.token
        case .refused: nil
        case .ended(let token, _), .ack(let token, _), .pong(let token, _), .deliver(let token, _, _),
            .pathChallenge(let token, _):
            token
        }
    }
}
