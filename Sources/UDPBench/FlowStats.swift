/// What the receiving end of a probe stream saw: sequence statistics, RFC 3550 jitter, bytes and
/// the span of arrival times. Used by a sink (one-way) and by a flood in echo mode (round trip).
///
/// Times are nanoseconds on any monotonic clock; send times come from the probes, arrival
/// times from the receiver, and only differences are used.
public struct FlowStats: Sendable {
    /// Loss, duplicates and reordering by sequence number.
    public private(set) var sequences = SequenceStats()
    /// Interarrival jitter over the datagrams sampled for it (see `record`), in arrival order.
    public private(set) var jitter = JitterEstimator()
    /// The jitter estimate in nanoseconds, or nil when fewer than two samples could be taken (nothing honest to say).
    public var jitterNanos: Double? { jitter.samples >= 2 ? jitter.jitterNanos : nil }
    /// Send time of the last datagram sampled for jitter.
    private var lastSampledSend: UInt64?
    /// Datagrams recorded (duplicates included).
    public var datagrams: Int { sequences.received }
    /// Payload bytes recorded (duplicates included).
    public private(set) var bytes: Int = 0
    /// Arrival time of the first recorded datagram; nil before any.
    public private(set) var firstArrival: UInt64?
    /// Arrival time of the last recorded datagram; nil before any.
    public private(set) var lastArrival: UInt64?

    /// An empty record.
    public init() {}

    /// Records one probe of `size` bytes that arrived at `arrival`.
    ///
    /// Jitter needs a send time and an arrival time of the datagram itself. A sender that stamps a whole batch once
    /// and a receiver that reads a whole batch at one time give runs of equal stamps, whose "transit differences"
    /// of 0 would drive the estimate to 0 however irregular the flow. So only datagrams that carry their own
    /// times feed the jitter: `ownArrival` (the first of a receive batch, false for the others) and a send time
    /// other than the previous sample's.
    public mutating func record(_ probe: Probe, size: Int, arrival: UInt64, ownArrival: Bool = true) {
        sequences.record(probe.sequence)
        if ownArrival && probe.sendTime != lastSampledSend {
            jitter.record(sendTime: probe.sendTime, arrivalTime: arrival)
            lastSampledSend = probe.sendTime
        }
        bytes += size
        if firstArrival == nil { firstArrival = arrival }
        lastArrival = arrival
    }

    /// Seconds from the first to the last arrival; 0 with fewer than two datagrams.
    public var arrivalSpan: Double {
        guard let first = firstArrival, let last = lastArrival, last > first else { return 0 }
        return Double(last - first) / 1e9
    }

    /// Datagrams per second over `seconds` (the arrival span when nil); 0 when the span is 0.
    public func datagramsPerSecond(over seconds: Double? = nil) -> Double {
        let span = seconds ?? arrivalSpan
        return span > 0 ? Double(datagrams) / span : 0
    }

    /// Payload bits per second over `seconds` (the arrival span when nil); 0 when the span is 0.
    public func bitsPerSecond(over seconds: Double? = nil) -> Double {
        let span = seconds ?? arrivalSpan
        return span > 0 ? Double(bytes) * 8 / span : 0
    }
}
