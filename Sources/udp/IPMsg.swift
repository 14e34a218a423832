import ArgumentParser
import Foundation
import IPMsg
import NIOConcurrencyHelpers
import UDPKit

struct IPMsgCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipmsg",
        abstract: "An IP Messenger / FeiQ / iptux client on the LAN (port 2425).",
        discussion: """
        Grows from the seeds' broadcaster, whose packet 1:100:will:will-pc:32:will broadcast is an IP Messenger message. This client announces itself (BR_ENTRY to every subnet's broadcast address, no default route needed), answers others' announcements, acknowledges messages and resends its own until acknowledged. Text is UTF-8 for peers that accept it (iptux, CAPUTF8OPT) and --encoding (GBK by default, as FeiQ) for the others; bytes that do not decode are shown as \\xNN.

        Exit codes: 0 success; 75 a message was not acknowledged; 69 no such user answered; 64 bad usage.

        Examples:
          udp ipmsg list                                who is on the LAN
          udp ipmsg send alice 'lunch at 12?'           by nick (found by a short announce)
          udp ipmsg send 10.1.1.7 hello --nick bob      by address
          udp ipmsg --nick bob --group ops               the messenger: /who, /to NICK, /msg NICK TEXT, /all TEXT
          echo '/msg alice build is green' | udp ipmsg --nick ci --json
        """,
        subcommands: [IPMsgChat.self, IPMsgList.self, IPMsgSend.self],
        defaultSubcommand: IPMsgChat.self
    )
}

/// Options every ipmsg command shares.
struct IPMsgOptions: ParsableArguments {
    @Option(help: "The nick others see (default: the login name).")
    var nick: String?

    @Option(help: "The group others see.")
    var group: String = ""

    @Option(help: ArgumentHelp("Encoding for peers that do not declare UTF-8: gbk (FeiQ), gb18030, shift-jis (Japanese IP Messenger), utf8, latin1.", valueName: "name"))
    var encoding: String = "gbk"

    @Option(help: "UDP port to bind and broadcast to (every client uses 2425).")
    var port: Int = IPMsgPacket.defaultPort

    @Option(help: ArgumentHelp("Broadcast on this interface only (default: every interface that can broadcast).", valueName: "name"))
    var interface: String?

    @Flag(help: "One JSON object per line.")
    var json = false

    func validate() throws {
        guard (1...65_535).contains(port) else { throw ValidationError("--port must be from 1 to 65535") }
        if let nick, nick.isEmpty { throw ValidationError("--nick must not be empty") }
    }

    func configuration() throws -> IPMsgMessenger.Configuration {
        let login = getpwuid(getuid()).flatMap { $0.pointee.pw_name.map { String(cString: $0) } }
        let user = login ?? ProcessInfo.processInfo.environment["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "udp"
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        var configuration = IPMsgMessenger.Configuration(identity: IPMsgIdentity(user: user, host: host, nick: nick ?? user, group: group))
        configuration.settings.encoding = try TextEncoding(name: encoding)
        configuration.port = port
        configuration.interface = interface
        return configuration
    }

    /// Starts the messenger with a clear message when the port is taken.
    func start() async throws -> IPMsgMessenger {
        do {
            return try await IPMsgMessenger.start(try configuration())
        } catch UDPError.addressInUse {
            throw CLIFailure(message: "port \(port) is already in use (UDP): another IP Messenger client runs on this host; stop it or choose --port", code: ExitCode32.other)
        }
    }
}

/// How events are shown: one line of text, or one JSON object.
enum IPMsgShow {
    static func peerFields(_ peer: IPMsgPeer) -> [(key: String, value: JSONText.Value)] {
        [("address", .string(peer.address.description)), ("nick", .string(peer.nick)), ("group", .string(peer.group)),
         ("user", .string(peer.user)), ("host", .string(peer.host)), ("client", .string(peer.version.label)),
         ("encoding", .string(peer.acceptsUTF8 ? "utf8" : peer.encoding.rawValue)), ("absent", .bool(peer.isAbsent))]
    }

