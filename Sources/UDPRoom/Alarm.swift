import NIOConcurrencyHelpers

/// A sleep that another task can cut short.
///
/// A room client's timer task sleeps until its next deadline (a retransmission, a heartbeat); a command
/// sent meanwhile from another task may need an earlier one. `ring()` wakes the sleeper at once, or, when
/// nobody sleeps yet, makes the next `sleep` return immediately, so a deadline computed just before the
/// ring is never slept through.
final class Alarm: Sendable {
    private struct State {
        var rung = false
        var sleeper: Task<Void, Never>?
    }

    private let state = NIOLockedValueBox(State())

    /// Sleeps `nanoseconds` (nil: until rung), or less if `ring()` is called. Returns early on cancellation.
    func sleep(nanoseconds: UInt64?) async {
        let sleeper = state.withLockedValue { state -> Task<Void, Never>? in
            if state.rung {
                state.rung = false
                return nil
            }
            let task = Task<Void, Never> {
                // "Until rung" still wakes up now and then; the caller just computes its deadline again.
                _ = try? await Task.sleep(nanoseconds: nanoseconds ?? 60_000_000_000)
            }
            state.sleeper = task
            return task
        }
        guard let sleeper else { return }
        await withTaskCancellationHandler {
            await sleeper.value
        } onCancel: {
            sleeper.cancel()
        }
        state.withLockedValue { $0.sleeper = nil }
    }

    /// Ends the current sleep, or the next one before it starts.
    func ring() {
        state.withLockedValue { state in
            if let sleeper = state.sleeper {
                sleeper.cancel()
                state.sleeper = nil
            } else {
                state.rung = true
            }
        }
    }
}
