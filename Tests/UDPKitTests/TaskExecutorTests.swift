import NIOCore
import UDPKit
import XCTest

/// Receiving from a task that runs on the socket's own event loop (`UDPSocket.taskExecutor`): on Linux the task then
/// reads the socket itself, taking turns with SwiftNIO's reads; everything must still arrive once, in order.
final class TaskExecutorTests: XCTestCase {
    private let loopback = try! UDPAddress(ip: "127.0.0.1", port: 0)

    /// The first byte of each datagram, received on `socket`'s executor until `count` came or `seconds` passed;
    /// also whether every receive ran on the socket's event loop.
    struct Received: Sendable {
        var seen: [UInt32]
        var onLoop: Bool
    }

    private static func collect(_ socket: UDPSocket, count: Int, seconds: Int = 5) async throws -> Received {
        var seen: [UInt32] = []
        var onLoop = true
        let deadline = ContinuousClock.now + .seconds(seconds)
        while seen.count < count, ContinuousClock.now < deadline {
            let batch = try await socket.receiveBatch(timeout: .milliseconds(500))
            onLoop = onLoop && socket.channel.eventLoop.inEventLoop
            seen += batch.map { $0.payload.getInteger(at: $0.payload.readerIndex, as: UInt32.self) ?? .max }
        }
        return Received(seen: seen, onLoop: onLoop)
    }

    private func numbered(_ range: Range<Int>, size: Int, to destination: UDPAddress) -> [OutgoingDatagram] {
        range.map { i in
            var payload = ByteBuffer()
            payload.writeInteger(UInt32(i))
            payload.writeRepeatingByte(0x61, count: size - 4)
            return OutgoingDatagram(payload: payload, to: destination)
        }
    }

    func testAStreamArrivesWholeAndInOrderOnTheSocketsExecutor() async throws {
        var options = UDPSocketOptions()
        options.receiveBufferSize = 4 << 20
        let receiver = try await UDPSocket.bind(to: loopback, options: options)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        let count = 3_000
        let executor = receiver.taskExecutor
        let consumer = Task(executorPreference: executor) { [receiver] () async throws -> Received in
            try await TaskExecutorTests.collect(receiver, count: count)
        }
        // In bursts of 100 with pauses, so that the receiver both finds datagrams waiting and waits for them.
        for start in stride(from: 0, to: count, by: 100) {
            try await sender.send(numbered(start..<(start + 100), size: 32, to: receiver.localAddress))
            try await Task.sleep(for: .milliseconds(2))
        }
        let received = try await consumer.value
        let (seen, onLoop) = (received.seen, received.onLoop)
        XCTAssertTrue(onLoop, "the receiving task ran on the socket's event loop")
        XCTAssertEqual(seen.count, count)
        XCTAssertEqual(seen, (0..<count).map(UInt32.init), "loopback keeps order and loses nothing here")
        await sender.close()
        await receiver.close()
    }

    func testDatagramsSwiftNIOQueuedComeBeforeThoseReadLater() async throws {
        // A small receive queue: SwiftNIO reads a few, pauses, and the rest waits in the kernel for the task.
        var options = UDPSocketOptions()
        options.receiveQueueLimit = 1_000
        options.receiveBufferSize = 1 << 20
        let receiver = try await UDPSocket.bind(to: loopback, options: options)
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        let count = 300
        try await sender.send(numbered(0..<count, size: 100, to: receiver.localAddress))
        try await Task.sleep(for: .milliseconds(100))
        let received = try await withTaskExecutorPreference(receiver.taskExecutor) {
            try await Self.collect(receiver, count: count)
        }
        let (seen, onLoop) = (received.seen, received.onLoop)
        XCTAssertTrue(onLoop)
        XCTAssertEqual(seen, (0..<count).map(UInt32.init), "the queued datagrams first, then the kernel's, in order")
        await sender.close()
        await receiver.close()
    }

    func testTimeoutsRefusalsAndCloseWorkOnTheSocketsExecutor() async throws {
        let probe = try await UDPSocket.bind(to: loopback)
        let deadAddress = probe.localAddress
        await probe.close()
        let socket = try await UDPSocket.connect(to: deadAddress)
        try await withTaskExecutorPreference(socket.taskExecutor) {
            let nothing = try await socket.receiveBatch(timeout: .milliseconds(50))
            XCTAssertEqual(nothing.count, 0, "the timer runs on the same loop as the task")
            try await socket.send(ByteBuffer(string: "anyone?"))
            do {
                _ = try await socket.receiveBatch(timeout: .seconds(2))
                XCTFail("expected connectionRefused")
            } catch let error as UDPError {
                XCTAssertEqual(error, .connectionRefused(deadAddress.description))
            }
        }
        let server = try await UDPSocket.bind(to: loopback)
        let ended = Task(executorPreference: server.taskExecutor) {
            var n = 0
            for try await batch in server.batches { n += batch.count }
            return n
        }
        let client = try await UDPSocket.client(for: server.localAddress)
        try await client.send(numbered(0..<5, size: 8, to: server.localAddress))
        try await Task.sleep(for: .milliseconds(100))
        await server.close()
        let received = try await ended.value
        XCTAssertEqual(received, 5, "the sequence gives what came, then ends when the socket closes")
        await client.close()
        await socket.close()
    }
}
