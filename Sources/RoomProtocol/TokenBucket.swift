/// A token-bucket rate limiter: up to `capacity` actions at once, then one per
/// `refillInterval` on average. Pure: the caller passes a monotonic time in nanoseconds.
///
/// The room uses one per member for commands (burst 50, one token per 200 ms = 5/s), so a
/// pasted block of a few dozen lines goes through at once while a sustained flood is cut to
/// the refill rate.
///
/// Integer arithmetic only, so no drift: the fill level is kept as nanoseconds of refill time
/// (`capacity * refillInterval` when full). The bucket starts full. A `now` earlier than one
/// seen before counts as no time passing, never as negative time.
public struct TokenBucket: Hashable, Sendable {
    /// The most tokens the bucket holds (the burst size).
    public let capacity: Int
    /// Nanoseconds to regain one token.
    public let refillInterval: UInt64
    private var credit: UInt64
    private var updatedAt: UInt64

    /// A full bucket at time `now`. Traps unless `capacity >= 1`, `refillInterval >= 1` and
    /// `capacity * refillInterval` fits in 64 bits.
    public init(capacity: Int, refillInterval: UInt64, now: UInt64) {
        precondition(capacity >= 1, "capacity must be at least 1")
        precondition(refillInterval >= 1, "refill interval must be at least 1 ns")
        let (full, overflow) = UInt64(capacity).multipliedReportingOverflow(by: refillInterval)
        precondition(!overflow, "capacity * refillInterval must fit in 64 bits")
        self.capacity = capacity
        self.refillInterval = refillInterval
        credit = full
        updatedAt = now
    }

    private var full: UInt64 { UInt64(capacity) * refillInterval }

    private func credit(at now: UInt64) -> UInt64 {
        guard now > updatedAt else { return credit }
        let (sum, overflow) = credit.addingReportingOverflow(now - updatedAt)
        return overflow ? full : min(sum, full)
    }

    /// Whole tokens available at `now`.
    public func available(now: UInt64) -> Int {
        Int(credit(at: now) / refillInterval)
    }

    /// Takes one token if there is one at `now`; false (taking nothing) if the bucket is
    /// empty.
    public mutating func tryTake(now: UInt64) -> Bool {
        let current = credit(at: now)
        credit = current
        updatedAt = max(updatedAt, now)
        guard current >= refillInterval else { return false }
        credit = current - refillInterval
        return true
    }

    /// Nanoseconds from `now` until a token is available; 0 if one is available now.
    public func delayUntilAvailable(now: UInt64) -> UInt64 {
        let current = credit(at: now)
        return current >= refillInterval ? 0 : refillInterval - current
    }
}
