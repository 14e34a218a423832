#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex with a condition variable, for threads that wait for each other (the stdout writer and whoever fills
/// its queue): the POSIX pair, as Foundation's `NSCondition` wraps it, without needing Foundation proper.
///
/// `@unchecked Sendable`: the mutex and condition are the synchronization; their storage is allocated once, never
/// moves (pthread objects must not be copied) and is only touched through the pthread calls.
final class ThreadCondition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }

    func unlock() { pthread_mutex_unlock(mutex) }

    /// Waits (the lock held) until woken; may also return spuriously, so callers re-check what they wait for.
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits (the lock held) until woken or until `seconds` have passed.
    func wait(seconds: Double) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let total = Int(now.tv_nsec) + Int(max(0, seconds) * 1e9)
        var deadline = now
        deadline.tv_sec += total / 1_000_000_000
        deadline.tv_nsec = type(of: now.tv_nsec).init(total % 1_000_000_000)
        _ = pthread_cond_timedwait(condition, mutex, &deadline)
    }

    /// Wakes every waiter.
    func broadcast() { pthread_cond_broadcast(condition) }
}