    static func peerLine(_ peer: IPMsgPeer) -> String {
        let group = peer.group.isEmpty ? "" : " [\(peer.group)]"
        let away = peer.isAbsent ? " (away)" : ""
        return "\(peer.nick)\(group)\(away) \(peer.user)@\(peer.host) at \(peer.address.ip ?? "?"), \(peer.version.label), \(peer.acceptsUTF8 ? "utf8" : peer.encoding.rawValue)"
    }

    /// The line for an event, or nil for events this view does not show.
    static func line(_ event: IPMsgCore.IPMsgEvent, json: Bool) -> String {
        let time = timestamp()
        switch event {
        case .joined(let peer), .changed(let peer), .left(let peer):
            let name: String
            switch event {
            case .joined: name = "joined"
            case .changed: name = "changed"
            default: name = "left"
            }
            if json { return JSONText.object([("event", .string(name)), ("time", .string(time))] + peerFields(peer)) }
            switch event {
            case .joined: return "\(time) + \(peerLine(peer))"
            case .changed: return "\(time) * \(peerLine(peer))"
            default: return "\(time) - \(peer.nick) left (\(peer.address.ip ?? "?"))"
            }
        case .message(let message):
            let files = message.files.map { entry in
                (entry, message.fileEncoding.decode(entry.name).escaped)
            }
            if json {
                var fields: [(key: String, value: JSONText.Value)] = [
                    ("event", .string("message")), ("time", .string(time)), ("from", .string(message.from.address.description)),
                    ("nick", .string(message.from.nick)), ("id", .int(Int(message.packetNumber))),
                    ("text", .string(message.text.string ?? message.text.escaped)), ("valid", .bool(message.text.isValid)),
                    ("broadcast", .bool(message.broadcast)),
                ]
                if !files.isEmpty {
                    fields.append(("files", .raw(JSONText.array(files.map { entry, name in
                        .raw(JSONText.object([("id", .int(Int(entry.id))), ("name", .string(name)), ("size", .int(Int(clamping: entry.size)))]))
                    }))))
                }
                return JSONText.object(fields)
            }
            let to = message.broadcast ? " (to all)" : message.autoReturn ? " (auto)" : ""
            var line = "\(time) \(message.from.nick)\(to): \(message.text.escaped)"
            for (entry, name) in files { line += "\n\(time)   file \(entry.id): \(name) (\(entry.size) bytes)" }
            return line
        case .delivered(let id, let peer):
            if json { return JSONText.object([("event", .string("delivered")), ("time", .string(time)), ("id", .int(Int(id))), ("to", .string(peer.address.description)), ("nick", .string(peer.nick))]) }
            return "\(time) delivered to \(peer.nick) (#\(id))"
        case .undelivered(let id, let peer, let tries):
            if json { return JSONText.object([("event", .string("undelivered")), ("time", .string(time)), ("id", .int(Int(id))), ("to", .string(peer.address.description)), ("nick", .string(peer.nick)), ("tries", .int(tries))]) }
            return "\(time) NOT delivered to \(peer.nick) at \(peer.address.ip ?? "?") (#\(id)): no acknowledgement after \(tries) tries"
        }
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return formatter.string(from: Date())
    }
}

struct IPMsgList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Announce, list who answers, say goodbye.",
        discussion: """
        Prints one user per line: nick, group, user@host, address, client and the encoding used with it.

        Examples:
          udp ipmsg list
          udp ipmsg list --timeout 5 --interface eth0 --json
        """
    )

    @Option(help: ArgumentHelp("How long to collect answers.", valueName: "duration"))
    var timeout: DurationArgument = DurationArgument(seconds: 2)

    @OptionGroup var options: IPMsgOptions

    func run() async throws {
        let messenger = try await options.start()
        let runner = Task { try await messenger.run() }
        await messenger.announce()
        try? await Task.sleep(for: timeout.duration)
        await messenger.leave()
        runner.cancel()
        _ = try? await runner.value
        await messenger.close()
        let peers = messenger.peers.filter(\.announced)
        for peer in peers {
            Terminal.writeStdout((options.json ? JSONText.object(IPMsgShow.peerFields(peer)) : IPMsgShow.peerLine(peer)) + "\n")
        }
        if !options.json && Terminal.stdoutIsTTY { Terminal.writeStderr("\(peers.count) user\(peers.count == 1 ? "" : "s")\n") }
    }
}

