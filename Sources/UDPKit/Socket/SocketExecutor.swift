import NIOCore

/// Runs jobs on a socket's event loop, the thread that reads the socket. See `UDPSocket.taskExecutor`.
@available(macOS 15, iOS 18, tvOS 18, watchOS 11, *)
final class SocketExecutor: TaskExecutor, Sendable {
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

extension UDPSocket {
    /// A task executor that runs on the thread that reads this socket (its SwiftNIO event loop).
    ///
    /// A task that prefers it receives without any hand-over between threads: `receiveBatch` (and `batches`,
    /// `datagrams`) read the socket straight from the task while datagrams keep coming (on Linux), and `send`
    /// sends from it, so a busy server does its whole loop on one thread. The fastest way to serve with the async
    /// API:
    ///
    /// ```swift
    /// let server = Task(executorPreference: socket.taskExecutor) {
    ///     for try await batch in socket.batches {
    ///         try await socket.send(batch.map { OutgoingDatagram(payload: $0.payload, to: $0.sender) })
    ///     }
    /// }
    /// ```
    ///
    /// `withTaskExecutorPreference(socket.taskExecutor) { ... }` does the same for a part of a task, except for code
    /// isolated to an actor (top-level code and the main actor included), which runs where its actor runs. The
    /// thread is shared with SwiftNIO and with the other sockets of its event loop, so what runs there must not
    /// block; a receiver that always finds datagrams lets SwiftNIO read once every 16 batches, so the loop's other
    /// work keeps its turn.
    @available(macOS 15, iOS 18, tvOS 18, watchOS 11, *)
    public var taskExecutor: any TaskExecutor { SocketExecutor(eventLoop: channel.eventLoop) }
}
