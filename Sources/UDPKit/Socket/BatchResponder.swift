#if UDPKIT_LINUX_FAST_PATH
import CUDPSys
import Glibc
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
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
    static let batchSize = 64
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
            classifier: packetInfo ? ArrivalClassifier() : nil, localPort: localPort, refused: refused
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

/// What the responder's thread works with: the receive memory and headers, the send vector, and the last
/// addresses seen.
private struct Loop {
    typealias Envelope = BatchResponder.Envelope

    let fd: CInt
    let limits: DatagramLimits
    let reply: @Sendable ([Datagram]) -> [OutgoingDatagram]
    let target: @Sendable (UDPAddress) -> SocketAddress?
    let envelope: @Sendable (OutgoingDatagram) -> Envelope?
    let handOver: @Sendable ([Envelope]) -> Void
    /// Reads packet information into arrivals; nil when the socket does not ask for it.
    let classifier: ArrivalClassifier?
    let localPort: Int
    let refused: (@Sendable ([OutgoingDatagram]) -> Void)?
    /// Waits for room in the send buffer; false when it stayed full.
    let waitUntilWritable: () throws(SystemCallError) -> Bool
    var buffer: ByteBuffer
    let receiveMessages: UnsafeMutablePointer<cudp_mmsghdr>
    let receiveVectors: UnsafeMutablePointer<iovec>
    let receiveNames: UnsafeMutablePointer<sockaddr_storage>
    /// Control message room per header (packet information); nil without a classifier.
    let receiveControl: UnsafeMutableRawPointer?
    let controlSpace: Int
    var send = SendVector()
    /// The receive memory the message headers point into, and how many headers the last receive filled.
    var preparedBase: UnsafeMutableRawPointer?
    var usedMessages = 0
    var lastName = sockaddr_storage()
    var lastNameLength: socklen_t = 0
    var lastSender: UDPAddress?
    var lastDestination: UDPAddress?
    var lastTarget = sockaddr_storage()
    var lastTargetLength: socklen_t = 0
    /// The last packet information read and its arrival: a batch mostly goes to one address on one interface.
    var lastInfo = sockaddr_storage()
    /// Where each datagram's packet information is read into (kept, so it is not cleared for every datagram).
    var info = sockaddr_storage()
    var lastInterface: CInt = -1
    var lastArrival: Datagram.Arrival?
    /// For each datagram in the send vector, its index in the replies (to report the refused ones).
    var sentIndex: [Int] = []

    init(
        fd: CInt,
        limits: DatagramLimits,
        reply: @escaping @Sendable ([Datagram]) -> [OutgoingDatagram],
        target: @escaping @Sendable (UDPAddress) -> SocketAddress?,
        envelope: @escaping @Sendable (OutgoingDatagram) -> Envelope?,
        handOver: @escaping @Sendable ([Envelope]) -> Void,
        classifier: ArrivalClassifier?,
        localPort: Int,
        refused: (@Sendable ([OutgoingDatagram]) -> Void)?,
        waitUntilWritable: @escaping () throws(SystemCallError) -> Bool
    ) {
        self.fd = fd
        self.limits = limits
        self.waitUntilWritable = waitUntilWritable
        self.reply = reply
        self.target = target
        self.envelope = envelope
        self.handOver = handOver
        self.classifier = classifier
        self.localPort = localPort
        self.refused = refused
        // 64 full-size slots are 4 MiB of address space; only the pages datagrams touch become resident.
        buffer = ByteBufferAllocator().buffer(capacity: BatchResponder.batchSize * limits.slot)
        receiveMessages = .allocate(capacity: BatchResponder.batchSize)
        receiveVectors = .allocate(capacity: BatchResponder.batchSize)
        receiveNames = .allocate(capacity: BatchResponder.batchSize)
        if classifier != nil {
            controlSpace = Int(cudp_packet_info_control_space())
            receiveControl = .allocate(byteCount: controlSpace * BatchResponder.batchSize, alignment: 16)
        } else {
            controlSpace = 0
            receiveControl = nil
        }
    }

    func deallocate() {
        receiveMessages.deallocate()
        receiveVectors.deallocate()
        receiveNames.deallocate()
        receiveControl?.deallocate()
        send.deallocate()
    }

