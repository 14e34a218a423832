import NIOConcurrencyHelpers
import NIOCore

/// The one owner of an IP socket's sending order, and the sender that sends from the calling task.
///
/// Datagrams go out with a system call from the calling thread on the socket's own duplicate descriptor, so that
/// a task's `send` needs no hop to the event loop and back, and a datagram the system refuses fails alone (SwiftNIO
/// would close the socket). How they go out is the path's `Transmitter`: `sendmmsg` with segmentation offload on
/// Linux's fast path, `sendto` one by one on the portable path. SwiftNIO remains the way for what this cannot send
/// at once: when the send buffer is full (SwiftNIO queues and waits for room), segmentation-offload datagrams, and
/// everything sent while datagrams SwiftNIO queued are still waiting, so that nothing overtakes them.
///
/// `@unchecked Sendable`: the only stored property is the lock box, and every access to its state (the descriptor,
/// the count of writes waiting in SwiftNIO, and the transmitter's memory, which holds raw pointers and so is not
/// `Sendable` itself) happens inside `withLockedValue`, held across the system call; the transmitter's pointers
/// never leave the lock.
final class DirectSender: @unchecked Sendable {
    typealias Envelope = AddressedEnvelope<ByteBuffer>

    private struct State {
        var fd: CInt
        var queuedThroughNIO = 0
        var transmitter: Transmitter
    }

    private let state: NIOLockedValueBox<State>

    /// Takes ownership of `fd`, a non-blocking duplicate of the socket's descriptor.
    init(fd: CInt, transmitter: Transmitter = Transmitter()) {
        state = NIOLockedValueBox(State(fd: fd, transmitter: transmitter))
    }

    deinit {
        state.withLockedValue { state in
            if state.fd >= 0 { SocketDescriptor.close(state.fd) }
            state.transmitter.deallocate()
        }
    }

    /// Closes the duplicate; later sends go through SwiftNIO, which knows the socket is closed.
    func close() {
        state.withLockedValue { state in
            if state.fd >= 0 { SocketDescriptor.close(state.fd) }
            state.fd = -1
        }
    }

    /// Runs `body` with the descriptor while it is open (nil once closed); the lock keeps it from closing meanwhile.
    func withDescriptor<T>(_ body: (CInt) -> T) -> T? {
        state.withLockedValue { state in state.fd >= 0 ? body(state.fd) : nil }
    }

    /// Writes waiting in SwiftNIO's queue, for tests of the order.
    var writesQueuedThroughNIO: Int { state.withLockedValue { $0.queuedThroughNIO } }

    /// Sends `envelopes` after everything sent before, without waiting (for the event loop, which cannot).
    ///
    /// When `direct` (the transmitter can carry them) and nothing waits in SwiftNIO's queue, they go out at once;
    /// what would block, or all of them otherwise, is left to the caller to write through SwiftNIO, and counted as
    /// waiting there before the lock is released, so that no later send overtakes it.
    /// - Parameters:
    ///   - connected: the socket is connected (its peer is the only destination; the system is not told it again).
    ///   - refused: gets each envelope the system refused (its index) and the errno; the others were still sent.
    /// - Returns: the index of the first envelope left to SwiftNIO (the count when all went). When less than the
    ///   count, the caller writes the rest and calls `wroteThroughNIO()` once when those writes have completed.
    func sendNow(_ envelopes: [Envelope], direct: Bool, connected: Bool, refused: (Int, CInt) -> Void) -> Int {
        state.withLockedValue { state -> Int in
            guard direct, state.fd >= 0, state.queuedThroughNIO == 0 else {
                state.queuedThroughNIO += 1
                return 0
            }
            let next = state.transmitter.transmit(envelopes, fd: state.fd, connected: connected, refused: refused)
            if next < envelopes.count { state.queuedThroughNIO += 1 }
            return next
        }
    }

    /// The writes a `sendNow` left to SwiftNIO have completed: sends may go straight out again.
    func wroteThroughNIO() {
        state.withLockedValue { $0.queuedThroughNIO -= 1 }
    }

    /// Sends `envelopes` after everything sent before (`sendNow`), and writes what it leaves through `write`.
    /// - Parameter write: writes through SwiftNIO and waits until it is done.
    /// - Returns: the first envelope the system refused and its errno; the others were still sent.
    /// - Throws: what `write` throws (when nothing was refused).
    func send(
        _ envelopes: [Envelope],
        direct: Bool,
        connected: Bool,
        write: (ArraySlice<Envelope>) async throws -> Void
    ) async throws -> (index: Int, errno: CInt)? {
        var failure: (index: Int, errno: CInt)?
        let next = sendNow(envelopes, direct: direct, connected: connected) { index, code in
            if failure == nil { failure = (index, code) }
        }
        guard next < envelopes.count else { return failure }
        defer { wroteThroughNIO() }
        do {
            try await write(envelopes[next...])
        } catch  where failure == nil {
            throw error
        } catch {}
        return failure
    }
}

extension FastPath {
    /// Sends in order with every other send of the socket, through its `DirectSender` where it has one, else
    /// through `write` (SwiftNIO); see `DirectSender.send`. The same on both paths.
    func send(
        _ envelopes: [DirectSender.Envelope],
        direct: Bool,
        connected: Bool,
        write: (ArraySlice<DirectSender.Envelope>) async throws -> Void
    ) async throws -> (index: Int, errno: CInt)? {
        guard let sender else {
            try await write(envelopes[...])
            return nil
        }
        return try await sender.send(envelopes, direct: direct, connected: connected, write: write)
    }
}

extension FastPath {
    /// Sends `envelopes` from the event loop in order with every other send of the socket (see
    /// `DirectSender.sendNow`), reporting the ones the system refused to `refused`.
    /// - Returns: the envelopes left for the caller to write through SwiftNIO, and what to call once they all
    ///   completed (nil when there are none).
    func sendNow(
        _ envelopes: [DirectSender.Envelope],
        direct: Bool,
        connected: Bool,
        refused: (Int) -> Void
    ) -> (rest: ArraySlice<DirectSender.Envelope>, written: (@Sendable () -> Void)?) {
        guard let sender else { return (envelopes[...], nil) }
        let next = sender.sendNow(envelopes, direct: direct, connected: connected) { index, _ in refused(index) }
        guard next < envelopes.count else { return ([], nil) }
        return (envelopes[next...], { sender.wroteThroughNIO() })
    }
}
