/// Tuning of one reliable stream; the defaults are the values `docs/room-protocol.md` gives.
/// All times are nanoseconds.
public struct ReliableStreamConfiguration: Hashable, Sendable {
    /// The most items sent but not yet cumulatively acknowledged. A receiver must accept at
    /// least this far beyond its cumulative acknowledgement (`ReliableReceiver.window`).
    public var window: Int
    /// The most items a sender holds (in flight plus waiting for the window); `enqueue` fails
    /// beyond it, which tells the caller the peer is not keeping up.
    public var capacity: Int
    /// Retransmission timeout before any round trip has been measured.
    public var initialTimeout: UInt64
    /// Lower bound of the measured retransmission timeout.
    public var minimumTimeout: UInt64
    /// Upper bound of any retransmission timeout, including after backoff.
    public var maximumTimeout: UInt64

    /// Window 64, capacity 1,024, timeouts 200 ms initial and minimum, 2 s maximum.
    public init(
        window: Int = 64, capacity: Int = 1024, initialTimeout: UInt64 = 200_000_000,
        minimumTimeout: UInt64 = 200_000_000, maximumTimeout: UInt64 = 2_000_000_000
    ) {
        self.window = window
        self.capacity = capacity
        self.initialTimeout = initialTimeout
        self.minimumTimeout = minimumTimeout
        self.maximumTimeout = maximumTimeout
    }

    /// The defaults.
    public static let standard = ReliableStreamConfiguration()
}

/// The sending half of one reliable, ordered stream: numbers items, decides what to
/// (re)transmit and when, and forgets items once acknowledged. Pure: it does no I/O and reads
/// no clock; `now` is a monotonic time in nanoseconds supplied by the caller.
///
/// Items get consecutive sequence numbers from `firstSequence` (1 on the wire). The sender
/// keeps at most `window` items in flight, counted from the oldest one not cumulatively
/// acknowledged, so it never sends beyond what a receiver with the same window buffers. Each
/// item has its own retransmission deadline; every retransmission doubles that item's timeout,
/// up to `maximumTimeout` (selective repeat with exponential backoff). The base timeout adapts
/// to the measured round trip (smoothed RTT plus four deviations, RFC 6298 style), measured only
/// on items acknowledged after a single transmission. After a retransmission, items sent for the
/// first time get at least the retransmission's timeout until a round trip is measured again
/// (RFC 6298 section 5.5), so a path slower than the timeout is learned instead of every item
/// being sent twice.
///
/// Driving it: `enqueue` items, send whatever `due(now:)` returns, feed every acknowledgement
/// to `acknowledge(_:now:)`, and call `due` again at `nextDeadline` (or after any enqueue or
/// acknowledgement). The sender never gives up by itself; the caller compares
/// `oldestUnacknowledgedSince` with its timeout to decide the peer is gone.
public struct ReliableSender<Payload> {
    /// One datagram to send now.
    public struct Transmission {
        /// The item's sequence number.
        public let sequence: UInt64
        /// The item.
        public let payload: Payload
        /// 1 for the first transmission, 2 for the first retransmission, and so on.
        public let attempt: Int
    }

    fileprivate struct Entry {
        var payload: Payload?
        var attempts = 0
        var firstSent: UInt64 = 0
        var lastSent: UInt64 = 0
        var deadline: UInt64 = 0
        var acknowledged: Bool { payload == nil }
    }

    /// The configuration this sender was created with.
    public let configuration: ReliableStreamConfiguration
    // entries[head + i] holds sequence `base + i`; entries before `head` are dead space that is
    // compacted away in bulk.
    private var entries: [Entry] = []
    private var head = 0
    private var base: UInt64
    private var sentEnd: UInt64
    private var smoothedRTT: UInt64?
    private var rttVariance: UInt64 = 0
    // The timeout of the latest retransmission, until a round trip is measured again (0: none pending).
    // New items start with it: when the path is slower than the timeout, every item is retransmitted and
    // Karn's rule leaves nothing to measure, so without it the sender would never learn and keep sending
    // everything twice.
    private var retransmissionTimeout: UInt64 = 0