    /// Receives up to a batch; nil when nothing is waiting.
    mutating func receive() throws(SystemCallError) -> CInt? {
        buffer.clear()
        let (slot, messages, vectors, names) = (limits.slot, receiveMessages, receiveVectors, receiveNames)
        let (fd, prepared, used) = (self.fd, preparedBase, usedMessages)
        let (control, controlSpace) = (receiveControl, self.controlSpace)
        let result: (Result<CInt?, SystemCallError>, UnsafeMutableRawPointer) = buffer.withUnsafeMutableWritableBytes {
            memory in
            let base = memory.baseAddress!
            if base == prepared {
                // Same memory as last time: only the address lengths the last call overwrote need resetting.
                for i in 0..<used { messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size) }
                if control != nil {
                    for i in 0..<used { messages[i].msg_hdr.msg_controllen = controlSpace }
                }
            } else {
                for i in 0..<BatchResponder.batchSize {
                    vectors[i] = iovec(iov_base: base + i * slot, iov_len: slot)
                    messages[i] = cudp_mmsghdr(
                        msg_hdr: msghdr(
                            msg_name: UnsafeMutableRawPointer(names + i),
                            msg_namelen: socklen_t(MemoryLayout<sockaddr_storage>.size),
                            msg_iov: vectors + i,
                            msg_iovlen: 1,
                            msg_control: control.map { $0 + i * controlSpace },
                            msg_controllen: control == nil ? 0 : controlSpace,
                            msg_flags: 0
                        ),
                        msg_len: 0
                    )
                }
            }
            let received = Result { () throws(SystemCallError) -> CInt? in
                try SystemCall.nonBlocking("recvmmsg") {
                    cudp_recvmmsg(fd, messages, CUnsignedInt(BatchResponder.batchSize), 0)
                }
            }
            return (received, base)
        }
        preparedBase = result.1
        usedMessages = Int((try? result.0.get()).flatMap { $0 } ?? 0)
        return try result.0.get()
    }

    mutating func answer(_ count: Int) throws(SystemCallError) {
        let slot = limits.slot
        buffer.moveWriterIndex(to: count * slot)
        let now = Date()
        var batch: [Datagram] = []
        batch.reserveCapacity(count)
        for i in 0..<count {
            guard let sender = sender(i) else { continue }
            let (length, truncated) = limits.received(Int(receiveMessages[i].msg_len))
            let payload = buffer.getSlice(at: i * slot, length: length)!
            let arrival = classifier == nil ? nil : arrival(i)
            batch.append(
                Datagram(payload: payload, sender: sender, receivedAt: now, truncated: truncated, arrival: arrival))
        }
        guard !batch.isEmpty else { return }
        let replies = reply(batch)
        batch = []
        try transmit(replies)
    }

    /// Where received message `i` was addressed and how it came in, from its packet information; the previous
    /// arrival is reused when the address and the interface are the same.
    private mutating func arrival(_ i: Int) -> Datagram.Arrival? {
        var interface: CInt = 0
        guard cudp_packet_info(&receiveMessages[i].msg_hdr, &info, &interface) == 1 else { return nil }
        let length = CInt(info.ss_family) == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        // Compared in place: neither the address nor the last arrival is copied unless it changed.
        if lastArrival != nil, interface == lastInterface, memcmp(&info, &lastInfo, length) == 0 {
            return lastArrival
        }
        var destination = info
        let address: SocketAddress
        switch CInt(destination.ss_family) {
        case AF_INET:
            var v4 = withUnsafeBytes(of: &destination) { $0.load(as: sockaddr_in.self) }
            v4.sin_port = UInt16(truncatingIfNeeded: localPort).bigEndian
            address = SocketAddress(v4)
        case AF_INET6:
            var v6 = withUnsafeBytes(of: &destination) { $0.load(as: sockaddr_in6.self) }
            v6.sin6_port = UInt16(truncatingIfNeeded: localPort).bigEndian
            address = SocketAddress(v6)
        default:
            return nil
        }
        guard let classifier else { return nil }
        let arrival = classifier.arrival(to: UDPAddress(address), interfaceIndex: Int(interface))
        lastInfo = destination
        lastInterface = interface
        lastArrival = arrival
        return arrival
    }

    /// The sender of received message `i`; the previous one's address is reused when the bytes are the same
    /// (a batch mostly comes from few senders, and making an address costs an allocation and a formatting).
    private mutating func sender(_ i: Int) -> UDPAddress? {
        let length = receiveMessages[i].msg_hdr.msg_namelen
        let name = receiveNames + i
        if let lastSender, length == lastNameLength, memcmp(name, &lastName, Int(length)) == 0 {
            return lastSender
        }
        let address: SocketAddress
        switch CInt(name.pointee.ss_family) {
        case AF_INET:
            address = UnsafeRawPointer(name).withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                SocketAddress($0.pointee)
            }
        case AF_INET6:
            address = UnsafeRawPointer(name).withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                SocketAddress($0.pointee)
            }
        default:
            return nil
        }
        let sender = UDPAddress(address)
        lastName = name.pointee
        lastNameLength = length
        lastSender = sender
        return sender
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
                if destination == lastSender {
                    // A reply to the sender goes to the address the system gave with its datagram, as it gave it
                    // (an IPv4 sender on a dual-stack socket stays IPv4-mapped): no conversion at all.
                    lastTarget = lastName
                    lastTargetLength = lastNameLength
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
