import ArgumentParser
import Impairment
import UDPKit
import UDPProxy
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Proxy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract:
            "Relay between clients and a server, adding loss, delay, jitter, duplication, reordering, rate limits, corruption.",
        discussion: """
            Clients send to the proxy's port; each client gets its own upstream socket, so replies find their way back (closed after --idle-timeout without traffic). Each impairment applies to both directions, or to one with the --up- (client to server) and --down- (server to client) forms, which override the plain one. Every random decision follows --seed; the summary shows the seed of a run, so it can be replayed.

            Units: durations 250us, 20ms, 1.5s (a number needs its unit, as everywhere in udp); probabilities 5% or 0.5% (a bare number is a percentage); rates 500k, 2M, 1.5Mbit/s (bits per second).

            Examples:
              udp proxy 9000 127.0.0.1 9999 --loss 20%
              udp proxy 9000 127.0.0.1 9999 --delay 50ms --jitter 10ms --seed 7
              udp proxy --listen 127.0.0.1:9000 --to 127.0.0.1:9999 --delay 5ms
              udp proxy 9000 127.0.0.1 9999 --down-reorder 10% --rate 1M --log
            """
    )

    @Argument(help: ArgumentHelp("LISTEN_PORT HOST PORT (or use --listen and --to).", valueName: "address"))
    var words: [String] = []

    @Option(help: ArgumentHelp("[HOST:]PORT clients send to.", valueName: "address"))
    var listen: String?

    @Option(help: ArgumentHelp("HOST:PORT of the server.", valueName: "address"))
    var to: String?

    @OptionGroup(title: "Impairments (both directions)") var both: BothWays
    @OptionGroup(title: "Client to server only") var up: UpOnly
    @OptionGroup(title: "Server to client only") var down: DownOnly

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Bytes each queue of a client's direction holds before dropping: the --rate queue (default: a quarter second at the rate, at least 64 KiB), and the --delay line with --reorder's hold (default: 8 MiB).",
            valueName: "bytes"))
    var queueLimit: Int?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Bytes all clients' queues hold together before dropping.", valueName: "bytes"))
    var totalQueueLimit: Int = 64 << 20

    @Option(parsing: .unconditional, help: "Seed of every random decision (default: random, shown in the summary).")
    var seed: UInt64?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Close a client's mapping after this long without traffic.", valueName: "duration"))
    var idleTimeout: DurationArgument = DurationArgument(seconds: 60)

    @Option(parsing: .unconditional, help: "Clients served at once.")
    var maxClients: Int = 1024

    @Flag(help: "Print each datagram received (direction, peer, length, contents).")
    var log = false

    @Flag(help: "With --log: one JSON object per datagram; the summary as JSON.")
    var json = false

    @Flag(name: .shortAndLong, help: "Nothing but errors (no summary).")
    var quiet = false

    @Flag(help: "Print the bound address on stderr.")
    var showPort = false

    @OptionGroup var payload: DisplayOptions
    @OptionGroup var network: NetworkOptions

    func validate() throws {
        if let queueLimit, queueLimit < 1 { throw ValidationError("--queue-limit must be at least 1") }
        guard totalQueueLimit >= 1 else { throw ValidationError("--total-queue-limit must be at least 1") }
        guard idleTimeout.seconds > 0 else { throw ValidationError("--idle-timeout must be more than 0") }
        guard maxClients >= 1 else { throw ValidationError("--max-clients must be at least 1") }
    }

    func run() async throws {
        let (listenEndpoint, upstreamEndpoint) = try addresses()
        var configuration = UDPProxy.Configuration(
            upstream: try await resolveOne(upstreamEndpoint, family: try network.family()))
        do {
            configuration.up = try settings(both.values, up.values)
            configuration.down = try settings(both.values, down.values)
        } catch let error as ImpairmentSettingError {
            throw CLIFailure.usage(error.description)
        }
        if let seed { configuration.seed = seed }
        configuration.idleTimeout = idleTimeout.duration
        configuration.maximumClients = maxClients
        configuration.totalQueueLimit = totalQueueLimit

        let formatter = DatagramFormatter(
            style: json ? .json : payload.hex ? .hex : .text, encoding: try payload.textEncoding())
        let onEvent = log ? Self.logger(formatter) : nil
        let proxy: UDPProxy
        do {
            proxy = try await UDPProxy.bind(
                to: listenEndpoint, family: try network.family(), configuration: configuration, onEvent: onEvent)
        } catch let error as UDPProxyError {
            throw CLIFailure.usage(error.description)
        }
        if showPort || Terminal.stderrIsTTY {
            Terminal.writeStderr("proxy on \(proxy.localAddress) to \(configuration.upstream)\n")
        }
        let live = LiveLine { Self.summary(proxy.counters, seed: nil) }
        try await live.while { try await runServices([proxy]) }
        Terminal.finish()
        if !quiet {
            let counters = proxy.counters
            Terminal.writeStderr(
                (json
                    ? Self.json(counters, seed: configuration.seed) : Self.summary(counters, seed: configuration.seed))
                    + "\n")
        }
    }

    static func logger(_ formatter: DatagramFormatter) -> @Sendable (UDPProxy.Event) -> Void {
        { event in
            if formatter.style == .json {
                let extra: [(key: String, value: JSONText.Value)] = [
                    ("direction", .string(event.direction.rawValue)), ("client", .string(event.client.description)),
                ]
                Terminal.display(formatter.render(event.datagram, extra: extra))
            } else {
                let route = event.direction == .up ? "\(event.client) -> upstream" : "upstream -> \(event.client)"
                Terminal.display("[\(route)] " + formatter.render(event.datagram))
            }
        }
    }

    private func addresses() throws -> (UDPEndpoint, UDPEndpoint) {
        switch (listen, to, words.count) {
        case (let listen?, let to?, 0):
            return (try UDPEndpoint.parse(listen, defaultHost: .any), try UDPEndpoint.parse(to))
        case (nil, nil, 3):
            return (try UDPEndpoint.parse(words[0], defaultHost: .any), try UDPEndpoint(host: words[1], port: words[2]))
        case (nil, nil, 2):
            return (try UDPEndpoint.parse(words[0], defaultHost: .any), try UDPEndpoint.parse(words[1]))
        case (_?, nil, _), (nil, _?, _):
            throw CLIFailure.usage("--listen and --to go together")
        default:
            throw CLIFailure.usage("give LISTEN_PORT HOST PORT, or --listen [HOST:]PORT --to HOST:PORT")
        }
    }

    /// Settings for one direction: its own values where given, else the ones for both directions.
    private func settings(_ both: ImpairmentValues, _ own: ImpairmentValues) throws -> ImpairmentSettings {
        let merged = own.or(both)
        var settings = ImpairmentSettings()
        func percentage(_ text: String?, _ option: String) throws -> Double {
            try text.map { try Percentage(parsing: $0, option: option).fraction } ?? 0
        }
        func duration(_ text: String?, _ option: String) throws -> Duration {
            try text.map { try Duration(parsing: $0, option: option) } ?? .zero
        }
        // Errors name the option the value came from.
        func name(_ option: String, _ ownValue: String?) -> String { "--\(ownValue == nil ? "" : own.prefix)\(option)" }
        settings.loss = try percentage(merged.loss, name("loss", own.loss))
        settings.duplicate = try percentage(merged.duplicate, name("duplicate", own.duplicate))
        settings.reorder = try percentage(merged.reorder, name("reorder", own.reorder))
        settings.corrupt = try percentage(merged.corrupt, name("corrupt", own.corrupt))
        settings.delay = try duration(merged.delay, name("delay", own.delay))
        settings.jitter = try duration(merged.jitter, name("jitter", own.jitter))
        settings.rate = try merged.rate.map { try BitRate(parsing: $0, option: name("rate", own.rate)) }
        settings.queueLimit = queueLimit
        return settings
    }

    static func summary(_ c: UDPProxy.Counters, seed: UInt64?) -> String {
        func line(_ name: String, _ d: ImpairmentCounters) -> String {
            var parts = ["\(d.received) received", "\(d.forwarded) forwarded"]
            for (count, label) in [
                (d.dropped, "lost"), (d.overflowed, "over a queue limit"), (d.duplicated, "duplicated"),
                (d.reordered, "reordered"), (d.corrupted, "corrupted"),
                (d.held + d.queuedBytes > 0 ? d.held : 0, "held"),
            ] where count > 0 {
                parts.append("\(count) \(label)")
            }
            if d.queuedBytes > 0 { parts.append("\(d.queuedBytes) bytes queued") }
            if d.discarded > 0 { parts.append("\(d.discarded) still queued at exit, discarded") }
            return "\(name) \(parts.joined(separator: ", "))"
        }
        var text = "\(line("up:", c.up)); \(line("down:", c.down)); \(c.mappings) client\(c.mappings == 1 ? "" : "s")"
        if c.expired > 0 { text += ", \(c.expired) expired" }
        if c.refused > 0 {
            text += ", \(c.refused) datagrams of new clients refused (--max-clients reached or no descriptors left)"
        }
        if c.sendErrors > 0 { text += ", \(c.sendErrors) send errors" }
        if let seed { text += "; seed \(seed)" }
        return text
    }

    static func json(_ c: UDPProxy.Counters, seed: UInt64) -> String {
        func direction(_ d: ImpairmentCounters) -> JSONText.Value {
            .raw(
                JSONText.object([
                    ("received", .int(d.received)), ("forwarded", .int(d.forwarded)), ("lost", .int(d.dropped)),
                    ("overflowed", .int(d.overflowed)), ("duplicated", .int(d.duplicated)),
                    ("reordered", .int(d.reordered)),
                    ("corrupted", .int(d.corrupted)), ("held", .int(d.held)), ("queued_bytes", .int(d.queuedBytes)),
                    ("discarded", .int(d.discarded)),
                ]))
        }
        return JSONText.object([
            ("up", direction(c.up)), ("down", direction(c.down)), ("clients", .int(c.mappings)),
            ("expired", .int(c.expired)), ("refused", .int(c.refused)), ("send_errors", .int(c.sendErrors)),
            ("seed", .string(String(seed))),
        ])
    }
}