struct IPMsgSend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send one message and wait for its acknowledgement.",
        discussion: """
        DEST is an IPv4 address or a nick (found by a short announce). The message is resent about once a second, four sends in all. Exit 0 when acknowledged, 75 when not, 69 when no user of that nick answered.

        Examples:
          udp ipmsg send alice 'the build is green'
          udp ipmsg send 10.1.1.7 你好 --encoding gbk
        """
    )

    @Argument(help: "An address or a nick.")
    var destination: String

    @Argument(help: ArgumentHelp("The message words, sent as one message.", valueName: "message"))
    var message: [String]

    @Option(help: ArgumentHelp("How long to wait for a nick to answer the announce.", valueName: "duration"))
    var timeout: DurationArgument = DurationArgument(seconds: 2)

    @OptionGroup var options: IPMsgOptions

    func validate() throws {
        if message.isEmpty { throw ValidationError("give the message to send") }
    }

    func run() async throws {
        let messenger = try await options.start()
        let events = EventWaiter(messenger.events)
        let runner = Task { try await messenger.run() }
        defer { runner.cancel() }
        await messenger.announce()
        let address: UDPAddress
        if let given = try? UDPAddress(ip: destination, port: options.port) {
            address = given
            // Give it a moment to answer, so its encoding is known; send anyway if it does not.
            _ = await events.wait(timeout: .milliseconds(700)) { _ in messenger.peers.contains { $0.address == given } }
        } else {
            _ = await events.wait(timeout: timeout.duration) { _ in !messenger.peers(named: destination).isEmpty }
            let found = messenger.peers(named: destination)
            if found.count > 1 {
                await finish(messenger, runner)
                throw CLIFailure.usage("several users are called '\(TerminalText.escape(destination))' (\(found.map { $0.address.ip ?? "?" }.joined(separator: ", "))): give the address")
            }
            guard let peer = found.first else {
                await finish(messenger, runner)
                throw CLIFailure(message: "no user called '\(TerminalText.escape(destination))' answered within \(timeout.seconds) s; see 'udp ipmsg list'", code: ExitCode32.unavailable)
            }
            address = peer.address
        }
        let id = try await messenger.send(message.joined(separator: " "), to: address)
        let outcome = await events.wait(timeout: .seconds(10)) { event in
            switch event {
            case .delivered(id, _), .undelivered(id, _, _): return true
            default: return false
            }
        }
        await finish(messenger, runner)
        switch outcome {
        case .delivered(_, let peer)?:
            if options.json {
                Terminal.writeStdout(IPMsgShow.line(.delivered(id: id, to: peer), json: true) + "\n")
            } else {
                Terminal.writeStdout("delivered to \(peer.nick) at \(peer.address.ip ?? "?")\n")
            }
        case .undelivered(_, let peer, let tries)?:
            if options.json { Terminal.writeStdout(IPMsgShow.line(.undelivered(id: id, to: peer, tries: tries), json: true) + "\n") }
            throw CLIFailure(message: "no acknowledgement from \(peer.address.ip ?? "?") after \(tries) tries", code: ExitCode32.timedOut)
        default:
            throw CLIFailure(message: "no acknowledgement from \(address.ip ?? "?")", code: ExitCode32.timedOut)
        }
    }

    private func finish(_ messenger: IPMsgMessenger, _ runner: Task<Void, any Error>) async {
        await messenger.leave()
        runner.cancel()
        _ = try? await runner.value
        await messenger.close()
    }
}

/// Reads a messenger's events on its own task and lets a caller wait for one that matches.
final class EventWaiter: Sendable {
    private let state = NIOLockedValueBox<[IPMsgCore.IPMsgEvent]>([])

