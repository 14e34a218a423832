import XCTest

@testable import Capture

final class CaptureTests: XCTestCase {
    private let v4a: [UInt8] = [127, 0, 0, 1], v4b: [UInt8] = [127, 0, 0, 2]
    private let v6a: [UInt8] = Array(repeating: 0, count: 15) + [1]

    private func packet(
        _ payload: String, v6: Bool = false, at seconds: Int64 = 1_700_000_000, nanos: Int64 = 123_456_000
    ) -> UDPPacket {
        UDPPacket(
            source: v6 ? v6a : v4a, sourcePort: 5000, destination: v6 ? v6a : v4b, destinationPort: 9999,
            payload: Array(payload.utf8), time: CaptureTime(seconds: seconds, nanoseconds: nanos))
    }

    private func readAll(_ bytes: [UInt8]) throws -> (packets: [UDPPacket], reader: CaptureReader) {
        var reader = try CaptureReader(bytes)
        var packets: [UDPPacket] = []
        while let p = try reader.next() { packets.append(p) }
        return (packets, reader)
    }

    func testWrittenPcapReadsBack() throws {
        var writer = PcapWriter()
        let originals = [packet("one"), packet("two", v6: true, nanos: 999_999_000), packet("")]
        var file = writer.header
        for p in originals { file += try writer.record(p) }
        let (packets, reader) = try readAll(file)
        XCTAssertEqual(reader.format, .pcap)
        XCTAssertEqual(packets, originals)
        XCTAssertEqual(reader.records, 3)
    }

    func testChecksumsAreValid() throws {
        var writer = PcapWriter()
        let ip = try writer.ipPacket(packet("hello"))
        // An IPv4 header with its checksum sums to zero; so does UDP with its pseudo-header.
        XCTAssertEqual(PcapWriter.internetChecksum(Array(ip[0..<20])), 0)
        let udp = Array(ip[20...])
        XCTAssertEqual(PcapWriter.internetChecksum(v4a + v4b + [0, 17, 0, UInt8(udp.count)] + udp), 0)
        XCTAssertThrowsError(
            try writer.ipPacket(
                UDPPacket(
                    source: v4a, sourcePort: 1, destination: v6a, destinationPort: 2, payload: [],
                    time: .init(seconds: 0, nanoseconds: 0))))
    }

    /// Wraps an IP packet the way each link type does and reads it back.
    func testEveryLinkType() throws {
        var writer = PcapWriter()
        let ip4 = try writer.ipPacket(packet("v4"))
        let ip6 = try writer.ipPacket(packet("v6", v6: true))
        let macs: [UInt8] = Array(repeating: 0xAA, count: 12)
        let zeros: [UInt8] = Array(repeating: 0, count: 8)
        let ether4: [UInt8] = macs + [0x08, 0x00] + ip4
        let vlan6: [UInt8] = macs + [0x81, 0x00, 0x00, 0x05, 0x86, 0xDD] + ip6
        let sllHeader: [UInt8] = [0, 0, 0, 1, 0, 6]
        let sll: [UInt8] = sllHeader + zeros + [0x08, 0x00] + ip4
        let sll2Header: [UInt8] = [0x86, 0xDD, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6]
        let sll2: [UInt8] = sll2Header + zeros + ip6
        let nullLE: [UInt8] = [2, 0, 0, 0] + ip4
        let nullBE: [UInt8] = [0, 0, 0, 30] + ip6
        let cases: [(UInt32, [UInt8], String)] = [
            (1, ether4, "v4"), (1, vlan6, "v6"), (113, sll, "v4"), (276, sll2, "v6"),
            (0, nullLE, "v4"), (0, nullBE, "v6"), (101, ip4, "v4"), (101, ip6, "v6"), (228, ip4, "v4"),
        ]
        for (link, frame, payload) in cases {
            let file = pcap(link: link, frames: [frame])
            let (packets, _) = try readAll(file)
            XCTAssertEqual(packets.map { String(decoding: $0.payload, as: UTF8.self) }, [payload], "link \(link)")
            XCTAssertEqual(packets.first?.destinationPort, 9999)
        }
    }

    func testNonUDPIsSkippedAndCounted() throws {
        var writer = PcapWriter()
        var tcp = try writer.ipPacket(packet("x"))
        tcp[9] = 6
        let ethernetHeader: [UInt8] = Array(repeating: 0xAA, count: 12)
        let arp: [UInt8] = ethernetHeader + [0x08, 0x06] + [UInt8](repeating: 0, count: 28)
        var fragment = try writer.ipPacket(packet("y"))
        fragment[6] = 0x20  // more fragments
        let udp = try writer.ipPacket(packet("z"))
        var frames: [[UInt8]] = [arp]
        for ip in [tcp, udp, fragment] { frames.append(ethernetHeader + [0x08, 0x00] + ip) }
        let file = pcap(link: 1, frames: frames)
        let (packets, reader) = try readAll(file)
        XCTAssertEqual(packets.count, 1)
        XCTAssertEqual(reader.skipped, ["not IP": 1, "not UDP": 1, "IP fragment": 1])
    }

