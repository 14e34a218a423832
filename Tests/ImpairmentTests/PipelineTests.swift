import Impairment
import XCTest

private let millisecond: UInt64 = 1_000_000
private let second: UInt64 = 1_000_000_000

/// A datagram whose first four bytes carry its sequence number.
private func datagram(_ number: Int, size: Int = 64) -> [UInt8] {
    var bytes = [UInt8](repeating: 0xA5, count: max(4, size))
    for shift in 0..<4 { bytes[shift] = UInt8(truncatingIfNeeded: number >> (24 - 8 * shift)) }
    return bytes
}

private func sequenceNumber(_ bytes: [UInt8]) -> Int {
    bytes.prefix(4).reduce(0) { $0 << 8 | Int($1) }
}

private struct Run {
    var emissions: [ScheduledDatagram] = []
    var counters = ImpairmentCounters()
    /// Arrival time of each datagram by sequence number.
    var arrivals: [UInt64] = []

    func addedDelays() -> [UInt64] {
        emissions.map { $0.releaseTime - arrivals[sequenceNumber($0.bytes)] }
    }
}

/// Submits `count` datagrams `interval` apart, then releases everything still held.
private func simulate(
    _ settings: ImpairmentSettings, seed: UInt64 = 1, stream: UInt64 = 0,
    count: Int = 20_000, interval: UInt64 = millisecond, size: Int = 64
) -> Run {
    var pipeline = ImpairmentPipeline(settings: settings, generator: SeededGenerator(seed: seed, stream: stream))
    var result = Run()
    for number in 0..<count {
        let now = UInt64(number) * interval
        result.arrivals.append(now)
        result.emissions += pipeline.submit(datagram(number, size: size), at: now)
        let counters = pipeline.counters(at: now)
        XCTAssertEqual(
            counters.received,
            counters.dropped + counters.overflowed + counters.held + counters.forwarded - counters.duplicated)
    }
    let end = UInt64(count) * interval + 3_600 * second
    result.emissions += pipeline.releaseDue(at: end)
    XCTAssertNil(pipeline.nextDeadline)
    result.counters = pipeline.counters(at: end)
    XCTAssertEqual(result.emissions.count, result.counters.forwarded)
    XCTAssertEqual(
        result.emissions.map(\.releaseTime), result.emissions.map(\.releaseTime).sorted(),
        "everything comes out in release order")
    return result
}

