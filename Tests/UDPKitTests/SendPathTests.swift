import Foundation
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import UDPKit

#if canImport(Glibc)
import Glibc
#endif
#if UDPKIT_LINUX_FAST_PATH
import CUDPSys
#endif

/// The parts every send goes through, tested on their own with real sockets on loopback: `DirectSender`'s order
/// against the writes it leaves to SwiftNIO, and (fast path) `SendVector`'s joined runs and its fallback.
final class SendPathTests: XCTestCase {
    private static let loopback = try! UDPAddress(ip: "127.0.0.1", port: 0)
    private var loopback: UDPAddress { Self.loopback }

    /// A sending descriptor of its own (bound to loopback), as `FastPath.open` makes one.
    private func sendingDescriptor() throws -> CInt {
        try SocketDescriptor.boundIPSocket(loopback, options: .init(), packetInfo: false)
    }

    private static func envelope(_ bytes: [UInt8], to address: UDPAddress) -> AddressedEnvelope<ByteBuffer> {
        AddressedEnvelope(remoteAddress: address.socketAddress, data: ByteBuffer(bytes: bytes))
    }

    // MARK: - DirectSender's order

    /// A write standing in for SwiftNIO's: records what it got and waits until it is let go.
    private actor SlowWrites {
        var written: [[UInt8]] = []
        private var held: [CheckedContinuation<Void, Never>] = []

        func write(_ envelopes: ArraySlice<AddressedEnvelope<ByteBuffer>>) async {
            written.append(contentsOf: envelopes.map { Array($0.data.readableBytesView) })
            await withCheckedContinuation { held.append($0) }
        }

        var waiting: Int { held.count }

        func release() {
            for continuation in held { continuation.resume() }
            held = []
        }
    }

    /// Sends `bytes` through `sender`, its SwiftNIO writes going to `writes`; whether nothing was refused.
    private static func send(
        _ bytes: [UInt8], to destination: UDPAddress, direct: Bool, with sender: DirectSender, writes: SlowWrites
    ) async throws -> Bool {
        try await sender.send([envelope(bytes, to: destination)], direct: direct, connected: false) {
            await writes.write($0)
        } == nil
    }

    func testASendWhileSwiftNIOStillHoldsAWriteQueuesBehindItInsteadOfOvertaking() async throws {
        let receiver = try await UDPSocket.bind(to: loopback)
        let sender = DirectSender(fd: try sendingDescriptor())
        let writes = SlowWrites()
        let destination = receiver.localAddress
        // The first send is one the sender cannot carry (as a segmentation-offload run): SwiftNIO's.
        let first = Task { [sender, writes, destination] in
            try await SendPathTests.send([1], to: destination, direct: false, with: sender, writes: writes)
        }
        while await writes.waiting == 0 { await Task.yield() }
        XCTAssertEqual(sender.writesQueuedThroughNIO, 1)
        // The second could go straight out, but the first still waits in SwiftNIO's queue: it must queue behind.
        let second = Task { [sender, writes, destination] in
            try await SendPathTests.send([2], to: destination, direct: true, with: sender, writes: writes)
        }
        while await writes.waiting < 2 { await Task.yield() }
        let overtook = try await receiver.receive(timeout: .milliseconds(200))
        XCTAssertNil(overtook, "a direct send overtook a write SwiftNIO still held")
        await writes.release()
        let (firstSent, secondSent) = (try await first.value, try await second.value)
        XCTAssertTrue(firstSent && secondSent)
        let queuedInOrder = await writes.written
        XCTAssertEqual(queuedInOrder, [[1], [2]])
        XCTAssertEqual(sender.writesQueuedThroughNIO, 0)
        // Once SwiftNIO's queue is empty, sends go straight out again.
        let failure = try await sender.send([Self.envelope([3], to: destination)], direct: true, connected: false) {
            _ in
            XCTFail("a send went through SwiftNIO with nothing queued there")
        }
        XCTAssertNil(failure)
        let direct = try await receive(receiver)
        XCTAssertEqual(direct.bytes, [3])
        sender.close()
        await receiver.close()
    }

    // MARK: - Sending without waiting