    init(_ events: AsyncStream<IPMsgCore.IPMsgEvent>) {
        let state = self.state
        Task {
            for await event in events { state.withLockedValue { $0.append(event) } }
        }
    }

    /// The first event (already received or arriving within `timeout`) for which `match` holds; events before it
    /// are consumed. With a condition that ignores its argument, also returns when the condition holds.
    func wait(timeout: Duration, _ match: @Sendable (IPMsgCore.IPMsgEvent?) -> Bool) async -> IPMsgCore.IPMsgEvent? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let found = state.withLockedValue { events -> IPMsgCore.IPMsgEvent?? in
                if let index = events.firstIndex(where: { match($0) }) {
                    let event = events[index]
                    events.removeFirst(index + 1)
                    return .some(event)
                }
                return match(nil) ? .some(nil) : nil
            }
            if let found { return found }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

struct IPMsgChat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "The messenger (the default): users coming and going, messages as they arrive, typed lines to the current peer.",
        discussion: """
        Commands: /who lists users; /to NICK makes NICK the current peer; /msg NICK TEXT sends one message; /all TEXT sends to everyone (not acknowledged); /nick NEW and /away [TEXT] tell everyone (/away alone: back); /quit. NICK may also be an address. Other lines go to the current peer. Piped standard input works line by line, starting a second after the announce so that nicks are known; at its end the messenger waits for outstanding acknowledgements (and --linger), says goodbye, and exits 75 when a message was not delivered. With --json every event is one JSON object per line.

        Examples:
          udp ipmsg --nick bob
          udp ipmsg chat --nick bob --encoding shift-jis
          printf '/to alice\\nhello\\n' | udp ipmsg --nick bot --json
        """
    )

    @OptionGroup var options: IPMsgOptions

    @Option(help: ArgumentHelp("At end of piped input, keep running this long.", valueName: "duration"))
    var linger: DurationArgument = DurationArgument(seconds: 0)

    func run() async throws {
        let messenger = try await options.start()
        let json = options.json
        let console = Console(prompt: "> ")
        defer { console.close() }
        let interactive = Terminal.stdinIsTTY
        let identity = messenger.identity
        if interactive && !json {
            console.show("\(identity.nick) on port \(options.port), broadcasting to \(messenger.broadcastAddresses.map { $0.ip ?? "?" }.joined(separator: ", ")); /who, /to NICK, /msg NICK TEXT, /all TEXT, /quit")
        }
        if json {
            console.show(JSONText.object([("event", .string("started")), ("port", .int(options.port)), ("nick", .string(identity.nick)),
                                          ("broadcast", .raw(JSONText.array(messenger.broadcastAddresses.map { .string($0.ip ?? "?") })))]))
        }
        let current = NIOLockedValueBox<IPMsgPeer?>(nil)
        let failed = NIOLockedValueBox(0)
        let linger = self.linger.duration
        try await withSignalCancellation {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await messenger.run() }
                group.addTask {
                    for await event in messenger.events {
                        if case .undelivered = event { failed.withLockedValue { $0 += 1 } }
                        console.show(IPMsgShow.line(event, json: json))
                    }
                }
                group.addTask {
                    await messenger.announce()
                    // Piped commands name users by nick: give the LAN a moment to answer the announce first.
                    if !interactive { try await Task.sleep(for: .seconds(1)) }
                    for await line in console.lines {
                        let text = StandardInput.text(line) ?? String(decoding: line, as: UTF8.self)
                        if text.trimmingCharacters(in: .whitespaces) == "/quit" { break }
                        await Self.handle(text, messenger: messenger, current: current, console: console, json: json)
                    }
                    // Piped input: wait for what is still unacknowledged, then linger.
                    let deadline = ContinuousClock.now + .seconds(6)
                    while messenger.unacknowledged > 0 && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    try await Task.sleep(for: .milliseconds(50))
                    if !interactive && linger > .zero { try await Task.sleep(for: linger) }
                }
                // The input side ends the messenger (the other two run until cancelled).
                _ = try await group.next()
                await messenger.leave()
                group.cancelAll()
            }
        }
        await messenger.close()
        if json {
            let c = messenger.counters
            console.show(JSONText.object([("event", .string("stats")), ("malformed", .int(c.malformed)), ("duplicates", .int(c.duplicates)),
                                          ("acknowledged", .int(c.acknowledged)), ("resent", .int(c.resent)),
                                          ("answers_suppressed", .int(c.answersSuppressed)), ("own", .int(c.own))]))
        }
        let undelivered = failed.withLockedValue { $0 }
        if undelivered > 0 {
            throw CLIFailure(message: "\(undelivered) message\(undelivered == 1 ? " was" : "s were") not delivered", code: ExitCode32.timedOut)
        }
    }

    /// One typed line: a slash command or a message to the current peer.
    static func handle(_ line: String, messenger: IPMsgMessenger, current: NIOLockedValueBox<IPMsgPeer?>, console: Console, json: Bool) async {
        func say(_ text: String) {
            console.show(json ? JSONText.object([("event", .string("info")), ("text", .string(text))]) : text)
        }
        func find(_ name: String) -> IPMsgPeer? {
            if let address = try? UDPAddress(ip: name, port: messenger.socket.localAddress.port ?? IPMsgPacket.defaultPort) {
                return messenger.peers.first { $0.address == address }
                    ?? IPMsgPeer(address: address, user: name, host: "?", nick: name, group: "", version: IPMsgVersion(Array("1".utf8)),
                                 encoding: .gbk, acceptsUTF8: false, isAbsent: false, announced: false, lastSeen: 0)
            }
            let found = messenger.peers(named: name)
            if found.count > 1 { say("several users are called '\(TerminalText.escape(name))': use an address (\(found.map { $0.address.ip ?? "?" }.joined(separator: ", ")))") }
            if found.isEmpty { say("nobody called '\(TerminalText.escape(name))' is known; /who lists users") }
            return found.count == 1 ? found[0] : nil
        }
        func send(_ text: String, to peer: IPMsgPeer) async {
            do {
                let id = try await messenger.send(text, to: peer.address)
                if json { console.show(JSONText.object([("event", .string("sent")), ("id", .int(Int(id))), ("to", .string(peer.address.description)), ("nick", .string(peer.nick)), ("text", .string(text))])) }
            } catch {
                say("udp: cannot send to \(peer.nick): \(error)")
            }
        }
        let words = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
        guard line.hasPrefix("/") else {
            guard !line.isEmpty else { return }
            guard let peer = current.withLockedValue({ $0 }) else { return say("no current peer: /to NICK first, or /msg NICK TEXT") }
            return await send(line, to: peer)
        }
        switch words.first ?? "" {
        case "/who":
            let peers = messenger.peers.filter(\.announced)
            if json {
                for peer in peers { console.show(JSONText.object([("event", .string("user"))] + IPMsgShow.peerFields(peer))) }
            } else {
                say(peers.isEmpty ? "nobody else is here" : peers.map(IPMsgShow.peerLine).joined(separator: "\n"))
            }
        case "/to" where words.count >= 2:
            if let peer = find(line.dropFirst(4).trimmingCharacters(in: .whitespaces)) {
                current.withLockedValue { $0 = peer }
                say("talking to \(peer.nick) at \(peer.address.ip ?? "?")")
            }
        case "/msg" where words.count == 3:
            if let peer = find(words[1]) { await send(words[2], to: peer) }
        case "/all" where words.count >= 2:
            do { try await messenger.sendToAll(String(line.dropFirst(5))) } catch { say("udp: \(error)") }
        case "/nick" where words.count >= 2:
            await messenger.update(nick: String(line.dropFirst(6)))
        case "/away":
            let text = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
            await messenger.update(absence: .some(text.isEmpty ? nil : text))
        case "/send", "/get":
            say("file transfer is not supported yet")
        default:
            say("commands: /who, /to NICK, /msg NICK TEXT, /all TEXT, /nick NEW, /away [TEXT], /quit")
        }
    }
}
