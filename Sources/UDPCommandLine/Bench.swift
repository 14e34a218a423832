import ArgumentParser
import Histogram
import NIOCore
import UDPBench
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a UDP service: latency percentiles (ping), throughput and loss (flood, sink).",
        subcommands: [BenchPing.self, BenchFlood.self, BenchSink.self]
    )
}

struct BenchPing: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Send numbered probes to an echo server and report round-trip percentiles and loss.",
        discussion: """
            The server must send each datagram back unchanged (udp echo, socat, a Python recvfrom/sendto loop). Probes carry a 28-byte header (stream id, sequence number, send time), so stray or duplicated replies are recognized. Round-trip times go into an HDR histogram (3 significant digits).

            Examples:
              udp bench ping 127.0.0.1 9999
              udp bench ping 127.0.0.1 9999 --count 10000 --inflight 32 --size 1472
              udp bench ping [::1]:9999 --count 100 --interval 10ms --json
            """
    )

    @Argument(help: ArgumentHelp("HOST PORT or HOST:PORT of an echo server.", valueName: "target"))
    var words: [String] = []

    @Option(parsing: .unconditional, help: "How many probes to send.")
    var count: Int = 20

    @Option(parsing: .unconditional, help: "Probes outstanding at once.")
    var inflight: Int = 1

    @Option(parsing: .unconditional, help: "Datagram size in bytes (at least 28).")
    var size: Int = 64

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Pause between probes when one is in flight, e.g. 10ms.", valueName: "duration"))
    var interval: DurationArgument?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("A probe with no reply after this long counts as lost.", valueName: "duration"))
    var timeout: DurationArgument = DurationArgument(seconds: 1)

    @Flag(help: "One JSON object with the results.")
    var json = false

    @OptionGroup var network: NetworkOptions

    func validate() throws {
        guard (1...100_000_000).contains(count) else { throw ValidationError("--count must be from 1 to 100000000") }
        guard (1...65_536).contains(inflight) else { throw ValidationError("--inflight must be from 1 to 65536") }
        guard (Probe.headerSize...65_507).contains(size) else {
            throw ValidationError("--size must be from \(Probe.headerSize) to 65507")
        }
        guard timeout.seconds > 0 else { throw ValidationError("--timeout must be more than 0") }
    }

    func run() async throws {
        let (endpoint, extra) = try parseTarget(words, what: "echo server")
        guard extra.isEmpty else { throw CLIFailure.usage("unexpected argument '\(extra[0])'") }
        let destination = try await resolveOne(endpoint, family: try network.family())
        let socket = try await UDPSocket.connect(to: destination)
        let settings = PingSettings(
            count: count, inflight: inflight, size: size, interval: interval?.duration, timeout: timeout.duration)
        let result = try await closing(socket) {
            try await withSignalCancellation { try await PingRun(socket: socket, settings: settings).run() }
        }
        Terminal.writeStdout(json ? result.json + "\n" : result.table(destination: destination))
        if result.received == 0 { throw UDPError.timedOut(seconds: timeout.seconds) }
    }
}

struct PingSettings: Sendable {
    var count: Int
    var inflight: Int
    var size: Int
    var interval: Duration?
    var timeout: Duration
}

struct PingResult: Sendable {
    var sent = 0
    var received = 0
    var stats = SequenceStats()
    var jitter = JitterEstimator()
    var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
    var elapsed: Duration = .zero
    var interrupted = false

    var lost: Int { max(0, sent - stats.unique) }

