import UDPKit
import UDPText

/// The messenger's protocol logic as a pure state machine: bytes and a clock in, packets to send and events out.
///
/// It keeps the presence table, answers BR_ENTRY (at a bounded rate), acknowledges messages (duplicates again, but
/// shows them once), and resends unacknowledged messages about once a second until ``Settings/tries`` sends, then
/// reports failure. It does no I/O and reads no clock: every call takes `now` (monotonic nanoseconds) and
/// `unixSeconds` (for packet numbers), so tests drive it deterministically.
public struct IPMsgCore: Sendable {
    /// Limits and timing.
    public struct Settings: Sendable, Hashable {
        /// Sends of one message in total before it is reported as not delivered.
        public var tries = 4
        /// Time between sends of an unacknowledged message.
        public var retryInterval: UInt64 = 1_000_000_000
        /// Encoding for peers that do not declare UTF-8 (FeiQ and Chinese IP Messenger: GBK).
        public var encoding: TextEncoding = .gbk
        /// The most peers kept; presence packets from further addresses are counted and dropped.
        public var maximumPeers = 1_024
        /// ANSENTRY answers per second in total (token bucket refill), and the burst allowed.
        public var answersPerSecond = 20
        /// The burst of answers allowed at once.
        public var answerBurst = 40
        /// The shortest time between two answers to the same address.
        public var answerSpacing: UInt64 = 2_000_000_000
        /// How long a received packet number is remembered for de-duplication.
        public var duplicateMemory: UInt64 = 60_000_000_000
        /// The most remembered packet numbers in total.
        public var maximumRemembered = 8_192

        /// The defaults above.
        public init() {}
    }

    /// Something for the caller to do or show.
    public enum Output: Sendable, Equatable {
        /// Send these bytes to this address.
        case send([UInt8], to: UDPAddress)
        /// Send these bytes to every broadcast address on the messenger's port.
        case broadcast([UInt8])
        /// Tell the user.
        case event(IPMsgEvent)
    }

    /// What happened, as far as the user is concerned.
    public enum IPMsgEvent: Sendable, Equatable {
        /// A peer announced itself (first time).
        case joined(IPMsgPeer)
        /// A known peer changed nick, group or absence.
        case changed(IPMsgPeer)
        /// A peer said goodbye.
        case left(IPMsgPeer)
        /// A message arrived (shown once, even when resent).
        case message(IPMsgIncoming)
        /// A message of ours was acknowledged.
        case delivered(id: UInt32, to: IPMsgPeer)
        /// A message of ours was not acknowledged after every try.
        case undelivered(id: UInt32, to: IPMsgPeer, tries: Int)
    }

    /// Counters for the status line and `--json` statistics.
    public struct Counters: Sendable, Hashable {
        /// Datagrams that were not IP Messenger packets (ignored, never answered).
        public var malformed = 0
        /// Our own broadcasts coming back.
        public var own = 0
        /// Messages received again (acknowledged, not shown).
        public var duplicates = 0
        /// BR_ENTRY packets not answered because of the rate bound.
        public var answersSuppressed = 0
        /// Presence packets dropped because the table was full.
        public var peersRefused = 0
        /// Packets with a mode this client does not act on.
        public var unhandled = 0
        /// Retransmissions sent.
        public var resent = 0
        /// Acknowledgements sent.
        public var acknowledged = 0
    }

    public private(set) var identity: IPMsgIdentity
    public let settings: Settings
    public private(set) var peers: [UDPAddress: IPMsgPeer] = [:]
    public private(set) var counters = Counters()
    /// This client's own addresses (with its port): packets from them are its own broadcasts coming back.
    public var ownAddresses: Set<UDPAddress> = []

    private var numbers: IPMsgPacketNumbers
    private var pending: [UInt32: Pending] = [:]
    /// Per address: packet number -> when it arrived. Kept per address so forgetting one peer is cheap.
    private var remembered: [UDPAddress: [UInt32: UInt64]] = [:]
    private var rememberedCount = 0
    private var answerTokens: Double
    private var tokensAt: UInt64?
    private var lastAnswer: [UDPAddress: UInt64] = [:]

    private struct Pending: Sendable {
        var packet: IPMsgPacket
        var to: UDPAddress
        var sends: Int
        var nextAt: UInt64
    }

