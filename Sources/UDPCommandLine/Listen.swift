import ArgumentParser
import NIOCore
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Listen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Print every datagram that arrives: time, sender, length, and the text or a hex dump.",
        discussion: """
            Replaces the classic Python receiver (bind + a recvfrom(1024) loop), without its silent truncation: datagrams up to 65,535 bytes arrive whole, and with --max-size a cut datagram is always marked. Text is shown escaped, so a datagram cannot drive your terminal. On exit (Ctrl-C, --count, --timeout) a summary goes to stderr (with --json, as one JSON object), counting the datagrams the kernel dropped because the receive buffer was full; when --timeout passes with no datagram at all it says so and exits 75 (-q: no summary and no such line, only the exit code).

            --json: one object per datagram with time, from, port, length, truncated, payload (base64), text (absent when the payload is not valid text in --encoding), to, cast (unicast, broadcast or multicast) and interface (to and interface are null when unknown, as on Unix sockets).

            A datagram sent as a broadcast or to a multicast group is marked so, with the address it was sent to and the interface it came in on (--json: the fields to, cast and interface, for every datagram). --join receives a multicast group: on --interface (needed for IPv4 on a host without a default route), and with --source only from that sender (source-specific multicast). Listeners that join share their port, so several on one host all receive.

            Examples:
              udp listen 9999                         any address, IPv4 and IPv6
              udp listen 127.0.0.1:9999 --hex         hex dump of each datagram
              udp listen 9999 --json | jq .text       one JSON object per datagram
              udp listen 9999 --raw > capture.bin     payload bytes only, for pipes
              udp listen 9999 --count 1 --timeout 5s  one datagram, wait at most 5s
              udp listen 9999 --encoding gb18030      decode GBK/GB18030 text
              udp listen unix:/tmp/app.sock           a Unix-domain datagram socket
              udp listen 2425                         IP Messenger broadcasts, marked
              udp listen 5000 --join 239.1.2.3 --interface eth0
              udp listen 5000 --join 232.1.1.1 --source 10.1.1.7 --interface eth0
              udp listen 5355 --join ff02::1:3 --interface eth0
            """
    )

    @Argument(help: ArgumentHelp("[HOST:]PORT to bind, or a Unix socket path.", valueName: "address"))
    var address: String

    @Flag(
        help:
            "One JSON object per datagram: time, from, port, length, truncated, payload (base64), text (absent when not valid text), to, cast, interface."
    )
    var json = false

    @Flag(help: "Write only the payload bytes, nothing else (for pipes).")
    var raw = false

    @Option(parsing: .unconditional, help: "Stop after this many datagrams.")
    var count: Int?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Stop when no datagram arrives for this long (exit 75 if none arrived at all).", valueName: "duration"))
    var timeout: DurationArgument?

    @Option(
        parsing: .unconditional,
        help: "Receive at most this many bytes per datagram (1 to 65535); longer ones are cut and marked truncated.")
    var maxSize: Int = 65_535

    @Flag(help: "Let other sockets bind the same port too (SO_REUSEADDR and SO_REUSEPORT).")
    var reuse = false

    @Option(
        help: ArgumentHelp(
            "Join this multicast group (IPv4 224.0.0.0/4 or IPv6 ff00::/8); repeat for several.", valueName: "group"))
    var join: [String] = []

    @Option(help: ArgumentHelp("With --join: the interface to join on.", valueName: "name"))
    var interface: String?

    @Option(
        help: ArgumentHelp(
            "With --join: receive only what this address sends to the group; repeat for several.", valueName: "address")
    )
    var source: [String] = []

    @Flag(help: "Print the bound address, with the port the system chose, on stderr (always shown on a terminal).")
    var showPort = false

    @Flag(
        name: .shortAndLong,
        help: "No summary on exit, and no line when --timeout passes with nothing received (exit 75 still).")
    var quiet = false

    @Option(
        help: ArgumentHelp(
            "Also write every datagram to this pcap file (raw IP link type; Wireshark and tshark open it); '-' writes the capture to stdout instead of the usual output.",
            valueName: "file"))
    var pcap: String?

    @OptionGroup var payload: DisplayOptions
    @OptionGroup var network: NetworkOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let timeout, timeout.seconds <= 0 {
            throw ValidationError("--timeout must be more than 0 (leave it out to wait without end)")
        }
        // A UDP datagram carries at most 65,535 bytes; a Unix datagram socket can carry more.
        let unix =
            address.hasPrefix("unix:") || address.hasPrefix("/") || address.hasPrefix("./") || address.hasPrefix("../")
        let largest = unix ? 1_048_576 : 65_535
        guard (1...largest).contains(maxSize) else {
            throw ValidationError(
                "--max-size must be from 1 to \(largest)\(unix ? "" : " (no UDP datagram is larger than 65535 bytes)")")
        }
        if [json, raw, payload.hex].filter({ $0 }).count > 1 {
            throw ValidationError("choose one of --json, --raw and --hex")
        }
        if join.isEmpty && interface != nil { throw ValidationError("--interface needs --join") }
        if join.isEmpty && !source.isEmpty { throw ValidationError("--source needs --join") }
    }

    func run() async throws {
        let endpoint = try UDPEndpoint.parse(address, defaultHost: .any)
        let encoding = try payload.textEncoding()
        let membership = try Membership(groups: join, sources: source, interface: interface)
        var options = UDPSocketOptions()
        options.maximumDatagramSize = maxSize
        options.reuseAddress = reuse || membership != nil
        options.reusePort = reuse || membership != nil
        if case .ip = endpoint.kind { options.receivePacketInfo = true }
        var family = try network.family()
        if let membership {
            if let family, family != membership.family {
                throw CLIFailure.usage("-\(family == .ipv4 ? 4 : 6) does not match the family of the group \(join[0])")
            }
            family = membership.family
        }
        let socket = try await UDPSocket.bind(to: endpoint, family: family, options: options)
        let announce = showPort || (!quiet && Terminal.stderrIsTTY)
        if announce {
            Terminal.writeStderr("listening on \(socket.localAddress)\n")
        }
        if let membership {
            do {
                try await membership.join(socket)
            } catch {
                await socket.close()
                throw error
            }
            if announce { Terminal.writeStderr(membership.description + "\n") }
        }
        let formatter = DatagramFormatter(style: json ? .json : payload.hex ? .hex : .text, encoding: encoding)
        let pcapSink: PcapSink?
        do { pcapSink = try pcap.map { try PcapSink(path: $0, local: socket.localAddress) } } catch {
            await socket.close()
            throw error
        }
        defer { pcapSink?.close() }
        let limit = count
        let idle = timeout?.duration
        let raw = self.raw
        let summary = try await closing(socket) {
            try await withSignalCancellation {
                var summary = TrafficSummary()
                var interrupted = false
                do {
                    receiving: while true {
                        let batch = try await socket.receiveBatch(timeout: idle)
                        if batch.isEmpty { break }
                        for datagram in batch {
                            // A backlog (a batch can hold thousands) must not delay a signal.
                            try Task.checkCancellation()
                            summary.record(datagram)
                            pcapSink?.write(datagram)
                            if pcapSink?.ownsStdout == true {
                                // The capture is the output.
                            } else if raw {
                                // The display never holds up receiving: lines a slow reader cannot take are counted instead.
                                Terminal.display(bytes: Array(datagram.payload.readableBytesView))
                            } else {
                                Terminal.display(formatter.render(datagram))
                            }
                            if let limit, summary.datagrams >= limit { break receiving }
                        }
                    }
                } catch is CancellationError {
                    interrupted = true
                } catch UDPError.closed {
                }
                summary.interrupted = interrupted
                // Read before the socket closes: the count belongs to the socket.
                summary.kernelDrops = socket.kernelDrops
                return summary
            }
        }
        if !quiet { Terminal.writeStderr((json ? summary.json : summary.line) + "\n") }
        Terminal.finish()
        if summary.datagrams == 0, !summary.interrupted, let timeout {
            throw CLIFailure(
                message: quiet ? "" : "no datagram arrived within \(DurationArgument.format(seconds: timeout.seconds))",
                code: ExitCode32.timedOut)
        }
    }
}

