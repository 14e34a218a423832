import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import UDPBench
import UDPKit

struct BenchSink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sink",
        abstract: "Receive a one-way flood and report rate, loss, reordering, duplicates and jitter.",
        discussion: """
        The receiving end of `udp bench flood` (like `iperf3 -s`). Runs until Ctrl-C, SIGTERM, --count or --timeout, then prints a report, with the datagrams the kernel dropped because the receive buffer was full. A flood with a new stream id (another run of `udp bench flood`) closes the report of the previous one, so one sink serves several floods. Datagrams that are not bench probes are counted and ignored.

        Examples:
          udp bench sink 9000
          udp bench sink 127.0.0.1:9000 --json --timeout 2s
        """
    )

    @Argument(help: ArgumentHelp("[HOST:]PORT to bind.", valueName: "address"))
    var address: String

    @Option(help: "Stop after this many probes.")
    var count: Int?

    @Option(help: ArgumentHelp("Stop when nothing arrived for this long (after the first probe).", valueName: "duration"))
    var timeout: DurationArgument?

    @Flag(help: "One JSON object per flood.")
    var json = false

    @Flag(help: "Print the bound address on stderr.")
    var showPort = false

    @OptionGroup var network: NetworkOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let timeout, timeout.seconds <= 0 { throw ValidationError("--timeout must be more than 0") }
    }

    func run() async throws {
        var options = UDPSocketOptions()
        options.receiveBufferSize = 4 << 20
        options.receiveOffload = true
        let socket = try await UDPSocket.bind(to: try UDPEndpoint.parse(address, defaultHost: .any), family: try network.family(), options: options)
        if showPort || Terminal.stderrIsTTY { Terminal.writeStderr("sink on \(socket.localAddress)\n") }
        let current = NIOLockedValueBox(SinkReport())
        let live = LiveLine {
            let r = current.withLockedValue { $0 }
            return "received \(r.flow.sequences.unique)  \(RateFormat.count(r.flow.datagramsPerSecond()))/s  lost \(r.flow.sequences.lost)"
        }
        let json = self.json
        // The kernel counts drops for the socket's life; each report gets those since the one before.
        let dropsReported = NIOLockedValueBox(socket.kernelDrops ?? 0)
        let emit: @Sendable (SinkReport) -> Void = { report in
            var report = report
            if let drops = socket.kernelDrops {
                report.kernelDrops = drops - dropsReported.withLockedValue { reported in
                    defer { reported = drops }
                    return reported
                }
            }
            Terminal.writeStdout(json ? report.json + "\n" : report.table)
            Terminal.flushStdout()
        }
        try await closing(socket) {
            let (last, _) = try await withSignalCancellation {
                try await live.while { try await SinkRun(socket: socket, count: count, idle: timeout?.duration, current: current, onFinished: emit).run() }
            }
            // Reported before the socket closes: the kernel's drop count belongs to the socket.
            if last.flow.datagrams > 0 || last.notProbes > 0 || !last.hasReportedBefore { emit(last) }
        }
    }
}

/// One flood as the sink saw it.
struct SinkReport: Sendable {
    var stream: UInt32?
    var flow = FlowStats()
    var notProbes = 0
    /// Set once an earlier flood was reported, so an empty trailing report is not printed.
    var hasReportedBefore = false
    /// Datagrams the kernel dropped for the socket during this flood (receive buffer full); nil when unknown.
    var kernelDrops: Int?

    var table: String {
        let s = flow.sequences
        let seconds = String(format: "%.2f s", flow.arrivalSpan)
        var text = "received  \(s.unique) datagrams (\(flow.bytes) bytes) in \(seconds)  \(RateFormat.count(flow.datagramsPerSecond()))/s  \(RateFormat.bits(perSecond: flow.bitsPerSecond()))\n"
        text += "lost      \(s.lost) (\(percent(s.lost, s.expected))), \(s.duplicates) duplicate, \(s.reordered) reordered, jitter \(RateFormat.duration(nanos: flow.jitter.jitterNanos))"
        if notProbes > 0 { text += ", \(notProbes) not bench probes" }
        if let kernelDrops, kernelDrops > 0 { text += "\nkernel    \(kernelDrops) dropped on this host (receive buffer full)" }
        return text + "\n"
    }

    var json: String {
        let s = flow.sequences
        return JSONText.object([
            ("received", .int(s.unique)), ("bytes", .int(flow.bytes)), ("seconds", .double(flow.arrivalSpan)),
            ("received_per_s", .double(flow.datagramsPerSecond())), ("bits_per_s", .double(flow.bitsPerSecond())),
            ("lost", .int(s.lost)), ("loss_ratio", .double(s.lossRatio)), ("duplicates", .int(s.duplicates)),
            ("reordered", .int(s.reordered)), ("jitter_ms", .double(flow.jitter.jitterNanos / 1e6)),
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
        do {
            while count.map({ report.flow.sequences.unique < $0 }) ?? true {
                let batch = try await socket.receiveBatch(timeout: any ? idle : nil)
                if batch.isEmpty { break }
                any = true
                let arrival = MonotonicClock.nanoseconds
                for datagram in batch {
                    guard let probe = datagram.probe else {
                        report.notProbes += 1
                        continue
                    }
                    if report.stream != probe.stream {
                        if report.stream != nil {
                            onFinished(report)
                            report = SinkReport(hasReportedBefore: true)
                        }
                        report.stream = probe.stream
                    }
                    report.flow.record(probe, size: datagram.payload.readableBytes, arrival: arrival)
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
