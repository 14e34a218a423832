/// A small, fast, deterministic random number generator (xoshiro256**) for impairment decisions.
///
/// A given `seed` and `stream` yield the same sequence on every platform and in every release that
/// keeps this algorithm, which is what makes `--seed` runs reproducible. Each stream of one seed is
/// an independent sequence: give each traffic direction (or each direction of each client) its own
/// stream so that traffic in one never shifts the decisions made for another.
/// Not suitable for cryptography.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable {
    private var s0, s1, s2, s3: UInt64

    /// Creates the generator for `stream` of `seed`. Any values are allowed, including 0.
    public init(seed: UInt64, stream: UInt64 = 0) {
        // Both inputs go through the mixer before combining, so that neighbouring seeds or
        // streams start from unrelated states instead of shifted copies of one sequence.
        var expander = SplitMix64(state: SplitMix64.mix(seed) ^ SplitMix64.mix(stream &+ 0x6A09_E667_F3BC_C909))
        // SplitMix64 never yields four zeros in a row, so the state below is never all zero,
        // the one state xoshiro cannot leave.
        s0 = expander.next()
        s1 = expander.next()
        s2 = expander.next()
        s3 = expander.next()
    }

    /// Starts from an explicit state, which must not be all zero.
    init(state: (UInt64, UInt64, UInt64, UInt64)) {
        (s0, s1, s2, s3) = state
    }

    public mutating func next() -> UInt64 {
        let result = (s1 &* 5).rotatedLeft(by: 7) &* 9
        let shifted = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= shifted
        s3 = s3.rotatedLeft(by: 45)
        return result
    }
}

/// The SplitMix64 sequence, used only to spread a 64-bit seed over the larger xoshiro state.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension UInt64 {
    fileprivate func rotatedLeft(by count: UInt64) -> UInt64 {
        (self << count) | (self >> (64 - count))
    }

    /// Maps a random 64-bit value to a Double uniformly spread over `0..<1`.
    var unitInterval: Double { Double(self >> 11) * 0x1p-53 }

    /// Maps a random 64-bit value to `0..<bound`; the bias, at most bound / 2^64, is negligible.
    func scaled(to bound: UInt64) -> UInt64 { multipliedFullWidth(by: bound).high }
}
