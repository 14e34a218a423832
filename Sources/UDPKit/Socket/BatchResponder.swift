#if UDPKIT_LINUX_FAST_PATH
import CUDPSys
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The loop behind `UDPSocket.respond(_:)` on Linux: one thread, one `recvmmsg` for up to 64 datagrams, the
/// reply closure, one `sendmmsg` for the replies; `epoll_wait` waits for the next datagram (or a stop request) when
/// the socket has run dry (an epoll set made once, so a wait does not register with the socket each time as `poll`
/// does: that is on the path of every datagram at one in flight).
///
/// It works on a duplicate of the socket's descriptor, so SwiftNIO may close its own at any time without the
/// loop ever touching a reused descriptor number; SwiftNIO's reads are paused while the loop runs. The socket stays
/// non-blocking (the mode is shared with SwiftNIO's descriptor), so nothing SwiftNIO does on its event loop can
/// block. `stop()` wakes the loop at once through an eventfd.
final class BatchResponder: Sendable {
    /// Datagrams per receive call.
    static let batchSize = BatchReceiver.batchSize
    /// How long a reply batch waits for room in a full send buffer before the rest is dropped.
    static let sendWaitMilliseconds: CInt = 100

    typealias Envelope = AddressedEnvelope<ByteBuffer>

    private let fd: CInt
    private let wake: CInt
    /// Watches `fd` and `wake` for input.
    private let readable: CInt
    private let limits: DatagramLimits
    private let reply: @Sendable ([Datagram]) -> [OutgoingDatagram]
    private let target: @Sendable (UDPAddress) -> SocketAddress?
    private let envelope: @Sendable (OutgoingDatagram) -> Envelope?
    private let handOver: @Sendable ([Envelope]) -> Void
    private let packetInfo: Bool
    private let localPort: Int
    private let refused: (@Sendable ([OutgoingDatagram]) -> Void)?
    /// Set from other threads, read by the loop before each receive.
    private let stopRequested = Atomic<Bool>(false)
    /// Whether `finish()` closed the descriptors; the lock keeps `stop` from using them meanwhile.
    private let closed = NIOLockedValueBox(false)
    /// Completed by `finish()`, once the descriptors are closed: the socket is released.
    let finished: EventLoopPromise<Void>

    /// - Parameters:
    ///   - fd: a non-blocking descriptor of the socket, which the responder owns (it closes it in `finish()`).
    ///   - limits: the socket's datagram size rules; longer datagrams arrive flagged `truncated`.
    ///   - eventLoop: where `finished` completes.
    ///   - reply: the caller's reply closure.
    ///   - target: a destination as the socket addresses it; nil when the socket cannot reach it.
    ///   - envelope: checks a segmentation-offload reply and addresses it for SwiftNIO; nil skips it.
    ///   - handOver: sends replies the loop does not send itself (segmentation offload) through SwiftNIO.
    ///   - packetInfo: whether datagrams carry their `Datagram.Arrival` (the socket must have packet information on).
    ///   - localPort: the socket's port, for the arrivals' destination addresses.
    ///   - refused: gets the replies that were not sent (refused by the system, too large, or dropped from a send
    ///     buffer that stayed full), after each batch.
    /// - Throws: when no eventfd or epoll set can be made (then `fd` is closed).
    init(
        fd: CInt,
        limits: DatagramLimits,
        eventLoop: any EventLoop,
        reply: @escaping @Sendable ([Datagram]) -> [OutgoingDatagram],
        target: @escaping @Sendable (UDPAddress) -> SocketAddress?,
        envelope: @escaping @Sendable (OutgoingDatagram) -> Envelope?,
        handOver: @escaping @Sendable ([Envelope]) -> Void,
        packetInfo: Bool = false,
        localPort: Int = 0,
        refused: (@Sendable ([OutgoingDatagram]) -> Void)? = nil
    ) throws(UDPError) {
        let wake: CInt
        let readable: CInt
        do {
            wake = try SystemCall.run("eventfd") { cudp_eventfd() }
        } catch {
            close(fd)
            throw .system(operation: "respond (eventfd)", errno: error.errno)
        }
        do {
            readable = try SystemCall.run("epoll_create1") { cudp_epoll_readable(fd, wake) }
        } catch {
            close(fd)
            close(wake)
            throw .system(operation: "respond (epoll)", errno: error.errno)
        }
        self.fd = fd
        self.wake = wake
        self.readable = readable
        self.limits = limits
        self.reply = reply
        self.target = target
        self.envelope = envelope
        self.handOver = handOver
        self.packetInfo = packetInfo
        self.localPort = localPort
        self.refused = refused
        finished = eventLoop.makePromise()
    }

