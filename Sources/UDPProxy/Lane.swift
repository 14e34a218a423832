import Impairment
import NIOConcurrencyHelpers
import NIOCore
import UDPKit

/// Bytes that all lanes of a proxy may hold waiting together, so that the total stays bounded however
/// many clients there are. Lanes take and give back under their own lock (lane, then budget; never the
/// other way), so the total never exceeds the limit.
final class QueueBudget: Sendable {
    let limit: Int
    private let used = NIOLockedValueBox(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Bytes still free.
    var room: Int { used.withLockedValue { limit - $0 } }

    /// Bytes held now.
    var held: Int { used.withLockedValue { $0 } }

    func add(_ change: Int) {
        guard change != 0 else { return }
        used.withLockedValue { $0 += change }
    }
}

/// One direction of one client mapping when it is impaired: an `ImpairmentPipeline` and the queue of
/// datagrams waiting for their release time, drained by `run(send:)`.
///
/// Sendable through the lock: every mutable field lives in `state`.
final class Lane: Sendable {
    private struct State {
        var pipeline: ImpairmentPipeline
        /// Datagrams waiting for their release time, in release order (the pipeline guarantees it).
        var queue: [ScheduledDatagram] = []
        var head = 0
        var finished = false
        /// The waiting bytes last reported to the budget.
        var reported = 0
        /// The counters at `finish`, with what was still queued moved to `discarded`.
        var final: ImpairmentCounters?

        /// Brings the budget up to date with what the pipeline has waiting.
        mutating func report(to budget: QueueBudget, at now: UInt64) {
            let waiting = pipeline.waitingBytes(at: now)
            budget.add(waiting - reported)
            reported = waiting
        }

        mutating func takeDue(at now: UInt64) -> [ScheduledDatagram] {
            if let deadline = pipeline.nextDeadline, deadline <= now {
                queue += pipeline.releaseDue(at: now)
            }
            var end = head
            while end < queue.count && queue[end].releaseTime <= now { end += 1 }
            let due = Array(queue[head..<end])
            head = end
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return due
        }

        var nextWake: UInt64? {
            let next = head < queue.count ? queue[head].releaseTime : nil
            switch (next, pipeline.nextDeadline) {
            case (let a?, let b?): return min(a, b)
            case (let a, let b): return a ?? b
            }
        }
    }

    private let state: NIOLockedValueBox<State>
    private let budget: QueueBudget
    private let wakes: AsyncStream<Void>
    private let waker: AsyncStream<Void>.Continuation

    init(settings: ImpairmentSettings, generator: SeededGenerator, budget: QueueBudget) {
        state = NIOLockedValueBox(State(pipeline: ImpairmentPipeline(settings: settings, generator: generator)))
        self.budget = budget
        (wakes, waker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Passes datagrams through the impairments; `run` sends what survives at its release time. A datagram that
    /// would overfill this lane's queues, or the proxy's total, is dropped and counted as overflowed.
    func submit(_ payloads: [ByteBuffer]) {
        let now = MonotonicClock.nanoseconds
        let budget = self.budget
        state.withLockedValue { state in
            guard !state.finished else { return }
            for payload in payloads {
                // The room left in the proxy's total, plus what this lane holds already (the pipeline counts
                // that itself).
                let room = budget.room
                state.queue += state.pipeline.submit(Array(payload.readableBytesView), at: now, room: room)
                state.report(to: budget, at: now)
            }
        }
        waker.yield()
    }

    /// Whether nothing waits to be sent.
    var isEmpty: Bool {
        state.withLockedValue { $0.head == $0.queue.count && $0.pipeline.nextDeadline == nil }
    }

    /// What the pipeline did so far; after `finish`, with the datagrams it left queued as `discarded`.
    var counters: ImpairmentCounters {
        let now = MonotonicClock.nanoseconds
        return state.withLockedValue { $0.final ?? $0.pipeline.counters(at: now) }
    }

    /// Ends `run`. Datagrams still waiting are not sent: they are counted as discarded (not forwarded), and their
    /// memory and their share of the proxy's total are given back.
    func finish() {
        let now = MonotonicClock.nanoseconds
        let budget = self.budget
        state.withLockedValue { state in
            guard !state.finished else { return }
            state.finished = true
            var counters = state.pipeline.counters(at: now)
            let unsent = state.queue.count - state.head
            counters.forwarded -= unsent
            counters.discarded += unsent + counters.held
            counters.held = 0
            counters.queuedBytes = 0
            state.final = counters
            state.queue = []
            state.head = 0
            budget.add(-state.reported)
            state.reported = 0
        }
        waker.finish()
    }

    /// Sends each datagram at its release time until `finish()` or cancellation. Release times are met to
    /// within the sleep granularity (a wake-up at least every millisecond while anything waits).
    func run(send: ([ByteBuffer]) async -> Void) async {
        var wake = wakes.makeAsyncIterator()
        while !Task.isCancelled {
            let now = MonotonicClock.nanoseconds
            let budget = self.budget
            let (due, next, finished) = state.withLockedValue { state in
                if state.finished { return ([ScheduledDatagram](), UInt64?.none, true) }
                let due = state.takeDue(at: now)
                state.report(to: budget, at: now)
                return (due, state.nextWake, false)
            }
            if finished { return }
            if !due.isEmpty {
                await send(due.map { ByteBuffer(bytes: $0.bytes) })
                continue
            }
            if let next {
                let pause = min(next > now ? next - now : 0, 1_000_000)
                if pause > 0 { try? await Task.sleep(nanoseconds: pause) }
            } else if await wake.next() == nil {
                return
            }
        }
    }
}
