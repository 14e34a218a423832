import UDPBench
import XCTest

/// Small deterministic generator so fuzz failures are reproducible.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class ProbeTests: XCTestCase {
    func testRoundTripAndLayout() {
        let probe = Probe(stream: 0xDEAD_BEEF, sequence: 0x0102_0304_0506_0708, sendTime: UInt64.max - 1)
        var buffer: [UInt8] = [0xAA]
        probe.encode(into: &buffer, size: 100)
        XCTAssertEqual(buffer.count, 101)
        XCTAssertEqual(buffer[0], 0xAA)
        XCTAssertEqual(Array(buffer[1..<13]), [0x55, 0x44, 0x50, 0x42, 1, 0, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF])
        XCTAssertEqual(Array(buffer[13..<21]), [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertTrue(buffer[29...].allSatisfy { $0 == 0 })
        XCTAssertEqual(Probe(decoding: buffer[1...]), probe)
        XCTAssertEqual(Probe(decoding: buffer.dropFirst()), probe)
        XCTAssertEqual(Probe(decoding: AnyCollection(buffer.dropFirst())), probe)  // non-contiguous path
        buffer.withUnsafeBytes { raw in
            XCTAssertEqual(Probe(decoding: UnsafeRawBufferPointer(rebasing: raw[1...])), probe)  // unaligned
        }
    }

    func testMinimumSizeHasNoPadding() {
        var buffer: [UInt8] = []
        Probe(stream: 1, sequence: 2, sendTime: 3).encode(into: &buffer, size: Probe.headerSize)
        XCTAssertEqual(buffer.count, 28)
        XCTAssertEqual(Probe.headerSize, 28)
        XCTAssertEqual(Probe(decoding: buffer), Probe(stream: 1, sequence: 2, sendTime: 3))
    }

    func testRawEncodeLeavesPaddingAlone() {
        var storage = [UInt8](repeating: 0x77, count: 40)
        let probe = Probe(stream: 9, sequence: 10, sendTime: 11)
        storage.withUnsafeMutableBytes { probe.encode(into: UnsafeMutableRawBufferPointer(rebasing: $0[1...])) }
        XCTAssertEqual(storage[0], 0x77)
        XCTAssertTrue(storage[29...].allSatisfy { $0 == 0x77 })
        XCTAssertEqual(Probe(decoding: storage[1...]), probe)
    }

    func testRejectsShortGarbageMagicAndVersion() {
        var good: [UInt8] = []
        Probe(stream: 5, sequence: 6, sendTime: 7).encode(into: &good, size: 64)
        XCTAssertNil(Probe(decoding: [UInt8]()))
        XCTAssertNil(Probe(decoding: good.prefix(27)))
        XCTAssertNil(Probe(decoding: AnyCollection(good.prefix(27))))
        XCTAssertNil(Probe(decoding: [UInt8](repeating: 0xFF, count: 64)))
        var badMagic = good
        badMagic[3] = 0x43
        XCTAssertNil(Probe(decoding: badMagic))
        XCTAssertNil(Probe(decoding: AnyCollection(badMagic)))
        var badVersion = good
        badVersion[4] = 2
        XCTAssertNil(Probe(decoding: badVersion))
        XCTAssertNil(Probe(decoding: AnyCollection(badVersion)))
        var flagged = good  // flags and reserved bytes are ignored
        flagged[5] = 1
        flagged[7] = 9
        XCTAssertEqual(Probe(decoding: flagged), Probe(stream: 5, sequence: 6, sendTime: 7))
    }

    func testFuzzNeverTraps() {
        var rng = SplitMix64(state: 42)
        var decoded = 0
        for _ in 0..<10_000 {
            var bytes = (0..<Int.random(in: 0...60, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if bytes.count >= 5, Bool.random(using: &rng) {  // make some pass the magic/version check
                bytes.replaceSubrange(0..<5, with: [0x55, 0x44, 0x50, 0x42, 1])
            }
            let viaArray = Probe(decoding: bytes)
            XCTAssertEqual(viaArray, Probe(decoding: AnyCollection(bytes)))
            XCTAssertEqual(viaArray, bytes.withUnsafeBytes { Probe(decoding: $0) })
            if viaArray != nil { decoded += 1 }
        }
        XCTAssertGreaterThan(decoded, 0)
    }
}

final class SequenceStatsTests: XCTestCase {
    private func stats(_ sequences: [UInt64], window: Int = 65_536) -> SequenceStats {
        var stats = SequenceStats(window: window)
        for sequence in sequences { stats.record(sequence) }
        return stats
    }

    func testEmpty() {
        let s = SequenceStats()
        XCTAssertNil(s.highest)
        XCTAssertEqual(s.expected, 0)
        XCTAssertEqual(s.lost, 0)
        XCTAssertEqual(s.lossRatio, 0)
        XCTAssertEqual(s.lost(sent: 3), 3)
    }

    func testInOrder() {
        let s = stats(Array(0..<1000))
        XCTAssertEqual(s.received, 1000)
        XCTAssertEqual(s.unique, 1000)
        XCTAssertEqual(s.expected, 1000)
        XCTAssertEqual(s.lost, 0)
        XCTAssertEqual(s.duplicates, 0)
        XCTAssertEqual(s.reordered, 0)
        XCTAssertEqual(s.late, 0)
        XCTAssertEqual(s.highest, 999)
        XCTAssertEqual(s.lossRatio, 0)
    }

    func testGap() {
        let s = stats([0, 1, 3, 4])
        XCTAssertEqual(s.lost, 1)
        XCTAssertEqual(s.expected, 5)
        XCTAssertEqual(s.lossRatio, 0.2, accuracy: 1e-12)
        XCTAssertEqual(s.reordered, 0)
    }

    func testReordered() {
        let s = stats([0, 2, 1, 3])
        XCTAssertEqual(s.reordered, 1)
        XCTAssertEqual(s.lost, 0)
        XCTAssertEqual(s.duplicates, 0)
    }

    func testDuplicates() {
        let s = stats([0, 1, 1, 2, 2, 2])
        XCTAssertEqual(s.duplicates, 3)
        XCTAssertEqual(s.unique, 3)
        XCTAssertEqual(s.received, 6)
        XCTAssertEqual(s.reordered, 0)
    }

    func testLateArrivalOutsideWindow() {
        let s = stats(Array(0...100) + [0], window: 8)
        XCTAssertEqual(s.late, 1)
        XCTAssertEqual(s.duplicates, 0)
        XCTAssertEqual(s.reordered, 1)
        XCTAssertEqual(s.lost, 0)
        // Exactly at the window edge: highest - sequence == window - 1 is still tracked.
        let edge = stats(Array(0...100) + [93], window: 8)
        XCTAssertEqual(edge.duplicates, 1)
        XCTAssertEqual(edge.late, 0)
    }

    func testLostTail() {
        let s = stats(Array(0..<90))
        XCTAssertEqual(s.lost, 0)
        XCTAssertEqual(s.lost(sent: 100), 10)
    }

    func testBigJumpAndHugeSequence() {
        let s = stats([0, 1_000_000, 5, 999_999, 1_000_000, UInt64.max], window: 64)
        XCTAssertEqual(s.late, 1)
        XCTAssertEqual(s.reordered, 2)
        XCTAssertEqual(s.duplicates, 1)
        XCTAssertEqual(s.expected, Int.max)
    }

    /// Compares against an exact (unbounded-memory) model on random streams with reordering,
    /// duplicates and jumps, for several windows including ones not a multiple of 64.
    func testMatchesReferenceModel() {
        var rng = SplitMix64(state: 7)
        for window in [1, 8, 63, 64, 65, 200, 1000] {
            var stats = SequenceStats(window: window)
            var seen = Set<UInt64>()
            var highest: UInt64?
            var (unique, duplicates, reordered, late) = (0, 0, 0, 0)
            var next: UInt64 = 0
            for _ in 0..<20_000 {
                let sequence: UInt64
                switch Int.random(in: 0..<10, using: &rng) {
                case 0: sequence = next &- UInt64.random(in: 0...UInt64(2 * window), using: &rng)
                case 1:
                    next += UInt64.random(in: 1...UInt64(3 * window), using: &rng)
                    sequence = next
                default:
                    next += 1
                    sequence = next
                }
                guard sequence <= next else { continue }  // wrapped below 0
                stats.record(sequence)
                if let top = highest, sequence < top, top - sequence >= UInt64(window) {
                    late += 1
                    reordered += 1
                    unique += 1
                } else if seen.contains(sequence) {
                    duplicates += 1
                } else {
                    unique += 1
                    if let top = highest, sequence < top { reordered += 1 }
                }
                seen.insert(sequence)
                highest = max(highest ?? 0, sequence)
            }
            XCTAssertEqual(stats.unique, unique, "window \(window)")
            XCTAssertEqual(stats.duplicates, duplicates, "window \(window)")
            XCTAssertEqual(stats.reordered, reordered, "window \(window)")
            XCTAssertEqual(stats.late, late, "window \(window)")
            XCTAssertEqual(stats.highest, highest, "window \(window)")
        }
    }

    func testMillionsInOrder() {
        var s = SequenceStats(window: 1024)
        for sequence: UInt64 in 0..<3_000_000 where sequence % 1000 != 0 { s.record(sequence) }
        XCTAssertEqual(s.lost, 3000)
        XCTAssertEqual(s.lossRatio, 0.001, accuracy: 1e-12)
        XCTAssertEqual(s.duplicates, 0)
    }
}

final class JitterTests: XCTestCase {
    func testZeroUntilTwoDatagrams() {
        var j = JitterEstimator()
        XCTAssertEqual(j.jitterNanos, 0)
        j.record(sendTime: 0, arrivalTime: 5_000_000)
        XCTAssertEqual(j.jitterNanos, 0)
    }

    func testConstantTransitIsZeroEvenWithUnsyncedClocks() {
        var j = JitterEstimator()
        for i: UInt64 in 0..<1000 {  // receiver clock numerically far below the sender's
            j.record(sendTime: UInt64.max - 10_000_000_000 + i * 1_000_000, arrivalTime: 123 + i * 1_000_000)
        }
        XCTAssertEqual(j.jitterNanos, 0)
    }

    func testAlternatingTransitConvergesToOneMillisecond() {
        var j = JitterEstimator()
        var expected = 0.0
        for i: UInt64 in 0..<500 {
            let send = i * 10_000_000
            j.record(sendTime: send, arrivalTime: send + (i % 2) * 1_000_000)
            if i > 0 { expected += (1_000_000 - expected) / 16 }
            XCTAssertEqual(j.jitterNanos, expected, accuracy: 1e-6)
        }
        XCTAssertEqual(j.jitterNanos, 1_000_000, accuracy: 10_000)
    }

    func testSingleStepMatchesFormula() {
        var j = JitterEstimator()
        j.record(sendTime: 1000, arrivalTime: 2000)
        j.record(sendTime: 2000, arrivalTime: 2600)  // D = 600 - 1000 = -400 -> |D| = 400
        XCTAssertEqual(j.jitterNanos, 25)
    }
}

final class FloodEndTests: XCTestCase {
    func testRoundTripAndLayout() {
        let report = FloodEnd(stream: 0xDEAD_BEEF, sent: 200_000)
        XCTAssertEqual(report.lastSequence, 199_999)
        let bytes = report.bytes
        XCTAssertEqual(bytes.count, FloodEnd.size)
        XCTAssertEqual(Array(bytes[0..<5]), [0x55, 0x44, 0x50, 0x45, 1])
        XCTAssertEqual(Array(bytes[8..<12]), [0xDE, 0xAD, 0xBE, 0xEF])
        XCTAssertEqual(FloodEnd(decoding: bytes), report)
        XCTAssertEqual(FloodEnd(decoding: bytes + [1, 2, 3]), report, "trailing bytes are ignored")
        let none = FloodEnd(stream: 1, sent: 0)
        XCTAssertNil(none.lastSequence)
        XCTAssertEqual(FloodEnd(decoding: none.bytes), none)
    }

    func testIsNeverTakenForAProbeNorAProbeForIt() {
        let report = FloodEnd(stream: 7, sent: 3).bytes
        XCTAssertNil(Probe(decoding: report))
        var probe: [UInt8] = []
        Probe(stream: 7, sequence: 2, sendTime: 1).encode(into: &probe, size: 28)
        XCTAssertNil(FloodEnd(decoding: probe))
    }

    func testRejectsShortWrongVersionAndInconsistentReports() {
        let good = FloodEnd(stream: 7, sent: 3).bytes
        XCTAssertNil(FloodEnd(decoding: good.dropLast()))
        var version = good
        version[4] = 2
        XCTAssertNil(FloodEnd(decoding: version))
        var inconsistent = good
        inconsistent[19] = 9  // last sequence 9 with 3 sent
        XCTAssertNil(FloodEnd(decoding: inconsistent))
    }
}

final class FlowJitterTests: XCTestCase {
    /// A sender that stamps a batch once and a receiver that reads a batch at one time give runs of equal times;
    /// counting each datagram of such runs drove the estimate to 0 although the batches arrive irregularly.
    func testBatchStampsDoNotDriveJitterToZero() {
        var flow = FlowStats()
        var sequence: UInt64 = 0
        for batch: UInt64 in 0..<200 {
            let send = batch * 1_000_000
            let arrival = send + (batch % 2) * 300_000  // every other batch 300 µs later
            for i in 0..<512 {
                flow.record(
                    Probe(stream: 1, sequence: sequence, sendTime: send), size: 64, arrival: arrival, ownArrival: i == 0
                )
                sequence += 1
            }
        }
        let jitter = try! XCTUnwrap(flow.jitterNanos)
        XCTAssertEqual(jitter, 300_000, accuracy: 5_000)
        XCTAssertEqual(flow.jitter.samples, 200)
        XCTAssertEqual(flow.datagrams, 200 * 512)
    }

    func testAbsentWithFewerThanTwoSamples() {
        var flow = FlowStats()
        XCTAssertNil(flow.jitterNanos)
        for i: UInt64 in 0..<100 {
            // One send batch, one receive batch: no datagram with times of its own after the first.
            flow.record(Probe(stream: 1, sequence: i, sendTime: 5), size: 64, arrival: 9, ownArrival: i == 0)
        }
        XCTAssertNil(flow.jitterNanos)
        XCTAssertEqual(flow.sequences.unique, 100)
    }
}

final class RateFormatTests: XCTestCase {
    func testBits() {
        XCTAssertEqual(RateFormat.bits(perSecond: 3.9e9), "3.90 Gbit/s")
        XCTAssertEqual(RateFormat.bits(perSecond: 42e6), "42.0 Mbit/s")
        XCTAssertEqual(RateFormat.bits(perSecond: 950e3), "950 kbit/s")
        XCTAssertEqual(RateFormat.bits(perSecond: 0), "0.00 bit/s")
        XCTAssertEqual(RateFormat.bits(perSecond: 999.6e6), "1.00 Gbit/s")
        XCTAssertEqual(RateFormat.bits(perSecond: 9.996e6), "10.0 Mbit/s")
        XCTAssertEqual(RateFormat.bits(perSecond: 5e15), "5000 Tbit/s")
        XCTAssertEqual(RateFormat.bits(perSecond: .nan), "n/a")
    }

    func testCount() {
        XCTAssertEqual(RateFormat.count(334_512), "334.5k")
        XCTAssertEqual(RateFormat.count(999), "999")
        XCTAssertEqual(RateFormat.count(0), "0")
        XCTAssertEqual(RateFormat.count(0.5), "0.5")
        XCTAssertEqual(RateFormat.count(2_500_000), "2.5M")
        XCTAssertEqual(RateFormat.count(999_960), "1.0M")
        XCTAssertEqual(RateFormat.count(-1500), "-1.5k")
        XCTAssertEqual(RateFormat.count(.infinity), "n/a")
    }

    func testDuration() {
        XCTAssertEqual(RateFormat.duration(nanos: 12_300), "12.3 µs")
        XCTAssertEqual(RateFormat.duration(nanos: 1_230_000), "1.23 ms")
        XCTAssertEqual(RateFormat.duration(nanos: 1_230_000_000), "1.23 s")
        XCTAssertEqual(RateFormat.duration(nanos: 850), "850 ns")
        XCTAssertEqual(RateFormat.duration(nanos: 3.6e12), "3600 s")
        XCTAssertEqual(RateFormat.duration(nanos: -0.001), "0.00 ns")
    }
}
