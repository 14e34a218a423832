/// What an ``ImpairmentPipeline`` has done so far, as returned by ``ImpairmentPipeline/counters(at:)``.
///
/// Every received datagram ends up in exactly one place, so at all times
/// `received == dropped + overflowed + held + (forwarded + discarded - duplicated)`.
/// (A pipeline never discards; a relay that stops with datagrams still queued moves them from
/// `forwarded` and `held` to `discarded`.)
public struct ImpairmentCounters: Sendable, Equatable {
    /// Datagrams submitted.
    public var received = 0
    /// Datagrams handed out for sending, duplicate copies included.
    public var forwarded = 0
    /// Datagrams discarded by the loss setting.
    public var dropped = 0
    /// Datagrams discarded because a queue (rate-limited link, delay line and reorder hold, or the
    /// datagram count) was full.
    public var overflowed = 0
    /// Copies (duplicates included) still queued or held when the relay stopped, so never sent.
    public var discarded = 0
    /// Extra copies handed out by the duplicate setting.
    public var duplicated = 0
    /// Datagrams released after at least one later datagram; counted when released.
    public var reordered = 0
    /// Datagrams with a flipped bit.
    public var corrupted = 0
    /// Datagrams currently held back for reordering.
    public var held = 0
    /// Bytes waiting for or being sent on the rate-limited link at the time of the snapshot.
    public var queuedBytes = 0
    /// Sum over forwarded datagrams of release time minus arrival time, in nanoseconds; saturates.
    public var addedDelayTotalNanoseconds: UInt64 = 0
    /// The largest release time minus arrival time of any forwarded datagram, in nanoseconds.
    public var addedDelayMaxNanoseconds: UInt64 = 0

    public init() {}

    /// Average added delay per forwarded datagram in nanoseconds, or 0 if nothing was forwarded.
    public var addedDelayMeanNanoseconds: UInt64 {
        forwarded == 0 ? 0 : addedDelayTotalNanoseconds / UInt64(forwarded)
    }

    /// Accumulates `other` into this value, for totals over several pipelines: counts and
    /// queued bytes add up, the maximum delay is the larger of the two.
    public mutating func add(_ other: ImpairmentCounters) {
        received += other.received
        forwarded += other.forwarded
        dropped += other.dropped
        overflowed += other.overflowed
        discarded += other.discarded
        duplicated += other.duplicated
        reordered += other.reordered
        corrupted += other.corrupted
        held += other.held
        queuedBytes = queuedBytes.addingSaturated(other.queuedBytes)
        addedDelayTotalNanoseconds = addedDelayTotalNanoseconds.addingSaturated(other.addedDelayTotalNanoseconds)
        addedDelayMaxNanoseconds = max(addedDelayMaxNanoseconds, other.addedDelayMaxNanoseconds)
    }
}

extension FixedWidthInteger {
    func addingSaturated(_ other: Self) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
