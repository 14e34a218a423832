import ArgumentParser
import RoomProtocol
import UDPKit
import UDPRoom
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Room: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "room",
        abstract: "Chat room: one server, many members; nothing lost, doubled or reordered under loss.",
        discussion: """
            Replaces the classic two-person Python "chat room" (a receive thread and a send thread). Members join with a nick and get a secret session token that every later packet carries, so knowing someone's address is not enough to post as them. Messages are acknowledged and retransmitted, so every member sees each message sent after it joined exactly once, in each sender's order, whatever the network loses, duplicates or reorders. The wire format is docs/room-protocol.md.

            Examples:
              udp room serve 9000
              udp room join 127.0.0.1:9000 --nick alice
              printf 'hello\\n/me waves\\n' | udp room join 127.0.0.1:9000 --nick bot
            """,
        subcommands: [RoomServe.self, RoomJoin.self]
    )
}

struct RoomServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a chat room server.",
        discussion: """
            Prints a line per join, leave, timeout, nick change and refused join; on Ctrl-C or SIGTERM tells the members it is stopping (they rejoin by themselves when it is back) and prints a summary: members, messages, and every dropped datagram or command by reason.

            Examples:
              udp room serve                         port 9000, any address
              udp room serve 127.0.0.1:9000 --max-members 10
            """
    )

    @Argument(
        help: ArgumentHelp(
            "[HOST:]PORT to serve on (default: port 9000 on any address; port 0: any free port).", valueName: "address")
    )
    var address: String?

    // The older way to say where: --port PORT and --bind HOST.
    @Option(name: .customLong("port"), parsing: .unconditional, help: .hidden)
    var portOption: Int?

    @Option(name: .customLong("bind"), help: .hidden)
    var bindOption: String?

    var port: Int { (try? LocalAddress(from: address, port: portOption, bind: bindOption))?.port ?? 9000 }
    var bind: String? { (try? LocalAddress(from: address, port: portOption, bind: bindOption))?.host }

    @Option(parsing: .unconditional, help: "Most members at once.")
    var maxMembers: Int = RoomLimits.standard.maxMembers

    @Option(parsing: .unconditional, help: "Public messages a newcomer is shown (0 to 65535).")
    var history: Int = RoomLimits.standard.historyLength

    @Option(parsing: .unconditional, help: ArgumentHelp("Longest message, in bytes of UTF-8.", valueName: "bytes"))
    var maxText: Int = RoomLimits.standard.maxTextBytes

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("How often members send a heartbeat (100ms to 60s).", valueName: "duration"))
    var heartbeat: DurationArgument = DurationArgument(seconds: 2)

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Drop a member silent this long (1s to 600s, at least twice --heartbeat).", valueName: "duration"))
    var memberTimeout: DurationArgument = DurationArgument(seconds: 10)

    @Flag(help: "Print the bound address on stderr.")
    var showPort = false

    @Flag(name: .shortAndLong, help: "No line per join and leave.")
    var quiet = false

    @OptionGroup var network: NetworkOptions

    func validate() throws {
        if let portOption, !(0...65_535).contains(portOption) {
            throw ValidationError("--port must be from 0 to 65535")
        }
        _ = try LocalAddress(from: address, port: portOption, bind: bindOption, what: "[HOST:]PORT")
        guard maxMembers >= 1 else { throw ValidationError("--max-members must be at least 1") }
        guard (0...65_535).contains(history) else { throw ValidationError("--history must be from 0 to 65535") }
        guard (1...StringField.text.maxBytes).contains(maxText) else {
            throw ValidationError("--max-text must be from 1 to \(StringField.text.maxBytes)")
        }
        // The ranges clients accept (they clamp whatever a server announces to them).
        guard (0.1...60).contains(heartbeat.seconds) else {
            throw ValidationError("--heartbeat must be from 100ms to 60s")
        }
        guard (1...600).contains(memberTimeout.seconds) else {
            throw ValidationError("--member-timeout must be from 1s to 600s")
        }
        guard memberTimeout.seconds >= 2 * heartbeat.seconds else {
            throw ValidationError("--member-timeout must be at least twice --heartbeat")
        }
    }

    func run() async throws {
        var configuration = RoomServer.Configuration()
        configuration.limits = RoomLimits(maxTextBytes: maxText, maxMembers: maxMembers, historyLength: history)
        configuration.timing.heartbeatInterval = UInt64(heartbeat.seconds * 1e9)
        configuration.timing.memberTimeout = UInt64(memberTimeout.seconds * 1e9)
        let family = try network.family()
        let host = bind ?? (family == .ipv6 ? "::" : family == .ipv4 ? "0.0.0.0" : "*")
        let endpoint = try UDPEndpoint.parse(
            host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port)" : "\(host):\(port)")
        let log: (@Sendable (RoomServer.Event) -> Void)? = quiet ? nil : Self.log
        let server = try await RoomServer.bind(to: endpoint, family: family, configuration: configuration, onEvent: log)
        if showPort || Terminal.stderrIsTTY { Terminal.writeStderr("room server on \(server.localAddress)\n") }
        let live = LiveLine {
            let c = server.counters
            return "\(c.members) member\(c.members == 1 ? "" : "s"), \(c.messages) messages, \(c.droppedTotal) dropped"
        }
        // SIGINT or SIGTERM: a graceful shutdown, in which the members are told the server is stopping.
        try await live.while { try await runServices([server]) }
        Terminal.finish()
        Terminal.writeStderr(Self.summary(server.counters) + "\n")
    }

    @Sendable static func log(_ event: RoomServer.Event) {
        // Queued, never waited for: a stalled stdout must not hold up the room.
        Terminal.display(DatagramFormatter.clockTime(Date()) + "  " + describe(event) + "\n")
    }

    static func describe(_ event: RoomServer.Event) -> String {
        switch event {
        case .joined(let nick, let address): "\(TerminalText.escape(nick)) joined from \(address)"
        case .left(let nick): "\(TerminalText.escape(nick)) left"
        case .timedOut(let nick, let reason): "\(TerminalText.escape(nick)) timed out (\(reason))"
        case .nickChanged(let from, let to): "\(TerminalText.escape(from)) is now \(TerminalText.escape(to))"
        case .moved(let nick, let from, let to): "\(TerminalText.escape(nick)) moved from \(from) to \(to)"
        case .refused(let nick, let address, let reason):
            "refused \(TerminalText.escape(nick)) from \(address): \(reason)"
        }
    }

    static func summary(_ c: RoomServer.Counters) -> String {
        func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
        var text =
            "room: \(plural(c.joined, "member")) joined (\(c.left) left, \(c.timedOut) timed out, \(c.refused) refused); "
            + "\(plural(c.messages, "message")), \(c.privateMessages) private; "
            + "\(c.received) datagrams received, \(c.sent) sent (\(c.retransmissions) again)"
        if c.migrations > 0 || c.pathChallenges > 0 {
            text += "; \(c.migrations) moved to a new address (\(plural(c.pathChallenges, "path challenge")) sent)"
        }
        if c.droppedTotal > 0 {
            let reasons = RoomServer.DropReason.allCases.compactMap { r in c.dropped[r].map { "\(r.rawValue) \($0)" } }
            text += "; dropped \(c.droppedTotal) (\(reasons.joined(separator: ", ")))"
        }
        return text
    }
}

