/// Counts what arrived of a numbered stream (sequence numbers starting at 0, one per datagram)
/// and derives loss, duplicates and reordering from it.
///
/// Memory is bounded: duplicates are detected with a sliding bitmap covering the `window`
/// sequence numbers ending at the highest one seen, so millions of datagrams cost no more than
/// `window / 8` bytes. Classification of each recorded sequence `s`, with `h` the highest
/// sequence seen before it:
///
/// - first datagram, or `s > h`: new (`unique`); becomes the new `highest`. Gaps are not counted
///   eagerly; they show up in `lost` until the missing datagrams arrive.
/// - `s` within the window (`h - s < window`) and already seen: `duplicates`.
/// - `s < h` within the window and not seen yet: `unique` and `reordered`.
/// - `s` older than the window (`h - s >= window`): whether it was seen cannot be known any more,
///   so it is assumed new: it counts as `late`, `reordered` and `unique`, never as a duplicate.
///   A real duplicate this old therefore inflates `unique` (which is why `lost` is clamped at 0).
///
/// A single corrupt or foreign sequence far above the real ones makes `expected` and `lost`
/// meaningless, so callers should drop datagrams of other streams (see `Probe.stream`) first.
public struct SequenceStats: Sendable {
    /// How many sequence numbers below and including `highest` are tracked for duplicate
    /// detection, exactly as passed to `init(window:)`.
    public let window: Int

    /// Every datagram recorded, including duplicates and late ones.
    public private(set) var received: Int = 0

    /// Distinct sequence numbers recorded (as far as the window can tell; late datagrams are
    /// assumed distinct).
    public private(set) var unique: Int = 0

    /// Datagrams whose sequence number was already recorded and is still inside the window.
    public private(set) var duplicates: Int = 0

    /// Datagrams that arrived with a sequence number lower than the highest seen so far and were
    /// not duplicates; includes `late`.
    public private(set) var reordered: Int = 0

    /// Datagrams older than the window (`highest - sequence >= window` on arrival). They are also
    /// counted in `reordered` and `unique`, never in `duplicates`.
    public private(set) var late: Int = 0

    /// The highest sequence number recorded, nil before the first `record`.
    public private(set) var highest: UInt64?

    /// Ring of `bitCount` bits; bit `s % bitCount` tells whether sequence `s` (within the window)
    /// was seen.
    private var bits: [UInt64]
    private let bitCount: UInt64

    /// Creates empty statistics tracking the last `window` sequence numbers for duplicate
    /// detection (default 65,536, costing 8 KiB). Traps (precondition) unless
    /// `1 <= window <= 2^30`.
    public init(window: Int = 65_536) {
        precondition(window >= 1 && window <= 1 << 30, "window must be in 1...2^30, got \(window)")
        self.window = window
        let words = (window + 63) / 64
        bits = Array(repeating: 0, count: words)
        bitCount = UInt64(words) * 64
    }

    /// Records the arrival of one datagram carrying `sequence`, classifying it as described on
    /// the type. O(1) amortized; a jump of the highest sequence costs O(min(jump, window) / 64).
    public mutating func record(_ sequence: UInt64) {
        received += 1
        guard let top = highest else {
            highest = sequence
            _ = testAndSet(sequence)
            unique += 1
            return
        }
        if sequence > top {
            clear(from: top &+ 1, count: sequence - top)
            _ = testAndSet(sequence)
            highest = sequence
            unique += 1
        } else if top - sequence >= UInt64(window) {
            late += 1
            reordered += 1
            unique += 1
        } else if testAndSet(sequence) {
            duplicates += 1
        } else {
            // Not seen and not the highest (which is always set), so it is below `top`.
            unique += 1
            reordered += 1
        }
    }

    /// Datagrams expected so far assuming the stream starts at sequence 0: `highest + 1`
    /// (0 before anything was recorded; saturates at `Int.max`). Losses after the highest
    /// received sequence are invisible here; use `lost(sent:)` when the sender's count is known.
    public var expected: Int {
        guard let top = highest else { return 0 }
        return top >= UInt64(Int.max) ? Int.max : Int(top) + 1
    }

    /// `max(0, expected - unique)`: sequence numbers up to `highest` that never arrived.
    public var lost: Int {
        max(0, expected - unique)
    }

    /// `max(0, sent - unique)`: datagrams lost when the sender reports having sent `sent`,
    /// which also covers losses after the highest received sequence (a lost tail).
    public func lost(sent: Int) -> Int {
        max(0, sent - unique)
    }

    /// `lost / expected` as a fraction in 0...1; 0 when `expected` is 0.
    public var lossRatio: Double {
        let expected = self.expected
        return expected == 0 ? 0 : Double(lost) / Double(expected)
    }

    /// Sets the bit of `sequence` and returns whether it was already set.
    private mutating func testAndSet(_ sequence: UInt64) -> Bool {
        let position = sequence % bitCount
        let word = Int(position / 64)
        let mask: UInt64 = 1 << (position % 64)
        let wasSet = bits[word] & mask != 0
        bits[word] |= mask
        return wasSet
    }

    /// Clears the bits of the `count` sequence numbers starting at `start` (they are entering the
    /// window and must not look seen because of older numbers sharing their bit).
    private mutating func clear(from start: UInt64, count: UInt64) {
        if count >= bitCount {
            for index in bits.indices { bits[index] = 0 }
            return
        }
        var position = start % bitCount
        var remaining = count
        while remaining > 0 {
            let offset = position % 64
            let length = min(64 - offset, remaining)
            let mask: UInt64 = length == 64 ? ~0 : ((1 << length) - 1) << offset
            bits[Int(position / 64)] &= ~mask
            remaining -= length
            position += length
            if position == bitCount { position = 0 }
        }
    }
}
