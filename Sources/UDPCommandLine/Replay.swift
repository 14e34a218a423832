import ArgumentParser
import Capture
import NIOCore
import UDPKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Send the UDP payloads of a pcap or pcapng capture to HOST PORT, with the capture's timing.",
        discussion: """
            Replaces tcpreplay and hand-written scapy loops for UDP: reads a capture written by tcpdump, tshark, dumpcap, Wireshark or udp listen --pcap (Ethernet, Linux cooked v1/v2, raw IP and BSD loopback link types; IPv4 and IPv6), and sends each UDP payload, in order, from one socket, to HOST PORT. The gaps between packets are the captured ones divided by --speed (2: twice as fast; 0: no pauses, as fast as the socket allows); no single pause is longer than --max-pause. Packets that are not UDP are skipped and counted. A summary goes to stderr at the end. A capture cut short or corrupt is an error (exit 65) that names the record; what was sent before it is reported.

            Examples:
              udp replay capture.pcap 127.0.0.1 9999
              udp replay capture.pcapng 127.0.0.1:9999 --speed 0
              udp replay capture.pcap 127.0.0.1 5353 --dst-port 5353 --speed 10
              udp replay capture.pcap 127.0.0.1 9999 --src-port 40000 --count 100
            """
    )

    @Argument(help: ArgumentHelp("The capture file, then HOST PORT or HOST:PORT.", valueName: "file-and-target"))
    var words: [String] = []

    @Option(help: "Replay speed: 1 as captured, 2 twice as fast, 0 without pauses.")
    var speed: Double = 1

    @Option(help: "Only packets from this UDP source port.")
    var srcPort: Int?

    @Option(help: "Only packets to this UDP destination port.")
    var dstPort: Int?

    @Option(help: "Send at most this many datagrams.")
    var count: Int?

    @Option(
        help: ArgumentHelp(
            "The longest pause between two datagrams, however long the capture's gap.", valueName: "duration"))
    var maxPause: DurationArgument = DurationArgument(seconds: 10)

    @Option(help: ArgumentHelp("Local address to send from: [HOST:]PORT.", valueName: "address"))
    var from: String?

    @Flag(name: .shortAndLong, help: "No summary.")
    var quiet = false

    @OptionGroup var network: NetworkOptions

    func validate() throws {
        guard speed >= 0, speed.isFinite else { throw ValidationError("--speed must be 0 or more (0: no pauses)") }
        for (name, port) in [("--src-port", srcPort), ("--dst-port", dstPort)] {
            if let port, !(0...65_535).contains(port) { throw ValidationError("\(name) must be from 0 to 65535") }
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        guard let path = words.first else { throw CLIFailure.usage("missing capture file: udp replay FILE HOST PORT") }
        let (endpoint, rest) = try parseTarget(Array(words.dropFirst()))
        guard rest.isEmpty else { throw CLIFailure.usage("unexpected '\(rest[0])' after HOST PORT") }
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = unreadableReason(path)
            throw CLIFailure.data(
                "cannot read '\(path)': \(reason)\(reason == "it is a directory" ? "; give a capture file (.pcap or .pcapng)" : "")"
            )
        }
        var reader: CaptureReader
        do { reader = try CaptureReader(Array(data)) } catch { throw CLIFailure.data("\(path): \(error.message)") }
        let destination = try await resolveOne(endpoint, family: try network.family())
        var local: UDPAddress?
        if let from {
            local = try await resolveOne(
                try UDPEndpoint.parse(from, defaultHost: .any),
                family: destination.family == .unix ? nil : destination.family)
        }
        let socket = try await UDPSocket.client(for: destination, from: local)
        let stop = StopSignal()
        defer { stop.cancel() }
        var sent = 0
        var bytes = 0
        var filtered = 0
        var tooLarge = 0
        var failure: CaptureError?
        let started = ContinuousClock.now
        var firstTime: CaptureTime?
        var elapsedTarget: Duration = .zero
        var skipped: Duration = .zero
        try await closing(socket) {
            while !stop.isSet {
                let packet: UDPPacket
                do throws(CaptureError) {
                    guard let next = try reader.next() else { break }
                    packet = next
                } catch {
                    failure = error
                    break
                }
                if let srcPort, Int(packet.sourcePort) != srcPort {
                    filtered += 1
                    continue
                }
                if let dstPort, Int(packet.destinationPort) != dstPort {
                    filtered += 1
                    continue
                }
                if let limit = destination.maximumPayload, packet.payload.count > limit {
                    tooLarge += 1
                    continue
                }
                if speed > 0 {
                    // Keep to the capture's clock (scaled) from the first packet sent, so pauses do not add up drift.
                    let base = firstTime ?? packet.time
                    firstTime = base
                    let gap = max(0, packet.time.secondsSince1970 - base.secondsSince1970) / speed
                    let target = Duration.nanoseconds(Int64(min(gap, 86_400 * 365) * 1e9))
                    // A capped pause moves the rest of the schedule earlier by what was cut.
                    var pause = target - skipped - elapsedTarget
                    if pause > maxPause.duration {
                        skipped += pause - maxPause.duration
                        pause = maxPause.duration
                    }
                    if pause > .zero { elapsedTarget += pause }
                    let wake = started + elapsedTarget
                    if wake > ContinuousClock.now { await stop.sleep(for: wake - ContinuousClock.now) }
                    if stop.isSet { break }
                }
                try await socket.send(ByteBuffer(bytes: packet.payload), to: destination)
                sent += 1
                bytes += packet.payload.count
                if let count, sent >= count { break }
            }
        }
        if !quiet {
            let seconds = (ContinuousClock.now - started).milliseconds / 1000
            var line =
                "sent \(sent) datagram\(sent == 1 ? "" : "s") (\(bytes) bytes) to \(destination) in \(String(cFormat: "%.3f", seconds)) s from \(reader.records) record\(reader.records == 1 ? "" : "s")"
            var notes: [String] = []
            if reader.skippedTotal > 0 {
                notes.append(
                    "skipped "
                        + reader.skipped.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(
                            separator: ", "))
            }
            if filtered > 0 { notes.append("\(filtered) filtered out by port") }
            if tooLarge > 0 { notes.append("\(tooLarge) too large for \(destination)") }
            if stop.isSet { notes.append("interrupted") }
            if !notes.isEmpty { line += "; " + notes.joined(separator: "; ") }
            Terminal.writeStderr(line + "\n")
        }
        if let failure { throw CLIFailure.data("\(path): \(failure.message)") }
    }
}
