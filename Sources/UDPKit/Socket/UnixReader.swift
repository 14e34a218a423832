#if UDPKIT_LINUX_FAST_PATH
import CUDPSys
import Glibc
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

/// Receives a Unix-domain datagram socket for its `Inbox`, with `recvmsg` on a thread of its own.
///
/// SwiftNIO cannot represent the sender of a datagram from an unbound socket (an empty address) or read it
/// without failing, and its channel then closes: one `sendto` from any local program would end a server. Here
/// such a datagram arrives like any other, its sender `UDPAddress` being "(unbound)" (or the abstract name,
/// `@name`), which no reply can reach.
///
/// The reader works on a duplicate of the socket's descriptor, which it closes when it stops, so SwiftNIO (which
/// still sends) may close its own at any time. While the inbox is full it stops reading (the kernel then makes
/// senders wait), and `resume()` wakes it once a receiver has drained the queue.
///
/// The descriptors are constants; `stop`, `resume` and `finish` take the `closed` lock before touching them, so none
/// is used after it was closed.
final class UnixReader: Sendable {
    /// Datagrams per hand-over to the inbox, at most.
    static let batchSize = 16

    private let fd: CInt
    private let wake: CInt
    private let inbox: Inbox
    private let limits: DatagramLimits
    private let stopRequested = Atomic<Bool>(false)
    private let closed = NIOLockedValueBox(false)
    private let thread = NIOThreadPool(numberOfThreads: 1)

    /// Takes ownership of `fd`, a non-blocking duplicate of the socket's descriptor.
    init(fd: CInt, inbox: Inbox, limits: DatagramLimits) throws(UDPError) {
        let wake: CInt
        do {
            wake = try SystemCall.run("eventfd") { cudp_eventfd() }
        } catch {
            Glibc.close(fd)
            throw .system(operation: "receive (eventfd)", errno: error.errno)
        }
        self.fd = fd
        self.wake = wake
        self.inbox = inbox
        self.limits = limits
    }

    /// Starts the thread; `finished` completes once it stopped and closed the descriptors.
    func start(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        thread.start()
        let done = thread.runIfActive(eventLoop: eventLoop) { [self] in
            run()
            finish()
        }
        done.whenComplete { [thread] _ in thread.shutdownGracefully(queue: .global()) { _ in } }
        return done
    }

    /// Asks the thread to stop; it does at once.
    func stop() {
        stopRequested.store(true, ordering: .releasing)
        signal()
    }

    /// The inbox has room again: read on.
    func resume() {
        signal()
    }

    private func signal() {
        closed.withLockedValue { closed in
            guard !closed else { return }
            var one: UInt64 = 1
            // Fails only when the counter is full, and then a wake-up is already pending.
            _ = try? SystemCall.nonBlocking("write") { write(wake, &one, MemoryLayout<UInt64>.size) }
        }
    }

    /// Closes the descriptors of a reader that was never started.
    func discard() {
        finish()
    }

    private func finish() {
        closed.withLockedValue { closed in
            guard !closed else { return }
            closed = true
            Glibc.close(fd)
            Glibc.close(wake)
        }
    }

    private func run() {
        let slot = limits.slot
        var memory = [UInt8](repeating: 0, count: slot)
        while !stopRequested.load(ordering: .acquiring) {
            // While the inbox is full only a wake-up (resume or stop) is awaited.
            guard wait(forSocket: !inbox.isPaused) else { return }
            var batch: [Datagram] = []
            while batch.count < Self.batchSize, !stopRequested.load(ordering: .acquiring) {
                var name = sockaddr_un()
                var nameLength = socklen_t(MemoryLayout<sockaddr_un>.size)
                let received = memory.withUnsafeMutableBytes { bytes in
                    withUnsafeMutablePointer(to: &name) { pointer in
                        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                            Result { () throws(SystemCallError) -> Int? in
                                try SystemCall.nonBlocking("recvfrom") {
                                    recvfrom(fd, bytes.baseAddress, slot, 0, address, &nameLength)
                                }
                            }
                        }
                    }
                }
                guard case .success(let result) = received else {
                    // The socket failed: what was read still goes to the inbox, and reading ends.
                    if !batch.isEmpty { _ = inbox.push(batch) }
                    return
                }
                guard let count = result else { break }
                let (length, truncated) = limits.received(count)
                batch.append(
                    Datagram(
                        payload: ByteBuffer(bytes: memory[0..<length]),
                        sender: UDPAddress(unixSender: name, length: nameLength),
                        receivedAt: Date(),
                        truncated: truncated
                    ))
            }
            if !batch.isEmpty { _ = inbox.push(batch) }
        }
    }

    /// Waits until the socket is readable (when `socket`) or a wake-up came; false when waiting failed for good.
    private func wait(forSocket socket: Bool) -> Bool {
        var fds = [
            pollfd(fd: wake, events: Int16(POLLIN), revents: 0), pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
        ]
        guard (try? SystemCall.run("poll", { poll(&fds, socket ? 2 : 1, -1) })) != nil else { return false }
        if fds[0].revents != 0 {
            var value: UInt64 = 0
            _ = try? SystemCall.nonBlocking("read") { read(wake, &value, MemoryLayout<UInt64>.size) }
        }
        return true
    }
}
#endif
