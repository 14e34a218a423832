import NIOConcurrencyHelpers
import NIOCore
import UDPKit

#if canImport(Glibc)
import CUDPSys
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The upstream sockets of all client mappings, read by one thread (`poll`, then `recvmmsg` where the Linux fast
/// path is built, else `recv`) into one shared buffer.
///
/// A socket per client (so the upstream sees one source port per client) is what makes a proxy NAT-like, but a
/// SwiftNIO channel per socket keeps receive buffers of the largest datagram size per channel, which cost about
/// 2 MiB per client. Here a mapping costs its descriptor and a table entry; the only receive buffer is the one
/// of the reading thread, and each datagram is copied out of it at its own size.
///
/// Every use of a descriptor (send, receive, close) happens under `lock`, so a descriptor closed by expiry and
/// reused by a new mapping is never read or written on behalf of the old one.
final class UpstreamSockets: @unchecked Sendable {
    // @unchecked: `wakeRead` and `wakeWrite` are set once in init and only closed in deinit; every other mutable
    // state (`table`, `version`, `stopping`, and the memory behind `buffer` and the message and vector arrays) is
    // only touched under `lock`.
    private let wakeRead: CInt
    private let wakeWrite: CInt
    private let lock = NIOLock()
    private var table: [CInt: Mapping] = [:]
    /// Changes whenever `table` changes, so that the reading thread polls the sockets it has now (a closed
    /// descriptor left in the set would make `poll` return at once, again and again).
    private var version = 0
    private var stopping = false
    /// The reading thread's receive slots: `batch` datagrams of up to 64 KiB, shared by all sockets.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(
        byteCount: UpstreamSockets.batch * UpstreamSockets.slot, alignment: 16)
    private static let batch = 16
    private static let slot = 65_536
    #if UDPKIT_LINUX_FAST_PATH
    private let receiveMessages = UnsafeMutablePointer<cudp_mmsghdr>.allocate(capacity: UpstreamSockets.batch)
    private let receiveVectors = UnsafeMutablePointer<iovec>.allocate(capacity: UpstreamSockets.batch)
    /// For `sendmmsg`, used under `lock`.
    private let sendMessages = UnsafeMutablePointer<cudp_mmsghdr>.allocate(capacity: UpstreamSockets.batch)
    private let sendVectors = UnsafeMutablePointer<iovec>.allocate(capacity: UpstreamSockets.batch)
    #endif
    private let upstream: UDPAddress

    /// Datagrams read from one mapping's socket.
    typealias Delivery = (mapping: Mapping, payloads: [ByteBuffer])

    init(upstream: UDPAddress) throws(UDPError) {
        self.upstream = upstream
        var ends: [CInt] = [-1, -1]
        do {
            _ = try SystemCall.run("pipe") { pipe(&ends) }
        } catch {
            throw .system(operation: "pipe", errno: error.errno)
        }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = ends[0]
        wakeWrite = ends[1]
    }

    deinit {
        for fd in table.keys { System.close(fd) }
        System.close(wakeRead)
        System.close(wakeWrite)
        buffer.deallocate()
        #if UDPKIT_LINUX_FAST_PATH
        receiveMessages.deallocate()
        receiveVectors.deallocate()
        sendMessages.deallocate()
        sendVectors.deallocate()
        #endif
    }

    /// Makes the reading thread look at the table again.
    private func wake() {
        var byte: UInt8 = 1
        // Fails only when the pipe is full, and then a wake-up is already pending.
        _ = try? SystemCall.nonBlocking("write") { System.write(wakeWrite, &byte, 1) }
    }

    /// A non-blocking socket connected to the upstream, registered for reading; `make` builds the mapping that
    /// owns it.
    /// - Throws: `UDPError.system` with the errno of `socket` or `connect` (EMFILE when out of descriptors).
    func open(_ make: (CInt) -> Mapping) throws(UDPError) -> Mapping {
        let family = upstream.family == .ipv6 ? AF_INET6 : AF_INET
        let fd: CInt
        do {
            #if canImport(Glibc)
            fd = try SystemCall.run("socket") {
                socket(
                    family, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
            }
            #else
            fd = try SystemCall.run("socket") { socket(family, SOCK_DGRAM, 0) }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            #endif
        } catch {
            throw .system(operation: "socket", errno: error.errno)
        }
        let connected: Result<CInt, SystemCallError>
        switch upstream.socketAddress {
        case .v4(let address):
            var raw = address.address
            connected = withUnsafePointer(to: &raw) { pointer in
                Result { () throws(SystemCallError) -> CInt in
                    try SystemCall.run("connect") {
                        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
            }
        case .v6(let address):
            var raw = address.address
            connected = withUnsafePointer(to: &raw) { pointer in
                Result { () throws(SystemCallError) -> CInt in
                    try SystemCall.run("connect") {
                        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                        }
                    }
                }
            }
        case .unixDomainSocket:
            System.close(fd)
            throw .system(operation: "connect (the proxy relays to IP addresses)", errno: EAFNOSUPPORT)
        }
        if case .failure(let error) = connected {
            System.close(fd)
            throw .system(operation: "connect", errno: error.errno)
        }
        let mapping = make(fd)
        lock.withLock {
            table[fd] = mapping
            version += 1
        }
        wake()
        return mapping
    }

    /// Closes a mapping's socket; later sends on it fail quietly.
    func close(_ mapping: Mapping) {
        let closed = lock.withLock { () -> Bool in
            let fd = mapping.descriptor
            guard table[fd] === mapping else { return false }
            table[fd] = nil
            version += 1
            // Until it rebuilds its set, the reading thread may still poll this number; it finds no mapping for it
            // (or a new mapping's socket, which it then reads for that mapping).
            System.close(fd)
            return true
        }
        if closed { wake() }
    }

    /// Closes every socket.
    func closeAll() {
        lock.withLock {
            for fd in table.keys { System.close(fd) }
            table.removeAll()
            version += 1
        }
        wake()
    }

    /// Sends datagrams to the upstream on `mapping`'s socket; returns how many failed (socket buffer full, an
    /// ICMP error pending, the mapping closed).
    func send(_ payloads: [ByteBuffer], on mapping: Mapping) -> Int {
        lock.withLock {
            let fd = mapping.descriptor
            guard table[fd] === mapping else { return payloads.count }
            #if UDPKIT_LINUX_FAST_PATH
            return withExtendedLifetime(payloads) { sendBatches(payloads, fd: fd) }
            #else
            var failed = 0
            for payload in payloads {
                // A full buffer (would block) or a refusal: the datagram is lost either way, as the kernel would drop it.
                let sent = payload.withUnsafeReadableBytes { bytes in
                    try? SystemCall.nonBlocking("send") { System.send(fd, bytes.baseAddress, bytes.count, 0) }
                }
                if sent == nil { failed += 1 }
            }
            return failed
            #endif
        }
    }

    #if UDPKIT_LINUX_FAST_PATH
    /// `sendmmsg` in batches; a datagram the system refuses is skipped (and counted), the others still go. The
    /// caller holds `lock` and keeps `payloads` alive.
    private func sendBatches(_ payloads: [ByteBuffer], fd: CInt) -> Int {
        var failed = 0
        var next = 0
        while next < payloads.count {
            let count = min(Self.batch, payloads.count - next)
            for index in 0..<count {
                // The pointer outlives the closure: the caller keeps the buffers alive and unmodified.
                payloads[next + index].withUnsafeReadableBytes { bytes in
                    sendVectors[index] = iovec(
                        iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                }
                sendMessages[index] = cudp_mmsghdr()
                sendMessages[index].msg_hdr.msg_iov = sendVectors + index
                sendMessages[index].msg_hdr.msg_iovlen = 1
            }
            let messages = sendMessages
            do throws(SystemCallError) {
                guard
                    let sent = try SystemCall.nonBlocking("sendmmsg", { cudp_sendmmsg(fd, messages, UInt32(count), 0) })
                else {
                    // The socket's buffer is full: the rest are dropped rather than waited for.
                    return failed + payloads.count - next
                }
                if sent > 0 {
                    next += Int(sent)
                } else {
                    failed += 1
                    next += 1
                }
            } catch {
                // Refused (an ICMP error pending, for one): the first is skipped, the rest still go.
                failed += 1
                next += 1
            }
        }
        return failed
    }
    #endif

    /// Reads until `stop()`, handing each socket's datagrams to `deliver` (on this thread).
    func run(deliver: (Delivery) -> Void) {
        var polled: [pollfd] = []
        var seen = -1
        var drain: UInt8 = 0
        while true {
            let (current, stop) = lock.withLock { (version, stopping) }
            if stop { return }
            if current != seen {
                seen = current
                polled = lock.withLock { table.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) } }
                polled.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            }
            // The timeout only bounds how long a closed socket stays in the set.
            guard (try? SystemCall.run("poll", { poll(&polled, nfds_t(polled.count), 1_000) })) != nil else { return }
            if polled[polled.count - 1].revents != 0 {
                while let read = try? SystemCall.nonBlocking("read", { System.read(wakeRead, &drain, 1) }), read > 0 {}
            }
            for index in 0..<(polled.count - 1) where polled[index].revents & Int16(POLLIN | POLLERR) != 0 {
                if let delivery = read(polled[index].fd) { deliver(delivery) }
            }
        }
    }

    /// Ends `run`.
    func stop() {
        lock.withLock { stopping = true }
        wake()
    }

    /// Up to 64 datagrams waiting on `fd`, each copied out of the shared buffer at its own size.
    private func read(_ fd: CInt) -> Delivery? {
        lock.withLock {
            guard let mapping = table[fd] else { return nil }
            var payloads: [ByteBuffer] = []
            #if UDPKIT_LINUX_FAST_PATH
            for _ in 0..<4 {
                for index in 0..<Self.batch {
                    receiveVectors[index] = iovec(iov_base: buffer.baseAddress! + index * Self.slot, iov_len: Self.slot)
                    receiveMessages[index] = cudp_mmsghdr()
                    receiveMessages[index].msg_hdr.msg_iov = receiveVectors + index
                    receiveMessages[index].msg_hdr.msg_iovlen = 1
                }
                let messages = receiveMessages
                let count: CInt
                do throws(SystemCallError) {
                    // EAGAIN: all read.
                    guard
                        let received = try SystemCall.nonBlocking(
                            "recvmmsg", { cudp_recvmmsg(fd, messages, UInt32(Self.batch), 0) })
                    else { break }
                    count = received
                } catch  where error.errno == ECONNREFUSED {
                    // Nothing listens upstream (yet); the client finds out by the silence, as without a proxy.
                    continue
                } catch {
                    break
                }
                for index in 0..<Int(count) {
                    let length = min(Int(receiveMessages[index].msg_len), Self.slot)
                    payloads.append(
                        ByteBuffer(
                            bytes: UnsafeRawBufferPointer(start: buffer.baseAddress! + index * Self.slot, count: length)
                        ))
                }
                if count < Self.batch { break }
            }
            #else
            for _ in 0..<64 {
                let (base, size) = (buffer.baseAddress, buffer.count)
                let received: Int
                do throws(SystemCallError) {
                    // EAGAIN: all read. A signal during the call (EINTR) is retried by the wrapper.
                    guard let count = try SystemCall.nonBlocking("recv", { recv(fd, base, size, 0) }) else { break }
                    received = count
                } catch  where error.errno == ECONNREFUSED {
                    // Nothing listens upstream (yet); the client finds out by the silence, as without a proxy.
                    continue
                } catch {
                    break
                }
                payloads.append(ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<received])))
            }
            #endif
            return payloads.isEmpty ? nil : (mapping, payloads)
        }
    }
}

/// The C library's calls whose names the methods above reuse.
private enum System {
    static func close(_ fd: CInt) { _ = systemClose(fd) }
    static func write(_ fd: CInt, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { systemWrite(fd, bytes, count) }
    static func read(_ fd: CInt, _ bytes: UnsafeMutableRawPointer, _ count: Int) -> Int { systemRead(fd, bytes, count) }
    static func send(_ fd: CInt, _ bytes: UnsafeRawPointer?, _ count: Int, _ flags: CInt) -> Int {
        systemSend(fd, bytes, count, flags)
    }
}

#if canImport(Glibc)
private let systemClose = Glibc.close
private let systemWrite = Glibc.write
private let systemRead = Glibc.read
private let systemSend = Glibc.send
#elseif canImport(Darwin)
private let systemClose = Darwin.close
private let systemWrite = Darwin.write
private let systemRead = Darwin.read
private let systemSend = Darwin.send
#endif
