/// The impairments applied to one direction of traffic.
///
/// A plain value: nothing is validated here, so that settings can be built piece by piece.
/// ``ImpairmentPipeline`` interprets out-of-range values leniently: probabilities below 0 or NaN
/// never fire, probabilities of 1 or more always fire, and negative durations count as zero.
/// Use ``Percentage/init(parsing:option:)``, ``BitRate/init(parsing:option:)`` and
/// `Duration.init(parsing:option:)` to turn user input into checked values.
public struct ImpairmentSettings: Sendable, Equatable {
    /// Probability in `0...1` that a datagram is discarded on arrival.
    public var loss: Double
    /// Probability in `0...1` that a forwarded datagram is sent twice.
    public var duplicate: Double
    /// Probability in `0...1` that a datagram is held back until later datagrams have overtaken it;
    /// see ``ReorderHold``.
    public var reorder: Double
    /// Probability in `0...1` that one bit of a non-empty datagram is flipped.
    public var corrupt: Double
    /// Fixed delay added to every datagram.
    public var delay: Duration
    /// Each datagram's delay is drawn uniformly from `delay - jitter ... delay + jitter`, floored at zero.
    public var jitter: Duration
    /// Link speed; `nil` means unlimited. Only the datagram payload counts, not IP or UDP headers.
    public var rate: BitRate?
    /// Bytes that may wait in each queue of this direction before further datagrams are dropped
    /// (counted as overflowed): the rate-limited link's backlog, and the delay line with the reorder
    /// hold. `nil` selects ``defaultQueueLimit(for:)`` for the link and ``defaultDelayLimit`` for the
    /// delay line.
    public var queueLimit: Int?
    /// Datagrams (duplicate copies included) that may wait in this direction's queues together;
    /// `nil` selects ``defaultDatagramLimit``. Bounds the memory of many tiny datagrams, which a byte
    /// limit alone does not.
    public var datagramLimit: Int?
    /// How a reordered datagram is held back. Ignored when ``reorder`` is 0.
    public var reorderHold: ReorderHold

    public init(
        loss: Double = 0,
        duplicate: Double = 0,
        reorder: Double = 0,
        corrupt: Double = 0,
        delay: Duration = .zero,
        jitter: Duration = .zero,
        rate: BitRate? = nil,
        queueLimit: Int? = nil,
        datagramLimit: Int? = nil,
        reorderHold: ReorderHold = ReorderHold()
    ) {
        self.datagramLimit = datagramLimit
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.corrupt = corrupt
        self.delay = delay
        self.jitter = jitter
        self.rate = rate
        self.queueLimit = queueLimit
        self.reorderHold = reorderHold
    }

    /// Settings that leave traffic untouched.
    public static let none = ImpairmentSettings()

    /// True when no setting would change, delay or drop any datagram, so a relay may skip the
    /// pipeline entirely. ``queueLimit``, ``datagramLimit`` and ``reorderHold`` alone do not count,
    /// since nothing waits without a rate, a delay or reordering.
    public var isNone: Bool {
        !(loss > 0) && !(duplicate > 0) && !(reorder > 0) && !(corrupt > 0)
            && delay <= .zero && jitter <= .zero && rate == nil
    }

    /// The queue bound actually used: ``queueLimit`` if set, otherwise ``defaultQueueLimit(for:)``.
    public var effectiveQueueLimit: Int {
        queueLimit ?? rate.map(Self.defaultQueueLimit(for:)) ?? Int.max
    }

    /// The bound on bytes in the delay line and reorder hold: ``queueLimit`` if set, otherwise
    /// ``defaultDelayLimit``.
    public var effectiveDelayLimit: Int { queueLimit ?? Self.defaultDelayLimit }

    /// The bound on datagrams waiting: ``datagramLimit`` if set, otherwise ``defaultDatagramLimit``.
    public var effectiveDatagramLimit: Int { datagramLimit ?? Self.defaultDatagramLimit }

    /// 8 MiB: a second of 64 Mbit/s, or 20 ms of 50,000 datagrams per second of 1,400 bytes each.
    public static let defaultDelayLimit = 8 << 20

    /// 16,384 datagrams: about 1.3 MiB of bookkeeping and array headers when they are empty.
    public static let defaultDatagramLimit = 16_384

    /// A queue holding a quarter of a second of traffic at `rate`, like a modest router buffer,
    /// but never less than 64 KiB so that one maximum-size UDP datagram always fits an empty queue.
    public static func defaultQueueLimit(for rate: BitRate) -> Int {
        let quarterSecond = rate.bitsPerSecond / 8 / 4
        return quarterSecond > UInt64(Int.max) ? Int.max : max(65_536, Int(quarterSecond))
    }
}

/// How long a datagram chosen for reordering is held back.
///
/// The datagram waits until `distance` later datagrams have been released ahead of it, then goes
/// out right after the last of them, so it really arrives after later traffic. If those datagrams
/// do not come within `timeout` of the time it would otherwise have been released, it is released
/// anyway; it is therefore never held forever, and on sparse traffic reordering shows up only as
/// this extra delay.
public struct ReorderHold: Sendable, Equatable {
    /// How many later datagrams overtake a held one; values below 1 count as 1.
    public var distance: Int
    /// The longest extra wait beyond the datagram's normal release time.
    public var timeout: Duration

    public init(distance: Int = 1, timeout: Duration = .milliseconds(10)) {
        self.distance = distance
        self.timeout = timeout
    }
}