    /// From a thread that is not a task: the datagrams arrive in order, the one the system refuses is reported to
    /// `done` and the others still go; sent behind a segmentation-offload send (SwiftNIO's to write), they wait
    /// their turn.
    func testSendWithoutWaitingFromAThreadKeepsTheOrderAndReportsWhatFailed() async throws {
        let receiver = try await UDPSocket.bind(to: loopback)
        let sender = try await UDPSocket.bind(to: loopback)
        let destination = receiver.localAddress
        // 127.255.255.255: loopback's broadcast route, refused without SO_BROADCAST (nothing leaves this host).
        let refusedByTheKernel = try UDPAddress(ip: "127.255.255.255", port: 9)
        var expected: [[UInt8]] = [[1], [2]]
        var calls: [[OutgoingDatagram]] = [
            [
                OutgoingDatagram(bytes: [1], to: destination), OutgoingDatagram(bytes: [0xEE], to: refusedByTheKernel),
                OutgoingDatagram(bytes: [2], to: destination),
            ]
        ]
        if UDPSocket.supportsSegmentationOffload {
            calls.append([OutgoingDatagram(segments: ByteBuffer(bytes: [3, 4]), segmentSize: 1, to: destination)])
            calls.append([OutgoingDatagram(bytes: [5], to: destination)])
            expected += [[3], [4], [5]]
        }
        let failed = NIOLockedValueBox<[[[UInt8]]]>([])
        let thread = Thread { [calls] in
            for datagrams in calls {
                sender.sendWithoutWaiting(datagrams) { refused in
                    failed.withLockedValue { $0.append(refused.map { Array($0.payload.readableBytesView) }) }
                }
            }
        }
        thread.start()
        var received: [[UInt8]] = []
        for _ in expected { received.append(try await receive(receiver).bytes) }
        XCTAssertEqual(received, expected)
        let deadline = Date().addingTimeInterval(2)
        while failed.withLockedValue({ $0.count }) < calls.count && Date() < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        XCTAssertEqual(failed.withLockedValue { $0 }, [[[0xEE]]] + Array(repeating: [], count: calls.count - 1))
        XCTAssertTrue(sender.channel.isActive)
        await sender.close()
        await receiver.close()
    }

    func testARefusedDatagramIsReportedWithItsIndexAndTheOthersStillGo() async throws {
        let receiver = try await UDPSocket.bind(to: loopback)
        let sender = DirectSender(fd: try sendingDescriptor())
        // Port 0 is refused by the system (EINVAL) without anything leaving the host.
        let nowhere = try UDPAddress(ip: "127.0.0.1", port: 0)
        let failure = try await sender.send(
            [
                Self.envelope([1], to: receiver.localAddress), Self.envelope([2], to: nowhere),
                Self.envelope([3], to: receiver.localAddress),
            ],
            direct: true, connected: false
        ) { _ in XCTFail("nothing should need SwiftNIO") }
        XCTAssertEqual(failure?.index, 1)
        XCTAssertEqual(failure?.errno, EINVAL)
        let first = try await receive(receiver)
        let second = try await receive(receiver)
        XCTAssertEqual([first.bytes, second.bytes], [[1], [3]])
        sender.close()
        // Closed: everything goes to SwiftNIO, which reports the socket closed.
        var handedOver = 0
        _ = try await sender.send([Self.envelope([4], to: receiver.localAddress)], direct: true, connected: false) {
            handedOver += $0.count
        }
        XCTAssertEqual(handedOver, 1)
        await receiver.close()
    }

    // MARK: - SendVector (Linux's fast path)

    #if UDPKIT_LINUX_FAST_PATH
    /// Sends `sizes` (bytes of distinct values) to `receiver` through one vector; returns what arrived, in order.
    private func sendThroughVector(
        _ sizes: [Int], to receiver: UDPSocket, vector: inout SendVector, expectMessages: Int
    ) async throws -> [[UInt8]] {
        let fd = try sendingDescriptor()
        defer { close(fd) }
        let payloads = sizes.enumerated().map { index, size in
            ByteBuffer(bytes: [UInt8](repeating: UInt8(index + 1), count: size))
        }
        vector.reset(reserving: payloads.count)
        for payload in payloads { vector.append(payload, to: receiver.localAddress.socketAddress) }
        XCTAssertEqual(vector.messageCount, expectMessages, "messages for sizes \(sizes)")
        var refused: [Int] = []
        let next = withExtendedLifetime(payloads) { vector.transmit(fd: fd) { index, _ in refused.append(index) } }
        XCTAssertEqual(next, payloads.count)
        XCTAssertEqual(refused, [])
        var arrived: [[UInt8]] = []
        for _ in sizes { arrived.append(try await receive(receiver).bytes) }
        return arrived
    }

