import UDPKit
import Impairment
import NIOConcurrencyHelpers
import NIOCore


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
            case let (a?, b?): return min(a, b)
            case let (a, b): return a ?? b
            }
        }
    }

    private let state: NIOLockedValueBox<State>
    private let wakes: AsyncStream<Void>
    private let waker: AsyncStream<Void>.Continuation

    init(settings: ImpairmentSettings, generator: SeededGenerator) {
        state = NIOLockedValueBox(State(pipeline: ImpairmentPipeline(settings: settings, generator: generator)))
        (wakes, waker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Passes datagrams through the impairments; `run` sends what survives at its release time.
    func submit(_ payloads: [ByteBuffer]) {
        let now = MonotonicClock.nanoseconds
        state.withLockedValue { state in
            for payload in payloads {
                state.queue += state.pipeline.submit(Array(payload.readableBytesView), at: now)
            }
        }
        waker.yield()
    }

    /// What the pipeline did so far.
    var counters: ImpairmentCounters {
        let now = MonotonicClock.nanoseconds
        return state.withLockedValue { $0.pipeline.counters(at: now) }
    }

    /// Ends `run`; datagrams still waiting are dropped.
    func finish() {
        state.withLockedValue { $0.finished = true }
        waker.finish()
    }

    /// Sends each datagram at its release time until `finish()` or cancellation. Release times are met to
    /// within the sleep granularity (a wake-up at least every millisecond while anything waits).
    func run(send: ([ByteBuffer]) async -> Void) async {
        var wake = wakes.makeAsyncIterator()
        while !Task.isCancelled {
            let now = MonotonicClock.nanoseconds
            let (due, next, finished) = state.withLockedValue { state in
                (state.takeDue(at: now), state.nextWake, state.finished)
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
