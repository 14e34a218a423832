import NIOConcurrencyHelpers
import NIOCore

/// The queue between the event loop (which fills it a read cycle at a time) and the tasks that receive.
///
/// One lock round-trip hands over a whole batch, so the cost of crossing from the event loop to a task is paid
/// per read cycle rather than per datagram. When more than `limit` bytes wait, reading from the socket pauses
/// (the kernel buffers, then drops) until a receiver drains the queue below half the limit.
final class Inbox: Sendable {
    enum Wake: Sendable { case ready, timedOut }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Wake, Never>
        var timer: Scheduled<Void>?

        func resume(_ reason: Wake) {
            timer?.cancel()
            continuation.resume(returning: reason)
        }
    }

    /// Bytes a queued datagram counts for: its payload plus bookkeeping, so that a flood of empty datagrams
    /// is bounded too.
    static func cost(_ datagram: Datagram) -> Int { datagram.payload.readableBytes + 64 }

    private struct State {
        var queue = CircularBuffer<Datagram>(initialCapacity: 64)
        var queuedBytes = 0
        var pendingError: UDPError?
        var finished = false
        var readPaused = false
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())
    private let limit: Int
    /// Called (from any thread) when reading should resume after a pause.
    private let onResume = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)

    init(limit: Int) {
        self.limit = limit
    }

    /// Sets what to do when reading should resume after a pause (once the channel exists).
    func setResume(_ action: @escaping @Sendable () -> Void) {
        onResume.withLockedValue { $0 = action }
    }

    private func resumeReading() {
        onResume.withLockedValue { $0 }?()
    }

    // MARK: producer side (event loop)

    /// Appends a batch; returns false when the reader should pause.
    func push(_ batch: [Datagram]) -> Bool {
        let bytes = batch.reduce(0) { $0 + Self.cost($1) }
        let (waiters, keepReading) = state.withLockedValue { s -> ([Waiter], Bool) in
            s.queue.append(contentsOf: batch)
            s.queuedBytes += bytes
            let keep = s.queuedBytes < limit
            if !keep { s.readPaused = true }
            let w = s.waiters
            s.waiters.removeAll()
            return (w, keep)
        }
        for w in waiters { w.resume(.ready) }
        return keepReading
    }

    /// Records a non-fatal error (such as ICMP port unreachable) for the next receive to throw.
    func push(error: UDPError) {
        let waiters = state.withLockedValue { s -> [Waiter] in
            s.pendingError = error
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume(.ready) }
    }

    /// The socket closed: queued datagrams can still be received, then receivers get `UDPError.closed`.
    func finish() {
        let waiters = state.withLockedValue { s -> [Waiter] in
            s.finished = true
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume(.ready) }
    }

    var isPaused: Bool { state.withLockedValue { $0.readPaused } }

    /// Whether nothing waits to be taken: no datagram, no error, not the end.
    var isEmpty: Bool {
        state.withLockedValue { $0.queue.isEmpty && $0.pendingError == nil && !$0.finished }
    }

    // MARK: consumer side

    private enum Take {
        case batch([Datagram])
        case error(UDPError)
        case closed
        case empty
    }

    /// Waits for at least one datagram and returns up to `maximum` of those queued.
    /// Returns nil when `deadline` passes first.
    func take(maximum: Int, deadline: NIODeadline?, eventLoop: EventLoop) async throws -> [Datagram]? {
        while true {
            try Task.checkCancellation()
            switch takeNow(maximum: maximum) {
            case .batch(let batch): return batch
            case .error(let error): throw error
            case .closed: throw UDPError.closed
            case .empty: break
            }
            if let deadline, deadline <= .now() { return nil }
            if await wait(deadline: deadline, eventLoop: eventLoop) == .timedOut { return nil }
        }
    }

    /// Every datagram queued now, without waiting (an empty array when none is); errors and the end stay queued
    /// for `take`.
    func takeQueued() -> [Datagram] {
        if case .batch(let batch) = takeNow(maximum: .max, datagramsOnly: true) { return batch }
        return []
    }

    /// Up to `maximum` queued datagrams, else the pending error, else whether the queue is finished; resumes
    /// reading when it paused and the queue has drained enough.
    private func takeNow(maximum: Int, datagramsOnly: Bool = false) -> Take {
        let (taken, resume) = state.withLockedValue { s -> (Take, Bool) in
            if !s.queue.isEmpty {
                var out: [Datagram] = []
                let n = Swift.min(maximum, s.queue.count)
                out.reserveCapacity(n)
                for _ in 0..<n {
                    let d = s.queue.removeFirst()
                    s.queuedBytes -= Self.cost(d)
                    out.append(d)
                }
                var resume = false
                if s.readPaused, s.queuedBytes <= limit / 2 || s.queue.isEmpty {
                    s.readPaused = false
                    resume = true
                }
                return (.batch(out), resume)
            }
            if datagramsOnly { return (.empty, false) }
            if let error = s.pendingError {
                s.pendingError = nil
                return (.error(error), false)
            }
            return (s.finished ? .closed : .empty, false)
        }
        if resume { resumeReading() }
        return taken
    }

    private func wait(deadline: NIODeadline?, eventLoop: EventLoop) async -> Wake {
        let id = state.withLockedValue { s -> UInt64 in
            s.nextWaiterID += 1
            return s.nextWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Wake, Never>) in
                let parked = state.withLockedValue { s -> Bool in
                    // Something may have arrived between the check and now: then do not park.
                    if !s.queue.isEmpty || s.pendingError != nil || s.finished || Task.isCancelled { return false }
                    s.waiters.append(Waiter(id: id, continuation: continuation))
                    return true
                }
                guard parked else {
                    continuation.resume(returning: .ready)
                    return
                }
                if let deadline {
                    let timer = eventLoop.scheduleTask(deadline: deadline) { [self] in
                        self.wake(id: id, with: .timedOut)
                    }
                    let stillWaiting = state.withLockedValue { s -> Bool in
                        guard let index = s.waiters.firstIndex(where: { $0.id == id }) else { return false }
                        s.waiters[index].timer = timer
                        return true
                    }
                    if !stillWaiting { timer.cancel() }
                }
            }
        } onCancel: {
            self.wake(id: id, with: .ready)
        }
    }

    private func wake(id: UInt64, with reason: Wake) {
        let waiter = state.withLockedValue { s -> Waiter? in
            guard let index = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiters.remove(at: index)
        }
        waiter?.resume(reason)
    }
}