    /// Transmissions after the first of any item.
    public private(set) var retransmissions = 0
    /// Acknowledgements ignored because they claimed a sequence number never sent.
    public private(set) var invalidAcknowledgements = 0

    /// A sender whose first item gets `firstSequence`. Traps unless `firstSequence >= 1`,
    /// `window >= 1`, `capacity >= window`, and
    /// `0 < minimumTimeout <= initialTimeout <= maximumTimeout`.
    public init(configuration: ReliableStreamConfiguration = .standard, firstSequence: UInt64 = 1) {
        precondition(firstSequence >= 1, "sequence numbers start at 1 or later")
        precondition(configuration.window >= 1, "window must be at least 1")
        precondition(configuration.capacity >= configuration.window, "capacity must be at least the window")
        precondition(
            configuration.minimumTimeout > 0
                && configuration.minimumTimeout <= configuration.initialTimeout
                && configuration.initialTimeout <= configuration.maximumTimeout,
            "timeouts must satisfy 0 < minimum <= initial <= maximum")
        self.configuration = configuration
        base = firstSequence
        sentEnd = firstSequence
    }

    /// The sequence number the next enqueued item gets.
    public var nextSequence: UInt64 { base + UInt64(entries.count - head) }

    /// Items held: in flight (sent, not acknowledged) plus waiting for the window.
    public private(set) var count = 0

    /// Items sent at least once and not yet acknowledged.
    public var inFlight: Int {
        // Everything ever sent lies within the first `window` entries: an item is sent only
        // inside the window, and the window's start only moves forward.
        let limit = min(entries.count - head, configuration.window)
        return entries[head..<head + limit].reduce(0) { $0 + ($1.acknowledged || $1.attempts == 0 ? 0 : 1) }
    }

    /// True when every enqueued item has been acknowledged.
    public var isIdle: Bool { count == 0 }

    /// The smoothed round-trip time in nanoseconds, nil before the first measurement.
    public var roundTripTime: UInt64? { smoothedRTT }

    /// The timeout a first transmission gets now (before backoff), in nanoseconds.
    public var currentTimeout: UInt64 {
        guard let srtt = smoothedRTT else { return configuration.initialTimeout }
        let (deviation, overflowed) = rttVariance.multipliedReportingOverflow(by: 4)
        let (sum, overflow) = srtt.addingReportingOverflow(deviation)
        let raw = overflowed || overflow ? UInt64.max : sum
        return min(max(raw, configuration.minimumTimeout), configuration.maximumTimeout)
    }

    /// Appends `payload` to the stream and returns its sequence number, or nil (dropping
    /// nothing already held) when `capacity` items are held already.
    public mutating func enqueue(_ payload: Payload) -> UInt64? {
        guard entries.count - head < configuration.capacity else { return nil }
        let sequence = nextSequence
        entries.append(Entry(payload: payload))
        count += 1
        return sequence
    }

    /// What to transmit at time `now`, in sequence order: items never sent that fit in the
    /// window, and items whose retransmission deadline is at or before `now`. Each returned
    /// item's deadline moves to `now` plus its (backed-off) timeout.
    public mutating func due(now: UInt64) -> [Transmission] {
        var result: [Transmission] = []
        let limit = min(entries.count - head, configuration.window)
        for offset in 0..<limit {
            let index = head + offset
            guard let payload = entries[index].payload else { continue }
            if entries[index].attempts == 0 {
                entries[index].firstSent = now
            } else if entries[index].deadline > now {
                continue
            } else {
                retransmissions += 1
            }
            entries[index].attempts += 1
            entries[index].lastSent = now
            var timeout = backedOff(attempt: entries[index].attempts)
            if entries[index].attempts > 1 {
                retransmissionTimeout = max(retransmissionTimeout, timeout)
            } else {
                timeout = max(timeout, retransmissionTimeout)
            }
            entries[index].deadline = now.addingReportingOverflow(timeout).overflow ? .max : now + timeout
            let sequence = base + UInt64(offset)
            sentEnd = max(sentEnd, sequence + 1)
            result.append(Transmission(sequence: sequence, payload: payload, attempt: entries[index].attempts))
        }
        return result
    }