    // MARK: - Control (any thread)

    /// Asks the loop to stop; it does at once, or after the batch it is answering.
    func stop() {
        stopRequested.store(true, ordering: .releasing)
        closed.withLockedValue { closed in
            guard !closed else { return }
            var one: UInt64 = 1
            // Fails only when the counter is full, and then a wake-up is already pending.
            _ = try? SystemCall.nonBlocking("write") { write(wake, &one, MemoryLayout<UInt64>.size) }
        }
    }

    /// After the loop ended (or never started): closes the descriptors and completes `finished`.
    func finish() {
        let first = closed.withLockedValue { closed -> Bool in
            guard !closed else { return false }
            closed = true
            close(fd)
            close(wake)
            close(readable)
            return true
        }
        if first { finished.succeed() }
    }

    // MARK: - The loop (its own thread)

    /// Answers until `stop` is called.
    /// - Throws: the call that failed when the socket fails (any errno but a would-block or an ICMP error that a
    ///   receive reports for an earlier reply).
    func run() throws(SystemCallError) {
        // The loop's state is a local value: no run-time exclusivity checks on the way from receive to send.
        var loop = Loop(
            fd: fd, limits: limits, reply: reply, target: target, envelope: envelope, handOver: handOver,
            packetInfo: packetInfo, localPort: localPort, refused: refused
        ) { [self] () throws(SystemCallError) -> Bool in
            try waitUntilWritable()
        }
        defer { loop.deallocate() }
        // A full batch means more is probably waiting: read again before polling.
        var mayHaveMore = false
        while !stopRequested.load(ordering: .acquiring) {
            if !mayHaveMore {
                try waitUntilReadable()
                mayHaveMore = true
                continue
            }
            let count: CInt
            do throws(SystemCallError) {
                guard let received = try loop.receive() else {
                    mayHaveMore = false
                    continue
                }
                count = received
            } catch  where [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(error.errno) {
                // An ICMP error for an earlier reply: the socket itself is fine.
                continue
            }
            if count > 0 { try loop.answer(Int(count)) }
            mayHaveMore = count == Self.batchSize
        }
    }

    /// Waits until a datagram is waiting or a stop is requested.
    private func waitUntilReadable() throws(SystemCallError) {
        let woken = try SystemCall.run("epoll_wait") { cudp_epoll_wait(readable, wake) }
        if woken == 1 {
            var value: UInt64 = 0
            _ = try SystemCall.nonBlocking("read") { read(wake, &value, MemoryLayout<UInt64>.size) }
        }
        // EPOLLERR (a pending ICMP error) also wakes: the receive reports and clears it.
    }

    /// Waits up to `sendWaitMilliseconds` for room in the send buffer; false when it stayed full or a stop came.
    /// A signal during the wait does not end it (the wait starts again).
    private func waitUntilWritable() throws(SystemCallError) -> Bool {
        var fds = [
            pollfd(fd: fd, events: Int16(POLLOUT), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0),
        ]
        let n = try SystemCall.run("poll") { poll(&fds, 2, Self.sendWaitMilliseconds) }
        return n > 0 && fds[0].revents & Int16(POLLOUT) != 0 && !stopRequested.load(ordering: .acquiring)
    }
}

/// What the responder's thread works with: the receiver, the send vector, and the last destination.
private struct Loop {
    typealias Envelope = BatchResponder.Envelope

    let fd: CInt
    let reply: @Sendable ([Datagram]) -> [OutgoingDatagram]
    let target: @Sendable (UDPAddress) -> SocketAddress?
    let envelope: @Sendable (OutgoingDatagram) -> Envelope?
    let handOver: @Sendable ([Envelope]) -> Void
    let refused: (@Sendable ([OutgoingDatagram]) -> Void)?
    /// Waits for room in the send buffer; false when it stayed full.
    let waitUntilWritable: () throws(SystemCallError) -> Bool
    /// Receives the batches; its last sender's address is where most replies go.
    var receiver: BatchReceiver
    var send = SendVector()
    var lastDestination: UDPAddress?
    var lastTarget = sockaddr_storage()
    var lastTargetLength: socklen_t = 0
    /// For each datagram in the send vector, its index in the replies (to report the refused ones).
    var sentIndex: [Int] = []

