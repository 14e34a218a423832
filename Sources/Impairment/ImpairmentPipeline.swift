/// A datagram to be sent at a given time.
public struct ScheduledDatagram: Sendable, Equatable {
    /// The payload to send, possibly with one bit flipped.
    public var bytes: [UInt8]
    /// When to send it, in nanoseconds on the caller's clock. A time at or before the current time
    /// means "send now".
    public var releaseTime: UInt64

    public init(bytes: [UInt8], releaseTime: UInt64) {
        self.bytes = bytes
        self.releaseTime = releaseTime
    }
}

/// The impairment decisions for one stream of datagrams, as a pure state machine without I/O.
///
/// Feed each arriving datagram to ``submit(_:at:)`` and send whatever it returns at the given
/// release times. While ``nextDeadline`` is non-nil, also call ``releaseDue(at:)`` once that time
/// has come, and send what it returns. Times are nanoseconds on any monotonic clock the caller
/// chooses; a time earlier than one already seen is treated as that latest time. One pipeline per
/// direction makes a rate limit act as a single link shared by all clients.
///
/// Everything the pipeline ever returns, across all calls, is in non-decreasing release order, so
/// the caller can keep a single first-in-first-out queue and one timer for its head. Datagrams with
/// equal release times must be sent in the order they were returned.
///
/// Each datagram goes through these steps in order:
/// 1. **loss**: discarded with probability ``ImpairmentSettings/loss``;
/// 2. **queues**: discarded as overflow if it does not fit every queue it would wait in: the
///    rate-limited link's backlog (``ImpairmentSettings/effectiveQueueLimit`` bytes), the delay
///    line and reorder hold together (``ImpairmentSettings/effectiveDelayLimit`` bytes), and the
///    datagrams waiting in all of them (``ImpairmentSettings/effectiveDatagramLimit``, and the
///    `room` the caller passes to ``submit(_:at:room:)``). With a rate it is then sent once the link
///    has finished earlier datagrams, taking `bytes × 8 / rate` seconds (rounded up to a nanosecond);
/// 3. **corrupt**: one uniformly chosen bit is flipped; empty datagrams are left alone;
/// 4. **duplicate**: a second, identical copy follows ``tieBreakSpacing`` after the first;
/// 5. **delay and jitter**: `delay + uniform(-jitter...+jitter)` nanoseconds are added, floored at
///    zero. Jitter does not reorder: a datagram is never released before the one submitted ahead of
///    it, so its release time is the later of its own and its predecessor's. This keeps reordering
///    under the control of the reorder setting alone. Without a rate limit, the added delay of a
///    datagram that is not held still stays within `delay ± jitter` (give or take the
///    ``tieBreakSpacing`` of duplicates and reordering), because its predecessor arrived no later;
/// 6. **reorder**: held back as described by ``ReorderHold``, then released ``tieBreakSpacing``
///    after the datagram that overtook it.
///
/// Each datagram consumes the same six random numbers whatever the settings, so with a fixed seed
/// changing one setting does not change the decisions made by the others: for example adding a
/// delay leaves the same datagrams lost.
public struct ImpairmentPipeline: Sendable, Equatable {
    /// Gap in nanoseconds (1 µs) between a datagram and its duplicate, and between a datagram and
    /// the held datagram released behind it, so that the intended order never rests on a tie.
    public static let tieBreakSpacing: UInt64 = 1_000

    public let settings: ImpairmentSettings
    private var generator: SeededGenerator
    private var totals = ImpairmentCounters()
    private var held: [HeldDatagram] = []
    private var linkBusyUntil: UInt64 = 0
    private var lastRelease: UInt64 = 0
    private var latestTime: UInt64 = 0
    /// Copies handed out whose release time has not come yet, in release order: what the caller still holds.
    private var scheduled = Backlog()
    /// Datagrams on the rate-limited link that it has not finished sending (by the time the link is done
    /// with each), counted with their copies: the part of `scheduled` and `held` that is not in the delay line.
    private var onLink = Backlog()
    private var heldBytes = 0

    /// Sizes of datagrams in order of a non-decreasing time, with their sum.
    private struct Backlog: Sendable, Equatable {
        private var entries: [(time: UInt64, bytes: Int, copies: Int)] = []
        private var head = 0
        private(set) var bytes = 0
        private(set) var copies = 0

        static func == (a: Backlog, b: Backlog) -> Bool {
            a.bytes == b.bytes && a.copies == b.copies && a.entries.count - a.head == b.entries.count - b.head
        }

        mutating func append(time: UInt64, bytes: Int, copies: Int) {
            entries.append((time, bytes, copies))
            self.bytes += bytes * copies
            self.copies += copies
        }

