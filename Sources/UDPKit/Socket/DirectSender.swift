#if UDPKIT_LINUX_FAST_PATH
import Glibc
import NIOConcurrencyHelpers
import NIOCore

/// Sends from the calling thread with `sendmmsg` on the socket's own duplicate descriptor, so that a task's
/// `send` needs no hop to the event loop and back. SwiftNIO remains the way for what this cannot do at once: when
/// the send buffer is full (SwiftNIO queues and waits for room), and while datagrams it queued are still waiting
/// (so that nothing overtakes them).
///
/// All state is behind one lock, held across the system call: the descriptor cannot be closed during a send.
final class DirectSender: @unchecked Sendable {
    private struct State {
        var fd: CInt
        var queuedThroughNIO = 0
        var vector = SendVector()
    }

    private let state: NIOLockedValueBox<State>

    /// Takes ownership of `fd`, a duplicate of the socket's descriptor.
    init(fd: CInt) {
        state = NIOLockedValueBox(State(fd: fd))
    }

    deinit {
        state.withLockedValue { state in
            if state.fd >= 0 { Glibc.close(state.fd) }
            state.vector.deallocate()
        }
    }

    /// Closes the duplicate; later sends report `nil` (use SwiftNIO, which knows the socket is closed).
    func close() {
        state.withLockedValue { state in
            if state.fd >= 0 { Glibc.close(state.fd) }
            state.fd = -1
        }
    }

    /// Runs `body` with the descriptor while it is open (nil once closed); the lock keeps it from closing meanwhile.
    func withDescriptor<T>(_ body: (CInt) -> T) -> T? {
        state.withLockedValue { state in state.fd >= 0 ? body(state.fd) : nil }
    }

    /// Marks the start and the end of a write through SwiftNIO.
    func queuedThroughNIO(_ change: Int) {
        state.withLockedValue { $0.queuedThroughNIO += change }
    }

    /// What `send` did.
    struct Outcome {
        /// The index of the first envelope not sent because the socket would block (the count when all went).
        /// When less than the count, the caller writes the rest through SwiftNIO, already counted as queued there.
        var next: Int
        /// The first envelope the system refused, with the error; the others were still sent.
        var failure: (index: Int, errno: CInt)?
    }

    /// Sends `envelopes` now, or returns nil when it cannot (closed, or SwiftNIO still has datagrams queued).
    func send(_ envelopes: [AddressedEnvelope<ByteBuffer>]) -> Outcome? {
        state.withLockedValue { state -> Outcome? in
            guard state.fd >= 0, state.queuedThroughNIO == 0 else { return nil }
            state.vector.reset(reserving: envelopes.count)
            for envelope in envelopes {
                state.vector.append(envelope.data, to: envelope.remoteAddress)
            }
            var failure: (index: Int, errno: CInt)?
            let fd = state.fd
            let next = withExtendedLifetime(envelopes) {
                state.vector.transmit(fd: fd) { index, code in
                    if failure == nil { failure = (index, code) }
                }
            }
            // The rest goes through SwiftNIO: counted before the lock is released, so that no later send overtakes it.
            if next < envelopes.count { state.queuedThroughNIO += 1 }
            return Outcome(next: next, failure: failure)
        }
    }
}
#endif
