import Impairment
import XCTest

final class ParsingTests: XCTestCase {
    private func percentError(_ text: String) -> ImpairmentSettingError? {
        do {
            _ = try Percentage(parsing: text, option: "--loss")
            return nil
        } catch {
            return error
        }
    }

    private func durationError(_ text: String) -> ImpairmentSettingError? {
        do {
            _ = try Duration(parsing: text, option: "--delay")
            return nil
        } catch {
            return error
        }
    }

    private func rateError(_ text: String) -> ImpairmentSettingError? {
        do {
            _ = try BitRate(parsing: text, option: "--rate")
            return nil
        } catch {
            return error
        }
    }

    func testPercentagesInAllAcceptedForms() throws {
        XCTAssertEqual(try Percentage(parsing: "30%", option: "--loss").fraction, 0.3, accuracy: 1e-12)
        XCTAssertEqual(try Percentage(parsing: "30", option: "--loss").fraction, 0.3, accuracy: 1e-12)
        XCTAssertEqual(try Percentage(parsing: " 30 % ", option: "--loss").fraction, 0.3, accuracy: 1e-12)
        XCTAssertEqual(try Percentage(parsing: "0.5%", option: "--loss").fraction, 0.005, accuracy: 1e-12)
        XCTAssertEqual(try Percentage(parsing: "0.5", option: "--loss").fraction, 0.005, accuracy: 1e-12)
        XCTAssertEqual(try Percentage(parsing: ".5%", option: "--loss").fraction, 0.005, accuracy: 1e-12)
        XCTAssertEqual(try Percentage(parsing: "1e1%", option: "--loss").fraction, 0.1, accuracy: 1e-12)
        XCTAssertEqual(try Percentage(parsing: "100%", option: "--loss").fraction, 1)
        XCTAssertEqual(try Percentage(parsing: "0", option: "--loss").fraction, 0)
        XCTAssertEqual(try Percentage(parsing: "-0%", option: "--loss").fraction, 0)
    }

    func testPercentageErrors() {
        XCTAssertEqual(percentError("120%")?.problem, .aboveMaximum("100%"))
        XCTAssertEqual(percentError("120%")?.description, "--loss: 120% is above 100%")
        XCTAssertEqual(percentError("100.01")?.problem, .aboveMaximum("100%"))
        XCTAssertEqual(percentError("1e3%")?.description, "--loss: 1e3% is above 100%")
        XCTAssertEqual(percentError("1e999%")?.problem, .aboveMaximum("100%"))
        XCTAssertEqual(percentError("-5%")?.description, "--loss: -5% is negative")
        XCTAssertEqual(percentError("")?.description, "--loss: missing value")
        XCTAssertEqual(percentError("   ")?.problem, .missing)
        XCTAssertEqual(percentError("nan")?.description, "--loss: 'nan' is not a number")
        XCTAssertEqual(percentError("inf")?.problem, .notANumber)
        XCTAssertEqual(percentError("-inf%")?.problem, .notANumber)
        XCTAssertEqual(percentError(".%")?.problem, .notANumber)
        XCTAssertEqual(percentError("30ms")?.description, "--loss: unknown unit 'ms' in '30ms' (expected %)")
        XCTAssertEqual(percentError("0x10")?.problem, .unknownUnit("x10", expected: "%"))
        XCTAssertEqual(percentError("5%%")?.problem, .unknownUnit("%%", expected: "%"))
    }

    func testDurationsInAllAcceptedForms() throws {
        XCTAssertEqual(try Duration(parsing: "10ms", option: "--delay"), .milliseconds(10))
        XCTAssertEqual(try Duration(parsing: "1.5s", option: "--delay"), .milliseconds(1_500))
        XCTAssertEqual(try Duration(parsing: "250us", option: "--delay"), .microseconds(250))
        XCTAssertEqual(try Duration(parsing: "250µs", option: "--delay"), .microseconds(250))
        XCTAssertEqual(try Duration(parsing: "0.1ms", option: "--delay"), .microseconds(100))
        XCTAssertEqual(try Duration(parsing: "1.1s", option: "--delay"), .milliseconds(1_100))
        XCTAssertEqual(try Duration(parsing: " 20 ms ", option: "--delay"), .milliseconds(20))
        XCTAssertEqual(try Duration(parsing: "0", option: "--delay"), .zero)
        XCTAssertEqual(try Duration(parsing: "3600s", option: "--delay"), .seconds(3_600))
    }