    /// Makes a core; `lastPacketNumber` continues a previous run's numbering.
    public init(identity: IPMsgIdentity, settings: Settings = Settings(), lastPacketNumber: UInt32 = 0) {
        self.identity = identity
        self.settings = settings
        numbers = IPMsgPacketNumbers(after: lastPacketNumber)
        answerTokens = Double(settings.answerBurst)
    }

    // MARK: - Presence

    /// The BR_ENTRY broadcast that announces this client.
    public mutating func announce(unixSeconds: UInt32) -> [Output] {
        [.broadcast(presencePacket(.entry, to: nil, unixSeconds: unixSeconds))]
    }

    /// The BR_EXIT broadcast that says goodbye.
    public mutating func leave(unixSeconds: UInt32) -> [Output] {
        [.broadcast(presencePacket(.exit, to: nil, unixSeconds: unixSeconds))]
    }

    /// Changes nick or absence and tells everyone with BR_ABSENCE (which is not answered).
    public mutating func update(nick: String? = nil, absence: String?? = nil, unixSeconds: UInt32) -> [Output] {
        if let nick { identity.nick = nick }
        if let absence { identity.absence = absence }
        return [.broadcast(presencePacket(.absence, to: nil, unixSeconds: unixSeconds))]
    }

    /// Peers with this nick (exact match first, then case-insensitive).
    public func peers(named nick: String) -> [IPMsgPeer] {
        let exact = peers.values.filter { $0.nick == nick }
        if !exact.isEmpty { return exact.sorted { $0.address.description < $1.address.description } }
        return peers.values.filter { $0.nick.lowercased() == nick.lowercased() }.sorted {
            $0.address.description < $1.address.description
        }
    }

    // MARK: - Messages

    /// Sends `text` to `address` with SENDCHECKOPT; the returned id is the packet number, which a later
    /// ``IPMsgEvent/delivered(id:to:)`` or ``IPMsgEvent/undelivered(id:to:tries:)`` names.
    ///
    /// - Throws: `PayloadError.unencodable` when the peer's encoding cannot carry the text,
    ///   ``IPMsgPacket/CodecError/tooLarge(_:)`` when it does not fit a packet.
    public mutating func send(
        _ text: String, to address: UDPAddress, files: [IPMsgFileEntry] = [], now: UInt64,
        unixSeconds: UInt32
    ) throws -> (id: UInt32, outputs: [Output]) {
        let peer = peers[address]
        let (bytes, utf8) = try encodeText(text, for: peer)
        var options: IPMsgCommand.Options = [.sendCheck]
        if utf8 { options.insert(.utf8) }
        var extensions: [[UInt8]] = []
        if !files.isEmpty {
            options.insert(.fileAttach)
            extensions.append(try IPMsgFileEntry.encode(files))
        }
        let number = numbers.next(unixSeconds: unixSeconds)
        let packet = header(
            number, IPMsgCommand(.sendMessage, options.union(.capableOfUTF8)), peer: peer, extra: bytes,
            extensions: extensions)
        let encoded = try packet.encode()
        pending[number] = Pending(packet: packet, to: address, sends: 1, nextAt: now &+ settings.retryInterval)
        return (number, [.send(encoded, to: address)])
    }

    /// A message to everyone (BROADCASTOPT, never acknowledged), in the default encoding.
    public mutating func sendToAll(_ text: String, unixSeconds: UInt32) throws -> [Output] {
        let utf8 = settings.encoding == .utf8
        let bytes = try settings.encoding.encode(text)
        let options: IPMsgCommand.Options = utf8 ? [.broadcast, .utf8] : [.broadcast]
        let packet = header(
            numbers.next(unixSeconds: unixSeconds), IPMsgCommand(.sendMessage, options), peer: nil, extra: bytes)
        return [.broadcast(try packet.encode())]
    }

    /// The GETFILEDATA packet that asks a peer for a file it offered (sent over TCP to the peer's port).
    public mutating func fileRequest(_ request: IPMsgFileRequest, unixSeconds: UInt32) -> [UInt8] {
        let packet = header(
            numbers.next(unixSeconds: unixSeconds), IPMsgCommand(.getFileData), peer: nil, extra: request.extra)
        return (try? packet.encode()) ?? []
    }

