/// Interarrival jitter estimator of RFC 3550 section 6.4.1, in nanoseconds.
///
/// For consecutive datagrams i and j (in arrival order, i.e. the order of `record` calls),
/// `D(i,j) = (Rj - Ri) - (Sj - Si)` where S is the send time and R the arrival time, and the
/// estimate is updated as `J += (|D(i,j)| - J) / 16`, starting from 0.
public struct JitterEstimator: Sendable {
    /// Transit time (`arrival - send`, wrapping) of the previous datagram; nil before the first.
    private var previousTransit: UInt64?

    /// The current jitter estimate in nanoseconds; 0 until two datagrams were recorded, never
    /// negative.
    public private(set) var jitterNanos: Double = 0

    /// Datagrams recorded so far; the estimate means something from 2 on.
    public private(set) var samples: Int = 0

    /// Creates an estimator with no datagrams recorded and a jitter of 0.
    public init() {}

    /// Records one datagram's send time (sender's clock) and arrival time (receiver's clock),
    /// both in nanoseconds, in arrival order. Only differences matter, so the two clocks need not
    /// be synchronized or share an epoch (arrival may even be numerically below send time);
    /// arithmetic wraps, so results are exact as long as the change in transit time between
    /// consecutive datagrams fits in an `Int64`. Never traps.
    public mutating func record(sendTime: UInt64, arrivalTime: UInt64) {
        samples += 1
        let transit = arrivalTime &- sendTime
        if let previous = previousTransit {
            let difference = Double(Int64(bitPattern: transit &- previous)).magnitude
            jitterNanos += (difference - jitterNanos) / 16
        }
        previousTransit = transit
    }
}

// MARK: - Human-readable formatting

/// Formats bench results for people, with decimal (SI, base 1000) prefixes and no Foundation.
///
/// All functions: negative values get a leading "-", non-finite values (NaN, ±infinity) give
/// "n/a", and a value that rounds up to 1000 of a unit moves to the next unit (999.96k -> "1.0M").
public enum RateFormat {
    /// A bit rate with about three significant digits and a unit among bit/s, kbit/s, Mbit/s,
    /// Gbit/s, Tbit/s: `bits(perSecond: 3.9e9)` is "3.90 Gbit/s", `4.2e7` is "42.0 Mbit/s",
    /// `0` is "0.00 bit/s". Rates beyond the Tbit/s range stay in Tbit/s.
    public static func bits(perSecond: Double) -> String {
        format(perSecond, units: [" bit/s", " kbit/s", " Mbit/s", " Gbit/s", " Tbit/s"]) { _, value in
            significantDecimals(value)
        }
    }

    /// A count (or count per second) with one decimal and a suffix k, M, G, T from 1000 on:
    /// `count(334_512)` is "334.5k", `count(2_500_000)` is "2.5M". Below 1000 there is no suffix:
    /// whole numbers have no decimals ("999"), fractional ones one decimal ("0.5").
    public static func count(_ value: Double) -> String {
        format(value, units: ["", "k", "M", "G", "T"]) { unit, value in
            unit == 0 && value == value.rounded() ? 0 : 1
        }
    }

    /// A duration given in nanoseconds with about three significant digits and a unit among ns,
    /// µs, ms, s: "850 ns", "12.3 µs", "1.23 ms", "1.23 s". Durations of 1000 s and more stay in
    /// seconds ("3600 s").
    public static func duration(nanos: Double) -> String {
        format(nanos, units: [" ns", " µs", " ms", " s"]) { _, value in
            significantDecimals(value)
        }
    }

    /// Decimals giving three significant digits for a value in [0, 1000): 2 below 10, 1 below
    /// 100, else 0.
    private static func significantDecimals(_ value: Double) -> Int {
        value < 10 ? 2 : value < 100 ? 1 : 0
    }

    /// Scales `value` by powers of 1000 into `units` and renders it with `decimals(unit, value)`
    /// decimal places (re-evaluated on the rounded value, so 9.996 becomes "10.0", not "10.00").
    private static func format(_ value: Double, units: [String], decimals: (Int, Double) -> Int) -> String {
        guard value.isFinite else { return "n/a" }
        let sign = value < 0 ? "-" : ""
        var magnitude = value.magnitude
        var unit = 0
        while magnitude >= 1000 && unit < units.count - 1 {
            magnitude /= 1000
            unit += 1
        }
        while true {
            var places = decimals(unit, magnitude)
            var rounded = round(magnitude, places: places)
            let fewer = decimals(unit, rounded)
            if fewer < places {
                places = fewer
                rounded = round(magnitude, places: places)
            }
            if rounded >= 1000 && unit < units.count - 1 {
                magnitude /= 1000
                unit += 1
                continue
            }
            let text = fixed(rounded, places: places)
            return (text.allSatisfy { $0 == "0" || $0 == "." } ? "" : sign) + text + units[unit]
        }
    }

    private static func round(_ value: Double, places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (value * scale).rounded() / scale
    }

    /// Renders a non-negative finite value with exactly `places` decimals.
    private static func fixed(_ value: Double, places: Int) -> String {
        var scale: UInt64 = 1
        for _ in 0..<places { scale *= 10 }
        let scaled = (value * Double(scale)).rounded()
        guard scaled < 9.0e18 else { return String(value) }  // absurdly large: plain description
        let integer = UInt64(scaled)
        var text = String(integer / scale)
        if places > 0 {
            let fraction = String(integer % scale)
            text += "." + String(repeating: "0", count: places - fraction.count) + fraction
        }
        return text
    }
}
