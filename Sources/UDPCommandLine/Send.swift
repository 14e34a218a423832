import ArgumentParser
import NIOCore
import UDPKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send datagrams: the message words as one datagram, or one datagram per line of stdin.",
        discussion: """
            Replaces the classic Python sender (socket + sendto). With no MESSAGE, each line of standard input (without its newline) is sent as one datagram; --each sends each MESSAGE word as its own datagram. HOST PORT or HOST:PORT, not both: in 'udp send 127.0.0.1:9999 9998 x' the 9998 is part of the message (a warning says so).

            Broadcast: <broadcast> (or broadcast) sends to the broadcast address of every interface that is up, so it works without a default route; --interface picks one. A directed address such as 10.1.1.255 works as it is, and 255.255.255.255 is sent as itself (add --interface where there is no default route). Broadcast permission (SO_BROADCAST) is turned on by itself.

            Multicast: a group address (224.0.0.0/4, ff00::/8) is sent to on --interface, with --ttl hops (default 1: the local network) and --no-loop to keep this host's own members from receiving it.

            Saved packets: @NAME in place of the destination and message sends the packet saved under NAME in udp studio (list them with 'udp packets'), to its saved destination, with its saved count and interval unless --count or --interval is given.

            Examples:
              udp send 127.0.0.1 9999 hello world       one datagram: "hello world"
              udp send [::1]:9999 --each Tom Jerry      two datagrams
              udp send localhost 9999 --hex '48 65 6c 6c 6f 0a'
              udp send 127.0.0.1 2425 -e '1:100:will:will-pc:32:hi\\x00'
              printf 'a\\nb\\n' | udp send 127.0.0.1 9999    two datagrams
              udp send 127.0.0.1 9999 --file packet.bin --count 10 --interval 100ms
              udp send unix:/tmp/app.sock ping
              udp send '<broadcast>' 2425 hello        every broadcast address
              udp send 239.1.2.3 5000 --interface eth0 --ttl 4 hello
              udp send ff02::1:3 5355 --interface eth0 hello
              udp send 127.0.0.1 9999 hi --from 127.0.0.1:5000   from a fixed port
              udp send @hello --count 1                 the saved packet "hello", once
            """
    )

    @Argument(
        help: ArgumentHelp(
            "HOST PORT or HOST:PORT, then the message words; or @NAME, a saved packet.", valueName: "target-and-message"
        ))
    var words: [String] = []

    @Flag(
        help: "Allow sending to a broadcast address (SO_BROADCAST); on by itself for this host's broadcast addresses.")
    var broadcast = false

    @Option(
        parsing: .unconditional,
        help: "IP time-to-live / hop limit (1-255); for a multicast group, how many routers it may cross.")
    var ttl: Int?

    @Option(
        help: ArgumentHelp(
            "For <broadcast>, 255.255.255.255 and multicast groups: the interface to send on.", valueName: "name"))
    var interface: String?

    @Flag(help: "With <broadcast>: send to 255.255.255.255 itself rather than to each interface's broadcast address.")
    var limited = false

    @Flag(
        inversion: .prefixedNo,
        help: "For a multicast group: whether this host's own members receive the datagrams too (default: yes).")
    var loop: Bool?

    @OptionGroup var outgoing: OutgoingOptions
    @OptionGroup var network: NetworkOptions

    func validate() throws {
        if let ttl, !(1...255).contains(ttl) { throw ValidationError("--ttl must be from 1 to 255") }
    }

    func run() async throws {
        try await SendSettings(self).run()
    }
}

/// What `udp send` was told, as plain values: from the parsed options (`init(_:)`), or, for the plain form
/// `udp send WORDS...`, the defaults with the words (`plain(_:)`), so that both run the same code.
struct SendSettings: Equatable, Sendable {
    var words: [String] = []
    var broadcast = false
    var ttl: Int?
    var interface: String?
    var limited = false
    var loop: Bool?
    var outgoing = OutgoingSettings()
    var network = NetworkSettings()