    func table(destination: UDPAddress) -> String {
        func us(_ nanos: UInt64) -> String { RateFormat.duration(nanos: Double(nanos)) }
        var lines = [
            "ping \(destination): \(sent) sent, \(stats.unique) received, \(lost) lost (\(percent(lost, sent))), \(stats.duplicates) duplicate, \(stats.reordered) reordered"
        ]
        if received > 0 {
            lines.append(
                "rtt min \(us(histogram.min))  p50 \(us(histogram.valueAtPercentile(50)))  p90 \(us(histogram.valueAtPercentile(90)))  p99 \(us(histogram.valueAtPercentile(99)))  p99.9 \(us(histogram.valueAtPercentile(99.9)))  max \(us(histogram.max))"
            )
            lines.append(
                "jitter \(RateFormat.duration(nanos: jitter.jitterNanos)), \(RateFormat.count(Double(received) / max(1e-9, seconds(elapsed)))) replies/s"
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }

    var json: String {
        var fields: [(key: String, value: JSONText.Value)] = [
            ("sent", .int(sent)), ("received", .int(stats.unique)), ("lost", .int(lost)),
            ("duplicates", .int(stats.duplicates)), ("reordered", .int(stats.reordered)),
        ]
        if received > 0 {
            for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)] {
                fields.append(("rtt_\(name)_us", .double(Double(histogram.valueAtPercentile(p)) / 1000)))
            }
            fields.append(("rtt_min_us", .double(Double(histogram.min) / 1000)))
            fields.append(("rtt_max_us", .double(Double(histogram.max) / 1000)))
            fields.append(("jitter_us", .double(jitter.jitterNanos / 1000)))
        }
        fields.append(("seconds", .double(seconds(elapsed))))
        return JSONText.object(fields)
    }

}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Keeps `inflight` probes outstanding; a probe unanswered after `timeout` is given up.
struct PingRun: Sendable {
    let socket: UDPSocket
    let settings: PingSettings

    func run() async throws -> PingResult {
        let clock = ContinuousClock()
        let start = clock.now
        let stream = UInt32.random(in: 1...UInt32.max)
        var result = PingResult()
        var outstanding: [UInt64: ContinuousClock.Instant] = [:]
        var next: UInt64 = 0
        var buffer: [UInt8] = []
        func nanos(_ instant: ContinuousClock.Instant) -> UInt64 {
            let d = instant - start
            return UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
        }
        do {
            while next < settings.count || !outstanding.isEmpty {
                var batch: [OutgoingDatagram] = []
                while outstanding.count < settings.inflight && next < settings.count {
                    let now = clock.now
                    buffer.removeAll(keepingCapacity: true)
                    Probe(stream: stream, sequence: next, sendTime: nanos(now)).encode(
                        into: &buffer, size: settings.size)
                    batch.append(OutgoingDatagram(bytes: buffer, to: socket.remoteAddress!))
                    outstanding[next] = now
                    next += 1
                    if settings.interval != nil { break }
                }
                if !batch.isEmpty {
                    try await socket.send(batch)
                    result.sent += batch.count
                }
                let oldest = outstanding.values.min() ?? clock.now
                var wait = oldest + settings.timeout - clock.now
                if let interval = settings.interval, next < settings.count, outstanding.count < settings.inflight {
                    wait = min(wait, interval)
                }
                let replies: [Datagram]
                do {
                    replies = try await socket.receiveBatch(timeout: max(wait, .zero))
                } catch UDPError.connectionRefused(let who) {
                    throw UDPError.connectionRefused(who)
                }
                let arrival = clock.now
                for reply in replies {
                    guard let probe = reply.probe, probe.stream == stream else { continue }
                    result.stats.record(probe.sequence)
                    result.received += 1
                    if let sentAt = outstanding.removeValue(forKey: probe.sequence) {
                        let rtt = arrival - sentAt
                        _ = result.histogram.record(UInt64(max(0, seconds(rtt) * 1e9)))
                        result.jitter.record(sendTime: probe.sendTime, arrivalTime: nanos(arrival))
                    }
                }
                let now = clock.now
                for (sequence, sentAt) in outstanding where now - sentAt >= settings.timeout {
                    outstanding.removeValue(forKey: sequence)
                }
                if let interval = settings.interval, replies.isEmpty == false, next < settings.count {
                    let pause = interval - (clock.now - arrival)
                    if pause > .zero { try await Task.sleep(for: pause) }
                }
            }
        } catch is CancellationError {
            result.interrupted = true
        }
        result.elapsed = clock.now - start
        return result
    }
}