    /// The earliest time `due(now:)` has something to send: 0 when an unsent item fits in the
    /// window (send right away), nil when nothing is in flight and nothing can be sent until
    /// an acknowledgement arrives.
    public var nextDeadline: UInt64? {
        var earliest: UInt64?
        let limit = min(entries.count - head, configuration.window)
        for index in head..<head + limit where !entries[index].acknowledged {
            if entries[index].attempts == 0 { return 0 }
            earliest = min(earliest ?? .max, entries[index].deadline)
        }
        return earliest
    }

    /// When the oldest unacknowledged item was first sent, nil if none is in flight. A caller
    /// that finds this too far in the past (e.g. the member timeout) considers the peer gone.
    public var oldestUnacknowledgedSince: UInt64? {
        let limit = min(entries.count - head, configuration.window)
        return entries[head..<head + limit].first { !$0.acknowledged && $0.attempts > 0 }?.firstSent
    }

    /// Applies an acknowledgement received at `now` and returns how many items it newly
    /// acknowledged.
    ///
    /// Stale or duplicated acknowledgements are harmless: what they report is still true.
    /// One whose cumulative value covers a sequence number never sent is ignored entirely and
    /// counted in `invalidAcknowledgements`; selective bits for sequence numbers never sent
    /// are ignored.
    @discardableResult
    public mutating func acknowledge(_ ack: Acknowledgement, now: UInt64) -> Int {
        guard ack.cumulative < sentEnd else {
            invalidAcknowledgements += 1
            return 0
        }
        var newly = 0
        var sampleFrom: UInt64?
        func note(_ entry: Entry) {
            guard !entry.acknowledged else { return }
            newly += 1
            count -= 1
            if entry.attempts == 1 { sampleFrom = max(sampleFrom ?? 0, entry.lastSent) }
        }
        while base <= ack.cumulative {
            note(entries[head])
            entries[head] = Entry(payload: nil)
            head += 1
            base += 1
        }
        if ack.selective != 0 {
            for bit in 0..<64 where ack.selective & (1 << UInt64(bit)) != 0 {
                let (sequence, overflow) = ack.cumulative.addingReportingOverflow(UInt64(2 + bit))
                guard !overflow, sequence >= base, sequence < sentEnd else { continue }
                let index = head + Int(sequence - base)
                note(entries[index])
                entries[index].payload = nil
            }
        }
        if let sent = sampleFrom, now >= sent { measured(rtt: now - sent) }
        if head > 64 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return newly
    }

    /// Removes and returns every item not yet acknowledged, in sequence order, leaving the
    /// sender empty (numbering continues). For handing unconfirmed items to a new session
    /// after the old one ended.
    public mutating func drainUnacknowledged() -> [Payload] {
        let payloads = entries[head...].compactMap(\.payload)
        base = nextSequence
        sentEnd = base
        entries = []
        head = 0
        count = 0
        return payloads
    }

    private func backedOff(attempt: Int) -> UInt64 {
        var timeout = currentTimeout
        for _ in 1..<max(attempt, 1) {
            if timeout >= configuration.maximumTimeout / 2 { return configuration.maximumTimeout }
            timeout *= 2
        }
        return min(timeout, configuration.maximumTimeout)
    }

    private mutating func measured(rtt: UInt64) {
        retransmissionTimeout = 0
        guard let srtt = smoothedRTT else {
            smoothedRTT = rtt
            rttVariance = rtt / 2
            return
        }
        let deviation = srtt > rtt ? srtt - rtt : rtt - srtt
        rttVariance = rttVariance - rttVariance / 4 + deviation / 4
        smoothedRTT = srtt - srtt / 8 + rtt / 8
    }
}

extension ReliableSender: Sendable where Payload: Sendable {}
extension ReliableSender.Transmission: Sendable where Payload: Sendable {}
extension ReliableSender.Transmission: Equatable where Payload: Equatable {}
extension ReliableSender.Entry: Sendable where Payload: Sendable {}