private func median(_ values: [UInt64]) -> UInt64 {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

private func assertRate(
    _ count: Int, of total: Int, near expected: Double, file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(Double(count) / Double(total), expected, accuracy: 0.015, file: file, line: line)
}

final class PipelineTests: XCTestCase {
    func testWithoutImpairmentsEverythingPassesUnchangedAndOnTime() {
        XCTAssertTrue(ImpairmentSettings.none.isNone)
        let result = simulate(.none, count: 1_000)
        XCTAssertEqual(result.emissions.count, 1_000)
        for (number, emission) in result.emissions.enumerated() {
            XCTAssertEqual(emission.bytes, datagram(number))
            XCTAssertEqual(emission.releaseTime, result.arrivals[number])
        }
        XCTAssertEqual(result.counters.addedDelayMaxNanoseconds, 0)
    }

    func testIsNone() {
        XCTAssertTrue(ImpairmentSettings(queueLimit: 10, reorderHold: ReorderHold(distance: 5)).isNone)
        XCTAssertFalse(ImpairmentSettings(loss: 0.01).isNone)
        XCTAssertFalse(ImpairmentSettings(jitter: .milliseconds(1)).isNone)
        XCTAssertFalse(ImpairmentSettings(rate: BitRate(bitsPerSecond: 1_000)).isNone)
        XCTAssertTrue(ImpairmentSettings(loss: .nan, delay: .milliseconds(-5)).isNone)
    }

    // MARK: Determinism

    private let everything = ImpairmentSettings(
        loss: 0.1, duplicate: 0.1, reorder: 0.1, corrupt: 0.1,
        delay: .milliseconds(20), jitter: .milliseconds(5), rate: BitRate(bitsPerSecond: 1_000_000))

    func testSameSeedGivesIdenticalDecisions() {
        let first = simulate(everything, seed: 99, count: 5_000)
        let second = simulate(everything, seed: 99, count: 5_000)
        XCTAssertEqual(first.emissions, second.emissions)
        XCTAssertEqual(first.counters, second.counters)
    }

    func testDifferentSeedOrStreamGivesDifferentDecisions() {
        let base = simulate(everything, seed: 99, count: 5_000)
        XCTAssertNotEqual(base.emissions, simulate(everything, seed: 100, count: 5_000).emissions)
        XCTAssertNotEqual(base.emissions, simulate(everything, seed: 99, stream: 1, count: 5_000).emissions)
    }

    func testChangingOneSettingKeepsTheOtherDecisions() {
        func lost(_ settings: ImpairmentSettings) -> Set<Int> {
            let forwarded = Set(simulate(settings, seed: 5, count: 5_000).emissions.map { sequenceNumber($0.bytes) })
            return Set(0..<5_000).subtracting(forwarded)
        }
        let lossOnly = lost(ImpairmentSettings(loss: 0.3))
        XCTAssertEqual(
            lossOnly,
            lost(
                ImpairmentSettings(
                    loss: 0.3, duplicate: 0.5, delay: .milliseconds(40),
                    jitter: .milliseconds(10))))
    }

    // MARK: Loss

    func testLossZeroAndHundredPercent() {
        XCTAssertEqual(simulate(ImpairmentSettings(loss: 0)).counters.dropped, 0)
        let all = simulate(ImpairmentSettings(loss: 1))
        XCTAssertEqual(all.counters.dropped, 20_000)
        XCTAssertTrue(all.emissions.isEmpty)
    }

    func testLossRateMatchesSettingOverManySeeds() {
        for seed: UInt64 in 1...5 {
            for loss in [0.01, 0.3, 0.5, 0.9] {
                let result = simulate(ImpairmentSettings(loss: loss), seed: seed)
                assertRate(result.counters.dropped, of: 20_000, near: loss)
                XCTAssertEqual(result.counters.forwarded + result.counters.dropped, 20_000)
            }
        }
    }

    // MARK: Duplicate and corrupt

    func testDuplicatesAreIdenticalAndFollowTheOriginal() {
        let result = simulate(ImpairmentSettings(duplicate: 0.25))
        assertRate(result.counters.duplicated, of: 20_000, near: 0.25)
        XCTAssertEqual(result.emissions.count, 20_000 + result.counters.duplicated)
        var copies = 0
        for (previous, next) in zip(result.emissions, result.emissions.dropFirst()) where previous.bytes == next.bytes {
            copies += 1
            XCTAssertEqual(next.releaseTime, previous.releaseTime + ImpairmentPipeline.tieBreakSpacing)
        }
        XCTAssertEqual(copies, result.counters.duplicated)
    }

    func testCorruptionFlipsExactlyOneBit() {
        for probability in [1.0, 0.2] {
            var pipeline = ImpairmentPipeline(
                settings: ImpairmentSettings(corrupt: probability),
                generator: SeededGenerator(seed: 2))
            var flipped = 0
            for number in 0..<20_000 {
                let original = datagram(number, size: 100)
                let output = pipeline.submit(original, at: UInt64(number) * millisecond)
                XCTAssertEqual(output.count, 1)
                let flips = zip(output[0].bytes, original).map { ($0 ^ $1).nonzeroBitCount }.reduce(0, +)
                XCTAssertLessThanOrEqual(flips, 1)
                flipped += flips
            }
            XCTAssertEqual(flipped, pipeline.counters(at: 0).corrupted)
            assertRate(flipped, of: 20_000, near: probability)
        }
    }

    func testEveryBitPositionCanBeCorruptedAndEmptyDatagramsAreLeftAlone() {
        var pipeline = ImpairmentPipeline(settings: ImpairmentSettings(corrupt: 1), generator: SeededGenerator(seed: 4))
        var seen = Set<UInt8>()
        for time in 0..<1_000 {
            let output = pipeline.submit([0], at: UInt64(time))
            XCTAssertEqual(output.count, 1)
            XCTAssertEqual(output[0].bytes[0].nonzeroBitCount, 1)
            seen.insert(output[0].bytes[0])
        }
        XCTAssertEqual(seen.count, 8)
        XCTAssertEqual(pipeline.submit([], at: 2_000).map(\.bytes), [[]])
        XCTAssertEqual(pipeline.counters(at: 2_000).corrupted, 1_000)
    }

    // MARK: Delay and jitter

    func testDelayIsExact() {
        let result = simulate(ImpairmentSettings(loss: 0.3, delay: .milliseconds(50)))
        let delays = result.addedDelays()
        XCTAssertEqual(median(delays), 50 * millisecond)
        XCTAssertEqual(Set(delays), [50 * millisecond])
        XCTAssertEqual(result.counters.addedDelayMeanNanoseconds, 50 * millisecond)
    }

    func testJitterStaysWithinBoundsAndKeepsOrder() {
        let settings = ImpairmentSettings(delay: .milliseconds(50), jitter: .milliseconds(10))
        // Datagrams 1 ms apart, far closer than the 20 ms jitter range: order is kept anyway.
        let dense = simulate(settings)
        XCTAssertEqual(dense.emissions.map { sequenceNumber($0.bytes) }, Array(0..<20_000))
        let denseDelays = dense.addedDelays()
        XCTAssertGreaterThanOrEqual(denseDelays.min()!, 40 * millisecond)
        XCTAssertLessThanOrEqual(denseDelays.max()!, 60 * millisecond)
        XCTAssertEqual(dense.counters.reordered, 0)

        // With datagrams further apart than the jitter range, delays are plain uniform draws.
        let sparse = simulate(settings, interval: 30 * millisecond)
        let delays = sparse.addedDelays()
        XCTAssertLessThan(delays.min()!, 41 * millisecond)
        XCTAssertGreaterThan(delays.max()!, 59 * millisecond)
        XCTAssertEqual(Double(median(delays)), Double(50 * millisecond), accuracy: Double(2 * millisecond))
        XCTAssertEqual(
            Double(sparse.counters.addedDelayMeanNanoseconds), Double(50 * millisecond),
            accuracy: Double(millisecond / 2))
    }

    func testJitterLargerThanDelayIsFlooredAtZero() {
        let result = simulate(
            ImpairmentSettings(delay: .milliseconds(5), jitter: .milliseconds(10)),
            interval: 30 * millisecond)
        let delays = result.addedDelays()
        XCTAssertEqual(delays.min(), 0)
        XCTAssertLessThanOrEqual(delays.max()!, 15 * millisecond)
        // Draws in -10...-5 ms all become 0: about a quarter of the datagrams.
        assertRate(delays.filter { $0 == 0 }.count, of: delays.count, near: 0.25)
    }

    // MARK: Reorder

    func testReorderedDatagramsArriveAfterLaterOnes() {
        let result = simulate(ImpairmentSettings(reorder: 0.1, delay: .milliseconds(20)))
        XCTAssertEqual(result.emissions.count, 20_000)
        assertRate(result.counters.reordered, of: 20_000, near: 0.1)

        var release = [UInt64](repeating: 0, count: 20_000)
        for emission in result.emissions { release[sequenceNumber(emission.bytes)] = emission.releaseTime }
        // A datagram is overtaken when some later-numbered datagram is released strictly earlier.
        var earliestLater = UInt64.max
        var overtaken = 0
        for number in (0..<20_000).reversed() {
            if earliestLater < release[number] { overtaken += 1 }
            earliestLater = min(earliestLater, release[number])
        }
        XCTAssertEqual(overtaken, result.counters.reordered)

        // Each overtaken datagram directly follows, 1 µs later, the datagram that overtook it
        // (or another held datagram released by that same one).
        let order = result.emissions.map { sequenceNumber($0.bytes) }
        for (index, number) in order.enumerated() where index > 0 && order[index - 1] > number {
            XCTAssertEqual(
                result.emissions[index].releaseTime,
                result.emissions[index - 1].releaseTime + ImpairmentPipeline.tieBreakSpacing)
        }
    }

    func testReorderDistanceLetsThatManyDatagramsPass() {
        let settings = ImpairmentSettings(reorder: 0.05, reorderHold: ReorderHold(distance: 3, timeout: .seconds(1)))
        let result = simulate(settings)
        assertRate(result.counters.reordered, of: 20_000, near: 0.05)
        var release = [UInt64](repeating: 0, count: 20_000)
        for emission in result.emissions { release[sequenceNumber(emission.bytes)] = emission.releaseTime }
        var overtaken = 0
        for number in 0..<20_000 {
            let passers = (number + 1..<min(20_000, number + 100)).filter { release[$0] < release[number] }.count
            XCTAssert(passers == 0 || passers == 3, "datagram \(number) overtaken by \(passers)")
            if passers > 0 { overtaken += 1 }
        }
        XCTAssertEqual(overtaken, result.counters.reordered)
    }

    func testHeldDatagramIsReleasedAtItsDeadlineWithoutLaterTraffic() {
        let settings = ImpairmentSettings(reorder: 1, delay: .milliseconds(30))
        var pipeline = ImpairmentPipeline(settings: settings, generator: SeededGenerator(seed: 1))
        XCTAssertEqual(pipeline.submit(datagram(0), at: 0), [])
        XCTAssertEqual(pipeline.nextDeadline, 40 * millisecond)
        XCTAssertEqual(pipeline.releaseDue(at: 40 * millisecond - 1), [])
        XCTAssertEqual(
            pipeline.releaseDue(at: 45 * millisecond),
            [ScheduledDatagram(bytes: datagram(0), releaseTime: 40 * millisecond)])
        XCTAssertNil(pipeline.nextDeadline)

        // A late timer changes nothing: the next submission releases the expired datagram first,
        // at the same time a prompt timer would have.
        XCTAssertEqual(pipeline.submit(datagram(1), at: 100 * millisecond), [])
        XCTAssertEqual(
            pipeline.submit(datagram(2), at: 500 * millisecond),
            [ScheduledDatagram(bytes: datagram(1), releaseTime: 140 * millisecond)])
        let counters = pipeline.counters(at: 500 * millisecond)
        XCTAssertEqual(counters.reordered, 0, "nothing overtook them")
        XCTAssertEqual(counters.held, 1)
    }

    func testPartlyOvertakenDatagramCountsAsReorderedAfterTimeout() {
        let settings = ImpairmentSettings(
            reorder: 0.5, reorderHold: ReorderHold(distance: 1_000, timeout: .milliseconds(10)))
        let result = simulate(settings, count: 2_000, interval: 2 * millisecond)
        // Held datagrams wait 10 ms while about five others pass, then time out behind them.
        XCTAssertGreaterThan(result.counters.reordered, 800)
        XCTAssertEqual(result.counters.held, 0)
    }

    // MARK: Rate

    func testRateSerialisesAtExactTimes() {
        let settings = ImpairmentSettings(rate: BitRate(bitsPerSecond: 8_000), queueLimit: 100_000)
        var pipeline = ImpairmentPipeline(settings: settings, generator: SeededGenerator(seed: 1))
        let packet = [UInt8](repeating: 1, count: 1_000)
        XCTAssertEqual(pipeline.submit(packet, at: 0).map(\.releaseTime), [1 * second])
        XCTAssertEqual(pipeline.submit(packet, at: 0).map(\.releaseTime), [2 * second])
        XCTAssertEqual(pipeline.submit(packet, at: second / 2).map(\.releaseTime), [3 * second])
        XCTAssertEqual(pipeline.queuedBytes(at: 0), 3_000)
        XCTAssertEqual(pipeline.queuedBytes(at: second / 2), 2_500)
        XCTAssertEqual(pipeline.queuedBytes(at: 3 * second), 0)
        XCTAssertEqual(pipeline.submit(packet, at: 10 * second).map(\.releaseTime), [11 * second])
        XCTAssertEqual(pipeline.submit([1], at: 20 * second).map(\.releaseTime), [20 * second + 1_000_000])
    }

    func testRateThenDelay() {
        let settings = ImpairmentSettings(delay: .milliseconds(100), rate: BitRate(bitsPerSecond: 8_000))
        var pipeline = ImpairmentPipeline(settings: settings, generator: SeededGenerator(seed: 1))
        XCTAssertEqual(
            pipeline.submit([UInt8](repeating: 0, count: 100), at: 0).map(\.releaseTime), [200 * millisecond])
    }

    func testFullQueueDropsAndCountsOverflow() {
        let settings = ImpairmentSettings(rate: BitRate(bitsPerSecond: 8_000), queueLimit: 2_500)
        var pipeline = ImpairmentPipeline(settings: settings, generator: SeededGenerator(seed: 1))
        let packet = [UInt8](repeating: 1, count: 1_000)
        XCTAssertEqual(pipeline.submit(packet, at: 0).count, 1)
        XCTAssertEqual(pipeline.submit(packet, at: 0).count, 1)
        XCTAssertEqual(pipeline.submit(packet, at: 0), [], "3,000 bytes would exceed 2,500")
        XCTAssertEqual(pipeline.submit(packet, at: second / 2).map(\.releaseTime), [3 * second], "1,500 + 1,000 fits")
        XCTAssertEqual(pipeline.submit([UInt8](repeating: 1, count: 2_501), at: 10 * second), [])
        let counters = pipeline.counters(at: second / 2)
        XCTAssertEqual(counters.overflowed, 2)
        XCTAssertEqual(counters.forwarded, 3)
        XCTAssertEqual(counters.queuedBytes, 2_500)
    }

    func testSustainedOverloadDropsTheExcess() {
        // 200,000 bytes offered over 20 s to a link that sends 5,000 bytes/s: it accepts what it can
        // send in those 20 s plus the 5,000 bytes left queued at the end, 10,500 datagrams.
        let settings = ImpairmentSettings(rate: BitRate(bitsPerSecond: 40_000), queueLimit: 5_000)
        let result = simulate(settings, size: 10)
        XCTAssertEqual(Double(result.counters.overflowed), 9_500, accuracy: 2)
        XCTAssertLessThanOrEqual(result.addedDelays().max()!, second + 2 * millisecond, "5,000 bytes drain in 1 s")
    }

    func testDefaultQueueLimitFollowsRate() {
        XCTAssertEqual(ImpairmentSettings.defaultQueueLimit(for: BitRate(bitsPerSecond: 1_000_000)), 65_536)
        XCTAssertEqual(ImpairmentSettings.defaultQueueLimit(for: BitRate(bitsPerSecond: 100_000_000)), 3_125_000)
        XCTAssertEqual(ImpairmentSettings(rate: BitRate(bitsPerSecond: 8), queueLimit: 7).effectiveQueueLimit, 7)
    }

    // MARK: Counters and clock

    func testCountersAddUp() {
        let result = simulate(everything, count: 5_000)
        var total = ImpairmentCounters()
        total.add(result.counters)
        total.add(result.counters)
        XCTAssertEqual(total.received, 10_000)
        XCTAssertEqual(total.forwarded, 2 * result.counters.forwarded)
        XCTAssertEqual(total.addedDelayMaxNanoseconds, result.counters.addedDelayMaxNanoseconds)
        XCTAssertEqual(total.addedDelayMeanNanoseconds, result.counters.addedDelayMeanNanoseconds)
    }

    func testTimeGoingBackwardsIsTreatedAsTheLatestTime() {
        var pipeline = ImpairmentPipeline(
            settings: ImpairmentSettings(delay: .milliseconds(1)),
            generator: SeededGenerator(seed: 1))
        XCTAssertEqual(pipeline.submit([1], at: 10 * millisecond).map(\.releaseTime), [11 * millisecond])
        XCTAssertEqual(pipeline.submit([2], at: 5 * millisecond).map(\.releaseTime), [11 * millisecond])
    }
}

/// The delay line and the reorder hold are bounded like the rate queue.
final class QueueBoundTests: XCTestCase {
    func testDelayLineHoldsAtMostTheQueueLimit() {
        let settings = ImpairmentSettings(delay: .seconds(20), queueLimit: 10_000)
        var pipeline = ImpairmentPipeline(settings: settings, generator: SeededGenerator(seed: 1))
        var accepted = 0
        for number in 0..<100 {
            accepted += pipeline.submit(datagram(number, size: 1_000), at: UInt64(number) * millisecond).count
        }
        XCTAssertEqual(accepted, 10)
        XCTAssertEqual(pipeline.counters(at: 0).overflowed, 90)
        XCTAssertEqual(pipeline.waitingBytes(at: 100 * millisecond), 10_000)
        // Once the first ones are released there is room again.
        XCTAssertEqual(pipeline.waitingBytes(at: 20 * second + 5 * millisecond), 4_000)
        XCTAssertEqual(pipeline.submit(datagram(100, size: 6_000), at: 20 * second + 5 * millisecond).count, 1)
        XCTAssertEqual(pipeline.submit(datagram(101, size: 1), at: 20 * second + 5 * millisecond).count, 0)
    }

    func testReorderHoldCountsTowardTheLimit() {
        // Everything is held (nothing ever overtakes), so only 3,000 bytes fit.
        let settings = ImpairmentSettings(
            reorder: 1, queueLimit: 3_000, reorderHold: ReorderHold(distance: 1, timeout: .seconds(10)))
        var pipeline = ImpairmentPipeline(settings: settings, generator: SeededGenerator(seed: 1))
        for number in 0..<10 { _ = pipeline.submit(datagram(number, size: 1_000), at: 0) }
        let counters = pipeline.counters(at: 0)
        XCTAssertEqual(counters.held, 3)
        XCTAssertEqual(counters.overflowed, 7)
        XCTAssertEqual(pipeline.waitingBytes(at: 0), 3_000)
    }

    func testDatagramCountIsBoundedForTinyDatagrams() {
        let settings = ImpairmentSettings(delay: .seconds(1), datagramLimit: 50)
        var pipeline = ImpairmentPipeline(settings: settings, generator: SeededGenerator(seed: 1))
        for _ in 0..<1_000 { _ = pipeline.submit([], at: 0) }
        XCTAssertEqual(pipeline.counters(at: 0).forwarded, 50)
        XCTAssertEqual(pipeline.counters(at: 0).overflowed, 950)
        XCTAssertEqual(pipeline.waitingDatagrams(at: 0), 50)
        XCTAssertEqual(pipeline.waitingDatagrams(at: second), 0)
    }

    func testRoomSharedWithOtherPipelinesLimitsToo() {
        var pipeline = ImpairmentPipeline(
            settings: ImpairmentSettings(delay: .seconds(1)), generator: SeededGenerator(seed: 1))
        XCTAssertEqual(pipeline.submit(datagram(0, size: 500), at: 0, room: 499), [])
        XCTAssertEqual(pipeline.submit(datagram(1, size: 500), at: 0, room: 500).count, 1)
        XCTAssertEqual(pipeline.counters(at: 0).overflowed, 1)
    }

    func testDefaultDelayLimitBoundsALongDelayUnderLoad() {
        // 20 s of delay at 1,000 datagrams of 1,400 bytes per second would hold 28 MB; the default holds 8 MiB.
        var pipeline = ImpairmentPipeline(
            settings: ImpairmentSettings(delay: .seconds(20)), generator: SeededGenerator(seed: 1))
        for number in 0..<20_000 {
            _ = pipeline.submit(datagram(number, size: 1_400), at: UInt64(number) * millisecond)
        }
        XCTAssertLessThanOrEqual(pipeline.waitingBytes(at: 20 * second), ImpairmentSettings.defaultDelayLimit)
        XCTAssertEqual(pipeline.counters(at: 0).forwarded, ImpairmentSettings.defaultDelayLimit / 1_400)
    }
}
