import RoomProtocol

/// Small, fast, seedable generator (SplitMix64), so every randomized test is reproducible.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
}

let ms: UInt64 = 1_000_000

let tokenA = SessionToken(high: 0x0011_2233_4455_6677, low: 0x8899_AABB_CCDD_EEFF)

/// One of every client packet and command, with edge-case strings.
let clientSamples: [ClientPacket] = [
    .join(nonce: 0x0102_0304_0506_0708, nick: "alice"),
    .join(nonce: 0, nick: ""),
    .join(nonce: .max, nick: "Zoë_李雷🙂"),
    .join(nonce: 7, nick: String(repeating: "n", count: StringField.nick.maxBytes)),
    .ack(token: tokenA, Acknowledgement(cumulative: 0)),
    .ack(token: tokenA, Acknowledgement(cumulative: 0xFFFF_FFFF_FFFF_FFF0, selective: 0x8000_0000_0000_0001)),
    .heartbeat(token: tokenA, echo: 42),
    .command(token: tokenA, sequence: 1, .say(kind: .text, text: "hello, world")),
    .command(token: tokenA, sequence: 2, .say(kind: .action, text: "waves")),
    .command(token: tokenA, sequence: 3, .say(kind: MessageKind(rawValue: 9), text: "")),
    .command(token: tokenA, sequence: 4, .say(kind: .text, text: String(repeating: "€", count: 1365))),
    .command(token: tokenA, sequence: 5, .privateMessage(to: "bob", text: "psst")),
    .command(token: tokenA, sequence: 6, .changeNick("alice2")),
    .command(token: tokenA, sequence: 7, .who),
    .command(token: tokenA, sequence: .max, .leave),
    .command(token: tokenA, sequence: 8, .unrecognized(code: 0x42, body: [1, 2, 3])),
    .command(token: tokenA, sequence: 9, .unrecognized(code: 0x00, body: [])),
    .pathResponse(token: tokenA, challenge: 0xFEED_FACE_0000_0001),
    .join(nonce: 8, nick: String(repeating: "m", count: RoomWire.minimumJoinSize - 14)),
    .join(nonce: 9, nick: String(repeating: "m", count: RoomWire.minimumJoinSize - 15)),
]

/// One of every server packet and event, with edge-case strings.
let serverSamples: [ServerPacket] = [
    .welcome(
        Welcome(
            nonce: 0x0102_0304_0506_0708, token: tokenA, serverInstance: 0xCAFE_F00D_DEAD_BEEF,
            maxTextBytes: 1000, historyCount: 20, heartbeatMillis: 2000, timeoutMillis: 10000)),
    .refused(nonce: 5, reason: .nickTaken, text: "nick 'alice' is taken"),
    .refused(nonce: 6, reason: RefusalReason(rawValue: 200), text: ""),
    .ended(token: tokenA, reason: .unknownSession),
    .ack(token: tokenA, Acknowledgement(cumulative: 3, selective: 0b101)),
    .pong(token: tokenA, echo: .max),
    .deliver(
        token: tokenA, sequence: 1,
        .message(
            from: "alice", kind: .text, text: "hi", unixMillis: 1_700_000_000_000, flags: [])),
    .deliver(
        token: tokenA, sequence: 2,
        .message(
            from: "bob", kind: .action, text: "nods", unixMillis: 0, flags: [.history, EventFlags(rawValue: 0x80)])),
    .deliver(
        token: tokenA, sequence: 3,
        .privateMessage(
            from: "alice", to: "bob", text: "secret ✓", unixMillis: 12, flags: [])),
    .deliver(token: tokenA, sequence: 4, .joined("carol")),
    .deliver(token: tokenA, sequence: 5, .left("carol")),
    .deliver(token: tokenA, sequence: 6, .timedOut("dave")),
    .deliver(token: tokenA, sequence: 7, .nickChanged(from: "alice", to: "Alice")),
    .deliver(token: tokenA, sequence: 8, .who(names: ["alice", "bob", "李雷"], flags: [])),
    .deliver(token: tokenA, sequence: 9, .who(names: [], flags: .more)),
    .deliver(token: tokenA, sequence: 10, .notice(code: .textTooLong, inReplyTo: 4, text: "message too long")),
    .deliver(token: tokenA, sequence: 11, .unrecognized(code: 0x77, body: [0xFF, 0x00])),
    .pathChallenge(token: tokenA, challenge: 0xFEED_FACE_0000_0001),
]

func isUnrecognized(_ packet: ClientPacket) -> Bool {
    if case .command(_, _, .unrecognized) = packet { return true }
    return false
}

func isUnrecognized(_ packet: ServerPacket) -> Bool {
    if case .deliver(_, _, .unrecognized) = packet { return true }
    return false
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}
