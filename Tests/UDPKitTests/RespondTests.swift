import Foundation
import NIOConcurrencyHelpers
import NIOCore
import UDPKit
import XCTest

/// `UDPSocket.respond(_:)`: on Linux IP sockets its own recvmmsg/sendmmsg thread, elsewhere the event loop.
/// Real sockets on loopback.
final class RespondTests: XCTestCase {
    private let loopback = try! UDPAddress(ip: "127.0.0.1", port: 0)

    /// Starts `reply` on `server` and waits until it answers (a probe with a first byte of 0xFF is echoed).
    private func responding(
        _ server: UDPSocket,
        _ reply: @escaping @Sendable ([Datagram]) -> [OutgoingDatagram]
    ) async throws -> Task<Void, any Error> {
        let task = Task { try await server.respond(reply) }
        let probe = try await UDPSocket.client(for: server.localAddress)
        defer { Task { await probe.close() } }
        for _ in 0..<50 {
            try await probe.send(bytes: [0xFF], to: server.localAddress)
            if try await probe.receive(timeout: .milliseconds(100)) != nil { return task }
        }
        XCTFail("the responder never answered")
        return task
    }

    private static func echo(_ batch: [Datagram]) -> [OutgoingDatagram] {
        batch.map { OutgoingDatagram(payload: $0.payload, to: $0.sender) }
    }

    func testRepliesReachTheRightSenderWhenSendersInterleave() async throws {
        let server = try await UDPSocket.bind(to: loopback)
        let task = try await responding(server) { batch in
            batch.map { OutgoingDatagram(bytes: $0.bytes + Array("@\($0.sender.port!)".utf8), to: $0.sender) }
        }
        let a = try await UDPSocket.client(for: server.localAddress)
        let b = try await UDPSocket.client(for: server.localAddress)
        // Alternating senders, sent back to back so that one receive call sees several of them.
        for i in 0..<40 {
            let (from, tag) = i % 2 == 0 ? (a, UInt8(ascii: "a")) : (b, UInt8(ascii: "b"))
            try await from.send(bytes: [tag, UInt8(i)], to: server.localAddress)
        }
        for (socket, tag) in [(a, UInt8(ascii: "a")), (b, UInt8(ascii: "b"))] {
            var numbers: [UInt8] = []
            while numbers.count < 20, let reply = try await socket.receive(timeout: .seconds(2)) {
                XCTAssertEqual(reply.bytes.first, tag)
                XCTAssertEqual(Array(reply.bytes.dropFirst(2)), Array("@\(socket.localAddress.port!)".utf8))
                numbers.append(reply.bytes[1])
            }
            XCTAssertEqual(numbers.count, 20)
        }
        task.cancel()
        _ = try? await task.value
        await a.close()
        await b.close()
        await server.close()
    }