    /// Resends what is due and reports what ran out of tries.
    public mutating func tick(now: UInt64) -> [Output] {
        var outputs: [Output] = []
        for (number, item) in pending.sorted(by: { $0.key < $1.key }) where item.nextAt <= now {
            if item.sends >= settings.tries {
                pending[number] = nil
                outputs.append(
                    .event(
                        .undelivered(id: number, to: peers[item.to] ?? stranger(item.to, now: now), tries: item.sends)))
                continue
            }
            var again = item
            again.sends += 1
            again.nextAt = now &+ settings.retryInterval
            pending[number] = again
            var packet = item.packet
            // Same packet number: the receiver acknowledges it again and shows it once.
            packet.command = IPMsgCommand(rawValue: packet.command.rawValue | IPMsgCommand.Options.retry.rawValue)
            if let bytes = try? packet.encode() {
                counters.resent += 1
                outputs.append(.send(bytes, to: item.to))
            }
        }
        forgetOld(now: now)
        return outputs
    }

    /// When ``tick(now:)`` next has work, nil when nothing is waiting.
    public var nextDeadline: UInt64? { pending.values.map(\.nextAt).min() }

    /// Messages sent and not yet acknowledged or given up.
    public var unacknowledged: Int { pending.count }

    // MARK: - Receiving

    /// Handles one datagram from `sender`.
    public mutating func receive(_ bytes: [UInt8], from sender: UDPAddress, now: UInt64, unixSeconds: UInt32)
        -> [Output]
    {
        if ownAddresses.contains(sender) {
            counters.own += 1
            return []
        }
        guard let packet = try? IPMsgPacket.decode(bytes) else {
            counters.malformed += 1
            return []
        }
        switch packet.command.mode {
        case .entry, .answerEntry, .absence:
            return presence(packet, from: sender, now: now, unixSeconds: unixSeconds)
        case .exit:
            forgetNumbers(of: sender)
            lastAnswer[sender] = nil
            guard let peer = peers.removeValue(forKey: sender) else { return [] }
            return [.event(.left(peer))]
        case .sendMessage:
            return message(packet, from: sender, now: now, unixSeconds: unixSeconds)
        case .receivedMessage:
            guard let number = packet.acknowledgedNumber, let item = pending[number], item.to == sender else {
                return []
            }
            pending[number] = nil
            return [.event(.delivered(id: number, to: peers[sender] ?? stranger(sender, now: now)))]
        default:
            counters.unhandled += 1
            return []
        }
    }

    private mutating func presence(_ packet: IPMsgPacket, from sender: UDPAddress, now: UInt64, unixSeconds: UInt32)
        -> [Output]
    {
        let known = peers[sender]
        if known == nil && peers.count >= settings.maximumPeers {
            counters.peersRefused += 1
            return []
        }
        // A client that (re)announces itself may have restarted its numbering: forget its numbers, as iptux does.
        forgetNumbers(of: sender)
        let version = IPMsgVersion(packet.version)
        let declared = packet.declaredEncoding
        let acceptsUTF8 =
            packet.command.has(.capableOfUTF8) || packet.command.has(.utf8) || version.speaksUTF8
            || declared == "utf-8" || declared == "utf8" || (known?.acceptsUTF8 ?? false)
        let encoding = textEncoding(
            of: packet, version: version, declared: declared, fields: [packet.extra, packet.group],
            fallback: known?.encoding)
        let user = encoding.decode(packet.user).escaped
        let nickText = encoding.decode(packet.extra).escaped
        let peer = IPMsgPeer(
            address: sender, user: user, host: encoding.decode(packet.host).escaped,
            nick: nickText.isEmpty ? user : nickText, group: encoding.decode(packet.group).escaped,
            version: version, encoding: encoding, acceptsUTF8: acceptsUTF8,
            // iptux sets ABSENCEOPT on every presence packet, away or not, so from iptux it says nothing.
            isAbsent: packet.command.has(.absence) && version.client != "iptux", announced: true, lastSeen: now)
        peers[sender] = peer
        var outputs: [Output] = []
        if packet.command.mode == .entry {
            if mayAnswer(sender, now: now) {
                outputs.append(.send(presencePacket(.answerEntry, to: peer, unixSeconds: unixSeconds), to: sender))
            } else {
                counters.answersSuppressed += 1
            }
        }
        if known == nil || known?.announced == false {
            outputs.append(.event(.joined(peer)))
        } else if let known, known.nick != peer.nick || known.group != peer.group || known.isAbsent != peer.isAbsent {
            outputs.append(.event(.changed(peer)))
        }
        return outputs
    }

