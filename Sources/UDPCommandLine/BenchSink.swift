import ArgumentParser
import NIOConcurrencyHelpers
import UDPBench
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct BenchSink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sink",
        abstract: "Receive a one-way flood and report rate, loss, reordering, duplicates and jitter.",
        discussion: """
            The receiving end of `udp bench flood` (like `iperf3 -s`). Runs until Ctrl-C, SIGTERM, --count or --timeout, then prints a report, with the datagrams the kernel dropped because the receive buffer was full. The flood ends with a final report (repeated, in case one is lost) saying how many it sent: the sink then prints its report, with loss counted against what was sent, so a lost tail shows. Without that report (it was lost, or the flood was killed), loss is "at least" what the gaps in the sequence numbers show. A flood with a new stream id (another run of `udp bench flood`) also closes the report of the previous one, so one sink serves several floods. Datagrams that are not bench probes are counted and ignored.

            Examples:
              udp bench sink 9000
              udp bench sink 127.0.0.1:9000 --json --timeout 2s
            """
    )

    @Argument(help: ArgumentHelp("[HOST:]PORT to bind.", valueName: "address"))
    var address: String

    @Option(parsing: .unconditional, help: "Stop after this many probes.")
    var count: Int?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Stop when nothing arrived for this long (after the first probe).", valueName: "duration"))
    var timeout: DurationArgument?

    @Option(
        help: ArgumentHelp(
            "SO_RCVBUF: the socket's receive buffer in bytes (the system may double it).", valueName: "bytes"))
    var recvBuffer: Int = 4 << 20

    @Flag(help: "One JSON object per flood.")
    var json = false

    @Flag(help: "Print the bound address on stderr.")
    var showPort = false

    @OptionGroup var network: NetworkOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let timeout, timeout.seconds <= 0 { throw ValidationError("--timeout must be more than 0") }
        guard (1...(1 << 30)).contains(recvBuffer) else {
            throw ValidationError("--recv-buffer must be from 1 to 1073741824")
        }
    }

    func run() async throws {
        var options = UDPSocketOptions()
        options.receiveBufferSize = recvBuffer
        options.receiveOffload = true
        let socket = try await UDPSocket.bind(
            to: try UDPEndpoint.parse(address, defaultHost: .any), family: try network.family(), options: options)
        if showPort || Terminal.stderrIsTTY { Terminal.writeStderr("sink on \(socket.localAddress)\n") }
        let current = NIOLockedValueBox(SinkReport())
        let live = LiveLine {
            let r = current.withLockedValue { $0 }
            return
                "received \(r.flow.sequences.unique)  \(RateFormat.count(r.flow.datagramsPerSecond()))/s  lost \(r.flow.sequences.lost)"
        }
        let json = self.json
        // The kernel counts drops for the socket's life; each report gets those since the one before.
        let dropsReported = NIOLockedValueBox(socket.kernelDrops ?? 0)
        let emit: @Sendable (SinkReport) -> Void = { report in
            // Queued, never waited for: a slow reader of stdout must not make the sink lose datagrams.
            var report = report
            if let drops = socket.kernelDrops {
                report.kernelDrops =
                    drops
                    - dropsReported.withLockedValue { reported in
                        defer { reported = drops }
                        return reported
                    }
            }
            Terminal.writeStdout(json ? report.json + "\n" : report.table)
        }
        try await closing(socket) {
            let (last, _) = try await withSignalCancellation {
                try await live.while {
                    try await SinkRun(
                        socket: socket, count: count, idle: timeout?.duration, current: current, onFinished: emit
                    ).run()
                }
            }
            // Reported before the socket closes: the kernel's drop count belongs to the socket.
            if last.flow.datagrams > 0 || last.notProbes > 0 || !last.hasReportedBefore { emit(last) }
        }
        Terminal.finish()
    }
}

/// One flood as the sink saw it.
struct SinkReport: Sendable {
    var stream: UInt32?
    var flow = FlowStats()
    var notProbes = 0
    /// Probes sent, from the flood's final report; nil when no report arrived.
    var sent: Int?
    /// Set once an earlier flood was reported, so an empty trailing report is not printed.
    var hasReportedBefore = false
    /// Datagrams the kernel dropped for the socket during this flood (receive buffer full); nil when unknown.
    var kernelDrops: Int?

    /// Lost probes: against the count sent when the flood reported it, else the gaps up to the highest sequence
    /// number received (a lower bound: a lost tail cannot be seen).
    var lost: Int { sent.map { flow.sequences.lost(sent: $0) } ?? flow.sequences.lost }
    /// What `lost` is a share of.
    var expected: Int { sent ?? flow.sequences.expected }

