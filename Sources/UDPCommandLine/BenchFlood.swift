import ArgumentParser
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import UDPBench
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct BenchFlood: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flood",
        abstract: "Send numbered datagrams as fast as asked; with --window, count the echoes too.",
        discussion: """
            One-way (the default): run `udp bench sink` at the other end; it reports what arrived. Echo mode (--window N): the target echoes every datagram (udp echo), at most N are unanswered at once, and loss, reordering, duplicates, jitter and round-trip times are measured here.

            Examples:
              udp bench sink 9000 &  udp bench flood 127.0.0.1 9000 --duration 5s
              udp bench flood 127.0.0.1 9000 --rate 10k --size 1472
              udp bench flood 127.0.0.1 9999 --window 256 --json
            """
    )

    @Argument(help: ArgumentHelp("HOST PORT or HOST:PORT of a sink or an echo server.", valueName: "target"))
    var words: [String] = []

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Datagrams per second (k and M suffixes) or 'max'.", valueName: "rate"))
    var rate: RateArgument = .max

    @Option(parsing: .unconditional, help: "Datagram size in bytes (at least 28).")
    var size: Int = 64

    @Option(parsing: .unconditional, help: ArgumentHelp("How long to send, e.g. 10s.", valueName: "duration"))
    var duration: DurationArgument = DurationArgument(seconds: 5)

    @Option(parsing: .unconditional, help: "Stop after this many datagrams (and at --duration, whichever is first).")
    var count: Int?

    @Option(parsing: .unconditional, help: "Echo mode: datagrams unanswered at once.")
    var window: Int?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Echo mode: how long to wait for the last echoes.", valueName: "duration"))
    var timeout: DurationArgument = DurationArgument(seconds: 1)

    @Flag(help: "Send datagrams one by one (sendmmsg) even where UDP segmentation offload (GSO) is available.")
    var noOffload = false

    @Flag(help: "One JSON object with the results.")
    var json = false

    @OptionGroup var network: NetworkOptions

    func validate() throws {
        guard (Probe.headerSize...65_507).contains(size) else {
            throw ValidationError("--size must be from \(Probe.headerSize) to 65507")
        }
        guard duration.seconds > 0 else { throw ValidationError("--duration must be more than 0") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let window, !(1...1_000_000).contains(window) { throw ValidationError("--window must be from 1 to 1000000") }
        guard timeout.seconds > 0 else { throw ValidationError("--timeout must be more than 0") }
    }

    func run() async throws {
        let (endpoint, extra) = try parseTarget(words, what: "target")
        guard extra.isEmpty else { throw CLIFailure.usage("unexpected argument '\(extra[0])'") }
        let destination = try await resolveOne(endpoint, family: try network.family())
        let socket = try await UDPSocket.connect(to: destination)
        let settings = FloodSettings(
            rate: rate.perSecond, size: size, duration: duration.duration, count: count ?? .max,
            window: window, timeout: timeout.duration, offload: !noOffload
        )
        let progress = NIOLockedValueBox(FloodResult(settings: settings))
        let live = LiveLine {
            let r = progress.withLockedValue { $0 }
            var text =
                "\(RateFormat.duration(nanos: r.seconds * 1e9))  sent \(r.sent) (\(RateFormat.count(r.sentPerSecond))/s)"
            if r.settings.window != nil { text += "  echoed \(r.flow.sequences.unique)" }
            return text
        }
        let result = try await closing(socket) {
            try await withSignalCancellation {
                try await live.while {
                    try await FloodRun(socket: socket, settings: settings, progress: progress).run()
                }
            }
        }
        Terminal.writeStdout(json ? result.json + "\n" : result.table(destination: destination))
    }
}

/// A rate in datagrams per second, or as fast as possible.
enum RateArgument: ExpressibleByArgument, Equatable {
    case max
    case perSecond(Double)

    init?(argument: String) {
        if argument == "max" {
            self = .max
            return
        }
        var text = argument
        var scale = 1.0
        for (suffix, factor) in [("k", 1e3), ("K", 1e3), ("M", 1e6), ("G", 1e9)] where text.hasSuffix(suffix) {
            text.removeLast()
            scale = factor
            break
        }
        guard let value = Double(text), value.isFinite, value > 0, value * scale <= 1e9 else { return nil }
        self = .perSecond(value * scale)
    }

    var perSecond: Double? {
        if case .perSecond(let value) = self { return value }
        return nil
    }
}

struct FloodSettings: Sendable {
    var rate: Double?
    var size: Int
    var duration: Duration
    var count: Int
    var window: Int?
    var timeout: Duration
    var offload: Bool
}