        /// Forgets the entries whose time is at or before `now`.
        mutating func removeDue(at now: UInt64) {
            while head < entries.count, entries[head].time <= now {
                bytes -= entries[head].bytes * entries[head].copies
                copies -= entries[head].copies
                head += 1
            }
            if head == entries.count {
                entries.removeAll(keepingCapacity: entries.count < 1024)
                head = 0
            } else if head > 1024, head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
        }
    }

    private struct HeldDatagram: Sendable, Equatable {
        var bytes: [UInt8]
        var duplicated: Bool
        var arrival: UInt64
        /// When it would have been released had it not been chosen for reordering.
        var natural: UInt64
        var deadline: UInt64
        var remaining: Int
        var overtaken = false
    }

    /// Creates a pipeline. Give every pipeline its own generator stream; see ``SeededGenerator``.
    public init(settings: ImpairmentSettings, generator: SeededGenerator) {
        self.settings = settings
        self.generator = generator
    }

    /// The earliest time at which a held datagram must be released by ``releaseDue(at:)``,
    /// or `nil` when nothing is held.
    public var nextDeadline: UInt64? { held.lazy.map(\.deadline).min() }

    /// Bytes the rate-limited link still has to send at `now`, including the unsent part of the
    /// datagram in transmission (rounded down to whole bytes); always 0 without a rate.
    public func queuedBytes(at now: UInt64) -> Int {
        guard let rate = settings.rate, linkBusyUntil > now else { return 0 }
        let bitsTimesBillion = (linkBusyUntil - now).multipliedFullWidth(by: rate.bitsPerSecond)
        let divisor: UInt64 = 8_000_000_000
        guard bitsTimesBillion.high < divisor else { return .max }
        let bytes = divisor.dividingFullWidth(bitsTimesBillion).quotient
        return bytes > UInt64(Int.max) ? .max : Int(bytes)
    }

    /// The counters so far, with ``ImpairmentCounters/queuedBytes`` measured at `now`.
    public func counters(at now: UInt64) -> ImpairmentCounters {
        var snapshot = totals
        snapshot.held = held.count
        snapshot.queuedBytes = queuedBytes(at: now)
        return snapshot
    }

    /// Bytes of the datagrams that wait at `now`: on the link, in the delay line, held for reordering
    /// (duplicate copies counted), as the caller holds them if it sends each at its release time.
    public mutating func waitingBytes(at now: UInt64) -> Int {
        let now = advanceClock(to: now)
        scheduled.removeDue(at: now)
        onLink.removeDue(at: now)
        return scheduled.bytes + heldBytes
    }

    /// How many datagrams (copies) wait at `now`; see ``waitingBytes(at:)``.
    public mutating func waitingDatagrams(at now: UInt64) -> Int {
        let now = advanceClock(to: now)
        scheduled.removeDue(at: now)
        return scheduled.copies + held.count
    }

    /// Decides the fate of a datagram arriving at `now` and returns what to send, and when.
    ///
    /// The result holds zero, one or two copies of this datagram, preceded by any held datagrams
    /// whose deadline has passed and followed by any held datagrams it has just overtaken. A datagram
    /// chosen for reordering is not in the result; it comes out of a later call.
    ///
    /// - Parameter room: bytes the caller can still hold beyond what this pipeline already has waiting
    ///   (for a bound shared by several pipelines); a datagram (with its duplicate) larger than this is
    ///   discarded as overflow.
    public mutating func submit(_ datagram: [UInt8], at now: UInt64, room: Int = .max) -> [ScheduledDatagram] {
        let now = advanceClock(to: now)
        // Expiring first makes the outcome independent of how promptly the caller's timer fired.
        var output = releaseDue(at: now)
        scheduled.removeDue(at: now)
        onLink.removeDue(at: now)
        totals.received += 1
        let lossDraw = generator.next().unitInterval
        let corruptDraw = generator.next().unitInterval
        let bitDraw = generator.next()
        let duplicateDraw = generator.next().unitInterval
        let jitterDraw = generator.next()
        let reorderDraw = generator.next().unitInterval

        if lossDraw < settings.loss {
            totals.dropped += 1
            return output
        }
        let duplicated = duplicateDraw < settings.duplicate
        let copies = duplicated ? 2 : 1
        // Both copies wait in the delay line and the caller's queue; the link carries the datagram once.
        let size = datagram.count
        let inDelayLine = max(0, scheduled.bytes + heldBytes - onLink.bytes)
        let delayLimit = settings.effectiveDelayLimit
        guard size <= delayLimit / copies, inDelayLine <= delayLimit - size * copies,
            scheduled.copies + held.count + copies <= settings.effectiveDatagramLimit,
            size <= room / copies
        else {
            totals.overflowed += 1
            return output
        }
        var sent = now
        if let rate = settings.rate {
            let limit = settings.effectiveQueueLimit
            guard size <= limit, queuedBytes(at: now) <= limit - size else {
                totals.overflowed += 1
                return output
            }
            linkBusyUntil = max(now, linkBusyUntil).addingSaturated(transmissionTime(of: size, at: rate))
            sent = linkBusyUntil
            if sent > now { onLink.append(time: sent, bytes: size, copies: copies) }
        }
        var bytes = datagram
        if !bytes.isEmpty, corruptDraw < settings.corrupt {
            let bit = bitDraw.scaled(to: UInt64(bytes.count) * 8)
            bytes[Int(bit / 8)] ^= UInt8(1) << (bit % 8)
            totals.corrupted += 1
        }
        let natural = sent.addingSaturated(addedDelay(jitterDraw))

        if reorderDraw < settings.reorder {
            let hold = settings.reorderHold
            heldBytes += bytes.count * copies
            held.append(
                HeldDatagram(
                    bytes: bytes, duplicated: duplicated, arrival: now, natural: natural,
                    deadline: natural.addingSaturated(hold.timeout.clampedNanoseconds),
                    remaining: max(1, hold.distance)))
            return output
        }
        emit(bytes, duplicated: duplicated, arrival: now, notBefore: natural, into: &output)

        var stillHeld: [HeldDatagram] = []
        for var entry in held {
            entry.remaining -= 1
            entry.overtaken = true
            if entry.remaining > 0 {
                stillHeld.append(entry)
            } else {
                heldBytes -= entry.bytes.count * (entry.duplicated ? 2 : 1)
                release(entry, notBefore: entry.natural, into: &output)
            }
        }
        held = stillHeld
        return output
    }

