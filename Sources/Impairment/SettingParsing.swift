/// A rejected command-line value for an impairment option.
///
/// ``description`` is a single line naming the option, suitable for printing as-is,
/// for example `--loss: 120% is above 100%`.
public struct ImpairmentSettingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong with the value.
    public enum Problem: Sendable, Equatable {
        /// The value is empty or only whitespace.
        case missing
        /// The value does not start with a decimal number (this includes `nan` and `inf`).
        case notANumber
        /// The text after the number is not one of the accepted units, which are listed in `expected`.
        case unknownUnit(String, expected: String)
        /// The number is below zero.
        case negative
        /// The value exceeds the largest accepted value, given in the units the user wrote.
        case aboveMaximum(String)
        /// The value is below the smallest accepted value.
        case belowMinimum(String)
        /// A number other than 0 without the unit it needs; `examples` shows it with units.
        case missingUnit(examples: String)
    }

    /// The option the value was given for, such as `--loss` or `--up-delay`.
    public var option: String
    /// The offending value with surrounding whitespace removed.
    public var text: String
    public var problem: Problem

    public init(option: String, text: String, problem: Problem) {
        self.option = option
        self.text = text
        self.problem = problem
    }

    public var description: String {
        switch problem {
        case .missing:
            return "\(option): missing value"
        case .notANumber:
            return "\(option): '\(text)' is not a number"
        case .unknownUnit(let unit, let expected):
            return "\(option): unknown unit '\(unit)' in '\(text)' (expected \(expected))"
        case .negative:
            return "\(option): \(text) is negative"
        case .aboveMaximum(let limit):
            return "\(option): \(text) is above \(limit)"
        case .belowMinimum(let limit):
            return "\(option): \(text) is below \(limit)"
        case .missingUnit(let examples):
            return "\(option): add a unit to \(text): \(examples) (the units are us, ms, s)"
        }
    }
}

/// A probability written as a percentage, such as `30%`, `0.5%` or a bare `30`.
public struct Percentage: Sendable, Equatable, Hashable {
    /// The probability as a fraction in `0...1`.
    public var fraction: Double

    /// Creates a percentage from a fraction; values outside `0...1` are clamped and NaN becomes 0.
    public init(fraction: Double) {
        self.fraction = fraction.isNaN ? 0 : min(max(fraction, 0), 1)
    }

    /// Parses a percentage between 0 and 100 inclusive.
    ///
    /// Accepts a decimal number with an optional `%` sign: `30%`, `0.5%`, `30` and `30 %` all work,
    /// and a bare number is read as a percentage, not a fraction (`0.5` means 0.5%).
    /// Exponents are accepted (`1e1%` is 10%). Rejects empty text, `nan`, `inf`, other units,
    /// negative values and values above 100.
    ///
    /// - Parameter option: The option name used in the error message, such as `--loss`.
    public init(parsing raw: String, option: String) throws(ImpairmentSettingError) {
        let quantity = try Quantity(raw, option: option)
        guard quantity.unit.isEmpty || quantity.unit == "%" else {
            throw quantity.error(.unknownUnit(quantity.unit, expected: "%"))
        }
        guard quantity.value >= 0 else { throw quantity.error(.negative) }
        guard quantity.value <= 100 else { throw quantity.error(.aboveMaximum("100%")) }
        self.init(fraction: quantity.value / 100)
    }
}

/// A link speed in bits per second.
public struct BitRate: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Bits per second, at least 1.
    public var bitsPerSecond: UInt64

    /// Creates a rate; 0 is raised to 1 because a link that never finishes sending would hold
    /// every datagram forever.
    public init(bitsPerSecond: UInt64) {
        self.bitsPerSecond = max(1, bitsPerSecond)
    }

    /// Parses a rate such as `1M`, `500k`, `2.5Mbit/s`, `64kbps` or a bare `9600` (bits per second).
    ///
    /// Multipliers are decimal: `k`/`K` = 1,000, `M`/`m` = 1,000,000, `G`/`g` = 1,000,000,000
    /// (lower-case `m` means mega because milli-bits are meaningless). After the multiplier, `bit/s`,
    /// `bps` or `bit` may follow. Bytes (`B/s`) are rejected as an unknown unit rather than guessed.
    /// The result is rounded to whole bits per second and must lie in 1 bit/s ... 1000 Gbit/s.
    ///
    /// - Parameter option: The option name used in the error message, such as `--rate`.
    public init(parsing raw: String, option: String) throws(ImpairmentSettingError) {
        let quantity = try Quantity(raw, option: option)
        var unit = Substring(quantity.unit)
        var multiplier = 1.0
        switch unit.first {
        case "k", "K": multiplier = 1e3
        case "m", "M": multiplier = 1e6
        case "g", "G": multiplier = 1e9
        default: break
        }
        if multiplier > 1 { unit = unit.dropFirst() }
        guard ["", "bit/s", "bps", "bit"].contains(unit) else {
            throw quantity.error(
                .unknownUnit(quantity.unit, expected: "k, M or G, optionally followed by bit/s or bps"))
        }
        guard quantity.value >= 0 else { throw quantity.error(.negative) }
        let bits = quantity.value * multiplier
        guard bits >= 1 else { throw quantity.error(.belowMinimum("1 bit/s")) }
        guard bits <= 1e12 else { throw quantity.error(.aboveMaximum("1000 Gbit/s")) }
        self.init(bitsPerSecond: UInt64(bits.rounded()))
    }

    /// A short human-readable form such as `2.5 Mbit/s`, truncated to three decimals.
    public var description: String {
        for (scale, prefix) in [(UInt64(1_000_000_000), "G"), (1_000_000, "M"), (1_000, "k")]
        where bitsPerSecond >= scale {
            let whole = bitsPerSecond / scale
            let thousandths = (bitsPerSecond % scale) * 1_000 / scale
            guard thousandths > 0 else { return "\(whole) \(prefix)bit/s" }
            var decimals = String(thousandths)
            decimals = String(repeating: "0", count: 3 - decimals.count) + decimals
            while decimals.hasSuffix("0") { decimals.removeLast() }
            return "\(whole).\(decimals) \(prefix)bit/s"
        }
        return "\(bitsPerSecond) bit/s"
    }
}