/// The raw text of the seven impairment options for one direction (or both).
struct ImpairmentValues {
    var prefix: String
    var loss, delay, jitter, duplicate, reorder, rate, corrupt: String?

    func or(_ other: ImpairmentValues) -> ImpairmentValues {
        ImpairmentValues(
            prefix: prefix, loss: loss ?? other.loss, delay: delay ?? other.delay, jitter: jitter ?? other.jitter,
            duplicate: duplicate ?? other.duplicate, reorder: reorder ?? other.reorder, rate: rate ?? other.rate,
            corrupt: corrupt ?? other.corrupt
        )
    }
}

struct BothWays: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Drop this share of datagrams, e.g. 5%.", valueName: "percent"))
    var loss: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Delay every datagram, e.g. 20ms.", valueName: "duration"))
    var delay: String?
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Vary the delay by up to this much either way (order is kept).", valueName: "duration"))
    var jitter: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Send this share of datagrams twice.", valueName: "percent"))
    var duplicate: String?
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Hold this share of datagrams back behind the next one.", valueName: "percent")) var reorder:
        String?
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Limit to this many bits per second, queueing up to --queue-limit.", valueName: "bits/s"))
    var rate: String?
    @Option(
        parsing: .unconditional, help: ArgumentHelp("Flip one bit in this share of datagrams.", valueName: "percent"))
    var corrupt: String?

    var values: ImpairmentValues {
        ImpairmentValues(
            prefix: "", loss: loss, delay: delay, jitter: jitter, duplicate: duplicate, reorder: reorder, rate: rate,
            corrupt: corrupt)
    }
}