/// The multicast groups a listener joins: each group from every source (or from any), on one interface.
struct Membership: CustomStringConvertible {
    var groups: [UDPAddress]
    var sources: [UDPAddress]
    var interface: NetworkInterface?

    /// Nil when no group is given.
    init?(groups: [String], sources: [String], interface: String?) throws {
        guard !groups.isEmpty else { return nil }
        self.groups = try groups.map { try Self.address($0, what: "group") }
        self.sources = try sources.map { try Self.address($0, what: "source") }
        self.interface = try interface.map(NetworkInterface.lookup)
        for group in self.groups where !group.isMulticast {
            throw UDPError.invalidAddress(
                group.ip ?? "", reason: "not a multicast group (IPv4 224.0.0.0/4, IPv6 ff00::/8)")
        }
        if Set((self.groups + self.sources).map(\.family)).count > 1 {
            throw CLIFailure.usage("groups and sources must all be IPv4 or all IPv6")
        }
    }

    var family: UDPAddress.Family { groups[0].family }

    func join(_ socket: UDPSocket) async throws {
        do {
            for group in groups {
                if sources.isEmpty {
                    try await socket.join(group: group, interface: interface)
                }
                for source in sources {
                    try await socket.join(group: group, interface: interface, source: source)
                }
            }
        } catch UDPError.interfaceUnavailable("", let reason) {
            throw UDPError.interfaceUnavailable("", reason: reason + " (--interface)")
        }
    }

