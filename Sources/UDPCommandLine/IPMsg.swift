import ArgumentParser
import IPMsg
import NIOConcurrencyHelpers
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct IPMsgCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipmsg",
        abstract: "An IP Messenger / FeiQ / iptux client on the LAN (port 2425).",
        discussion: """
            Grows from the classic Python broadcaster, whose packet 1:100:will:will-pc:32:will broadcast is an IP Messenger message. This client announces itself (BR_ENTRY to every subnet's broadcast address, no default route needed), answers others' announcements, acknowledges messages and resends its own until acknowledged. Text is UTF-8 for peers that accept it (iptux, CAPUTF8OPT) and --encoding (GBK by default, as FeiQ) for the others; bytes that do not decode are shown as \\xNN.

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

    @Option(
        help: ArgumentHelp(
            "Encoding for peers that do not declare UTF-8: gbk (FeiQ), gb18030, shift-jis (Japanese IP Messenger), utf8, latin1.",
            valueName: "name"))
    var encoding: String = "gbk"

    @Option(help: "UDP port to bind and broadcast to (every client uses 2425).")
    var port: Int = IPMsgPacket.defaultPort

    @Option(
        help: ArgumentHelp(
            "Broadcast on this interface only (default: every interface that can broadcast).", valueName: "name"))
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
        var configuration = IPMsgMessenger.Configuration(
            identity: IPMsgIdentity(user: user, host: host, nick: nick ?? user, group: group))
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
            throw CLIFailure(
                message:
                    "port \(port) is already in use (UDP): another IP Messenger client runs on this host; stop it or choose --port",
                code: ExitCode32.other)
        }
    }
}

/// How events are shown: one line of text, or one JSON object.
enum IPMsgShow {
    static func peerFields(_ peer: IPMsgPeer) -> [(key: String, value: JSONText.Value)] {
        [
            ("address", .string(peer.address.description)), ("nick", .string(peer.nick)),
            ("group", .string(peer.group)),
            ("user", .string(peer.user)), ("host", .string(peer.host)), ("client", .string(peer.version.label)),
            ("encoding", .string(peer.acceptsUTF8 ? "utf8" : peer.encoding.rawValue)), ("absent", .bool(peer.isAbsent)),
        ]
    }

    static func peerLine(_ peer: IPMsgPeer) -> String {
        let group = peer.group.isEmpty ? "" : " [\(peer.group)]"
        let away = peer.isAbsent ? " (away)" : ""
        return
            "\(peer.nick)\(group)\(away) \(peer.user)@\(peer.host) at \(peer.address.ip ?? "?"), \(peer.version.label), \(peer.acceptsUTF8 ? "utf8" : peer.encoding.rawValue)"
    }

    /// The line for an event, or nil for events this view does not show.
    static func line(_ event: IPMsgCore.IPMsgEvent, json: Bool, firstOffer: Int = 1) -> String {
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
            let files = message.files.enumerated().map { index, entry in
                (index + firstOffer, entry, message.fileEncoding.decode(entry.name).escaped)
            }
            if json {
                var fields: [(key: String, value: JSONText.Value)] = [
                    ("event", .string("message")), ("time", .string(time)),
                    ("from", .string(message.from.address.description)),
                    ("nick", .string(message.from.nick)), ("id", .int(Int(message.packetNumber))),
                    ("text", .string(message.text.string ?? message.text.escaped)),
                    ("valid", .bool(message.text.isValid)),
                    ("broadcast", .bool(message.broadcast)),
                ]
                if !files.isEmpty {
                    fields.append(
                        (
                            "files",
                            .raw(
                                JSONText.array(
                                    files.map { number, entry, name in
                                        .raw(
                                            JSONText.object([
                                                ("offer", .int(number)), ("id", .int(Int(entry.id))),
                                                ("name", .string(name)), ("size", .int(Int(clamping: entry.size))),
                                            ]))
                                    }))
                        ))
                }
                return JSONText.object(fields)
            }
            let to = message.broadcast ? " (to all)" : message.autoReturn ? " (auto)" : ""
            var line = "\(time) \(message.from.nick)\(to): \(message.text.escaped)"
            for (number, entry, name) in files {
                line += "\n\(time)   file \(number): \(name) (\(entry.size) bytes); /get \(number) to fetch it"
            }
            return line
        case .delivered(let id, let peer):
            if json {
                return JSONText.object([
                    ("event", .string("delivered")), ("time", .string(time)), ("id", .int(Int(id))),
                    ("to", .string(peer.address.description)), ("nick", .string(peer.nick)),
                ])
            }
            return "\(time) delivered to \(peer.nick) (#\(id))"
        case .undelivered(let id, let peer, let tries):
            if json {
                return JSONText.object([
                    ("event", .string("undelivered")), ("time", .string(time)), ("id", .int(Int(id))),
                    ("to", .string(peer.address.description)), ("nick", .string(peer.nick)), ("tries", .int(tries)),
                ])
            }
            return
                "\(time) NOT delivered to \(peer.nick) at \(peer.address.ip ?? "?") (#\(id)): no acknowledgement after \(tries) tries"
        }
    }

    /// The local time of day, "HH:mm:ss".
    static func timestamp() -> String {
        var now = time(nil)
        var local = tm()
        localtime_r(&now, &local)
        return [local.tm_hour, local.tm_min, local.tm_sec].map { $0 < 10 ? "0\($0)" : "\($0)" }.joined(separator: ":")
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
            Terminal.writeStdout(
                (options.json ? JSONText.object(IPMsgShow.peerFields(peer)) : IPMsgShow.peerLine(peer)) + "\n")
        }
        if !options.json && Terminal.stdoutIsTTY {
            Terminal.writeStderr("\(peers.count) user\(peers.count == 1 ? "" : "s")\n")
        }
    }
}

struct IPMsgSend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send one message and wait for its acknowledgement.",
        discussion: """
            DEST is an IPv4 address or a nick (found by a short announce). The message is resent about once a second, four sends in all. Exit 0 when acknowledged, 75 when not, 69 when no user of that nick answered. With --file, the files are served over TCP on the same port, to that peer only, until it fetched each whole (exit 75 if it did not within --file-timeout).

            Examples:
              udp ipmsg send alice 'the build is green'
              udp ipmsg send 10.1.1.7 你好 --encoding gbk
              udp ipmsg send alice 'the report' --file report.pdf
            """
    )

    @Argument(help: "An address or a nick.")
    var destination: String

    @Argument(help: ArgumentHelp("The message words, sent as one message.", valueName: "message"))
    var message: [String] = []

    @Option(help: ArgumentHelp("How long to wait for a nick to answer the announce.", valueName: "duration"))
    var timeout: DurationArgument = DurationArgument(seconds: 2)

    @Option(
        name: .customLong("file"),
        help: ArgumentHelp(
            "Offer this file with the message (repeatable); served over TCP on the same port until the peer fetched it.",
            valueName: "path"))
    var files: [String] = []

    @Option(help: ArgumentHelp("With --file: how long to wait for the peer to fetch the files.", valueName: "duration"))
    var fileTimeout: DurationArgument = DurationArgument(seconds: 60)

    @OptionGroup var options: IPMsgOptions

    func validate() throws {
        if message.isEmpty && files.isEmpty { throw ValidationError("give the message to send") }
    }

    func run() async throws {
        let shared = try files.enumerated().map { try IPMsgSharedFile(path: $0.element, id: UInt32($0.offset)) }
        _ = try options.configuration()
        let messenger = try await options.start()
        var fileServer: IPMsgFileServer?
        if !shared.isEmpty {
            do {
                fileServer = try await IPMsgFileServer.start(port: options.port)
            } catch {
                await messenger.close()
                throw CLIFailure(
                    message: "cannot serve files on TCP port \(options.port): \(error)", code: ExitCode32.other)
            }
        }
        let servedFiles = fileServer.map { server in IPMsgStreamWaiter(server.served) }
        let serverTask = fileServer.map { server in Task { try? await server.run() } }
        defer { serverTask?.cancel() }
        let events = IPMsgEventWaiter(messenger.events)
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
                throw CLIFailure.usage(
                    "several users are called '\(TerminalText.escape(destination))' (\(found.map { $0.address.ip ?? "?" }.joined(separator: ", "))): give the address"
                )
            }
            guard let peer = found.first else {
                await finish(messenger, runner)
                throw CLIFailure(
                    message:
                        "no user called '\(TerminalText.escape(destination))' answered within \(timeout.seconds) s; see 'udp ipmsg list'",
                    code: ExitCode32.unavailable)
            }
            address = peer.address
        }
        let id = try await messenger.send(message.joined(separator: " "), to: address, files: shared.map(\.entry))
        fileServer?.offer(packetNumber: id, to: address.ip ?? "", files: shared.map { ($0.entry, $0.path) })
        let outcome = await events.wait(timeout: .seconds(10)) { event in
            switch event {
            case .delivered(id, _), .undelivered(id, _, _): return true
            default: return false
            }
        }
        if case .delivered? = outcome, let servedFiles {
            // Serve until every file went out whole, or the time is up.
            var left = Set(shared.map(\.entry.id))
            let deadline = ContinuousClock.now + fileTimeout.duration
            while !left.isEmpty, ContinuousClock.now < deadline {
                if let done = await servedFiles.next(timeout: deadline - ContinuousClock.now),
                    done.packetNumber == id, let file = shared.first(where: { $0.entry.id == done.fileID }),
                    done.bytes == file.entry.size
                {
                    left.remove(done.fileID)
                    if !options.json {
                        Terminal.writeStdout("sent \(file.path) (\(done.bytes) bytes) to \(done.peer)\n")
                    }
                }
            }
            if !left.isEmpty {
                await finish(messenger, runner)
                await fileServer?.close()
                let names = shared.filter { left.contains($0.entry.id) }.map(\.path).joined(separator: ", ")
                throw CLIFailure(
                    message: "the message was delivered but \(names) was not fetched within \(fileTimeout.seconds) s",
                    code: ExitCode32.timedOut)
            }
        }
        await finish(messenger, runner)
        await fileServer?.close()
        switch outcome {
        case .delivered(_, let peer)?:
            if options.json {
                Terminal.writeStdout(IPMsgShow.line(.delivered(id: id, to: peer), json: true) + "\n")
            } else {
                Terminal.writeStdout("delivered to \(peer.nick) at \(peer.address.ip ?? "?")\n")
            }
        case .undelivered(_, let peer, let tries)?:
            if options.json {
                Terminal.writeStdout(IPMsgShow.line(.undelivered(id: id, to: peer, tries: tries), json: true) + "\n")
            }
            throw CLIFailure(
                message: "no acknowledgement from \(peer.address.ip ?? "?") after \(tries) tries",
                code: ExitCode32.timedOut)
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

/// Reads an async stream on its own task; `next(timeout:)` takes the next element.
final class IPMsgStreamWaiter<Element: Sendable>: Sendable {
    private let state = NIOLockedValueBox<[Element]>([])

    init(_ stream: AsyncStream<Element>) {
        let state = self.state
        Task { for await element in stream { state.withLockedValue { $0.append(element) } } }
    }

    func next(timeout: Duration) async -> Element? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let element = state.withLockedValue({ $0.isEmpty ? nil : $0.removeFirst() }) { return element }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// Reads a messenger's events on its own task and lets a caller wait for one that matches.
final class IPMsgEventWaiter: Sendable {
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
        abstract:
            "The messenger (the default): users coming and going, messages as they arrive, typed lines to the current peer.",
        discussion: """
            Commands: /who lists users; /to NICK makes NICK the current peer; /send NICK PATH offers a file; /get N fetches offered file N into --download-dir; /msg NICK TEXT sends one message; /all TEXT sends to everyone (not acknowledged); /nick NEW and /away [TEXT] tell everyone (/away alone: back); /quit. NICK may also be an address. Other lines go to the current peer. Piped standard input works line by line, starting a second after the announce so that nicks are known; at its end the messenger waits for outstanding acknowledgements (and --linger), says goodbye, and exits 75 when a message was not delivered. With --json every event is one JSON object per line.

            Examples:
              udp ipmsg --nick bob
              udp ipmsg chat --nick bob --encoding shift-jis
              printf '/to alice\\nhello\\n' | udp ipmsg --nick bot --json
            """
    )

    @OptionGroup var options: IPMsgOptions

    @Option(
        help: ArgumentHelp(
            "Where /get puts files (default: the current directory). Offered names are used only as one plain file name inside it.",
            valueName: "dir"))
    var downloadDir: String = "."

    @Option(help: ArgumentHelp("At end of piped input, keep running this long.", valueName: "duration"))
    var linger: DurationArgument = DurationArgument(seconds: 0)

    func run() async throws {
        guard isDirectory(downloadDir) == true else {
            throw CLIFailure.usage("--download-dir \(downloadDir) is not a directory")
        }
        _ = try options.configuration()
        let messenger = try await options.start()
        let json = options.json
        let console = Console(prompt: "> ")
        defer { console.close() }
        let interactive = Terminal.stdinIsTTY
        let identity = messenger.identity
        if interactive && !json {
            console.show(
                "\(identity.nick) on port \(options.port), broadcasting to \(messenger.broadcastAddresses.map { $0.ip ?? "?" }.joined(separator: ", ")); /who, /to NICK, /msg NICK TEXT, /all TEXT, /quit"
            )
        }
        if json {
            console.show(
                JSONText.object([
                    ("event", .string("started")), ("port", .int(options.port)), ("nick", .string(identity.nick)),
                    ("broadcast", .raw(JSONText.array(messenger.broadcastAddresses.map { .string($0.ip ?? "?") }))),
                ]))
        }
        let desk = IPMsgFileDesk(port: options.port, downloadDir: downloadDir)
        let current = NIOLockedValueBox<IPMsgPeer?>(nil)
        let failed = NIOLockedValueBox(0)
        let linger = self.linger.duration
        try await withSignalCancellation {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await messenger.run() }
                group.addTask {
                    for await event in messenger.events {
                        if case .undelivered = event { failed.withLockedValue { $0 += 1 } }
                        console.show(IPMsgShow.line(event, json: json, firstOffer: desk.register(event)))
                    }
                }
                group.addTask {
                    await messenger.announce()
                    // Piped commands name users by nick: give the LAN a moment to answer the announce first.
                    if !interactive { try await Task.sleep(for: .seconds(1)) }
                    for await line in console.lines {
                        let text = StandardInput.text(line) ?? String(decoding: line, as: UTF8.self)
                        if text.trimmingHorizontalWhitespace() == "/quit" { break }
                        await Self.handle(
                            text, messenger: messenger, current: current, console: console, json: json, desk: desk)
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
            console.show(
                JSONText.object([
                    ("event", .string("stats")), ("malformed", .int(c.malformed)), ("duplicates", .int(c.duplicates)),
                    ("acknowledged", .int(c.acknowledged)), ("resent", .int(c.resent)),
                    ("answers_suppressed", .int(c.answersSuppressed)), ("own", .int(c.own)),
                ]))
        }
        let undelivered = failed.withLockedValue { $0 }
        if undelivered > 0 {
            throw CLIFailure(
                message: "\(undelivered) message\(undelivered == 1 ? " was" : "s were") not delivered",
                code: ExitCode32.timedOut)
        }
    }

    /// One typed line: a slash command or a message to the current peer.
    static func handle(
        _ line: String, messenger: IPMsgMessenger, current: NIOLockedValueBox<IPMsgPeer?>, console: Console, json: Bool,
        desk: IPMsgFileDesk
    ) async {
        func say(_ text: String) {
            console.show(json ? JSONText.object([("event", .string("info")), ("text", .string(text))]) : text)
        }
        func find(_ name: String) -> IPMsgPeer? {
            if let address = try? UDPAddress(
                ip: name, port: messenger.socket.localAddress.port ?? IPMsgPacket.defaultPort)
            {
                return messenger.peers.first { $0.address == address }
                    ?? IPMsgPeer(
                        address: address, user: name, host: "?", nick: name, group: "",
                        version: IPMsgVersion(Array("1".utf8)),
                        encoding: .gbk, acceptsUTF8: false, isAbsent: false, announced: false, lastSeen: 0)
            }
            let found = messenger.peers(named: name)
            if found.count > 1 {
                say(
                    "several users are called '\(TerminalText.escape(name))': use an address (\(found.map { $0.address.ip ?? "?" }.joined(separator: ", ")))"
                )
            }
            if found.isEmpty { say("nobody called '\(TerminalText.escape(name))' is known; /who lists users") }
            return found.count == 1 ? found[0] : nil
        }
        func send(_ text: String, to peer: IPMsgPeer) async {
            do {
                let id = try await messenger.send(text, to: peer.address)
                if json {
                    console.show(
                        JSONText.object([
                            ("event", .string("sent")), ("id", .int(Int(id))),
                            ("to", .string(peer.address.description)), ("nick", .string(peer.nick)),
                            ("text", .string(text)),
                        ]))
                }
            } catch {
                say("udp: cannot send to \(peer.nick): \(error)")
            }
        }
        let words = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
        guard line.hasPrefix("/") else {
            guard !line.isEmpty else { return }
            guard let peer = current.withLockedValue({ $0 }) else {
                return say("no current peer: /to NICK first, or /msg NICK TEXT")
            }
            return await send(line, to: peer)
        }
        switch words.first ?? "" {
        case "/who":
            let peers = messenger.peers.filter(\.announced)
            if json {
                for peer in peers {
                    console.show(JSONText.object([("event", .string("user"))] + IPMsgShow.peerFields(peer)))
                }
            } else {
                say(peers.isEmpty ? "nobody else is here" : peers.map(IPMsgShow.peerLine).joined(separator: "\n"))
            }
        case "/to" where words.count >= 2:
            if let peer = find(line.dropFirst(4).trimmingHorizontalWhitespace()) {
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
            let text = line.dropFirst(5).trimmingHorizontalWhitespace()
            await messenger.update(absence: .some(text.isEmpty ? nil : text))
        case "/get" where words.count == 2:
            guard let number = Int(words[1]), let offer = desk.offer(number) else {
                return say("no offered file \(words[1])")
            }
            let request = messenger.fileRequest(
                IPMsgFileRequest(packetNumber: offer.packetNumber, fileID: offer.entry.id))
            do {
                let path = try await IPMsgFileFetch.fetch(
                    from: offer.host, port: offer.port, request: request, size: offer.entry.size,
                    name: offer.name, directory: desk.downloadDir)
                if json {
                    console.show(
                        JSONText.object([
                            ("event", .string("fetched")), ("offer", .int(number)), ("path", .string(path)),
                            ("size", .int(Int(clamping: offer.entry.size))),
                        ]))
                } else {
                    say("fetched \(TerminalText.escape(path)) (\(offer.entry.size) bytes)")
                }
            } catch {
                if json {
                    console.show(
                        JSONText.object([
                            ("event", .string("refused")), ("offer", .int(number)), ("reason", .string("\(error)")),
                        ]))
                } else {
                    say("udp: \(error)")
                }
            }
        case "/send" where words.count == 3:
            guard let peer = find(words[1]) else { return }
            do {
                let file = try IPMsgSharedFile(path: words[2], id: 0)
                let server = try await desk.server()
                let id = try await messenger.send("", to: peer.address, files: [file.entry])
                server.offer(packetNumber: id, to: peer.address.ip ?? "", files: [(file.entry, file.path)])
                say("offered \(TerminalText.escape(file.path)) (\(file.entry.size) bytes) to \(peer.nick)")
            } catch {
                say("udp: cannot send the file: \(error)")
            }
        default:
            say(
                "commands: /who, /to NICK, /msg NICK TEXT, /all TEXT, /send NICK PATH, /get N, /nick NEW, /away [TEXT], /quit"
            )
        }
    }
}

/// A local file offered to a peer.
struct IPMsgSharedFile {
    var path: String
    var entry: IPMsgFileEntry

    init(path: String, id: UInt32) throws {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw CLIFailure.usage("cannot read \(path): no such file")
        }
        guard attributes[.type] as? FileAttributeType == .typeRegular else {
            throw CLIFailure.usage("\(path) is not a regular file")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw CLIFailure.usage("\(path) is not readable")
        }
        // An unsigned integer (FoundationEssentials) or an NSNumber (Foundation), which casts to one.
        let size = (attributes[.size] as? UInt).map(UInt64.init) ?? (attributes[.size] as? UInt64) ?? 0
        let modified =
            (attributes[.modificationDate] as? Date).map { UInt32(clamping: Int($0.timeIntervalSince1970)) } ?? 0
        let name = URL(fileURLWithPath: path).lastPathComponent
        self.path = path
        entry = IPMsgFileEntry(id: id, name: Array(name.utf8), size: size, modified: modified)
    }
}

/// Files offered to us (numbered for /get) and the server for files we offer (started on first use).
final class IPMsgFileDesk: Sendable {
    struct Offer: Sendable {
        var host: String
        var port: Int
        var packetNumber: UInt32
        var entry: IPMsgFileEntry
        var name: String
    }

    let port: Int
    let downloadDir: String
    private let offers = NIOLockedValueBox<[Offer]>([])
    private let started = NIOLockedValueBox<IPMsgFileServer?>(nil)
    private let serverTask = NIOLockedValueBox<Task<Void, Never>?>(nil)

    init(port: Int, downloadDir: String) {
        self.port = port
        self.downloadDir = downloadDir
    }

    /// Records the files a message offers; returns the number the first of them gets.
    func register(_ event: IPMsgCore.IPMsgEvent) -> Int {
        offers.withLockedValue { offers in
            let first = offers.count + 1
            if case .message(let message) = event {
                for entry in message.files {
                    // The name as the sender wrote it; undecodable bytes stay escaped, which the name rule refuses.
                    let name =
                        message.fileEncoding.decode(entry.name).string
                        ?? message.fileEncoding.decode(entry.name).escaped
                    offers.append(
                        Offer(
                            host: message.from.address.ip ?? "", port: message.from.address.port ?? port,
                            packetNumber: message.packetNumber, entry: entry, name: name))
                }
            }
            return first
        }
    }

    func offer(_ number: Int) -> Offer? {
        offers.withLockedValue { number >= 1 && number <= $0.count ? $0[number - 1] : nil }
    }

    /// The TCP file server on the messenger's port, started on first use and run until the process ends.
    func server() async throws -> IPMsgFileServer {
        if let server = started.withLockedValue({ $0 }) { return server }
        let server = try await IPMsgFileServer.start(port: port)
        started.withLockedValue { $0 = server }
        serverTask.withLockedValue { $0 = Task { try? await server.run() } }
        return server
    }
}