    func testDurationErrors() {
        XCTAssertEqual(durationError("-5ms")?.description, "--delay: -5ms is negative")
        // One rule for every duration in udp: a number needs its unit.
        XCTAssertEqual(
            durationError("10")?.description, "--delay: add a unit to 10: 10ms, 10s or 10us (the units are us, ms, s)")
        XCTAssertEqual(durationError("-10")?.problem, .negative)
        XCTAssertEqual(durationError("5x")?.description, "--delay: unknown unit 'x' in '5x' (expected us, ms or s)")
        XCTAssertEqual(durationError("5e")?.problem, .unknownUnit("e", expected: "us, ms or s"))
        XCTAssertEqual(durationError("2h")?.problem, .unknownUnit("h", expected: "us, ms or s"))
        XCTAssertEqual(durationError("")?.problem, .missing)
        XCTAssertEqual(durationError("ms")?.problem, .notANumber)
        XCTAssertEqual(durationError("nan")?.problem, .notANumber)
        XCTAssertEqual(durationError("infs")?.problem, .notANumber)
        XCTAssertEqual(durationError("3601s")?.description, "--delay: 3601s is above 1 hour")
        XCTAssertEqual(durationError("1e999s")?.problem, .aboveMaximum("1 hour"))
    }

    func testRatesInAllAcceptedForms() throws {
        XCTAssertEqual(try BitRate(parsing: "2M", option: "--rate").bitsPerSecond, 2_000_000)
        XCTAssertEqual(try BitRate(parsing: "500kbit/s", option: "--rate").bitsPerSecond, 500_000)
        XCTAssertEqual(try BitRate(parsing: "500k", option: "--rate").bitsPerSecond, 500_000)
        XCTAssertEqual(try BitRate(parsing: "2.5Mbit/s", option: "--rate").bitsPerSecond, 2_500_000)
        XCTAssertEqual(try BitRate(parsing: "100 Mbit/s", option: "--rate").bitsPerSecond, 100_000_000)
        XCTAssertEqual(try BitRate(parsing: "64kbps", option: "--rate").bitsPerSecond, 64_000)
        XCTAssertEqual(try BitRate(parsing: "1G", option: "--rate").bitsPerSecond, 1_000_000_000)
        XCTAssertEqual(try BitRate(parsing: "1mbit", option: "--rate").bitsPerSecond, 1_000_000)
        XCTAssertEqual(try BitRate(parsing: "9600", option: "--rate").bitsPerSecond, 9_600)
        XCTAssertEqual(try BitRate(parsing: "9600bit/s", option: "--rate").bitsPerSecond, 9_600)
        XCTAssertEqual(try BitRate(parsing: "1e6", option: "--rate").bitsPerSecond, 1_000_000)
    }

    func testRateErrors() {
        XCTAssertEqual(rateError("0")?.description, "--rate: 0 is below 1 bit/s")
        XCTAssertEqual(rateError("0.4")?.problem, .belowMinimum("1 bit/s"))
        XCTAssertEqual(rateError("-1M")?.description, "--rate: -1M is negative")
        XCTAssertEqual(
            rateError("5MB/s")?.problem,
            .unknownUnit("MB/s", expected: "k, M or G, optionally followed by bit/s or bps"))
        XCTAssertEqual(
            rateError("2T")?.problem,
            .unknownUnit("T", expected: "k, M or G, optionally followed by bit/s or bps"))
        XCTAssertEqual(rateError("")?.problem, .missing)
        XCTAssertEqual(rateError("nan")?.problem, .notANumber)
        XCTAssertEqual(rateError("1001G")?.description, "--rate: 1001G is above 1000 Gbit/s")
    }

    func testRateDescriptions() {
        XCTAssertEqual(BitRate(bitsPerSecond: 2_500_000).description, "2.5 Mbit/s")
        XCTAssertEqual(BitRate(bitsPerSecond: 1_000_000_000).description, "1 Gbit/s")
        XCTAssertEqual(BitRate(bitsPerSecond: 9_600).description, "9.6 kbit/s")
        XCTAssertEqual(BitRate(bitsPerSecond: 64_050).description, "64.05 kbit/s")
        XCTAssertEqual(BitRate(bitsPerSecond: 999).description, "999 bit/s")
        XCTAssertEqual(BitRate(bitsPerSecond: 0).bitsPerSecond, 1)
    }

    func testPercentageInitialiserClamps() {
        XCTAssertEqual(Percentage(fraction: 1.5).fraction, 1)
        XCTAssertEqual(Percentage(fraction: -1).fraction, 0)
        XCTAssertEqual(Percentage(fraction: .nan).fraction, 0)
    }
}