struct FloodResult: Sendable {
    let settings: FloodSettings
    var sent = 0
    var seconds = 0.0
    var flow = FlowStats()
    var rtt = Histogram<UInt64>(highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
    var interrupted = false

    var sentPerSecond: Double { seconds > 0 ? Double(sent) / seconds : 0 }
    var sentBitsPerSecond: Double { sentPerSecond * Double(settings.size) * 8 }
    var lost: Int { flow.sequences.lost(sent: sent) }

    func table(destination: UDPAddress) -> String {
        let secondsText = String(cFormat: "%.2f s", seconds)
        var lines = [
            "flood \(destination): \(settings.size)-byte datagrams for \(secondsText)\(interrupted ? " (interrupted)" : "")",
            "sent      \(sent) datagrams  \(RateFormat.count(sentPerSecond))/s  \(RateFormat.bits(perSecond: sentBitsPerSecond))",
        ]
        if settings.window != nil {
            let s = flow.sequences
            lines.append(
                "echoed    \(s.unique) datagrams  \(RateFormat.count(Double(s.unique) / max(seconds, 1e-9)))/s  lost \(lost) (\(percent(lost, sent))), \(s.duplicates) duplicate, \(s.reordered) reordered"
                    + (flow.jitterNanos.map { ", jitter \(RateFormat.duration(nanos: $0))" } ?? ""))
            if flow.datagrams > 0 {
                lines.append(
                    "rtt       p50 \(RateFormat.duration(nanos: Double(rtt.valueAtPercentile(50))))  p99 \(RateFormat.duration(nanos: Double(rtt.valueAtPercentile(99))))  max \(RateFormat.duration(nanos: Double(rtt.max)))"
                )
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    var json: String {
        var fields: [(key: String, value: JSONText.Value)] = [
            ("size", .int(settings.size)), ("seconds", .double(seconds)), ("sent", .int(sent)),
            ("sent_per_s", .double(sentPerSecond)), ("sent_bits_per_s", .double(sentBitsPerSecond)),
        ]
        if settings.window != nil {
            let s = flow.sequences
            let jitter: JSONText.Value = flow.jitterNanos.map { .double($0 / 1e6) } ?? .null
            fields += [
                ("received", .int(s.unique)), ("received_per_s", .double(Double(s.unique) / max(seconds, 1e-9))),
                ("lost", .int(lost)), ("loss_ratio", .double(sent == 0 ? 0 : Double(lost) / Double(sent))),
                ("duplicates", .int(s.duplicates)), ("reordered", .int(s.reordered)),
                ("jitter_ms", jitter),
            ]
            if flow.datagrams > 0 {
                fields += [
                    ("rtt_p50_us", .double(Double(rtt.valueAtPercentile(50)) / 1000)),
                    ("rtt_p99_us", .double(Double(rtt.valueAtPercentile(99)) / 1000)),
                ]
            }
        }
        return JSONText.object(fields)
    }
}

func percent(_ part: Int, _ whole: Int) -> String {
    whole == 0 ? "0%" : String(cFormat: "%.2f%%", Double(part) * 100 / Double(whole))
}

extension Datagram {
    /// The bench probe header this datagram starts with, if any.
    var probe: Probe? {
        payload.withUnsafeReadableBytes { Probe(decoding: $0) }
    }
}

/// Sends probes in batches, paced by the rate, limited by the window in echo mode.
struct FloodRun: Sendable {
    let socket: UDPSocket
    let settings: FloodSettings
    let progress: NIOLockedValueBox<FloodResult>

    /// Datagrams per send without segmentation offload (one flush, sendmmsg).
    private static let plainBatch = 64
    /// Segmentation-offload sends per batch.
    private static let offloadSendsPerBatch = 8

    /// Datagrams per segmentation-offload send, or nil to send them one by one.
    var segmentsPerSend: Int? {
        guard settings.offload, UDPSocket.supportsSegmentationOffload, let limit = socket.remoteAddress?.maximumPayload
        else { return nil }
        let n = min(UDPSocket.maximumSegments, limit / settings.size)
        return n > 1 ? n : nil
    }

    func run() async throws -> FloodResult {
        let start = MonotonicClock.nanoseconds
        let stream = UInt32.random(in: 1...UInt32.max)
        let durationNanos = UInt64(seconds(settings.duration) * 1e9)
        let destination = socket.remoteAddress!
        var result = FloodResult(settings: settings)
        // Echoes assumed lost (window mode): a stalled window is written off after `timeout`.
        var writtenOff = 0
        var lastPublished = start
        var perSend = segmentsPerSend
        let batchLimit = perSend.map { $0 * Self.offloadSendsPerBatch } ?? Self.plainBatch
        do {
            while true {
                let now = MonotonicClock.nanoseconds
                let elapsed = now - start
                if elapsed >= durationNanos || result.sent >= settings.count { break }
                var allowed = min(batchLimit, settings.count - result.sent)
                if let rate = settings.rate {
                    allowed = min(allowed, Int(Double(elapsed) / 1e9 * rate) + 1 - result.sent)
                }
                if let window = settings.window {
                    allowed = min(allowed, window - (result.sent - result.flow.sequences.unique - writtenOff))
                }
                if allowed > 0 {
                    let datagrams = Self.batch(
                        count: allowed, first: UInt64(result.sent), stream: stream, size: settings.size,
                        segmentsPerSend: perSend, to: destination)
                    do {
                        try await socket.send(datagrams)
                    } catch UDPError.system(_, let code)
                        where perSend != nil && (code == EIO || code == EOPNOTSUPP || code == EINVAL)
                    {
                        // The route cannot segment (no checksum offload, say): go on without.
                        perSend = nil
                        continue
                    }
                    result.sent += allowed
                }
                if settings.window != nil {
                    let windowFull =
                        allowed <= 0 && settings.window! <= result.sent - result.flow.sequences.unique - writtenOff
                    let wait: Duration =
                        windowFull ? settings.timeout : allowed > 0 ? .zero : nextDue(after: result.sent, start: start)
                    let replies = try await socket.receiveBatch(timeout: wait)
                    record(replies, stream: stream, into: &result)
                    if windowFull && replies.isEmpty { writtenOff = result.sent - result.flow.sequences.unique }
                } else if allowed <= 0 {
                    try await Task.sleep(for: nextDue(after: result.sent, start: start))
                }
                if now - lastPublished >= 100_000_000 {
                    lastPublished = now
                    // One-way: nothing is read, so an ICMP "port unreachable" would wait in the queue unseen.
                    if settings.window == nil { _ = try await socket.receiveBatch(timeout: .zero) }
                    result.seconds = Double(now - start) / 1e9
                    progress.withLockedValue { $0 = result }
                }
            }
            result.seconds = Double(MonotonicClock.nanoseconds - start) / 1e9
            if settings.window != nil {
                while result.flow.sequences.unique < result.sent,
                    case let replies = try await socket.receiveBatch(timeout: settings.timeout), !replies.isEmpty
                {
                    record(replies, stream: stream, into: &result)
                }
            }
        } catch is CancellationError {
            result.interrupted = true
            result.seconds = Double(MonotonicClock.nanoseconds - start) / 1e9
        }
        if settings.window == nil { await sendEndReports(stream: stream, sent: result.sent) }
        return result
    }

    /// Gaps between copies of the final report: a sink whose receive buffer overflowed at the end of the flood
    /// needs a moment to drain it before a copy can get in. About 0.6 s in all (none once interrupted).
    static let endReportGaps: [Duration] = [
        .zero, .milliseconds(20), .milliseconds(40), .milliseconds(80), .milliseconds(160), .milliseconds(320),
    ]

    /// Tells the sink how many probes were sent, so that it can count a lost tail; repeated because UDP may lose
    /// it too. Errors are ignored: the report is a courtesy, the flood's own figures stand without it.
    private func sendEndReports(stream: UInt32, sent: Int) async {
        let report = FloodEnd(stream: stream, sent: UInt64(sent)).bytes
        for gap in Self.endReportGaps {
            if gap > .zero && !Task.isCancelled { try? await Task.sleep(for: gap) }
            try? await socket.send(ByteBuffer(bytes: report))
        }
    }

    private func nextDue(after sent: Int, start: UInt64) -> Duration {
        guard let rate = settings.rate else { return .zero }
        let due = start + UInt64(Double(sent) / rate * 1e9)
        let now = MonotonicClock.nanoseconds
        return due > now ? .nanoseconds(Int64(due - now)) : .zero
    }

    private func record(_ replies: [Datagram], stream: UInt32, into result: inout FloodResult) {
        let arrival = MonotonicClock.nanoseconds
        var first = true
        for reply in replies {
            guard let probe = reply.probe, probe.stream == stream else { continue }
            // Only the first of a batch was taken when it arrived; the others waited in the queue.
            result.flow.record(probe, size: reply.payload.readableBytes, arrival: arrival, ownArrival: first)
            first = false
            _ = result.rtt.record(arrival > probe.sendTime ? arrival - probe.sendTime : 0)
        }
    }

    /// `count` probes numbered from `first`, in one allocation; with `segmentsPerSend`, grouped into
    /// segmentation-offload sends of that many datagrams each.
    static func batch(
        count: Int, first: UInt64, stream: UInt32, size: Int, segmentsPerSend: Int?, to destination: UDPAddress
    ) -> [OutgoingDatagram] {
        var buffer = ByteBufferAllocator().buffer(capacity: count * size)
        let sendTime = MonotonicClock.nanoseconds
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count * size) { raw in
            for i in 0..<count {
                let slot = UnsafeMutableRawBufferPointer(rebasing: raw[i * size..<(i + 1) * size])
                slot.initializeMemory(as: UInt8.self, repeating: 0)
                Probe(stream: stream, sequence: first + UInt64(i), sendTime: sendTime).encode(into: slot)
            }
            return count * size
        }
        guard let perSend = segmentsPerSend, perSend > 1 else {
            return (0..<count).map { i in
                OutgoingDatagram(payload: buffer.getSlice(at: i * size, length: size)!, to: destination)
            }
        }
        return stride(from: 0, to: count, by: perSend).map { i in
            let n = min(perSend, count - i)
            let payload = buffer.getSlice(at: i * size, length: n * size)!
            return n == 1
                ? OutgoingDatagram(payload: payload, to: destination)
                : OutgoingDatagram(segments: payload, segmentSize: size, to: destination)
        }
    }
}
