#if UDPKIT_LINUX_FAST_PATH
import CUDPSys
import Glibc
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore

/// Receives up to a batch of datagrams with one `recvmmsg` into memory kept from call to call, and makes them
/// `Datagram`s: what a `BatchResponder` thread and a task receiving on the event loop (`FastPath.readOnEventLoop`)
/// both do. The message headers are set up once and only their lengths reset; a run of datagrams from one sender,
/// or to one address, makes its `UDPAddress` and `Datagram.Arrival` once.
///
/// Not `Sendable` (it holds raw pointers): one thread uses it at a time; `deallocate()` when done.
struct BatchReceiver {
    /// Datagrams per receive call.
    static let batchSize = 64

    let limits: DatagramLimits
    /// Reads packet information into arrivals; nil when the socket does not ask for it.
    let classifier: ArrivalClassifier?
    let localPort: Int
    private(set) var buffer: ByteBuffer
    private let messages: UnsafeMutablePointer<cudp_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    private let names: UnsafeMutablePointer<sockaddr_storage>
    /// Control message room per header (packet information); nil without a classifier.
    private let control: UnsafeMutableRawPointer?
    private let controlSpace: Int
    /// The receive memory the message headers point into, and how many headers the last receive filled.
    private var preparedBase: UnsafeMutableRawPointer?
    private var usedMessages = 0
    /// The last sender's address as the system gave it, and as a `UDPAddress`.
    private(set) var lastName = sockaddr_storage()
    private(set) var lastNameLength: socklen_t = 0
    private(set) var lastSender: UDPAddress?
    /// The last packet information read and its arrival: a batch mostly goes to one address on one interface.
    private var lastInfo = sockaddr_storage()
    /// Where each datagram's packet information is read into (kept, so it is not cleared for every datagram).
    private var info = sockaddr_storage()
    private var lastInterface: CInt = -1
    private var lastArrival: Datagram.Arrival?

    /// - Parameters:
    ///   - limits: the socket's size rules; longer datagrams arrive flagged `truncated`.
    ///   - packetInfo: whether datagrams carry their `Datagram.Arrival` (the socket must have packet information on).
    ///   - localPort: the socket's port, for the arrivals' destination addresses.
    init(limits: DatagramLimits, packetInfo: Bool, localPort: Int) {
        self.limits = limits
        self.classifier = packetInfo ? ArrivalClassifier() : nil
        self.localPort = localPort
        // 64 full-size slots are 4 MiB of address space; only the pages datagrams touch become resident.
        buffer = ByteBufferAllocator().buffer(capacity: Self.batchSize * limits.slot)
        messages = .allocate(capacity: Self.batchSize)
        vectors = .allocate(capacity: Self.batchSize)
        names = .allocate(capacity: Self.batchSize)
        if packetInfo {
            controlSpace = Int(cudp_packet_info_control_space())
            control = .allocate(byteCount: controlSpace * Self.batchSize, alignment: 16)
        } else {
            controlSpace = 0
            control = nil
        }
    }

    func deallocate() {
        messages.deallocate()
        vectors.deallocate()
        names.deallocate()
        control?.deallocate()
    }

    /// Receives up to `maximum` (at most a batch) datagrams from the non-blocking socket `fd`; nil when nothing is
    /// waiting. Until the next call, they are `datagrams(count)`.
    mutating func receive(fd: CInt, maximum: Int = batchSize) throws(SystemCallError) -> Int? {
        buffer.clear()
        let (slot, messages, vectors, names) = (limits.slot, messages, vectors, names)
        let (prepared, used) = (preparedBase, usedMessages)
        let (control, controlSpace) = (control, self.controlSpace)
        let count = CUnsignedInt(Swift.min(Swift.max(maximum, 1), Self.batchSize))
        let result: (Result<CInt?, SystemCallError>, UnsafeMutableRawPointer) = buffer.withUnsafeMutableWritableBytes {
            memory in
            let base = memory.baseAddress!
            if base == prepared {
                // Same memory as last time: only the lengths the last call overwrote need resetting.
                for i in 0..<used { messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size) }
                if control != nil {
                    for i in 0..<used { messages[i].msg_hdr.msg_controllen = controlSpace }
                }
            } else {
                for i in 0..<Self.batchSize {
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
                try SystemCall.nonBlocking("recvmmsg") { cudp_recvmmsg(fd, messages, count, 0) }
            }
            return (received, base)
        }
        preparedBase = result.1
        let received = try result.0.get()
        usedMessages = Int(received ?? 0)
        return received.map(Int.init)
    }

    /// The first `count` datagrams the last `receive` got (fewer when a sender's address family is unknown).
    ///
    /// Unless `compact`, their payloads are slices of the receive memory: answer them before the next receive, or
    /// that receive copies all of it. `compact` copies them into one buffer of their own size, so that they can be
    /// kept as long as wanted and hold only their own bytes.
    mutating func datagrams(_ count: Int, compact: Bool) -> [Datagram] {
        let slot = limits.slot
        buffer.moveWriterIndex(to: count * slot)
        var source = buffer
        if compact {
            // Every byte goes in before the first slice is taken (a write after a slice would copy the buffer).
            var total = 0
            for i in 0..<count { total += limits.received(Int(messages[i].msg_len)).kept }
            var copy = ByteBufferAllocator().buffer(capacity: total)
            buffer.withUnsafeReadableBytes { memory in
                for i in 0..<count {
                    let length = limits.received(Int(messages[i].msg_len)).kept
                    copy.writeBytes(UnsafeRawBufferPointer(rebasing: memory[(i * slot)..<(i * slot + length)]))
                }
            }
            source = copy
        }
        let now = Date()
        var batch: [Datagram] = []
        batch.reserveCapacity(count)
        var start = 0
        for i in 0..<count {
            let (length, truncated) = limits.received(Int(messages[i].msg_len))
            defer { start += compact ? length : slot }
            guard let sender = sender(i) else { continue }
            let payload = source.getSlice(at: start, length: length)!
            let arrival = classifier == nil ? nil : arrival(i)
            batch.append(
                Datagram(payload: payload, sender: sender, receivedAt: now, truncated: truncated, arrival: arrival))
        }
        return batch
    }

    /// Where received message `i` was addressed and how it came in, from its packet information; the previous
    /// arrival is reused when the address and the interface are the same.
    private mutating func arrival(_ i: Int) -> Datagram.Arrival? {
        var interface: CInt = 0
        guard cudp_packet_info(&messages[i].msg_hdr, &info, &interface) == 1 else { return nil }
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
        let length = messages[i].msg_hdr.msg_namelen
        let name = names + i
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
}
#endif