    var description: String {
        var text = "joined " + groups.compactMap(\.ip).joined(separator: ", ")
        if !sources.isEmpty { text += " from " + sources.compactMap(\.ip).joined(separator: ", ") }
        if let interface { text += " on \(interface.name)" }
        return text
    }

    private static func address(_ text: String, what: String) throws -> UDPAddress {
        do {
            return try UDPAddress(ip: text, port: 0)
        } catch {
            throw UDPError.invalidAddress(text, reason: "a multicast \(what) must be a numeric IPv4 or IPv6 address")
        }
    }
}

/// Counts what a listener saw, for the summary line printed on exit.
struct TrafficSummary: Sendable {
    var datagrams = 0
    var bytes = 0
    var truncated = 0
    var senders = Set<UDPAddress>()
    var interrupted = false
    /// Datagrams the kernel dropped for the socket (receive buffer full); nil when the system does not say.
    var kernelDrops: Int?

    mutating func record(_ datagram: Datagram) {
        datagrams += 1
        bytes += datagram.payload.readableBytes
        if datagram.truncated { truncated += 1 }
        if senders.count < 100_000 { senders.insert(datagram.sender) }
    }

    var line: String {
        var text =
            "\(datagrams) datagram\(datagrams == 1 ? "" : "s"), \(bytes) byte\(bytes == 1 ? "" : "s") from \(senders.count) sender\(senders.count == 1 ? "" : "s")"
        if truncated > 0 { text += ", \(truncated) truncated" }
        if let kernelDrops, kernelDrops > 0 { text += ", \(kernelDrops) dropped by the kernel (receive buffer full)" }
        return text
    }

    /// The summary with --json (on stderr, so that standard output holds only datagrams).
    var json: String {
        JSONText.object([
            ("datagrams", .int(datagrams)), ("bytes", .int(bytes)), ("senders", .int(senders.count)),
            ("truncated", .int(truncated)), ("kernel_drops", kernelDrops.map { .int($0) } ?? .null),
        ])
    }
}