    private mutating func message(_ packet: IPMsgPacket, from sender: UDPAddress, now: UInt64, unixSeconds: UInt32)
        -> [Output]
    {
        var outputs: [Output] = []
        let options = packet.command.options
        if options.contains(.sendCheck) && options.isDisjoint(with: [.broadcast, .autoReturn]) {
            let ack = header(
                numbers.next(unixSeconds: unixSeconds), IPMsgCommand(.receivedMessage), peer: peers[sender],
                extra: Array(String(packet.packetNumber).utf8))
            if let bytes = try? ack.encode() {
                counters.acknowledged += 1
                outputs.append(.send(bytes, to: sender))
            }
        }
        if remembered[sender]?[packet.packetNumber] != nil {
            counters.duplicates += 1
            return outputs
        }
        if rememberedCount >= settings.maximumRemembered {
            // Full: drop the address heard from least recently (rare; only a flood of distinct messages gets here).
            if let oldest = remembered.min(by: { ($0.value.values.max() ?? 0) < ($1.value.values.max() ?? 0) })?.key {
                forgetNumbers(of: oldest)
            }
        }
        remembered[sender, default: [:]][packet.packetNumber] = now
        rememberedCount += 1
        var peer = peers[sender] ?? stranger(sender, packet: packet, now: now)
        if peers[sender] == nil && peers.count < settings.maximumPeers { peers[sender] = peer }
        let encoding: TextEncoding
        if options.contains(.utf8) {
            encoding = .utf8
        } else {
            encoding = textEncoding(
                of: packet, version: peer.version, declared: nil, fields: [packet.extra], fallback: peer.encoding)
            if encoding != peer.encoding, peers[sender] != nil {
                // Per-peer detection, as iptux does: keep answering in what it writes.
                peer.encoding = encoding
                peers[sender]?.encoding = encoding
            }
        }
        peer.lastSeen = now
        peers[sender]?.lastSeen = now
        let files = options.contains(.fileAttach) ? IPMsgFileEntry.decode(packet.extensions.first ?? []) : []
        outputs.append(
            .event(
                .message(
                    IPMsgIncoming(
                        from: peer, packetNumber: packet.packetNumber, text: encoding.decode(packet.extra),
                        broadcast: options.contains(.broadcast), autoReturn: options.contains(.autoReturn),
                        files: files, fileEncoding: encoding))))
        return outputs
    }

    // MARK: - Helpers

    /// The encoding text from this packet is read in: UTF-8 when flagged or when the bytes are valid UTF-8 with
    /// something beyond ASCII; else what is known of the peer; else the default.
    private func textEncoding(
        of packet: IPMsgPacket, version: IPMsgVersion, declared: String?, fields: [[UInt8]],
        fallback: TextEncoding?
    ) -> TextEncoding {
        if packet.command.has(.utf8) { return .utf8 }
        let nonASCII = fields.filter { $0.contains { $0 >= 0x80 } }
        if !nonASCII.isEmpty {
            return nonASCII.allSatisfy({ TextEncoding.utf8.decode($0).isValid })
                ? .utf8 : (fallback == .utf8 ? settings.encoding : fallback ?? settings.encoding)
        }
        if version.speaksUTF8 || declared == "utf-8" || declared == "utf8" { return .utf8 }
        return fallback ?? settings.encoding
    }

    private func encodeText(_ text: String, for peer: IPMsgPeer?) throws -> ([UInt8], Bool) {
        let encoding = peer.map { $0.acceptsUTF8 ? .utf8 : $0.encoding } ?? settings.encoding
        return (try encoding.encode(text), encoding == .utf8 && !(peer?.version.speaksUTF8 ?? false))
    }