    /// Releases the held datagrams whose deadline is at or before `now`, earliest deadline first,
    /// and returns what to send. Each goes out at its deadline, or just after the last datagram
    /// already released if that is later. Calling this early or repeatedly is harmless.
    public mutating func releaseDue(at now: UInt64) -> [ScheduledDatagram] {
        let now = advanceClock(to: now)
        var output: [ScheduledDatagram] = []
        let due = held.enumerated()
            .filter { $0.element.deadline <= now }
            .sorted { ($0.element.deadline, $0.offset) < ($1.element.deadline, $1.offset) }
        guard !due.isEmpty else { return output }
        held.removeAll { $0.deadline <= now }
        for (_, entry) in due {
            heldBytes -= entry.bytes.count * (entry.duplicated ? 2 : 1)
            release(entry, notBefore: entry.deadline, into: &output)
        }
        return output
    }

    private mutating func advanceClock(to now: UInt64) -> UInt64 {
        latestTime = max(latestTime, now)
        return latestTime
    }

    private mutating func release(_ entry: HeldDatagram, notBefore: UInt64, into output: inout [ScheduledDatagram]) {
        if entry.overtaken { totals.reordered += 1 }
        let behindLast = lastRelease.addingSaturated(Self.tieBreakSpacing)
        emit(
            entry.bytes, duplicated: entry.duplicated, arrival: entry.arrival,
            notBefore: max(notBefore, behindLast), into: &output)
    }

    private mutating func emit(
        _ bytes: [UInt8], duplicated: Bool, arrival: UInt64, notBefore: UInt64,
        into output: inout [ScheduledDatagram]
    ) {
        var time = max(notBefore, lastRelease)
        record(bytes, at: time, arrival: arrival, into: &output)
        if duplicated {
            time = time.addingSaturated(Self.tieBreakSpacing)
            totals.duplicated += 1
            record(bytes, at: time, arrival: arrival, into: &output)
        }
        lastRelease = time
    }

    private mutating func record(
        _ bytes: [UInt8], at time: UInt64, arrival: UInt64, into output: inout [ScheduledDatagram]
    ) {
        output.append(ScheduledDatagram(bytes: bytes, releaseTime: time))
        if time > latestTime { scheduled.append(time: time, bytes: bytes.count, copies: 1) }
        totals.forwarded += 1
        let added = time - arrival
        totals.addedDelayTotalNanoseconds = totals.addedDelayTotalNanoseconds.addingSaturated(added)
        totals.addedDelayMaxNanoseconds = max(totals.addedDelayMaxNanoseconds, added)
    }

    private func addedDelay(_ draw: UInt64) -> UInt64 {
        let delay = settings.delay.clampedNanoseconds
        let jitter = settings.jitter.clampedNanoseconds
        guard jitter > 0 else { return delay }
        let raised = delay + draw.scaled(to: 2 * jitter + 1)
        return raised > jitter ? raised - jitter : 0
    }

    private func transmissionTime(of byteCount: Int, at rate: BitRate) -> UInt64 {
        let bitsTimesBillion = (UInt64(byteCount) * 8).multipliedFullWidth(by: 1_000_000_000)
        guard bitsTimesBillion.high < rate.bitsPerSecond else { return .max }
        let (quotient, remainder) = rate.bitsPerSecond.dividingFullWidth(bitsTimesBillion)
        return remainder == 0 ? quotient : quotient + 1
    }
}