    private func expected(_ sizes: [Int]) -> [[UInt8]] {
        sizes.enumerated().map { index, size in [UInt8](repeating: UInt8(index + 1), count: size) }
    }

    func testARunOfEqualDatagramsToOneAddressIsOneSendAndArrivesAsSeparateDatagrams() async throws {
        try XCTSkipUnless(UDPSocket.supportsSegmentationOffload, "this kernel has no UDP GSO")
        let receiver = try await UDPSocket.bind(to: loopback)
        var vector = SendVector()
        defer { vector.deallocate() }
        let sizes = [100, 100, 100, 100]
        let arrived = try await sendThroughVector(sizes, to: receiver, vector: &vector, expectMessages: 1)
        XCTAssertEqual(arrived, expected(sizes))
        XCTAssertTrue(vector.segmenting)
        await receiver.close()
    }

    func testAShorterDatagramEndsARunAndALongerOneStartsANewOne() async throws {
        try XCTSkipUnless(UDPSocket.supportsSegmentationOffload, "this kernel has no UDP GSO")
        let receiver = try await UDPSocket.bind(to: loopback)
        var vector = SendVector()
        defer { vector.deallocate() }
        // [100, 100, 40] is one run ending in its shorter segment; 100 after it starts the next; [100, 120] cannot
        // join (a segment larger than the run's); an empty datagram never joins.
        let sizes = [100, 100, 40, 100, 120, 0, 0]
        let arrived = try await sendThroughVector(sizes, to: receiver, vector: &vector, expectMessages: 5)
        XCTAssertEqual(arrived, expected(sizes))
        await receiver.close()
    }

    func testDatagramsToDifferentAddressesAreNotJoined() async throws {
        try XCTSkipUnless(UDPSocket.supportsSegmentationOffload, "this kernel has no UDP GSO")
        let first = try await UDPSocket.bind(to: loopback)
        let second = try await UDPSocket.bind(to: loopback)
        var vector = SendVector()
        defer { vector.deallocate() }
        let fd = try sendingDescriptor()
        defer { close(fd) }
        let payloads = (0..<4).map { ByteBuffer(bytes: [UInt8](repeating: UInt8($0), count: 50)) }
        vector.reset(reserving: 4)
        for (index, payload) in payloads.enumerated() {
            vector.append(payload, to: (index % 2 == 0 ? first : second).localAddress.socketAddress)
        }
        XCTAssertEqual(vector.messageCount, 4)
        let next = withExtendedLifetime(payloads) { vector.transmit(fd: fd) { _, _ in XCTFail("refused") } }
        XCTAssertEqual(next, 4)
        let a = [try await receive(first).bytes, try await receive(first).bytes]
        let b = [try await receive(second).bytes, try await receive(second).bytes]
        XCTAssertEqual(a, [[UInt8](repeating: 0, count: 50), [UInt8](repeating: 2, count: 50)])
        XCTAssertEqual(b, [[UInt8](repeating: 1, count: 50), [UInt8](repeating: 3, count: 50)])
        for socket in [first, second] { await socket.close() }
    }

    func testWhenTheSystemRefusesAJoinedSendItsDatagramsGoOneByOneAndNoMoreAreJoined() async throws {
        try XCTSkipUnless(UDPSocket.supportsSegmentationOffload, "this kernel has no UDP GSO")
        let receiver = try await UDPSocket.bind(to: loopback)
        var vector = SendVector()
        defer { vector.deallocate() }
        // The system in front refuses every joined message as a route without checksum offload does (EIO), and
        // passes the rest to the real `sendmmsg`.
        let refusedJoined = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        defer { refusedJoined.deallocate() }
        refusedJoined.pointee = 0
        vector.sendMessages = { fd, messages, count in
            if messages.pointee.msg_hdr.msg_iovlen > 1 {
                refusedJoined.pointee += 1
                errno = EIO
                return -1
            }
            return cudp_sendmmsg(fd, messages, count, 0)
        }
        let sizes = [80, 80, 80, 30]
        let arrived = try await sendThroughVector(sizes, to: receiver, vector: &vector, expectMessages: 1)
        XCTAssertEqual(arrived, expected(sizes))
        XCTAssertEqual(refusedJoined.pointee, 1)
        XCTAssertFalse(vector.segmenting, "segmentation stays off once the system refused it")
        // The next batch is not joined at all.
        let again = try await sendThroughVector([80, 80], to: receiver, vector: &vector, expectMessages: 2)
        XCTAssertEqual(again, expected([80, 80]))
        XCTAssertEqual(refusedJoined.pointee, 1)
        await receiver.close()
    }