    var table: String {
        let s = flow.sequences
        let seconds = String(cFormat: "%.2f s", flow.arrivalSpan)
        let of = sent.map { " of \($0) sent" } ?? ""
        var text =
            "received  \(s.unique) datagrams\(of) (\(flow.bytes) bytes) in \(seconds)  \(RateFormat.count(flow.datagramsPerSecond()))/s  \(RateFormat.bits(perSecond: flow.bitsPerSecond()))\n"
        text +=
            "lost      \(sent == nil ? "at least " : "")\(lost) (\(percent(lost, expected))), \(s.duplicates) duplicate, \(s.reordered) reordered"
        if let jitter = flow.jitterNanos { text += ", jitter \(RateFormat.duration(nanos: jitter))" }
        if notProbes > 0 { text += ", \(notProbes) not bench probes" }
        if sent == nil && s.unique > 0 {
            text += "\n          (no final report from the flood: loss after the last datagram received is not counted)"
        }
        if let kernelDrops, kernelDrops > 0 {
            text += "\nkernel    \(kernelDrops) dropped on this host (receive buffer full)"
        }
        return text + "\n"
    }

    var json: String {
        let s = flow.sequences
        let jitter: JSONText.Value = flow.jitterNanos.map { .double($0 / 1e6) } ?? .null
        let sentValue: JSONText.Value = sent.map { .int($0) } ?? .null
        return JSONText.object([
            ("received", .int(s.unique)), ("sent", sentValue), ("bytes", .int(flow.bytes)),
            ("seconds", .double(flow.arrivalSpan)),
            ("received_per_s", .double(flow.datagramsPerSecond())), ("bits_per_s", .double(flow.bitsPerSecond())),
            ("lost", .int(lost)), ("loss_ratio", .double(expected == 0 ? 0 : Double(lost) / Double(expected))),
            ("lost_is_lower_bound", .bool(sent == nil)), ("duplicates", .int(s.duplicates)),
            ("reordered", .int(s.reordered)), ("jitter_ms", jitter),
            ("not_probes", .int(notProbes)), ("kernel_drops", kernelDrops.map { .int($0) } ?? .null),
        ])
    }
}

struct SinkRun: Sendable {
    let socket: UDPSocket
    let count: Int?
    let idle: Duration?
    let current: NIOLockedValueBox<SinkReport>
    let onFinished: @Sendable (SinkReport) -> Void

    /// Returns the report of the flood in progress when it stops, and whether anything arrived at all.
    func run() async throws -> (SinkReport, Bool) {
        var report = SinkReport()
        var any = false
        var published = MonotonicClock.nanoseconds
        // Streams whose final report was handled: repeats of the report and stragglers are ignored.
        var finished: [UInt32] = []
        func finish(sent: Int?) {
            report.sent = sent
            onFinished(report)
            if let stream = report.stream {
                finished.append(stream)
                if finished.count > 16 { finished.removeFirst() }
            }
            report = SinkReport(hasReportedBefore: true)
        }
        do {
            // --count counts probes over the whole run, across floods.
            var probes = 0
            while count.map({ probes < $0 }) ?? true {
                let batch = try await socket.receiveBatch(timeout: any ? idle : nil)
                if batch.isEmpty { break }
                any = true
                let arrival = MonotonicClock.nanoseconds
                var first = true
                for datagram in batch {
                    guard let probe = datagram.probe else {
                        if let end = datagram.floodEnd {
                            guard !finished.contains(end.stream) else { continue }
                            if report.stream != end.stream {
                                // Nothing of this flood arrived: all of it was lost.
                                if report.stream != nil { finish(sent: nil) }
                                report.stream = end.stream
                            }
                            finish(sent: Int(clamping: end.sent))
                            continue
                        }
                        report.notProbes += 1
                        continue
                    }
                    if finished.contains(probe.stream) { continue }
                    probes += 1
                    if report.stream != probe.stream {
                        if report.stream != nil { finish(sent: nil) }
                        report.stream = probe.stream
                    }
                    // Only the first datagram of a batch was taken when it arrived; the others waited in the queue.
                    report.flow.record(probe, size: datagram.payload.readableBytes, arrival: arrival, ownArrival: first)
                    first = false
                }
                if arrival - published >= 100_000_000 {
                    published = arrival
                    current.withLockedValue { $0 = report }
                }
            }
        } catch is CancellationError {}
        return (report, any)
    }
}

extension Datagram {
    /// The flood's final report this datagram carries, if it is one.
    var floodEnd: FloodEnd? {
        payload.withUnsafeReadableBytes { FloodEnd(decoding: $0) }
    }
}
