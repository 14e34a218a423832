import NIOCore

/// The host's monotonic clock in nanoseconds (CLOCK_MONOTONIC on Linux, the uptime clock on Darwin): it never
/// jumps with the wall clock, and every process on the host reads the same one, so a time written into a
/// datagram by one program can be compared with the arrival time read by another (bench probes, jitter).
public enum MonotonicClock {
    /// Nanoseconds since an arbitrary point (usually boot); only differences are meaningful.
    public static var nanoseconds: UInt64 { NIODeadline.now().uptimeNanoseconds }
}
