import ArgumentParser
import NIOCore
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Options shared by `request` and `client`.
struct RequestOptions: ParsableArguments {
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Wait this long for the first reply; each retry waits twice as long.", valueName: "duration")
    )
    var timeout: DurationArgument = DurationArgument(seconds: 1)

    @Option(parsing: .unconditional, help: "Resend this many times when no reply comes (0 to 20).")
    var retries: Int = 3

    @Option(help: ArgumentHelp("Local address to send from: [HOST:]PORT.", valueName: "address"))
    var from: String?

    @Flag(help: "One JSON object per reply.")
    var json = false

    @Flag(help: "Write only the reply's payload bytes.")
    var raw = false

    func validate() throws {
        guard (0...20).contains(retries) else { throw ValidationError("--retries must be from 0 to 20") }
        guard timeout.seconds > 0 else { throw ValidationError("--timeout must be more than 0") }
        // --hex is hex input and a hex dump; --json and --raw choose the output instead of the dump.
        if json && raw { throw ValidationError("choose one of --json and --raw") }
    }

    var policy: RequestPolicy { RequestPolicy(timeout: timeout.duration, retries: retries) }

    /// Opens a socket connected to the target, so ICMP "port unreachable" is reported.
    func connect(to destination: UDPAddress) async throws -> UDPSocket {
        var local: UDPAddress?
        if let from {
            local = try await resolveOne(
                try UDPEndpoint.parse(from, defaultHost: .any),
                family: destination.family == .unix ? nil : destination.family)
        }
        return try await UDPSocket.connect(to: destination, from: local)
    }

    /// Prints a reply the way the options ask.
    func show(_ reply: Reply, formatter: DatagramFormatter) {
        if raw {
            Terminal.writeStdout(bytes: Array(reply.datagram.payload.readableBytesView))
            return
        }
        let rtt = reply.roundTrip.milliseconds
        var extra: [(key: String, value: JSONText.Value)] = [("rtt_ms", .double((rtt * 1000).rounded() / 1000))]
        if reply.attempts > 1 { extra.append(("attempts", .int(reply.attempts))) }
        Terminal.writeStdout(formatter.render(reply.datagram, event: "reply", extra: extra))
    }
}

extension Duration {
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

struct Request: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Send a request, wait for the reply, and resend if it does not come.",
        discussion: """
            Replaces the classic Python client that sends and then blocks in recvfrom forever. Waits --timeout for a reply (default 1s), resends up to --retries times (default 3), doubling the wait each time. Exit 0 with a reply, 75 when none came, 69 when the peer reports nothing listens there. With no MESSAGE an empty datagram (0 bytes) is the request, as some services expect.

            --all asks everyone: <broadcast> (each subnet's broadcast address, or --interface's only), a directed broadcast address such as 10.1.1.255, 255.255.255.255 or a multicast group (with --interface) get the request once, and every reply from any host is printed until --timeout.

            Examples:
              udp request 127.0.0.1 9999 hello
              udp request [::1]:9999 ping --timeout 200ms --retries 5
              udp request 127.0.0.1 9999 --hex '01 02 0a ff'
              udp request 127.0.0.1 9999 status --json
              udp request 127.0.0.1 9999                an empty datagram
              udp request '<broadcast>' 9999 hi --all --interface eth0
                                            who is out there? every reply, from each host
              udp request 239.1.2.3 9999 hi --all --interface eth0 --timeout 2s
            """
    )

    @Argument(
        help: ArgumentHelp(
            "HOST PORT or HOST:PORT, then the message words (sent as one datagram; none: an empty datagram).",
            valueName: "target-and-message"))
    var words: [String] = []

    @OptionGroup var request: RequestOptions
    @OptionGroup var payload: PayloadOptions
    @OptionGroup var network: NetworkOptions
    @OptionGroup var shaping: ShapingOptions

    @Flag(
        help:
            "Send once and print every reply, from any address, until --timeout (a broadcast or multicast \"who is there?\"); exit 0 if any came, 75 if none."
    )
    var all = false

    @Option(
        help: ArgumentHelp(
            "With --all: the interface for <broadcast> (its subnet only), 255.255.255.255 or a multicast group.",
            valueName: "name"))
    var interface: String?

    func validate() throws {
        try request.validate()
        // With --json the reply's text is decoded, so --encoding still means something there.
        if !request.json { try payload.checkMessageOptions() }
    }

    func run() async throws {
        useOneEventLoop()
        let (endpoint, message) = try parseTarget(words)
        let text = try payload.bytes(from: message.joined(separator: " "))
        let bytes = try shaping.shaper(for: text, encoding: try payload.textEncoding(), hex: payload.hex).bytes(
            counter: 1)
        let formatter = DatagramFormatter(
            style: request.json ? .json : payload.hex ? .hex : .text, encoding: try payload.textEncoding())
        let family = try network.family()
        if all {
            return try await requestAll(bytes, plan: try await allPlan(endpoint, family: family), formatter: formatter)
        }
        if interface != nil {
            throw CLIFailure.usage(
                "--interface applies with --all, to <broadcast>, 255.255.255.255 and multicast groups")
        }
        let candidates = try await endpoint.resolve(family: family)
        if case .ip(.broadcast, _) = endpoint.kind { throw Self.needsAll }
        if candidates.contains(where: { $0.isBroadcastOrMulticast || $0.isLimitedBroadcast }) { throw Self.needsAll }
        var lastError: any Error = UDPError.closed
        // A name may resolve to IPv6 and IPv4: when one refuses, try the next.
        for destination in candidates {
            if let limit = destination.maximumPayload, bytes.count > limit {
                throw UDPError.messageTooLarge(size: bytes.count, limit: limit)
            }
            let socket = try await request.connect(to: destination)
            let quietRetries = request.json || request.raw
            let policy = request.policy
            do {
                let reply = try await closing(socket) {
                    try await withSignalCancellation {
                        try await socket.request(ByteBuffer(bytes: bytes), policy: policy) { attempt in
                            if !quietRetries {
                                Terminal.writeStderr("no reply yet, sending again (attempt \(attempt))\n")
                            }
                        }
                    }
                }
                request.show(reply, formatter: formatter)
                return
            } catch UDPError.connectionRefused(let who) {
                lastError = UDPError.connectionRefused(who)
            }
        }
        throw lastError
    }
}