    /// Sends what these settings say: `udp send`'s whole run after parsing.
    func run() async throws {
        useOneEventLoop()
        if words.first?.hasPrefix("@") == true { return try await sendSaved(words) }
        let (endpoint, message) = try parseTarget(words)
        try outgoing.check(message: message)
        let family = try network.family()
        var plan: SendPlan
        if case .ip(.broadcast, let port) = endpoint.kind {
            // Resolving explains why IPv6 has no broadcast.
            if family == .ipv6 { _ = try await endpoint.resolve(family: family) }
            if loop != nil { throw CLIFailure.usage("--loop and --no-loop apply to multicast groups") }
            plan = try SendPlan.broadcast(port: port, interface: interface, limited: limited)
        } else {
            plan = SendPlan(destinations: [try await resolveOne(endpoint, family: family)])
            try plan.adapt(interface: interface, limited: limited, loop: loop, ttl: ttl)
        }
        plan.options.broadcast = plan.options.broadcast || broadcast
        plan.options.timeToLive = ttl
        try await outgoing.deliver(message: message, plan: plan)
    }
}

extension SendSettings {
    /// What the parsed `udp send` was given.
    init(_ parsed: Send) {
        self.init(
            words: parsed.words, broadcast: parsed.broadcast, ttl: parsed.ttl, interface: parsed.interface,
            limited: parsed.limited, loop: parsed.loop, outgoing: OutgoingSettings(parsed.outgoing),
            network: NetworkSettings(parsed.network))
    }

    /// The settings for `udp send WORDS...` (`arguments` without the program name) when parsing them would give
    /// just those words, every option at its default: no word starts with '-' (an option, `--`, or a negative
    /// number the parser would refuse), and the first is not a saved packet's @NAME (which reads the packet
    /// library, so parsing is a small part of its time). Nil for anything else, which goes to the parser. A command
    /// this short spends most of its time in the parser, which reflects over every option type before it reads a
    /// word.
    static func plain(_ arguments: [String]) -> SendSettings? {
        guard arguments.first == "send", arguments.count > 1 else { return nil }
        let words = Array(arguments.dropFirst())
        guard !words[0].hasPrefix("@"), !words.contains(where: { $0.hasPrefix("-") }) else { return nil }
        return SendSettings(words: words)
    }
}

/// Where datagrams go and the socket settings that takes.
struct SendPlan {
    var destinations: [UDPAddress]
    var options = UDPSocketOptions()
    /// The local address to send from, when the plan needs one (255.255.255.255 on a chosen interface).
    var local: UDPAddress?

    /// `<broadcast>`: each interface's directed broadcast address, or 255.255.255.255 with `limited`.
    static func broadcast(port: Int, interface: String?, limited: Bool) throws -> SendPlan {
        if limited {
            var plan = SendPlan(destinations: [try UDPAddress(ip: "255.255.255.255", port: port)])
            try plan.adapt(interface: interface, limited: true, loop: nil, ttl: nil)
            return plan
        }
        var plan = SendPlan(destinations: try UDPAddress.broadcastAddresses(port: port, interface: interface))
        plan.options.broadcast = true
        return plan
    }

    /// Applies the options that depend on what a single destination is: a multicast group, 255.255.255.255, or
    /// anything else (where they do not apply).
    mutating func adapt(interface name: String?, limited: Bool, loop: Bool?, ttl: Int?) throws {
        let destination = destinations[0]
        if limited && !destination.isLimitedBroadcast {
            throw CLIFailure.usage("--limited applies to <broadcast> and 255.255.255.255")
        }
        if loop != nil && !destination.isMulticast {
            throw CLIFailure.usage("--loop and --no-loop apply to multicast groups")
        }
        let interface = try name.map(NetworkInterface.lookup)
        if destination.isMulticast {
            options.multicastInterface = interface
            options.multicastLoop = loop
            options.multicastTimeToLive = ttl
        } else if destination.isLimitedBroadcast {
            options.broadcast = true
            if let interface {
                // 255.255.255.255 leaves by the route to it (the default route) unless the socket is bound to an
                // address of the interface, which is the portable way to pick one.
                guard let address = interface.firstAddress(.ipv4) else {
                    throw UDPError.interfaceUnavailable(
                        interface.name, reason: "it has no IPv4 address to send 255.255.255.255 from")
                }
                local = address
            }
        } else if interface != nil {
            throw CLIFailure.usage(
                "--interface applies to <broadcast>, 255.255.255.255 and multicast groups; other destinations go where the routing table sends them"
            )
        }
    }
}