    func testCutCaptureNamesTheRecord() throws {
        var writer = PcapWriter()
        var file = writer.header
        for p in [packet("one"), packet("two"), packet("three")] { file += try writer.record(p) }
        let cut = Array(file.dropLast(3))
        var reader = try CaptureReader(cut)
        XCTAssertNotNil(try reader.next())
        XCTAssertNotNil(try reader.next())
        XCTAssertThrowsError(try reader.next()) { error in
            let error = error as! CaptureError
            XCTAssertEqual(error.record, 3)
            XCTAssertTrue(error.message.contains("record 3"), error.message)
            XCTAssertTrue(error.message.contains("cut short"), error.message)
        }
        XCTAssertThrowsError(try CaptureReader(Array("hello world".utf8))) {
            XCTAssertTrue("\($0)".contains("not a pcap"))
        }
        XCTAssertThrowsError(try CaptureReader(pcap(link: 147, frames: []))) {
            XCTAssertTrue("\($0)".contains("link type 147"))
        }
    }

    func testPcapngBothByteOrdersAndResolution() throws {
        var writer = PcapWriter()
        let frame = Array(repeating: 0, count: 12) + [0x08, 0x00] + (try writer.ipPacket(packet("ng")))
        for bigEndian in [false, true] {
            // if_tsresol 9: nanoseconds.
            let file = pcapng(bigEndian: bigEndian, link: 1, tsresol: 9, frames: [(frame, 1_700_000_000_123_456_789)])
            let (packets, reader) = try readAll(file)
            XCTAssertEqual(reader.format, .pcapng)
            XCTAssertEqual(packets.map(\.payload), [Array("ng".utf8)])
            XCTAssertEqual(packets.first?.time, CaptureTime(seconds: 1_700_000_000, nanoseconds: 123_456_789))
            // Cut inside the packet block.
            XCTAssertThrowsError(try readAll(Array(file.dropLast(10)))) {
                XCTAssertTrue("\($0)".contains("record 1"), "\($0)")
            }
        }
    }

    // MARK: - builders

    private func pcap(link: UInt32, frames: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(UInt32(0xA1B2_C3D4))
        out.appendLE(UInt16(2))
        out.appendLE(UInt16(4))
        out.appendLE(UInt32(0))
        out.appendLE(UInt32(0))
        out.appendLE(UInt32(65535))
        out.appendLE(link)
        for (i, frame) in frames.enumerated() {
            out.appendLE(UInt32(1_700_000_000 + i))
            out.appendLE(UInt32(0))
            out.appendLE(UInt32(frame.count))
            out.appendLE(UInt32(frame.count))
            out += frame
        }
        return out
    }

    private func pcapng(bigEndian: Bool, link: UInt16, tsresol: UInt8, frames: [([UInt8], UInt64)]) -> [UInt8] {
        func u32(_ v: UInt32) -> [UInt8] {
            var a: [UInt8] = []
            bigEndian ? a.appendBE(v) : a.appendLE(v)
            return a
        }
        func u16(_ v: UInt16) -> [UInt8] {
            var a: [UInt8] = []
            bigEndian ? a.appendBE(v) : a.appendLE(v)
            return a
        }
        func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
            let padded = body + Array(repeating: 0, count: (4 - body.count % 4) % 4)
            let length = UInt32(12 + padded.count)
            return u32(type) + u32(length) + padded + u32(length)
        }
        var out = block(0x0A0D_0D0A, u32(0x1A2B_3C4D) + u16(1) + u16(0) + Array(repeating: 0xFF, count: 8))
        out += block(1, u16(link) + u16(0) + u32(0) + u16(9) + u16(1) + [tsresol, 0, 0, 0] + u16(0) + u16(0))
        out += block(5, u32(0) + u32(0) + u32(0))  // an interface statistics block, to be skipped
        for (frame, stamp) in frames {
            out += block(
                6,
                u32(0) + u32(UInt32(stamp >> 32)) + u32(UInt32(stamp & 0xFFFF_FFFF)) + u32(UInt32(frame.count))
                    + u32(UInt32(frame.count)) + frame)
        }
        return out
    }
}