extension Duration {
    /// Parses a delay or jitter such as `10ms`, `1.5s` or `250us` (or `250µs`).
    ///
    /// The unit is required (only `0` may go without): a bare number would mean seconds to one
    /// reader and milliseconds to another. Fractions are allowed and the result is rounded to the
    /// nearest nanosecond. Rejects empty text, `nan`, `inf`, numbers without a unit, other units,
    /// negative values and anything longer than one hour.
    ///
    /// - Parameter option: The option name used in the error message, such as `--delay`.
    public init(parsing raw: String, option: String) throws(ImpairmentSettingError) {
        let quantity = try Quantity(raw, option: option)
        let nanosecondsPerUnit: Double
        switch quantity.unit {
        case "" where quantity.value == 0: nanosecondsPerUnit = 1e6
        case "":
            guard quantity.value >= 0 else { throw quantity.error(.negative) }
            let number = quantity.text
            throw quantity.error(.missingUnit(examples: "\(number)ms, \(number)s or \(number)us"))
        case "ms": nanosecondsPerUnit = 1e6
        case "s": nanosecondsPerUnit = 1e9
        case "us", "µs": nanosecondsPerUnit = 1e3
        default: throw quantity.error(.unknownUnit(quantity.unit, expected: "us, ms or s"))
        }
        guard quantity.value >= 0 else { throw quantity.error(.negative) }
        let nanoseconds = (quantity.value * nanosecondsPerUnit).rounded()
        guard nanoseconds <= 3_600e9 else { throw quantity.error(.aboveMaximum("1 hour")) }
        self = .nanoseconds(Int64(nanoseconds))
    }

    /// This duration in whole nanoseconds, with negative durations as 0 and a cap of 2^61
    /// (about 73 years) so that sums of a few such values cannot overflow.
    var clampedNanoseconds: UInt64 {
        let cap: UInt64 = 1 << 61
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        guard UInt64(seconds) < cap / 1_000_000_000 else { return cap }
        return min(cap, UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000))
    }
}

/// A decimal number followed by an optional unit, as typed on the command line.
private struct Quantity {
    var option: String
    var text: String
    var value: Double
    var unit: String

    init(_ raw: String, option: String) throws(ImpairmentSettingError) {
        self.option = option
        text = raw.trimmingWhitespace()
        guard !text.isEmpty else { throw ImpairmentSettingError(option: option, text: text, problem: .missing) }

        // Scanning by hand instead of handing everything to Double(_:) keeps out forms that
        // Double accepts but no one means here: "nan", "inf", hexadecimal "0x10".
        let scalars = Array(text.unicodeScalars)
        var index = 0
        func skipDigits() -> Int {
            let start = index
            while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
            return index - start
        }
        func skipSign() {
            if index < scalars.count, scalars[index] == "+" || scalars[index] == "-" { index += 1 }
        }
        skipSign()
        var digitCount = skipDigits()
        if index < scalars.count, scalars[index] == "." {
            index += 1
            digitCount += skipDigits()
        }
        guard digitCount > 0 else { throw ImpairmentSettingError(option: option, text: text, problem: .notANumber) }
        if index < scalars.count, scalars[index] == "e" || scalars[index] == "E" {
            let exponentStart = index
            index += 1
            skipSign()
            // Without digits the "e" is not an exponent but the start of a unit, reported as such.
            if skipDigits() == 0 { index = exponentStart }
        }
        var number = String.UnicodeScalarView()
        number.append(contentsOf: scalars[..<index])
        var rest = String.UnicodeScalarView()
        rest.append(contentsOf: scalars[index...])
        guard let parsed = Double(String(number)) else {
            throw ImpairmentSettingError(option: option, text: text, problem: .notANumber)
        }
        value = parsed == 0 ? 0 : parsed
        unit = String(rest).trimmingWhitespace()
    }

    func error(_ problem: ImpairmentSettingError.Problem) -> ImpairmentSettingError {
        ImpairmentSettingError(option: option, text: text, problem: problem)
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }),
            let last = lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(self[first...last])
    }
}