/// What to send and how often: shared by `udp send` and `udp broadcast`.
struct OutgoingOptions: ParsableArguments {
    @Flag(help: "Send each MESSAGE word as its own datagram.")
    var each = false

    @Option(help: ArgumentHelp("Send the whole file as one datagram ('-' for stdin).", valueName: "path"))
    var file: String?

    // Optional so that an explicit `--count 1` can be told from no --count (which lets `@NAME` use its saved count).
    @Option(
        name: .customLong("count"), parsing: .unconditional,
        help: "Send each datagram this many times (to each destination); default 1, or a saved packet's own count.")
    var givenCount: Int?

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Pause between datagrams, e.g. 100ms, 1s.", valueName: "duration"))
    var interval: DurationArgument?

    @Option(help: ArgumentHelp("Local address to send from: [HOST:]PORT.", valueName: "address"))
    var from: String?

    @Flag(help: "Print the local address, with the port the system chose, on stderr.")
    var showPort = false

    @Flag(name: .shortAndLong, help: "Say nothing on stderr.")
    var quiet = false

    @OptionGroup var payload: MessageOptions
    @OptionGroup var shaping: ShapingOptions

    @Flag(help: "Repeat until interrupted (needs --interval); the count is printed on exit.")
    var forever = false

    func validate() throws {
        if forever && interval == nil { throw ValidationError("--forever needs --interval, e.g. --interval 1s") }
        guard (1...1_000_000_000).contains(OutgoingSettings(self).count) else {
            throw ValidationError("--count must be from 1 to 1000000000")
        }
        try payload.checkMessageOptions()
        if file != nil && each { throw ValidationError("--file and --each cannot be used together") }
    }

}

/// What to send and how often, as plain values (see `OutgoingOptions`).
struct OutgoingSettings: Equatable, Sendable {
    var each = false
    var file: String?
    var givenCount: Int?
    var interval: DurationArgument?
    var from: String?
    var showPort = false
    var quiet = false
    var payload = MessageSettings()
    var shaping = ShapingSettings()
    var forever = false

    /// How many times to send each datagram: `--count`, else 1.
    var count: Int { givenCount ?? 1 }

    /// Checks what can be checked before any address is resolved.
    func check(message: [String]) throws {
        if file != nil && !message.isEmpty { throw CLIFailure.usage("give either MESSAGE words or --file, not both") }
        if each && message.isEmpty {
            throw CLIFailure.usage(
                "--each needs MESSAGE words: each word is sent as its own datagram (stdin lines are already one datagram each)"
            )
        }
        _ = try payload.textEncoding()
        _ = try parseChecksum(shaping.append)
    }