    func testByteExactUpToTheMaximumAndTruncationFlagged() async throws {
        let server = try await UDPSocket.bind(to: loopback)
        let task = try await responding(server, Self.echo)
        let client = try await UDPSocket.client(for: server.localAddress)
        for size in [0, 1, 1_472, 9_000, 65_507] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ size) }
            try await client.send(bytes: payload, to: server.localAddress)
            let reply = try await receive(client)
            XCTAssertEqual(reply.bytes, payload, "size \(size)")
        }
        task.cancel()
        _ = try? await task.value
        await server.close()

        var options = UDPSocketOptions()
        options.maximumDatagramSize = 100
        let small = try await UDPSocket.bind(to: loopback, options: options)
        let flags = try await responding(small) { batch in
            batch.map {
                OutgoingDatagram(bytes: [$0.truncated ? 1 : 0, UInt8($0.payload.readableBytes)], to: $0.sender)
            }
        }
        try await client.send(bytes: [UInt8](repeating: 7, count: 300), to: small.localAddress)
        let cut = try await receive(client)
        XCTAssertEqual(cut.bytes, [1, 100])
        try await client.send(bytes: [UInt8](repeating: 7, count: 100), to: small.localAddress)
        let whole = try await receive(client)
        XCTAssertEqual(whole.bytes, [0, 100])
        flags.cancel()
        _ = try? await flags.value
        await client.close()
        await small.close()
    }

    func testAReplyTooLargeIsSkippedAndTheRestStillGo() async throws {
        let server = try await UDPSocket.bind(to: loopback)
        let task = try await responding(server) { batch in
            batch.flatMap { datagram -> [OutgoingDatagram] in
                if datagram.bytes == [0xFF] {
                    return [OutgoingDatagram(payload: datagram.payload, to: datagram.sender)]
                }
                return [
                    // Over the IPv4 limit:
                    OutgoingDatagram(bytes: [UInt8](repeating: 0, count: 65_508), to: datagram.sender),
                    OutgoingDatagram(bytes: Array("after".utf8), to: datagram.sender),
                ]
            }
        }
        let client = try await UDPSocket.client(for: server.localAddress)
        try await client.send(bytes: [1], to: server.localAddress)
        let after = try await receive(client)
        XCTAssertEqual(after.bytes, Array("after".utf8))
        let more = try await client.receive(timeout: .milliseconds(100))
        XCTAssertNil(more)
        task.cancel()
        _ = try? await task.value
        await client.close()
        await server.close()
    }

    func testDualStackServerAnswersIPv4AndIPv6Clients() async throws {
        let server: UDPSocket
        do {
            server = try await UDPSocket.bind(to: .parse("*:0"))
        } catch {
            throw XCTSkip("no IPv6 here: \(error)")
        }
        guard server.localAddress.family == .ipv6 else { throw XCTSkip("the wildcard fell back to IPv4") }
        let task = try await responding(server, Self.echo)
        let port = server.localAddress.port!
        for ip in ["127.0.0.1", "::1", "127.0.0.1"] {
            let target = try UDPAddress(ip: ip, port: port)
            let client = try await UDPSocket.client(for: target)
            try await client.send(bytes: Array(ip.utf8), to: target)
            let reply = try await receive(client)
            XCTAssertEqual(reply.bytes, Array(ip.utf8))
            XCTAssertEqual(reply.sender, target)
            await client.close()
        }
        task.cancel()
        _ = try? await task.value
        await server.close()
    }

    func testManyDatagramsInBurstsAreAllAnswered() async throws {
        let server = try await UDPSocket.bind(to: loopback)
        let task = try await responding(server, Self.echo)
        let client = try await UDPSocket.client(for: server.localAddress)
        var answered = Set<UInt16>()
        for burst in 0..<10 {
            // 150 at once: more than one receive call's worth (64).
            let numbers = (0..<150).map { UInt16(burst * 150 + $0) }
            try await client.send(
                numbers.map {
                    OutgoingDatagram(bytes: [UInt8($0 >> 8), UInt8($0 & 0xFF), 0, 0], to: server.localAddress)
                })
            var got = 0
            while got < numbers.count, let reply = try await client.receive(timeout: .seconds(2)) {
                answered.insert(UInt16(reply.bytes[0]) << 8 | UInt16(reply.bytes[1]))
                got += 1
            }
        }
        XCTAssertEqual(answered.count, 1_500)
        task.cancel()
        _ = try? await task.value
        await client.close()
        await server.close()
    }

    /// Runs of equal-sized datagrams to one address leave as one segmentation-offload send where Linux has it;
    /// the receivers must still see every datagram, whole and in order, whatever the mix of sizes and addresses.
    func testMixedSizesAndAddressesArriveWholeAndInOrder() async throws {
        let a = try await UDPSocket.bind(to: loopback)
        let b = try await UDPSocket.bind(to: loopback)
        // (receiver, size): runs, a shorter last segment, a zero-length datagram, an address change mid-run.
        let plan: [(UDPSocket, Int)] = [
            (a, 10), (a, 10), (a, 10), (a, 4), (a, 10), (a, 10), (a, 0), (a, 3), (a, 3),
            (b, 10), (b, 10), (a, 7), (a, 1_472), (a, 1_472), (a, 1_472), (b, 5), (b, 8),
        ]
        let outgoing = plan.enumerated().map { index, step in
            OutgoingDatagram(bytes: [UInt8](repeating: UInt8(index), count: step.1), to: step.0.localAddress)
        }
        func expect(_ socket: UDPSocket) async throws {
            for (index, step) in plan.enumerated() where step.0 === socket {
                let datagram = try await receive(socket)
                XCTAssertEqual(datagram.bytes, [UInt8](repeating: UInt8(index), count: step.1), "datagram \(index)")
            }
        }

        // From a task's send.
        let sender = try await UDPSocket.client(for: a.localAddress)
        try await sender.send(outgoing)
        try await expect(a)
        try await expect(b)

        // As one batch of replies.
        let server = try await UDPSocket.bind(to: loopback)
        let task = try await responding(server) { batch in
            batch.flatMap { $0.bytes == [0xFF] ? [OutgoingDatagram(payload: $0.payload, to: $0.sender)] : outgoing }
        }
        try await sender.send(bytes: [1], to: server.localAddress)
        try await expect(a)
        try await expect(b)
        task.cancel()
        _ = try? await task.value
        for socket in [sender, server, a, b] { await socket.close() }
    }

    func testClosingTheSocketEndsRespondAndFreesThePort() async throws {
        let server = try await UDPSocket.bind(to: loopback)
        let address = server.localAddress
        let task = try await responding(server, Self.echo)
        let started = ContinuousClock.now
        await server.close()
        // Once close returns, nothing holds the port any more (not even the answering thread).
        let again = try await UDPSocket.bind(to: address)
        await again.close()
        try await task.value  // returns, without an error, when the socket closes
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1))
    }

    func testASecondRespondOnTheSameSocketIsRefusedAndTheFirstGoesOn() async throws {
        let server = try await UDPSocket.bind(to: loopback)
        let task = try await responding(server, Self.echo)
        do {
            try await server.respond(Self.echo)
            XCTFail("a second respond was accepted")
        } catch let error as UDPError {
            XCTAssertTrue(error.description.contains("already answering"), error.description)
        }
        let client = try await UDPSocket.client(for: server.localAddress)
        try await client.send(bytes: [7], to: server.localAddress)
        let echoed = try await receive(client)
        XCTAssertEqual(echoed.bytes, [7])
        task.cancel()
        _ = try? await task.value
        // Once the first one ended, the socket can answer again.
        let again = try await responding(server, Self.echo)
        again.cancel()
        _ = try? await again.value
        await client.close()
        await server.close()
    }

    func testSegmentationOffloadRepliesArriveAsSeparateDatagrams() async throws {
        guard UDPSocket.supportsSegmentationOffload else { throw XCTSkip("no UDP GSO here") }
        let server = try await UDPSocket.bind(to: loopback)
        let task = try await responding(server) { batch in
            batch.map { datagram in
                datagram.bytes == [0xFF]
                    ? OutgoingDatagram(payload: datagram.payload, to: datagram.sender)
                    : OutgoingDatagram(
                        segments: ByteBuffer(bytes: [1, 1, 2, 2, 3]), segmentSize: 2, to: datagram.sender)
            }
        }
        let client = try await UDPSocket.client(for: server.localAddress)
        try await client.send(bytes: [9], to: server.localAddress)
        var replies: [[UInt8]] = []
        for _ in 0..<3 { replies.append(try await receive(client).bytes) }
        XCTAssertEqual(replies, [[1, 1], [2, 2], [3]])
        task.cancel()
        _ = try? await task.value
        await client.close()
        await server.close()
    }

    // MARK: - Packet information, refused replies

    func testTheFastPathCarriesWhereEachDatagramWasSent() async throws {
        var options = UDPSocketOptions()
        options.receivePacketInfo = true
        for (bind, target) in [("127.0.0.1", "127.0.0.1"), ("::", "127.0.0.1"), ("::", "::1")] {
            let server = try await UDPSocket.bind(to: UDPAddress(ip: bind, port: 0), options: options)
            let seen = NIOLockedValueBox<[Datagram.Arrival?]>([])
            let reply: @Sendable ([Datagram]) -> [OutgoingDatagram] = { batch in
                seen.withLockedValue { $0 += batch.map(\.arrival) }
                return Self.echo(batch)
            }
            let task = Task { try await server.respond(reply) }
            let destination = try UDPAddress(ip: target, port: server.localAddress.port!)
            let client = try await UDPSocket.client(for: destination)
            try await client.send(bytes: [1, 2, 3], to: destination)
            _ = try await receive(client)
            let arrival = try XCTUnwrap(seen.withLockedValue { $0.last } ?? nil, "bound to \(bind)")
            XCTAssertEqual(arrival.kind, .unicast)
            XCTAssertEqual(arrival.destination, destination)
            XCTAssertEqual(
                arrival.interfaceName, try NetworkInterface.all().first { $0.flags.contains(.loopback) }?.name)
            task.cancel()
            await client.close()
            await server.close()
        }
    }

    func testRepliesThatCannotBeSentAreReported() async throws {
        let server = try await UDPSocket.bind(to: loopback)
        let refused = NIOLockedValueBox<[OutgoingDatagram]>([])
        let v6 = try UDPAddress(ip: "::1", port: 9)
        let onRefused: @Sendable ([OutgoingDatagram]) -> Void = { failed in refused.withLockedValue { $0 += failed } }
        let reply: @Sendable ([Datagram]) -> [OutgoingDatagram] = { batch in
            // An IPv4 socket cannot reach an IPv6 address; a 70,000-byte datagram fits no IPv4 packet.
            [
                OutgoingDatagram(bytes: [1], to: v6),
                OutgoingDatagram(bytes: [UInt8](repeating: 0, count: 70_000), to: batch[0].sender),
            ]
                + Self.echo(batch)
        }
        let task = Task { try await server.respond(refused: onRefused, reply) }
        let client = try await UDPSocket.client(for: server.localAddress)
        try await client.send(bytes: [7], to: server.localAddress)
        let echoed = try await receive(client)
        XCTAssertEqual(echoed.bytes, [7])
        let deadline = Date().addingTimeInterval(2)
        while refused.withLockedValue({ $0.count }) < 2 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertEqual(refused.withLockedValue { $0.map(\.payload.readableBytes) }.sorted(), [1, 70_000])
        task.cancel()
        await client.close()
        await server.close()
    }

    /// What was queued before `respond` started is answered first, then what arrives while it starts, in the order
    /// sent: on the fast path's thread and on the event loop (receive offload keeps `respond` there on Linux).
    func testDatagramsQueuedBeforeRespondAreAnsweredBeforeLaterOnes() async throws {
        for offload in [false, true] {
            var options = UDPSocketOptions()
            options.receiveOffload = offload
            let server = try await UDPSocket.bind(to: loopback, options: options)
            let client = try await UDPSocket.client(for: server.localAddress)
            for i in 0..<20 { try await client.send(bytes: [UInt8(i)], to: server.localAddress) }
            // Time for the event loop to read them into the socket's queue before answering starts.
            try await Task.sleep(for: .milliseconds(100))
            // The queued batch takes a while to answer: anything answered meanwhile would overtake it.
            let reply: @Sendable ([Datagram]) -> [OutgoingDatagram] = { batch in
                if batch.first?.bytes == [0] { usleep(50_000) }
                return Self.echo(batch)
            }
            let task = Task { try await server.respond(reply) }
            try await Task.sleep(for: .milliseconds(10))
            for i in 20..<60 { try await client.send(bytes: [UInt8(i)], to: server.localAddress) }
            var echoed: [UInt8] = []
            for _ in 0..<60 { echoed += try await receive(client).bytes }
            XCTAssertEqual(echoed, (0..<60).map { UInt8($0) }, "offload \(offload)")
            task.cancel()
            await client.close()
            await server.close()
        }
    }

    func testAReplyTheSystemRefusesIsReportedAndTheSocketKeepsAnswering() async throws {
        // Both paths, and the event loop's answering too (receive offload keeps `respond` there on Linux): SwiftNIO
        // would close the socket on the refusal.
        for offload in [false, true] {
            var options = UDPSocketOptions()
            options.receiveOffload = offload
            let server = try await UDPSocket.bind(to: loopback, options: options)
            let refused = NIOLockedValueBox<[OutgoingDatagram]>([])
            // 127.255.255.255 is loopback's broadcast route, which no interface lists: the kernel refuses a send
            // there without SO_BROADCAST (EACCES), and nothing would leave this host anyway.
            let refusedByTheKernel = try UDPAddress(ip: "127.255.255.255", port: 9)
            let onRefused: @Sendable ([OutgoingDatagram]) -> Void = { failed in refused.withLockedValue { $0 += failed }
            }
            let reply: @Sendable ([Datagram]) -> [OutgoingDatagram] = { batch in
                [OutgoingDatagram(bytes: [0xEE], to: refusedByTheKernel)] + Self.echo(batch)
            }
            let task = Task { try await server.respond(refused: onRefused, reply) }
            let client = try await UDPSocket.client(for: server.localAddress)
            for byte: UInt8 in [1, 2] {
                try await client.send(bytes: [byte], to: server.localAddress)
                let echoed = try await receive(client)
                XCTAssertEqual(echoed.bytes, [byte], "offload \(offload)")
            }
            let deadline = Date().addingTimeInterval(2)
            while refused.withLockedValue({ $0.count }) < 2 && Date() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            XCTAssertEqual(
                refused.withLockedValue { $0.map { Array($0.payload.readableBytesView) } }, [[0xEE], [0xEE]],
                "offload \(offload)")
            XCTAssertTrue(server.channel.isActive, "offload \(offload)")
            task.cancel()
            await client.close()
            await server.close()
        }
    }

    func testKernelDropsAreUnknownWithoutTheFastPath() async throws {
        try XCTSkipIf(UDPSocket.fastPathAvailable, "this build reads the kernel's drop counter")
        let server = try await UDPSocket.bind(to: loopback)
        // Not a made-up zero: the portable path cannot read the counter, and says so.
        XCTAssertNil(server.kernelDrops)
        await server.close()
    }

    func testKernelDropsAreCountedForTheSocket() async throws {
        try skipWithoutFastPath("Reading the kernel's drop counter (SO_MEMINFO)")
        var options = UDPSocketOptions()
        options.receiveBufferSize = 4096
        // The inbox holds almost nothing: reading pauses at once and the kernel's small buffer overflows.
        options.receiveQueueLimit = 1
        let server = try await UDPSocket.bind(to: loopback, options: options)
        XCTAssertEqual(server.kernelDrops, 0)
        let client = try await UDPSocket.client(for: server.localAddress)
        for _ in 0..<10 {
            try await client.send(
                (0..<20).map { _ in OutgoingDatagram(bytes: [UInt8](repeating: 1, count: 1000), to: server.localAddress)
                })
        }
        var received = 0
        while try await server.receive(timeout: .milliseconds(300)) != nil { received += 1 }
        let drops = try XCTUnwrap(server.kernelDrops)
        XCTAssertGreaterThan(drops, 0)
        XCTAssertEqual(received + drops, 200)
        await client.close()
        await server.close()
        XCTAssertNil(server.kernelDrops, "closed")
    }

    /// A real failure of the answering loop: the descriptor it reads is replaced under it by one that is not a
    /// socket (/dev/null), so its next `recvmmsg` fails with ENOTSOCK. `respond` must throw that, not return as if
    /// the socket had closed.
    func testAFailingAnsweringLoopIsThrownWithItsErrno() async throws {
        try skipWithoutFastPath("The answering thread with its own descriptor")
        #if os(Linux)
        let server = try await UDPSocket.bind(to: loopback)
        let port = try XCTUnwrap(server.localAddress.port)
        let inode = try XCTUnwrap(Self.socketInode(port: port), "no 127.0.0.1:\(port) in /proc/net/udp")
        let before = Self.descriptors(of: inode)
        let task = try await responding(server, Self.echo)
        // The answering loop's own duplicate of the socket: the one descriptor of it that respond added.
        let added = Self.descriptors(of: inode).subtracting(before)
        XCTAssertEqual(added.count, 1, "descriptors before \(before), now \(Self.descriptors(of: inode))")
        let loopDescriptor = try XCTUnwrap(added.first)
        let null = open("/dev/null", O_RDONLY)
        XCTAssertGreaterThanOrEqual(null, 0)
        XCTAssertEqual(dup2(null, loopDescriptor), loopDescriptor)
        close(null)
        // Wakes the loop: its wait sees the new descriptor readable, and the receive on it fails.
        let client = try await UDPSocket.client(for: server.localAddress)
        try await client.send(bytes: [1], to: server.localAddress)
        let watchdog = Task {
            try await Task.sleep(for: .seconds(5))
            task.cancel()
        }
        do {
            try await task.value
            XCTFail("respond returned as if the socket had closed")
        } catch let error as UDPError {
            XCTAssertEqual(error, .system(operation: "answering datagrams (recvmmsg)", errno: ENOTSOCK))
            XCTAssertTrue(error.description.hasPrefix("answering datagrams (recvmmsg) failed: "), error.description)
        } catch {
            XCTFail("respond ended with \(error), not the loop's failure")
        }
        watchdog.cancel()
        await client.close()
        await server.close()
        #endif
    }

    #if os(Linux)
    /// The inode of the UDP socket bound to 127.0.0.1:`port`, from /proc/net/udp.
    private static func socketInode(port: Int) -> String? {
        guard let table = try? String(contentsOfFile: "/proc/net/udp", encoding: .utf8) else { return nil }
        let local = String(format: "0100007F:%04X", port)
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 9, fields[1] == local { return String(fields[9]) }
        }
        return nil
    }

    /// This process's descriptors that refer to the socket with `inode`.
    private static func descriptors(of inode: String) -> Set<CInt> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(
            names.compactMap { name -> CInt? in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
                    target == "socket:[\(inode)]"
                else { return nil }
                return CInt(name)
            })
    }
    #endif
}
