import UDPKit
import UDPText

/// Who this client is on the LAN.
public struct IPMsgIdentity: Sendable, Hashable {
    /// The login name in the User field.
    public var user: String
    /// The host name in the Host field.
    public var host: String
    /// The nick shown to others.
    public var nick: String
    /// The group shown to others (may be empty).
    public var group: String
    /// Away text, nil when present.
    public var absence: String?

    /// Makes an identity. User and host must not hold ':' (they would break the header); they are replaced by '_'.
    public init(user: String, host: String, nick: String, group: String = "", absence: String? = nil) {
        self.user = user.replacingColons()
        self.host = host.replacingColons()
        self.nick = nick
        self.group = group
        self.absence = absence
    }
}

extension String {
    func replacingColons() -> String { String(map { $0 == ":" || $0 == "\0" ? "_" : $0 }) }
}

/// Another client on the LAN, as its presence packets describe it.
public struct IPMsgPeer: Sendable, Hashable {
    /// Where it sends from (port 2425 normally).
    public var address: UDPAddress
    /// Its login name, decoded (undecodable bytes escaped).
    public var user: String
    /// Its host name, decoded.
    public var host: String
    /// Its nick, decoded; the login name when it announced none.
    public var nick: String
    /// Its group, decoded (may be empty).
    public var group: String
    /// Its Version field.
    public var version: IPMsgVersion
    /// The encoding its text is read in and written to it in.
    public var encoding: TextEncoding
    /// Whether it said it reads UTF-8 (CAPUTF8OPT, UTF8OPT, iptux, or a declared `utf-8`).
    public var acceptsUTF8: Bool
    /// Whether it is away (ABSENCEOPT on its last presence packet).
    public var isAbsent: Bool
    /// Whether it announced itself (BR_ENTRY, ANSENTRY, BR_ABSENCE) rather than only sending a message.
    public var announced: Bool
    /// Monotonic nanoseconds of its last packet.
    public var lastSeen: UInt64

    /// Makes a peer record.
    public init(
        address: UDPAddress, user: String, host: String, nick: String, group: String, version: IPMsgVersion,
        encoding: TextEncoding, acceptsUTF8: Bool, isAbsent: Bool, announced: Bool, lastSeen: UInt64
    ) {
        self.address = address
        self.user = user
        self.host = host
        self.nick = nick
        self.group = group
        self.version = version
        self.encoding = encoding
        self.acceptsUTF8 = acceptsUTF8
        self.isAbsent = isAbsent
        self.announced = announced
        self.lastSeen = lastSeen
    }
}
