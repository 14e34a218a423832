import ArgumentParser
import NIOConcurrencyHelpers
import NIOCore
import UDPKit
import UDPServers
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract:
            "Echo server; with --reply, a greeting server (\"Hello, NAME!\"). Protected against abuse by default.",
        discussion: """
            Replaces the classic Python echo server and greeting server (a recvfrom/sendto loop). Each datagram goes back to its sender byte for byte, or, with --reply, a reply built from a template. Protections, on by default: only datagrams sent to one of this host's own addresses are answered, never those sent to a broadcast address or a multicast group (--allow-broadcast answers them too, under --rate); no reply to a broadcast or multicast "sender", to source port 0 or to the loop-prone ports 7, 13, 17, 19 and 37; a source that keeps sending back the reply it was just sent (another server answering us) is a loop, ended by withholding a reply; a reply is never larger than its request unless the template makes it so, and then each source gets at most --rate replies per second and at most three times the bytes it sent. --allow/--deny lists. Unanswered datagrams are counted by reason in the summary (on Ctrl-C or SIGTERM), with the datagrams the kernel dropped because the receive buffer was full.

            Template placeholders: {text} (the request's bytes), {hex}, {from}, {port}, {time}, {count}, {length}; {{ and }} are literal braces.

            Examples:
              udp echo 9999
              udp echo 9999 --reply 'Hello, {text}!'    a greeting server
              udp echo 127.0.0.1:9999 --allow 127.0.0.0/8 --quiet
              udp echo 9999 --interactive               you type each reply
              udp echo 9999 --threads 4                 four sockets on port 9999, a thread each
            """
    )

    @Argument(help: ArgumentHelp("[HOST:]PORT to bind, or a Unix socket path.", valueName: "address"))
    var address: String

    @Option(help: ArgumentHelp("Reply with this template instead of echoing.", valueName: "template"))
    var reply: String?

    @Flag(help: "Show each datagram and read the reply to it from standard input.")
    var interactive = false

    @Option(help: ArgumentHelp("Answer only these sources (CIDR, repeatable).", valueName: "cidr"))
    var allow: [String] = []

    @Option(help: ArgumentHelp("Never answer these sources (CIDR, repeatable).", valueName: "cidr"))
    var deny: [String] = []

    @Option(
        name: .customLong("rate"), parsing: .unconditional,
        help: ArgumentHelp(
            "Replies per second per source when a reply is larger than its request.", valueName: "per-second"))
    var rateOption = PerSecond(20)

    var rate: Double { rateOption.value }

    @Flag(help: "Answer source ports 7, 13, 17, 19 and 37 too.")
    var allowLoopPorts = false

    @Flag(help: "Allow replies larger than requests without a rate limit.")
    var allowAmplification = false

    @Flag(help: "Also answer datagrams sent to a broadcast address or a multicast group (under --rate).")
    var allowBroadcast = false

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Answer on this many sockets bound to the same address (SO_REUSEPORT), each with a thread of its own; the system spreads senders over them, each sender always to the same one (1-64; default 1). Other programs of the same user can then bind the port too.",
            valueName: "n"))
    var threads = 1

    @Flag(help: "Print the bound address on stderr.")
    var showPort = false

    @Flag(name: .shortAndLong, help: "No line per datagram.")
    var quiet = false

    @Flag(help: "One JSON object per datagram; the summary on exit is a JSON object on stderr.")
    var json = false

    @OptionGroup var payload: PayloadOptions
    @OptionGroup var network: NetworkOptions
    @OptionGroup var replies: EchoReplyOptions

    func validate() throws {
        try replies.validate(interactive: interactive)
        guard rate > 0, rate.isFinite else { throw ValidationError("--rate must be more than 0") }
        if interactive && reply != nil { throw ValidationError("--interactive and --reply cannot be used together") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be from 1 to 64") }
        if interactive && threads > 1 {
            throw ValidationError("--interactive answers one datagram at a time: it takes no --threads")
        }
    }

    func run() async throws {
        let encoding = try payload.textEncoding()
        var config = EchoServer.Configuration()
        do {
            config.template = try reply.map { try ReplyTemplate($0, encoding: encoding) }
        } catch let error as TemplateError {
            throw CLIFailure.usage(error.message)
        }
        config.access = AccessControl(allow: try allow.map(AddressRange.init), deny: try deny.map(AddressRange.init))
        config.repliesPerSecond = rate
        config.burst = max(1, rate * 2)
        config.allowAmplification = allowAmplification
        config.allowBroadcast = allowBroadcast
        if allowLoopPorts { config.blockedSourcePorts = [0] }
        try replies.configure(&config, encoding: encoding, reply: reply)

        var options = UDPSocketOptions()
        // Room for a burst from many clients before the kernel drops (the default is about 200 KiB).
        options.receiveBufferSize = 1 << 20
        // Where each datagram was sent: broadcast and multicast datagrams get no reply by default. A socket bound
        // to one unicast address never receives them, so it is spared the cost of packet information.
        let endpoint = try UDPEndpoint.parse(address, defaultHost: .any)
        if case .ip = endpoint.kind, !Self.receivesOnlyUnicast(endpoint) { options.receivePacketInfo = true }
        if threads > 1 {
            guard case .ip = endpoint.kind else {
                throw CLIFailure.usage("--threads needs an IP address to bind: a Unix socket path has one reader")
            }
            options.reusePort = true
        }
        let formatter = DatagramFormatter(style: json ? .json : payload.hex ? .hex : .text, encoding: encoding)
        let log = quiet || interactive ? nil : Self.logger(formatter)
        let first = try await EchoServer.bind(
            to: endpoint, family: try network.family(), options: options, configuration: config, onEvent: log)
        // The others bind the address the first one got (its port, when port 0 chose one). A sender's datagrams
        // always reach the same socket (the kernel hashes its address and port), so each server's per-source state
        // (rate limits, loop detection) sees all of that source's traffic.
        var opened = [first]
        do {
            for _ in 1..<threads {
                let socket = try await UDPSocket.bind(to: first.localAddress, options: options)
                opened.append(EchoServer(socket: socket, configuration: config, onEvent: log))
            }
        } catch {
            for server in opened { await server.socket.close() }
            throw error
        }
        let servers = opened
        if showPort || Terminal.stderrIsTTY { Terminal.writeStderr("echo server on \(first.localAddress)\n") }
        if interactive {
            try await runInteractive(first.socket, screen: first, formatter: formatter, encoding: encoding)
            return
        }
        let live = LiveLine {
            let c = Self.total(servers.map(\.counters))
            return "\(c.received) received, \(c.replied) replied, \(c.droppedTotal) not answered"
        }
        // SIGINT or SIGTERM: a graceful shutdown; each server closes its socket as it ends, keeping its kernel drop count.
        try await live.while { try await runServices(servers) }
        let drops = servers.reduce(Int?.none) { total, server in server.kernelDrops.map { (total ?? 0) + $0 } ?? total }
        let perSocket = servers.count > 1 ? servers.map(\.counters.received) : nil
        let counters = Self.total(servers.map(\.counters))
        Terminal.writeStderr(
            (json
                ? Self.jsonSummary(counters, kernelDrops: drops, perSocket: perSocket)
                : Self.summary(counters, kernelDrops: drops, perSocket: perSocket)) + "\n")
        Terminal.finish()
    }

    /// The counters of several servers as one; `senders` adds up because each sender reaches one socket only.
    static func total(_ all: [EchoServer.Counters]) -> EchoServer.Counters {
        // There is always one server; the first one's counters start the sum.
        var sum = all[0]
        for c in all.dropFirst() {
            sum.received += c.received
            sum.receivedBytes += c.receivedBytes
            sum.replied += c.replied
            sum.repliedBytes += c.repliedBytes
            sum.senders += c.senders
            sum.dropped.merge(c.dropped, uniquingKeysWith: +)
        }
        return sum
    }

    /// True for a numeric unicast address: the system hands a socket bound there only datagrams sent to that
    /// address (broadcast and multicast go to wildcard-bound sockets, and to those bound to that very address).
    static func receivesOnlyUnicast(_ endpoint: UDPEndpoint) -> Bool {
        guard case .ip(.name(let text), _) = endpoint.kind, let address = try? UDPAddress(ip: text, port: 0) else {
            return false
        }
        return !address.isAny && !address.isBroadcastOrMulticast
    }

    static func logger(_ formatter: DatagramFormatter) -> @Sendable (EchoServer.Event) -> Void {
        { event in
            var extra: [(key: String, value: JSONText.Value)] = []
            if let reason = event.dropped { extra.append(("dropped", .string(reason.rawValue))) }
            // Never waits for the reader of stdout: a stalled pipe costs display lines, not answers.
            Terminal.display(formatter.render(event.datagram, extra: extra))
        }
    }

    static func summary(_ c: EchoServer.Counters, kernelDrops: Int? = nil, perSocket: [Int]? = nil) -> String {
        var text =
            "\(c.received) received (\(c.receivedBytes) bytes) from \(c.senders) sender\(c.senders == 1 ? "" : "s"), \(c.replied) replied (\(c.repliedBytes) bytes)"
        if c.droppedTotal > 0 {
            let reasons = EchoServer.DropReason.allCases.compactMap { r in c.dropped[r].map { "\(r.rawValue) \($0)" } }
            text += ", \(c.droppedTotal) not answered (\(reasons.joined(separator: ", ")))"
        }
        if let kernelDrops, kernelDrops > 0 { text += ", \(kernelDrops) dropped by the kernel (receive buffer full)" }
        if let perSocket { text += "; received per socket: \(perSocket.map(String.init).joined(separator: ", "))" }
        return text
    }

    /// The summary for scripts: counts, each drop reason (0 when none), and the kernel's drops (null when unknown).
    static func jsonSummary(_ c: EchoServer.Counters, kernelDrops: Int?, perSocket: [Int]? = nil) -> String {
        var fields: [(key: String, value: JSONText.Value)] = [
            ("received", .int(c.received)), ("received_bytes", .int(c.receivedBytes)), ("senders", .int(c.senders)),
            ("replied", .int(c.replied)), ("replied_bytes", .int(c.repliedBytes)),
            ("not_answered", .int(c.droppedTotal)),
            (
                "dropped",
                .raw(
                    JSONText.object(
                        EchoServer.DropReason.allCases.map {
                            (key: $0.rawValue, value: JSONText.Value.int(c.dropped[$0] ?? 0))
                        }))
            ),
            ("kernel_drops", kernelDrops.map { .int($0) } ?? .null),
        ]
        // With --threads: what each socket received, in the order they were bound.
        if let perSocket {
            fields.append(("received_per_socket", .raw("[" + perSocket.map(String.init).joined(separator: ",") + "]")))
        }
        return JSONText.object(fields)
    }

    /// Shows each datagram and answers it with the next line of standard input. The prompt goes to stderr, and only
    /// when a person types (stdin is a terminal), so stdout stays the datagrams alone. A line that cannot be sent
    /// (bad hex, a bad escape, too large) is reported and the same datagram waits for another line. SIGINT, SIGTERM
    /// or the end of input (once no typed line is left) stop the server, with a summary on stderr.
    private func runInteractive(
        _ socket: UDPSocket, screen: EchoServer, formatter: DatagramFormatter, encoding: TextEncoding
    ) async throws {
        let counters = NIOLockedValueBox(InteractiveCounters())
        let session = InteractiveEcho(
            socket: socket, screen: screen, formatter: formatter, payload: payload, prompt: Terminal.stdinIsTTY,
            counters: counters)
        try await closing(socket) { try await withSignalCancellation { try await session.run() } }
        Terminal.writeStderr(counters.withLockedValue { $0.line } + "\n")
        Terminal.finish()
    }
}