    init(
        fd: CInt,
        limits: DatagramLimits,
        reply: @escaping @Sendable ([Datagram]) -> [OutgoingDatagram],
        target: @escaping @Sendable (UDPAddress) -> SocketAddress?,
        envelope: @escaping @Sendable (OutgoingDatagram) -> Envelope?,
        handOver: @escaping @Sendable ([Envelope]) -> Void,
        packetInfo: Bool,
        localPort: Int,
        refused: (@Sendable ([OutgoingDatagram]) -> Void)?,
        waitUntilWritable: @escaping () throws(SystemCallError) -> Bool
    ) {
        self.fd = fd
        self.waitUntilWritable = waitUntilWritable
        self.reply = reply
        self.target = target
        self.envelope = envelope
        self.handOver = handOver
        self.refused = refused
        receiver = BatchReceiver(limits: limits, packetInfo: packetInfo, localPort: localPort)
    }

    func deallocate() {
        receiver.deallocate()
        send.deallocate()
    }

    /// Receives up to a batch; nil when nothing is waiting.
    mutating func receive() throws(SystemCallError) -> CInt? {
        try receiver.receive(fd: fd).map(CInt.init)
    }

    mutating func answer(_ count: Int) throws(SystemCallError) {
        let batch = receiver.datagrams(count, compact: false)
        guard !batch.isEmpty else { return }
        try transmit(reply(batch))
    }

    /// Sends `replies` with as few `sendmmsg` calls as it takes. A reply the socket cannot carry (too large, a
    /// family it cannot reach) is left out, and one the system refuses (unreachable, a full send buffer past the
    /// send timeout) is skipped; the rest still go. Segmentation-offload replies go through SwiftNIO.
    /// - Throws: when waiting for room in the send buffer failed (the rest of the batch is reported refused first).
    private mutating func transmit(_ replies: [OutgoingDatagram]) throws(SystemCallError) {
        guard !replies.isEmpty else { return }
        send.reset(reserving: replies.count)
        var offloaded: [Envelope] = []
        let tracking = refused != nil
        var failed: [OutgoingDatagram] = []
        if tracking { sentIndex.removeAll(keepingCapacity: true) }
        for (index, reply) in replies.enumerated() {
            if reply.segmentSize != nil {
                if let envelope = envelope(reply) {
                    offloaded.append(envelope)
                } else if tracking {
                    failed.append(reply)
                }
                continue
            }
            let destination = reply.destination
            if DatagramLimits.refusal(of: reply) != nil {
                if tracking { failed.append(reply) }
                continue
            }
            if destination != lastDestination {
                // Replies mostly go to the sender of the datagram before: the address is worked out once per run.
                if destination == receiver.lastSender {
                    // A reply to the sender goes to the address the system gave with its datagram, as it gave it
                    // (an IPv4 sender on a dual-stack socket stays IPv4-mapped): no conversion at all.
                    lastTarget = receiver.lastName
                    lastTargetLength = receiver.lastNameLength
                } else {
                    guard let target = target(destination) else {
                        if tracking { failed.append(reply) }
                        continue
                    }
                    lastTargetLength = target.withSockAddr { address, length in
                        withUnsafeMutableBytes(of: &lastTarget) {
                            $0.baseAddress!.copyMemory(from: address, byteCount: length)
                        }
                        return socklen_t(length)
                    }
                }
                lastDestination = destination
            }
            withUnsafeBytes(of: &lastTarget) {
                send.append(reply.payload, name: $0.baseAddress!, nameLength: lastTargetLength)
            }
            if tracking { sentIndex.append(index) }
        }
        if !offloaded.isEmpty { handOver(offloaded) }
        // The payloads stay alive, unmodified, in `replies` until the sends return. When the send buffer stays
        // full for `sendWaitMilliseconds`, the rest of the batch is dropped, as the kernel drops what it cannot queue.
        let sentIndex = self.sentIndex
        var failure: SystemCallError?
        withExtendedLifetime(replies) {
            var next = 0
            while true {
                next = send.transmit(fd: fd, from: next) { payload, _ in
                    if tracking { failed.append(replies[sentIndex[payload]]) }
                }
                guard next < send.payloadCount else { break }
                do throws(SystemCallError) {
                    guard try waitUntilWritable() else { break }
                } catch {
                    failure = error
                    break
                }
            }
            if tracking && next < send.payloadCount {
                for payload in next..<send.payloadCount { failed.append(replies[sentIndex[payload]]) }
            }
        }
        if let refused, !failed.isEmpty { refused(failed) }
        if let failure { throw failure }
    }
}
#endif
