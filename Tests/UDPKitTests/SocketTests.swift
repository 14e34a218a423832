import Foundation
import NIOCore
import UDPKit
import XCTest

/// Real sockets on loopback.
final class SocketTests: XCTestCase {
    private let loopback = try! UDPAddress(ip: "127.0.0.1", port: 0)

    func testByteExactAtZeroOneAndMaximumSizes() async throws {
        let receiver = try await UDPSocket.bind(to: loopback)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        for size in [0, 1, 1_472, 65_507] {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ size) }
            try await sender.send(bytes: bytes, to: receiver.localAddress)
            let datagram = try await receive(receiver)
            XCTAssertEqual(datagram.bytes, bytes, "size \(size)")
            XCTAssertFalse(datagram.truncated)
            XCTAssertEqual(datagram.sender, try UDPAddress(ip: "127.0.0.1", port: sender.localAddress.port!))
        }
        await sender.close()
        await receiver.close()
    }

    func testOversizedSendIsRefusedBeforeAnySyscall() async throws {
        let receiver = try await UDPSocket.bind(to: loopback)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        do {
            try await sender.send(bytes: [UInt8](repeating: 0, count: 65_508), to: receiver.localAddress)
            XCTFail("sent an oversized datagram")
        } catch let error as UDPError {
            XCTAssertEqual(error, .messageTooLarge(size: 65_508, limit: 65_507))
        }
        // The socket is still usable, and nothing was sent.
        try await sender.send(bytes: [1], to: receiver.localAddress)
        let one = try await receive(receiver)
        XCTAssertEqual(one.bytes, [1])
        await sender.close()
        await receiver.close()
    }

    func testTruncationIsFlaggedNeverSilent() async throws {
        var options = UDPSocketOptions()
        options.maximumDatagramSize = 100
        let receiver = try await UDPSocket.bind(to: loopback, options: options)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        let sizes = [99, 100, 101, 5_000]
        try await sender.send(
            sizes.map { OutgoingDatagram(bytes: [UInt8](repeating: 0x61, count: $0), to: receiver.localAddress) })
        var seen: [(Int, Bool)] = []
        while seen.count < sizes.count {
            let d = try await receive(receiver)
            seen.append((d.payload.readableBytes, d.truncated))
        }
        XCTAssertEqual(seen.map(\.0), [99, 100, 100, 100])
        XCTAssertEqual(seen.map(\.1), [false, false, true, true])
        await sender.close()
        await receiver.close()
    }

    func testNIODefaultWouldCutAt2048ButWeDoNot() async throws {
        let receiver = try await UDPSocket.bind(to: loopback)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        try await sender.send(bytes: [UInt8](repeating: 7, count: 9_000), to: receiver.localAddress)
        let datagram = try await receive(receiver)
        XCTAssertEqual(datagram.payload.readableBytes, 9_000)
        XCTAssertFalse(datagram.truncated)
        await sender.close()
        await receiver.close()
    }

    func testIPv6LoopbackAndDualStackWildcard() async throws {
        let wildcard = try await UDPSocket.bind(to: UDPEndpoint.parse("*:0"))
        XCTAssertEqual(wildcard.localAddress.family, .ipv6)
        let port = wildcard.localAddress.port!
        let v4 = try await UDPSocket.client(for: UDPAddress(ip: "127.0.0.1", port: port))
        let v6 = try await UDPSocket.client(for: UDPAddress(ip: "::1", port: port))
        try await v4.send(bytes: Array("four".utf8), to: UDPAddress(ip: "127.0.0.1", port: port))
        let first = try await receive(wildcard)
        XCTAssertEqual(first.sender.family, .ipv4, "IPv4 peers are shown as IPv4")
        try await v6.send(bytes: Array("six".utf8), to: UDPAddress(ip: "::1", port: port))
        let second = try await receive(wildcard)
        XCTAssertEqual(second.sender.ip, "::1")
        // Replies from the dual-stack socket reach the IPv4 peer.
        try await wildcard.send(ByteBuffer(string: "back"), to: first.sender)
        let back = try await receive(v4)
        XCTAssertEqual(String(buffer: back.payload), "back")
        for socket in [v4, v6, wildcard] { await socket.close() }
    }

    func testUnixDomainDatagrams() async throws {
        let path = NSTemporaryDirectory() + "udpkit-\(UUID().uuidString.prefix(8)).sock"
        let server = try await UDPSocket.bind(to: UDPEndpoint.parse("unix:" + path))
        XCTAssertEqual(server.localAddress.path, path)
        let client = try await UDPSocket.client(for: server.localAddress)
        try await client.send(bytes: [], to: server.localAddress)
        try await client.send(bytes: Array("hello".utf8), to: server.localAddress)
        let empty = try await receive(server)
        XCTAssertEqual(empty.payload.readableBytes, 0)
        let hello = try await receive(server)
        XCTAssertEqual(hello.bytes, Array("hello".utf8))
        try await server.send(ByteBuffer(string: "reply"), to: hello.sender)
        let reply = try await receive(client)
        XCTAssertEqual(String(buffer: reply.payload), "reply")
        let clientPath = client.localAddress.path!
        await client.close()
        await server.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: clientPath))
    }

    func testUnboundAndAbstractUnixSendersArriveAndTheSocketLivesOn() async throws {
        try skipWithoutFastPath("Receiving Unix-domain datagrams from unbound senders")
        let path = NSTemporaryDirectory() + "udpkit-\(UUID().uuidString.prefix(8)).sock"
        let server = try await UDPSocket.bind(to: UDPEndpoint.parse("unix:" + path))
        // An unbound sender (the address it leaves is empty), then one in the abstract namespace.
        let unbound = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        let abstract = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer {
            close(unbound)
            close(abstract)
        }
        func address(_ bytes: [UInt8]) -> (sockaddr_un, socklen_t) {
            var name = sockaddr_un()
            name.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &name.sun_path) { $0.copyBytes(from: bytes) }
            return (name, socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count))
        }
        func call(_ name: (sockaddr_un, socklen_t), _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int) -> Int {
            var copy = name.0
            return withUnsafePointer(to: &copy) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, name.1) }
            }
        }
        let target = address(Array(path.utf8) + [0])
        let abstractName = "udpkit-abstract-\(getpid())"
        XCTAssertEqual(call(address([0] + Array(abstractName.utf8))) { Int(bind(abstract, $0, $1)) }, 0)
        XCTAssertEqual(call(target) { sendto(unbound, "one", 3, 0, $0, $1) }, 3)
        XCTAssertEqual(call(target) { sendto(abstract, "two", 3, 0, $0, $1) }, 3)
        let first = try await receive(server)
        XCTAssertEqual(first.bytes, Array("one".utf8))
        XCTAssertTrue(first.sender.isUnnamedUnix)
        XCTAssertEqual(first.sender.description, "(unbound)")
        let second = try await receive(server)
        XCTAssertEqual(second.bytes, Array("two".utf8))
        XCTAssertTrue(second.sender.isUnnamedUnix)
        XCTAssertEqual(second.sender.description, "@" + abstractName)
        // Still open: a named client is received and answered.
        let client = try await UDPSocket.client(for: server.localAddress)
        try await client.send(bytes: Array("three".utf8), to: server.localAddress)
        let third = try await receive(server)
        try await server.send(ByteBuffer(string: "reply"), to: third.sender)
        let reply = try await receive(client)
        XCTAssertEqual(String(buffer: reply.payload), "reply")
        await client.close()
        await server.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testConnectedSocketReportsPortUnreachable() async throws {
        let probe = try await UDPSocket.bind(to: loopback)
        let deadAddress = probe.localAddress
        await probe.close()
        let socket = try await UDPSocket.connect(to: deadAddress)
        try await socket.send(ByteBuffer(string: "anyone?"))
        do {
            _ = try await socket.receive(timeout: .seconds(2))
            XCTFail("expected connectionRefused")
        } catch let error as UDPError {
            XCTAssertEqual(error, .connectionRefused(deadAddress.description))
        }
        // The socket survives the refusal.
        do {
            _ = try await socket.request(
                ByteBuffer(string: "again"), policy: RequestPolicy(timeout: .milliseconds(300), retries: 0))
            XCTFail("expected connectionRefused")
        } catch let error as UDPError {
            guard case .connectionRefused = error else { return XCTFail("\(error)") }
        }
        await socket.close()
    }

    func testBindErrorsAreTyped() async throws {
        let taken = try await UDPSocket.bind(to: loopback)
        do {
            _ = try await UDPSocket.bind(to: taken.localAddress)
            XCTFail("bound a port in use")
        } catch let error as UDPError {
            XCTAssertEqual(error, .addressInUse(taken.localAddress.description))
        }
        do {
            _ = try await UDPSocket.bind(to: UDPAddress(ip: "192.0.2.1", port: 0))
            XCTFail("bound an address that is not on this host")
        } catch let error as UDPError {
            guard case .addressNotAvailable = error else { return XCTFail("\(error)") }
        }
        var reuse = UDPSocketOptions()
        reuse.reuseAddress = true
        reuse.reusePort = true
        let first = try await UDPSocket.bind(to: loopback, options: reuse)
        let second = try await UDPSocket.bind(to: first.localAddress, options: reuse)
        XCTAssertEqual(first.localAddress, second.localAddress)
        for socket in [taken, first, second] { await socket.close() }
    }

    func testOptionsAreAppliedAndValidated() async throws {
        var options = UDPSocketOptions()
        options.timeToLive = 7
        options.typeOfService = 0xB8
        options.receiveBufferSize = 1 << 20
        options.broadcast = true
        let socket = try await UDPSocket.bind(to: loopback, options: options)
        let ttl = try await socket.channel.getOption(ChannelOptions.socket(.init(IPPROTO_IP), .init(IP_TTL))).get()
        XCTAssertEqual(ttl, 7)
        await socket.close()
        var bad = UDPSocketOptions()
        bad.timeToLive = 300
        XCTAssertThrowsError(try bad.validate()) { XCTAssertEqual("\($0)", "TTL 300 is out of range (1-255)") }
    }

    func testBatchesMoveManyDatagramsWithFewHandoffs() async throws {
        let receiver = try await UDPSocket.bind(to: loopback)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        let count = 200
        try await sender.send(
            (0..<count).map { OutgoingDatagram(bytes: [UInt8(truncatingIfNeeded: $0)], to: receiver.localAddress) })
        var received: [UInt8] = []
        var handoffs = 0
        while received.count < count {
            let batch = try await receiver.receiveBatch(timeout: .seconds(2))
            if batch.isEmpty { break }
            handoffs += 1
            received += batch.flatMap(\.bytes)
        }
        XCTAssertEqual(
            received, (0..<count).map { UInt8(truncatingIfNeeded: $0) }, "loopback keeps order and loses nothing here")
        XCTAssertLessThan(handoffs, count, "datagrams arrived in batches")
        await sender.close()
        await receiver.close()
    }

    func testReceiveQueueLimitPausesReadingWithoutLosingQueuedData() async throws {
        var options = UDPSocketOptions()
        options.receiveQueueLimit = 1_000
        options.receiveBufferSize = 1 << 20
        let receiver = try await UDPSocket.bind(to: loopback, options: options)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        let count = 100
        try await sender.send(
            (0..<count).map {
                OutgoingDatagram(bytes: [UInt8](repeating: UInt8($0), count: 100), to: receiver.localAddress)
            })
        try await Task.sleep(for: .milliseconds(100))
        var received = 0
        for try await datagram in receiver.datagrams {
            XCTAssertEqual(datagram.bytes.first, UInt8(received))
            received += 1
            if received == count { break }
        }
        XCTAssertEqual(received, count, "the kernel buffer held what the paused reader did not take")
        await sender.close()
        await receiver.close()
    }

    func testReceiveTimeoutCancellationAndClose() async throws {
        let socket = try await UDPSocket.bind(to: loopback)
        let started = ContinuousClock.now
        let nothing = try await socket.receive(timeout: .milliseconds(100))
        XCTAssertNil(nothing)
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(100))
        let waiting = Task { try await socket.receive() }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        do {
            _ = try await waiting.value
            XCTFail("a cancelled receive returned")
        } catch is CancellationError {}
        let ended = Task { () -> Int in
            var n = 0
            for try await _ in socket.datagrams { n += 1 }
            return n
        }
        try await Task.sleep(for: .milliseconds(50))
        await socket.close()
        let n = try await ended.value
        XCTAssertEqual(n, 0, "the sequence ends when the socket closes")
    }

    func testAsyncEchoWithBatchedSends() async throws {
        let server = try await UDPSocket.bind(to: loopback)
        let echo = Task {
            for try await batch in server.batches {
                try await server.send(batch.map { OutgoingDatagram(payload: $0.payload, to: $0.sender) })
            }
        }
        let client = try await UDPSocket.connect(to: server.localAddress)
        for i in 0..<50 {
            let reply = try await client.request(
                ByteBuffer(string: "n\(i)"), policy: RequestPolicy(timeout: .seconds(1), retries: 1))
            XCTAssertEqual(String(buffer: reply.datagram.payload), "n\(i)")
            XCTAssertEqual(reply.attempts, 1)
        }
        echo.cancel()
        await client.close()
        await server.close()
    }

    func testSegmentationOffloadSendsSeparateDatagramsAndReceiveOffloadSplitsThemBack() async throws {
        try XCTSkipUnless(UDPSocket.supportsSegmentationOffload, "no UDP GSO on this system")
        // 10 segments of 100 bytes and a short last one of 40, each with its own contents.
        let bytes = (0..<1_040).map { UInt8(truncatingIfNeeded: $0 / 100 &* 31 &+ $0) }
        let expected = stride(from: 0, to: bytes.count, by: 100).map { Array(bytes[$0..<min($0 + 100, bytes.count)]) }
        for offload in [false, true] {
            var options = UDPSocketOptions()
            options.receiveOffload = offload
            options.maximumDatagramSize = 200
            let receiver = try await UDPSocket.bind(to: loopback, options: options)
            let sender = try await UDPSocket.client(for: receiver.localAddress)
            try await sender.send([
                OutgoingDatagram(segments: ByteBuffer(bytes: bytes), segmentSize: 100, to: receiver.localAddress)
            ])
            var received: [[UInt8]] = []
            while received.count < expected.count, let datagram = try await receiver.receive(timeout: .seconds(2)) {
                XCTAssertFalse(datagram.truncated, "receive offload \(offload)")
                received.append(datagram.bytes)
            }
            XCTAssertEqual(received, expected, "receive offload \(offload)")
            await sender.close()
            await receiver.close()
        }
    }

    func testSegmentationOffloadLimitsAreChecked() async throws {
        try XCTSkipUnless(UDPSocket.supportsSegmentationOffload, "no UDP GSO on this system")
        let receiver = try await UDPSocket.bind(to: loopback)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        let tooMany = ByteBuffer(repeating: 1, count: (UDPSocket.maximumSegments + 1) * 10)
        do {
            try await sender.send([OutgoingDatagram(segments: tooMany, segmentSize: 10, to: receiver.localAddress)])
            XCTFail("more segments than the kernel takes were accepted")
        } catch UDPError.messageTooLarge {}
        await sender.close()
        await receiver.close()
    }

    func testRespondAnswersAndHandsBackOnCancellation() async throws {
        let server = try await UDPSocket.bind(to: loopback)
        let client = try await UDPSocket.client(for: server.localAddress)
        // Queued before respond starts: answered too.
        try await client.send(bytes: [1], to: server.localAddress)
        try await Task.sleep(for: .milliseconds(50))
        let task = Task {
            try await server.respond { batch in
                batch.map { OutgoingDatagram(bytes: [0xAA] + $0.bytes, to: $0.sender) }
            }
        }
        let first = try await receive(client)
        XCTAssertEqual(first.bytes, [0xAA, 1])
        try await client.send((2...40).map { OutgoingDatagram(bytes: [UInt8($0)], to: server.localAddress) })
        var seen: [UInt8] = []
        while seen.count < 39, let reply = try await client.receive(timeout: .seconds(2)) {
            seen.append(reply.bytes[1])
        }
        XCTAssertEqual(seen, Array(2...40))
        task.cancel()
        do {
            try await task.value
            XCTFail("respond returned without an error after cancellation")
        } catch is CancellationError {}
        // Back to queueing: the next datagram is received, not answered.
        try await client.send(bytes: [99], to: server.localAddress)
        let queued = try await receive(server)
        XCTAssertEqual(queued.bytes, [99])
        let unanswered = try await client.receive(timeout: .milliseconds(100))
        XCTAssertNil(unanswered)
        await client.close()
        await server.close()
    }

    func testARefusedDatagramInABatchIsSkippedAndTheSocketStaysOpen() async throws {
        // Both paths send from the task (`DirectSender`): SwiftNIO would close the socket on such an error.
        let receiver = try await UDPSocket.bind(to: loopback)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        // Port 0 is refused by the system (EINVAL) without anything leaving the host.
        let nowhere = try UDPAddress(ip: "127.0.0.1", port: 0)
        do {
            try await sender.send([
                OutgoingDatagram(bytes: [1], to: receiver.localAddress),
                OutgoingDatagram(bytes: [2], to: nowhere),
                OutgoingDatagram(bytes: [3], to: receiver.localAddress),
            ])
            XCTFail("a send to port 0 was accepted")
        } catch let error as UDPError {
            XCTAssertTrue(error.description.contains("send"), error.description)
        }
        let first = try await receive(receiver)
        let second = try await receive(receiver)
        XCTAssertEqual([first.bytes, second.bytes], [[1], [3]])
        try await sender.send(bytes: [4], to: receiver.localAddress)
        let after = try await receive(receiver)
        XCTAssertEqual(after.bytes, [4])
        await sender.close()
        do {
            try await sender.send(bytes: [5], to: receiver.localAddress)
            XCTFail("a closed socket sent")
        } catch UDPError.closed {}
        await receiver.close()
    }

    func testAConnectedSocketSendsOnlyToItsPeer() async throws {
        let peer = try await UDPSocket.bind(to: loopback)
        let other = try await UDPSocket.bind(to: loopback)
        let connected = try await UDPSocket.connect(to: peer.localAddress)
        do {
            try await connected.send([OutgoingDatagram(bytes: [1], to: other.localAddress)])
            XCTFail("a connected socket sent to another address")
        } catch is UDPError {}
        let stray = try await other.receive(timeout: .milliseconds(100))
        XCTAssertNil(stray)
        try await connected.send([OutgoingDatagram(bytes: [2], to: peer.localAddress)])
        let delivered = try await receive(peer)
        XCTAssertEqual(delivered.bytes, [2])
        for socket in [peer, other, connected] { await socket.close() }
    }

    func testRequestPolicyBackoff() {
        let policy = RequestPolicy(timeout: .milliseconds(100), retries: 3)
        XCTAssertEqual(policy.waits, [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800)])
        XCTAssertEqual(policy.total, .milliseconds(1_500))
        XCTAssertEqual(RequestPolicy(timeout: .seconds(1), retries: 0).waits, [.seconds(1)])
    }
}