    #endif

    func testUnixDomainDatagramsOfOneSizeToOnePathStaySeparate() async throws {
        // Unix-domain sockets ignore UDP's segmentation control message: a joined send would arrive as one datagram.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "udpkit-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        ).path
        let receiver = try await UDPSocket.bind(to: try UDPAddress(unixPath: path))
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        try await sender.send([
            OutgoingDatagram(bytes: [1, 1, 1], to: receiver.localAddress),
            OutgoingDatagram(bytes: [2, 2, 2], to: receiver.localAddress),
        ])
        let first = try await receive(receiver)
        let second = try await receive(receiver)
        XCTAssertEqual([first.bytes, second.bytes], [[1, 1, 1], [2, 2, 2]])
        await sender.close()
        await receiver.close()
    }
}

/// The size rules every receive path and every send share.
final class DatagramLimitsTests: XCTestCase {
    func testSlotsAreOneByteLongerThanTheMaximumAndIPSlotsNeverExceedTheLargestRead() {
        XCTAssertEqual(DatagramLimits(maximumSize: 100, family: .ipv4).slot, 101)
        XCTAssertEqual(DatagramLimits(maximumSize: 65_535, family: .ipv6).slot, 65_536)
        // No IP datagram is longer than 65,535 bytes: a larger maximum needs no larger slot.
        XCTAssertEqual(DatagramLimits(maximumSize: 1_000_000, family: .ipv4).slot, 65_536)
        // A Unix-domain datagram can be as long as the buffers allow.
        XCTAssertEqual(DatagramLimits(maximumSize: 1_000_000, family: .unix).slot, 1_000_001)
        // Receive offload coalesces several datagrams into one read, whatever the maximum per datagram.
        XCTAssertEqual(DatagramLimits(maximumSize: 100, family: .ipv4, receiveOffload: true).slot, 65_536)
    }

    func testAReceiveThatFillsTheSlotIsCutToTheMaximumAndFlagged() {
        let limits = DatagramLimits(maximumSize: 4, family: .ipv4)
        XCTAssertTrue(limits.received(4) == (4, false))
        XCTAssertTrue(limits.received(5) == (4, true))
        XCTAssertTrue(limits.received(0) == (0, false))
        var payload = ByteBuffer(bytes: [1, 2, 3, 4, 5])
        XCTAssertTrue(limits.received(&payload))
        XCTAssertEqual(Array(payload.readableBytesView), [1, 2, 3, 4])
        var short = ByteBuffer(bytes: [1, 2])
        XCTAssertFalse(limits.received(&short))
        XCTAssertEqual(short.readableBytes, 2)
    }

    func testSendsTooLargeForTheirDestinationAreRefusedBeforeAnySystemCall() throws {
        let v4 = try UDPAddress(ip: "127.0.0.1", port: 9)
        let v6 = try UDPAddress(ip: "::1", port: 9)
        XCTAssertNil(DatagramLimits.refusal(of: OutgoingDatagram(bytes: [UInt8](repeating: 0, count: 65_507), to: v4)))
        XCTAssertEqual(
            DatagramLimits.refusal(of: OutgoingDatagram(bytes: [UInt8](repeating: 0, count: 65_508), to: v4)),
            .messageTooLarge(size: 65_508, limit: 65_507))
        XCTAssertNil(DatagramLimits.refusal(of: OutgoingDatagram(bytes: [UInt8](repeating: 0, count: 65_527), to: v6)))
        guard UDPSocket.supportsSegmentationOffload else { return }
        let run = ByteBuffer(bytes: [UInt8](repeating: 0, count: 100 * (UDPSocket.maximumSegments + 1)))
        XCTAssertEqual(
            DatagramLimits.refusal(of: OutgoingDatagram(segments: run, segmentSize: 100, to: v4)),
            .messageTooLarge(size: run.readableBytes, limit: 100 * UDPSocket.maximumSegments))
        XCTAssertNotNil(DatagramLimits.refusal(of: OutgoingDatagram(segments: run, segmentSize: 0, to: v4)))
    }
}