/// The loop of `udp echo --interactive`: one datagram at a time is shown and waits for its reply; the next is read
/// from the socket only then (the kernel and the socket's queue hold the others). Standard input is read all
/// along, so its end is seen even while no datagram waits.
struct InteractiveEcho: Sendable {
    let socket: UDPSocket
    /// The automatic server's screening, so nothing a person types can become a broadcast.
    let screen: EchoServer
    let formatter: DatagramFormatter
    let payload: PayloadOptions
    let prompt: Bool
    let counters: NIOLockedValueBox<InteractiveCounters>

    private enum Event: Sendable {
        case datagram(Datagram)
        case line([UInt8])
        case endOfInput
        case socketEnded
        case failed(any Error)
    }

    func run() async throws {
        let (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        // One permit per datagram to read: the next is taken from the socket once the current one is answered.
        let (permits, permit) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .unbounded)
        let socket = self.socket
        let input = Task {
            for await line in StandardInput.lines() { continuation.yield(.line(line)) }
            continuation.yield(.endOfInput)
        }
        let receiver = Task {
            var datagrams = socket.datagrams.makeAsyncIterator()
            for await _ in permits {
                do {
                    guard let datagram = try await datagrams.next() else {
                        continuation.yield(.socketEnded)
                        return
                    }
                    continuation.yield(.datagram(datagram))
                } catch is CancellationError {
                    return
                } catch {
                    continuation.yield(.failed(error))
                    return
                }
            }
        }
        defer {
            input.cancel()
            receiver.cancel()
            permit.finish()
            continuation.finish()
        }
        var current: Datagram?
        var typed: [[UInt8]] = []
        var inputEnded = false
        permit.yield()
        for await event in events {
            switch event {
            case .datagram(let datagram):
                if let refused = screen.refusal(for: datagram) {
                    // Not for a person to answer; one from a Unix sender without a path is still shown.
                    if refused == .unboundSender {
                        counters.withLockedValue { $0.received(datagram) }
                        Terminal.display(formatter.render(datagram))
                    }
                    permit.yield()
                    continue
                }
                counters.withLockedValue { $0.received(datagram) }
                Terminal.display(formatter.render(datagram))
                current = datagram
                if prompt && typed.isEmpty { Terminal.writeStderr("reply> ") }
            case .line(let line):
                typed.append(line)
            case .endOfInput:
                inputEnded = true
            case .socketEnded:
                return
            case .failed(let error):
                throw error
            }
            while let datagram = current, !typed.isEmpty {
                let line = typed.removeFirst()
                if try await answer(datagram, with: line) {
                    current = nil
                    permit.yield()
                } else if prompt && typed.isEmpty {
                    Terminal.writeStderr("reply> ")
                }
            }
            if inputEnded && typed.isEmpty { return }
        }
    }