    private mutating func presencePacket(_ mode: IPMsgCommand.Mode, to peer: IPMsgPeer?, unixSeconds: UInt32) -> [UInt8]
    {
        let encoding = peer.map { $0.acceptsUTF8 ? .utf8 : $0.encoding } ?? settings.encoding
        var options: IPMsgCommand.Options = [.capableOfUTF8]
        if identity.absence != nil { options.insert(.absence) }
        if encoding == .utf8 && !(peer?.version.speaksUTF8 ?? false) { options.insert(.utf8) }
        // The nick and group are ours; where the encoding cannot carry them, GB 18030 (a superset of GBK) can.
        let nickText = identity.absence.map { "\(identity.nick) [\($0)]" } ?? identity.nick
        let nick = (try? encoding.encode(nickText)) ?? (try? TextEncoding.gb18030.encode(nickText)) ?? []
        let group = (try? encoding.encode(identity.group)) ?? (try? TextEncoding.gb18030.encode(identity.group)) ?? []
        let packet = header(
            numbers.next(unixSeconds: unixSeconds), IPMsgCommand(mode, options), peer: peer,
            extra: mode == .exit ? [] : nick, extensions: mode == .exit ? [] : [group])
        return (try? packet.encode()) ?? []
    }

    private func header(
        _ number: UInt32, _ command: IPMsgCommand, peer: IPMsgPeer?, extra: [UInt8], extensions: [[UInt8]] = []
    ) -> IPMsgPacket {
        IPMsgPacket(
            version: Array("1".utf8), packetNumber: number, user: Array(identity.user.utf8),
            host: Array(identity.host.utf8),
            command: command, extra: extra, extensions: extensions)
    }

    private func stranger(_ address: UDPAddress, packet: IPMsgPacket? = nil, now: UInt64) -> IPMsgPeer {
        let version = packet.map { IPMsgVersion($0.version) } ?? IPMsgVersion(Array("1".utf8))
        let encoding = version.speaksUTF8 ? TextEncoding.utf8 : settings.encoding
        let user = packet.map { encoding.decode($0.user).escaped } ?? "?"
        return IPMsgPeer(
            address: address, user: user, host: packet.map { encoding.decode($0.host).escaped } ?? "?",
            nick: user, group: "", version: version, encoding: encoding, acceptsUTF8: version.speaksUTF8,
            isAbsent: false, announced: false, lastSeen: now)
    }

    /// Token bucket in total plus a minimum spacing per address: a BR_ENTRY flood from spoofed addresses gets at
    /// most `answersPerSecond` answers a second, and one address at most one per `answerSpacing`.
    private mutating func mayAnswer(_ address: UDPAddress, now: UInt64) -> Bool {
        if let since = tokensAt {
            let elapsed = Double(now &- since) / 1e9
            answerTokens = min(Double(settings.answerBurst), answerTokens + elapsed * Double(settings.answersPerSecond))
        }
        tokensAt = now
        if let last = lastAnswer[address], now &- last < settings.answerSpacing { return false }
        guard answerTokens >= 1 else { return false }
        answerTokens -= 1
        if lastAnswer.count >= settings.maximumPeers * 4 {
            lastAnswer = lastAnswer.filter { now &- $0.value < settings.answerSpacing }
        }
        lastAnswer[address] = now
        return true
    }

    private mutating func forgetNumbers(of address: UDPAddress) {
        if let numbers = remembered.removeValue(forKey: address) { rememberedCount -= numbers.count }
    }

    private mutating func forgetOld(now: UInt64) {
        for (address, numbers) in remembered
        where numbers.values.contains(where: { now &- $0 > settings.duplicateMemory }) {
            let kept = numbers.filter { now &- $0.value <= settings.duplicateMemory }
            rememberedCount -= numbers.count - kept.count
            remembered[address] = kept.isEmpty ? nil : kept
        }
    }
}

/// A received message.
public struct IPMsgIncoming: Sendable, Equatable {
    /// Who sent it.
    public var from: IPMsgPeer
    /// Its packet number (file requests name it).
    public var packetNumber: UInt32
    /// The text, decoded; show it with `escaped`.
    public var text: DecodedText
    /// Sent to everyone (BROADCASTOPT).
    public var broadcast: Bool
    /// An automatic answer (AUTORETOPT).
    public var autoReturn: Bool
    /// Files offered with it.
    public var files: [IPMsgFileEntry]
    /// The encoding the file names are read in.
    public var fileEncoding: TextEncoding
}
