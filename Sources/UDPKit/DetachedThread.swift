import CUDPSys

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thread of its own for work that blocks (reading a terminal, waiting for a child process, writing to a slow
/// stdout) and must never hold up the tasks that handle the network.
///
/// A plain detached POSIX thread: Foundation's `Thread` would do the same, but it lives in Foundation proper, which
/// a binary that otherwise needs only FoundationEssentials would then have to carry whole.
package enum DetachedThread {
    /// Starts `body` on a new detached thread (nothing joins it; its resources are freed when `body` returns).
    /// - Parameter name: shown by debuggers and `ps -L`; Linux keeps the first 15 bytes.
    /// - Returns: false when the system refused to create the thread (`body` then never runs).
    @discardableResult
    package static func start(name: String? = nil, _ body: @escaping @Sendable () -> Void) -> Bool {
        let context = Unmanaged.passRetained(Context(name: name, body: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        #if canImport(Darwin)
        var thread: pthread_t? = nil
        #else
        var thread = pthread_t()
        #endif
        guard pthread_create(&thread, &attributes, detachedThreadEntry, context) == 0 else {
            Unmanaged<Context>.fromOpaque(context).release()
            return false
        }
        return true
    }

    /// What the new thread runs, handed over as one retained reference.
    fileprivate final class Context {
        let name: String?
        let body: @Sendable () -> Void

        init(name: String?, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }

        func run() {
            if let name { _ = cudp_set_thread_name(name) }
            body()
        }
    }
}

#if canImport(Darwin)
private func detachedThreadEntry(_ context: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
    Unmanaged<DetachedThread.Context>.fromOpaque(context).takeRetainedValue().run()
    return nil
}
#else
private func detachedThreadEntry(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<DetachedThread.Context>.fromOpaque(context!).takeRetainedValue().run()
    return nil
}
#endif