struct RoomJoin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Join a chat room.",
        discussion: """
            Lines you type are said to the room; incoming messages appear above the line being typed without garbling it. Commands: /me ACTION, /msg NICK TEXT, /nick NAME, /who, /help, /quit (or Ctrl-D). If the server restarts, the client rejoins by itself and says so.

            With piped input, each line is sent (paced to the room's rate limit) and the client leaves at the end of input, once the server confirmed everything, or after --wait (exit 75 then). A full room is tried again three times, a second apart, before giving up (exit 69).

            If your address changes (a NAT rebinding, another network), the server checks that you receive at the new one before it sends you anything there; the client answers by itself and nothing is lost.

            Examples:
              udp room join 127.0.0.1:9000 --nick alice
              udp room join chat.example.net 9000 --nick 李雷
              printf 'hello\\n/me waves\\n' | udp room join 127.0.0.1:9000 --nick bot
            """
    )

    @Argument(help: ArgumentHelp("HOST:PORT or HOST PORT of the room server.", valueName: "server"))
    var words: [String] = []

    @Option(help: "Your nick: 1 to 24 characters, no spaces or control characters.")
    var nick: String

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Give up joining after this long without an answer.", valueName: "duration"))
    var timeout: DurationArgument = DurationArgument(seconds: 10)

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "At the end of piped input, wait at most this long for the server to confirm.", valueName: "duration"))
    var wait: DurationArgument = DurationArgument(seconds: 10)

    @OptionGroup var network: NetworkOptions

    func validate() throws {
        do {
            try RoomLimits.standard.checkNick(nick)
        } catch {
            throw ValidationError("invalid nick: \(error)")
        }
        guard timeout.seconds > 0 else { throw ValidationError("--timeout must be more than 0") }
    }

    func run() async throws {
        let (endpoint, extra) = try parseTarget(words, what: "room server address")
        guard extra.isEmpty else {
            throw CLIFailure.usage("unexpected argument '\(extra[0])': type messages on standard input")
        }
        let server = try await resolveOne(endpoint, family: try network.family())
        var configuration = RoomClient.Configuration()
        configuration.joinTimeout = UInt64(timeout.seconds * 1e9)
        let client: RoomClient
        do {
            client = try await withSignalCancellation { [nick, configuration] in
                try await RoomClient.join(server, nick: nick, configuration: configuration)
            }
        } catch let error as RoomClientError {
            switch error {
            case .serverNotResponding: throw CLIFailure(message: error.description, code: ExitCode32.timedOut)
            case .invalidNick: throw CLIFailure.usage(error.description)
            default: throw CLIFailure(message: error.description, code: ExitCode32.unavailable)
            }
        }
        let interactive = Terminal.stdinIsTTY
        let console = Console(prompt: "> ")
        defer { console.close() }
        if interactive {
            console.show(
                "joined \(server) as \(TerminalText.escape(nick)); /help for commands, /quit or Ctrl-D to leave")
        }
        let wait = UInt64(self.wait.seconds * 1e9)
        let ending: RoomClient.Ending? = try await withSignalCancellation {
            try await withThrowingTaskGroup(of: RoomClient.Ending?.self) { group -> RoomClient.Ending? in
                group.addTask {
                    var display = RoomDisplay()
                    for await event in client.events {
                        for line in display.lines(for: event) { console.show(line) }
                        if case .ended(let ending) = event { return ending }
                    }
                    return client.ending
                }
                group.addTask {
                    await Self.forward(console, to: client)
                    // Piped input waits for its lines to be confirmed; a person at a terminal does not want to.
                    await client.leave(timeout: interactive ? nil : wait)
                    return nil
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result { return result }
                }
                return client.ending
            }
        }
        switch ending {
        case .refused(let reason, let text)?:
            throw CLIFailure(message: RoomClientError.refused(reason, text).description, code: ExitCode32.unavailable)
        case .left(confirmed: false)? where !interactive:
            throw CLIFailure(
                message:
                    "the server did not confirm everything sent within \(String(cFormat: "%g", self.wait.seconds)) s",
                code: ExitCode32.timedOut)
        default:
            break
        }
    }

    /// Sends each line until /quit or the end of input; mistakes are shown, not fatal.
    static func forward(_ console: Console, to client: RoomClient) async {
        for await bytes in console.lines {
            guard let line = StandardInput.text(bytes) else {
                console.show("-!- the line is not UTF-8 text; not sent")
                continue
            }
            switch RoomInput.parse(line) {
            case .command(let command):
                do {
                    try await client.send(command)
                } catch {
                    console.show("-!- \(TerminalText.escape(error.description))")
                }
            case .quit:
                return
            case .help:
                console.show(RoomInput.commandList)
            case .empty:
                continue
            case .invalid(let text):
                console.show("-!- \(TerminalText.escape(text))")
            }
        }
    }
}