struct UpOnly: ParsableArguments {
    @Option(name: .customLong("up-loss"), parsing: .unconditional, help: ArgumentHelp("", valueName: "percent"))
    var loss: String?
    @Option(name: .customLong("up-delay"), parsing: .unconditional, help: ArgumentHelp("", valueName: "duration"))
    var delay: String?
    @Option(name: .customLong("up-jitter"), parsing: .unconditional, help: ArgumentHelp("", valueName: "duration"))
    var jitter: String?
    @Option(name: .customLong("up-duplicate"), parsing: .unconditional, help: ArgumentHelp("", valueName: "percent"))
    var duplicate: String?
    @Option(name: .customLong("up-reorder"), parsing: .unconditional, help: ArgumentHelp("", valueName: "percent"))
    var reorder: String?
    @Option(name: .customLong("up-rate"), parsing: .unconditional, help: ArgumentHelp("", valueName: "bits/s"))
    var rate: String?
    @Option(name: .customLong("up-corrupt"), parsing: .unconditional, help: ArgumentHelp("", valueName: "percent"))
    var corrupt: String?

    var values: ImpairmentValues {
        ImpairmentValues(
            prefix: "up-", loss: loss, delay: delay, jitter: jitter, duplicate: duplicate, reorder: reorder, rate: rate,
            corrupt: corrupt)
    }
}

struct DownOnly: ParsableArguments {
    @Option(name: .customLong("down-loss"), parsing: .unconditional, help: ArgumentHelp("", valueName: "percent"))
    var loss: String?
    @Option(name: .customLong("down-delay"), parsing: .unconditional, help: ArgumentHelp("", valueName: "duration"))
    var delay: String?
    @Option(name: .customLong("down-jitter"), parsing: .unconditional, help: ArgumentHelp("", valueName: "duration"))
    var jitter: String?
    @Option(name: .customLong("down-duplicate"), parsing: .unconditional, help: ArgumentHelp("", valueName: "percent"))
    var duplicate: String?
    @Option(name: .customLong("down-reorder"), parsing: .unconditional, help: ArgumentHelp("", valueName: "percent"))
    var reorder: String?
    @Option(name: .customLong("down-rate"), parsing: .unconditional, help: ArgumentHelp("", valueName: "bits/s"))
    var rate: String?
    @Option(name: .customLong("down-corrupt"), parsing: .unconditional, help: ArgumentHelp("", valueName: "percent"))
    var corrupt: String?

    var values: ImpairmentValues {
        ImpairmentValues(
            prefix: "down-", loss: loss, delay: delay, jitter: jitter, duplicate: duplicate, reorder: reorder,
            rate: rate, corrupt: corrupt)
    }
}