    /// Sends `line` as the reply to `datagram`. Returns false when the line was refused (the operator types it again),
    /// true when the datagram is done with (answered, or the send failed for a reason another line would not fix).
    private func answer(_ datagram: Datagram, with line: [UInt8]) async throws -> Bool {
        do {
            let bytes = try payload.bytes(fromLine: line)
            try await socket.send(bytes: bytes, to: datagram.sender)
            counters.withLockedValue { $0.replied(bytes.count) }
            return true
        } catch let error as PayloadError {
            Terminal.writeStderr("udp: \(error); type the reply again\n")
        } catch let error as CLIFailure {
            Terminal.writeStderr("udp: \(error); type the reply again\n")
        } catch let error as UDPError {
            if case .messageTooLarge = error {
                Terminal.writeStderr("udp: \(error); type the reply again\n")
                return false
            }
            // A socket closed by a fatal error cannot go on; anything else loses this reply only.
            if case .closed = error { throw error }
            if !socket.channel.isActive { throw error }
            Terminal.writeStderr("udp: \(error)\n")
            counters.withLockedValue { $0.failed += 1 }
            return true
        }
        return false
    }
}

/// What `udp echo --interactive` did, for its summary.
struct InteractiveCounters: Sendable {
    var datagrams = 0
    var bytes = 0
    var senders = Set<UDPAddress>()
    var repliedCount = 0
    var repliedBytes = 0
    var failed = 0

    mutating func received(_ datagram: Datagram) {
        datagrams += 1
        bytes += datagram.payload.readableBytes
        if senders.count < 100_000 { senders.insert(datagram.sender) }
    }

    mutating func replied(_ size: Int) {
        repliedCount += 1
        repliedBytes += size
    }

    var line: String {
        var text =
            "\(datagrams) received (\(bytes) bytes) from \(senders.count) sender\(senders.count == 1 ? "" : "s"), \(repliedCount) replied (\(repliedBytes) bytes)"
        if failed > 0 { text += ", \(failed) failed" }
        let unanswered = datagrams - repliedCount - failed
        if unanswered > 0 { text += ", \(unanswered) not answered" }
        return text
    }
}