    /// Sends the message (or the file, or each line of stdin) to every destination of `plan`, from one socket.
    func deliver(message: [String], plan: SendPlan) async throws {
        let first = plan.destinations[0]
        var local = plan.local
        if let from {
            let bound = try await resolveOne(
                try UDPEndpoint.parse(from, defaultHost: .any), family: first.family == .unix ? nil : first.family)
            // --from's port still applies when the plan chose the address (255.255.255.255 on an interface).
            local = local.map { $0.withPort(bound.port ?? 0) } ?? bound
        }
        // Check every message before sending anything, so bad input sends nothing.
        var datagrams: [[UInt8]] = []
        if let file {
            datagrams.append(try readFile(file))
        } else if each {
            datagrams = try message.map { try payload.bytes(from: $0) }
        } else if !message.isEmpty {
            datagrams = [try payload.bytes(from: message.joined(separator: " "))]
        }
        for datagram in datagrams { try checkSize(datagram, first) }

        let socket = try await UDPSocket.client(for: first, from: local, options: plan.options)
        if showPort { Terminal.writeStderr("local address \(socket.localAddress)\n") }
        let pause = interval?.duration
        var sent = 0
        var bytes = 0
        let stop = forever ? StopSignal() : nil
        func deliver(_ datagram: [UInt8]) async throws {
            let shaper = try shaping.shaper(for: datagram, encoding: try payload.textEncoding(), hex: payload.hex)
            // Without placeholders every datagram is the same: build it once.
            let constant = shaper.isConstant ? shaper.bytes(counter: 1) : nil
            let constantBuffer = constant.map { ByteBuffer(bytes: $0) }
            var round = 0
            while stop.map({ !$0.isSet }) ?? (round < count) {
                round += 1
                for destination in plan.destinations {
                    if sent > 0, let pause {
                        if let stop { await stop.sleep(for: pause) } else { try await Task.sleep(for: pause) }
                    }
                    if stop?.isSet == true { break }
                    let datagram = constant ?? shaper.bytes(counter: sent + 1)
                    try checkSize(datagram, destination)
                    try await socket.send(constantBuffer ?? ByteBuffer(bytes: datagram), to: destination)
                    sent += 1
                    bytes += datagram.count
                }
            }
        }
        do {
            try await closing(socket) {
                if file != nil || !message.isEmpty {
                    for datagram in datagrams { try await deliver(datagram) }
                } else {
                    for await line in StandardInput.lines() {
                        try Task.checkCancellation()
                        let datagram = try payload.bytes(fromLine: line)
                        try checkSize(datagram, first)
                        try await deliver(datagram)
                    }
                }
            }
        } catch UDPError.networkUnreachable(let address)
            where (first.isLimitedBroadcast && plan.local == nil)
            || (first.isMulticast && plan.options.multicastInterface == nil)
        {
            // Both go by the default route unless told otherwise: say how to tell.
            let alternative =
                first.isLimitedBroadcast ? ", or drop --limited to reach each subnet's broadcast address" : ""
            throw CLIFailure(
                message:
                    "network unreachable for \(address): no default route to send it by; name an interface (--interface)\(alternative)",
                code: ExitCode32.unavailable)
        }
        if sent == 0 && !quiet {
            Terminal.writeStderr("udp: warning: nothing sent: standard input was empty\n")
        }
        stop?.cancel()
        if !quiet && (Terminal.stderrIsTTY || forever) {
            let targets = plan.destinations.map(\.description).joined(separator: ", ")
            Terminal.writeStderr("sent \(sent) datagram\(sent == 1 ? "" : "s") (\(bytes) bytes) to \(targets)\n")
        }
    }

    private func checkSize(_ datagram: [UInt8], _ destination: UDPAddress) throws {
        if let limit = destination.maximumPayload, datagram.count > limit {
            throw UDPError.messageTooLarge(size: datagram.count, limit: limit)
        }
    }

    private func readFile(_ path: String) throws -> [UInt8] {
        if path == "-" { return try StandardInput.readAll() }
        guard let data = FileManager.default.contents(atPath: path) else {
            if let directory = isDirectory(path) {
                throw CLIFailure.data(
                    directory
                        ? "cannot send '\(path)': it is a directory" : "cannot read '\(path)': permission denied")
            }
            throw CLIFailure.data("cannot read '\(path)': no such file")
        }
        return Array(data)
    }
}

extension OutgoingSettings {
    /// What the parsed options say.
    init(_ parsed: OutgoingOptions) {
        self.init(
            each: parsed.each, file: parsed.file, givenCount: parsed.givenCount, interval: parsed.interval,
            from: parsed.from, showPort: parsed.showPort, quiet: parsed.quiet, payload: MessageSettings(parsed.payload),
            shaping: ShapingSettings(parsed.shaping), forever: parsed.forever)
    }
}
