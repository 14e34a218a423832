import ArgumentParser
import Foundation
import NIOCore
import UDPKit
import UDPServers

struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Echo server; with --reply, a greeting server (\"Hello, NAME!\"). Protected against abuse by default.",
        discussion: """
        Replaces the classic Python echo server and greeting server (a recvfrom/sendto loop). Each datagram goes back to its sender byte for byte, or, with --reply, a reply built from a template. Protections, on by default: no reply to source port 0 or to the loop-prone ports 7, 13, 17, 19 and 37; a reply is never larger than its request unless the template makes it so, and then each source gets at most --rate replies per second; --allow/--deny lists. Unanswered datagrams are counted by reason in the summary (on Ctrl-C or SIGTERM).

        Template placeholders: {text} (the request's bytes), {hex}, {from}, {port}, {time}, {count}, {length}; {{ and }} are literal braces.

        Examples:
          udp echo 9999
          udp echo 9999 --reply 'Hello, {text}!'    a greeting server
          udp echo 127.0.0.1:9999 --allow 127.0.0.0/8 --quiet
          udp echo 9999 --interactive               you type each reply
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

    @Option(name: .customLong("rate"), parsing: .unconditional, help: ArgumentHelp("Replies per second per source when a reply is larger than its request.", valueName: "per-second"))
    var rateOption = PerSecond(20)

    var rate: Double { rateOption.value }

    @Flag(help: "Answer source ports 7, 13, 17, 19 and 37 too.")
    var allowLoopPorts = false

    @Flag(help: "Allow replies larger than requests without a rate limit.")
    var allowAmplification = false

    @Flag(help: "Print the bound address on stderr.")
    var showPort = false

    @Flag(name: .shortAndLong, help: "No line per datagram.")
    var quiet = false

    @Flag(help: "One JSON object per datagram.")
    var json = false

    @OptionGroup var payload: PayloadOptions
    @OptionGroup var network: NetworkOptions
    @OptionGroup var replies: EchoReplyOptions

    func validate() throws {
        try replies.validate(interactive: interactive)
        guard rate > 0, rate.isFinite else { throw ValidationError("--rate must be more than 0") }
        if interactive && reply != nil { throw ValidationError("--interactive and --reply cannot be used together") }
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
        if allowLoopPorts { config.blockedSourcePorts = [0] }
        try replies.configure(&config, encoding: encoding, reply: reply)

        var options = UDPSocketOptions()
        // Room for a burst from many clients before the kernel drops (the default is about 200 KiB).
        options.receiveBufferSize = 1 << 20
        let socket = try await UDPSocket.bind(to: try UDPEndpoint.parse(address, defaultHost: .any), family: try network.family(), options: options)
        if showPort || Terminal.stderrIsTTY { Terminal.writeStderr("echo server on \(socket.localAddress)\n") }
        let formatter = DatagramFormatter(style: json ? .json : payload.hex ? .hex : .text, encoding: encoding)
        if interactive {
            try await runInteractive(socket, formatter: formatter, encoding: encoding)
            return
        }
        let server = EchoServer(socket: socket, configuration: config)
        let live = LiveLine {
            let c = server.counters
            return "\(c.received) received, \(c.replied) replied, \(c.droppedTotal) not answered"
        }
        let log = quiet ? nil : Self.logger(formatter)
        try await closing(socket) { try await withSignalCancellation {
            try await live.while {
                do {
                    try await server.run(onEvent: log)
                } catch is CancellationError {}
            }
        } }
        Terminal.flushStdout()
        Terminal.writeStderr(Self.summary(server.counters) + "\n")
    }

    static func logger(_ formatter: DatagramFormatter) -> @Sendable (EchoServer.Event) -> Void {
        { event in
            var extra: [(key: String, value: JSONText.Value)] = []
            if let reason = event.dropped { extra.append(("dropped", .string(reason.rawValue))) }
            Terminal.writeStdout(formatter.render(event.datagram, extra: extra))
        }
    }

    static func summary(_ c: EchoServer.Counters) -> String {
        var text = "\(c.received) received (\(c.receivedBytes) bytes) from \(c.senders) sender\(c.senders == 1 ? "" : "s"), \(c.replied) replied (\(c.repliedBytes) bytes)"
        if c.droppedTotal > 0 {
            let reasons = EchoServer.DropReason.allCases.compactMap { r in c.dropped[r].map { "\(r.rawValue) \($0)" } }
            text += ", \(c.droppedTotal) not answered (\(reasons.joined(separator: ", ")))"
        }
        return text
    }

    private func runInteractive(_ socket: UDPSocket, formatter: DatagramFormatter, encoding: TextEncoding) async throws {
        let payload = self.payload
        try await closing(socket) { try await withSignalCancellation {
            var lines = StandardInput.lines().makeAsyncIterator()
            do {
                for try await datagram in socket.datagrams {
                    Terminal.writeStdout(formatter.render(datagram))
                    Terminal.writeStdout("reply> ")
                    Terminal.flushStdout()
                    guard let line = await lines.next() else { break }
                    let bytes = try payload.bytes(fromLine: line)
                    try await socket.send(bytes: bytes, to: datagram.sender)
                }
            } catch is CancellationError {}
        } }
    }
}
