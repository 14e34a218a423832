import NIOCore
import UDPKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The two clocks the room runs on. The protocol's state machines take a monotonic time in nanoseconds
/// (so timeouts survive wall-clock jumps); message times on the wire are wall-clock milliseconds.
enum RoomClock {
    /// Monotonic nanoseconds (CLOCK_MONOTONIC on Linux, the uptime clock on Darwin).
    static func now() -> UInt64 { MonotonicClock.nanoseconds }

    /// Milliseconds since 1970-01-01 UTC.
    static func unixMillis() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }
}

extension UInt64 {
    /// Nanoseconds from `self` to `later`, 0 when `later` is not after `self`.
    func elapsed(until later: UInt64) -> UInt64 { later > self ? later - self : 0 }

    /// `self + other`, saturating at `UInt64.max` instead of trapping.
    func plus(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
