import NIOConcurrencyHelpers
import UDPKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Output to the standard streams.
///
/// Stdout goes through a queue that a writer thread of its own empties, so that nothing that handles the network
/// ever waits for whoever reads stdout: a pipe nobody reads (`udp echo 9999 | (sleep 30; cat)`) or a terminal
/// stopped with Ctrl-S cannot stall a server. Two kinds of writes share the queue, in order:
/// - `display`: the line per datagram of a server or listener. When more than `displayLimit` bytes are already
///   waiting, the line is dropped and counted; `finish()` reports "display fell behind: N lines not shown".
/// - `writeStdout`: results and reports, never dropped (they are few and small); should 8 MiB be waiting, the
///   caller waits for the reader, as a plain blocking write would, so memory stays bounded.
/// `flushStdout()` waits until the queue is written, without limit normally; once SIGINT or SIGTERM arrived
/// (`noteSignal()`), only until `signalGrace` after it, so a command ends within a second whatever the pipe does.
enum Terminal {
    static let stdoutIsTTY = isatty(STDOUT_FILENO) == 1
    static let stderrIsTTY = isatty(STDERR_FILENO) == 1
    static let stdinIsTTY = isatty(STDIN_FILENO) == 1

    /// Bytes of display lines that may wait for the reader of stdout; past this, display lines are dropped.
    static let displayLimit = 2 << 20
    /// How long after SIGINT/SIGTERM output may still take before it is given up.
    static let signalGrace: Double = 0.25
    /// How long a line for stderr waits for stdout's queue to empty first (so the two appear in order).
    static let stderrOrderWait: Double = 0.2

    private static let queue = OutputQueue(fd: STDOUT_FILENO, displayLimit: displayLimit)

    /// Queues `text` for stdout; never dropped.
    static func writeStdout(_ text: String) {
        queue.enqueue(Array(text.utf8), droppable: false)
    }

    /// Queues `bytes` for stdout; never dropped.
    static func writeStdout(bytes: [UInt8]) {
        queue.enqueue(bytes, droppable: false)
    }

    /// Queues the display of one datagram (one or more lines); dropped and counted when the reader of stdout is
    /// too far behind. Never waits.
    static func display(_ text: String) {
        queue.enqueue(Array(text.utf8), droppable: true)
    }

    /// Queues raw payload bytes (--raw); dropped and counted as a datagram when the reader is too far behind.
    static func display(bytes: [UInt8]) {
        queue.enqueue(bytes, droppable: true, raw: true)
    }

    /// Waits until everything queued for stdout is written; after SIGINT/SIGTERM at most until `signalGrace` after
    /// the signal, then what is left is given up (and counted).
    static func flushStdout() {
        queue.drain(deadline: { signalDeadline }, abandon: true)
    }

    /// Records that SIGINT or SIGTERM arrived: from now on output waits are bounded.
    static func noteSignal() {
        let first = signalTime.withLockedValue { time -> Bool in
            guard time == nil else { return false }
            time = MonotonicClock.nanoseconds
            return true
        }
        if first { queue.wake() }
    }

    private static let signalTime = NIOLockedValueBox<UInt64?>(nil)

    /// Nanoseconds (monotonic) after which output is given up; nil while no signal arrived.
    static var signalDeadline: UInt64? {
        signalTime.withLockedValue { $0 }.map { $0 + UInt64(signalGrace * 1e9) }
    }

    /// Flushes stdout (bounded after a signal), then, once, reports on stderr what the display could not show.
    /// Returns the report line, or nil when everything was shown.
    @discardableResult
    static func finish() -> String? {
        flushStdout()
        guard let note = queue.takeDropReport() else { return nil }
        writeStderr("udp: \(note)\n")
        return note
    }

    /// Writes `text` to stderr. Stdout's queue is written first, waiting at most `stderrOrderWait` (so a line on a
    /// shared terminal stays in order, and a stalled stdout cannot hold an error back for long).
    static func writeStderr(_ text: String, afterStdout: Bool = true) {
        if afterStdout {
            // After a signal the rest of stdout is about to be given up: keep the wait short.
            let wait = signalDeadline == nil ? stderrOrderWait : 0.05
            let limit = MonotonicClock.nanoseconds + UInt64(wait * 1e9)
            queue.drain(deadline: { min(limit, signalDeadline ?? .max) }, abandon: false)
        }
        writeAll(STDERR_FILENO, Array(text.utf8), deadline: { signalDeadline })
    }

    /// Writes all of `bytes` to `fd`, blocking; with a deadline, gives up when the descriptor stays full past it.
    /// Returns false when it gave up or the descriptor failed.
    @discardableResult
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], deadline: () -> UInt64? = { nil }) -> Bool {
        var offset = 0
        while offset < bytes.count {
            if let deadline = deadline() {
                // Write while the descriptor takes it (a file or a terminal always does); give up only when it
                // stays full past the deadline.
                let now = MonotonicClock.nanoseconds
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let waitMillis = now < deadline ? Int32(min(100, (deadline - now) / 1_000_000 + 1)) : 0
                if poll(&poller, 1, waitMillis) == 0 {
                    if MonotonicClock.nanoseconds >= deadline { return false }
                    continue
                }
            }
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    // A non-blocking descriptor inherited from the parent: wait until it takes more.
                    var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&poller, 1, 100)
                    continue
                }
                // The reader is gone (`udp listen | head -1`): nothing more can be delivered, so stop.
                if errno == EPIPE { _exit(0) }
                return false
            }
            offset += n
        }
        return true
    }
}

/// The queue between the commands and stdout, emptied by a writer thread started on first use.
///
/// `@unchecked Sendable`: every stored property is read and written only with `condition` locked (the writer
/// thread takes a chunk under the lock and writes it after unlocking, holding no reference into the state), so
/// there is no unsynchronized access.
final class OutputQueue: @unchecked Sendable {
    /// Bytes queued past which a write that must not be dropped waits for the reader.
    static let reliableLimit = 8 << 20

    private let fd: Int32
    private let displayLimit: Int
    private let condition = ThreadCondition()
    private var pending: [UInt8] = []
    /// The writer took a chunk and is writing it (outside the lock).
    private var writing = false
    private var started = false
    private var droppedLines = 0
    private var droppedDatagrams = 0
    private var reported = false

    init(fd: Int32, displayLimit: Int) {
        self.fd = fd
        self.displayLimit = displayLimit
    }

    func enqueue(_ bytes: [UInt8], droppable: Bool, raw: Bool = false) {
        guard !bytes.isEmpty else { return }
        condition.lock()
        defer { condition.unlock() }
        if !droppable {
            // Never dropped; so that memory stays bounded, a writer far behind its reader waits, as a plain write
            // would. Not after a signal: what is queued then is about to be given up anyway.
            while pending.count >= Self.reliableLimit && Terminal.signalDeadline == nil {
                condition.wait(seconds: 0.05)
            }
        }
        if droppable && pending.count + bytes.count > displayLimit && !pending.isEmpty {
            if raw {
                droppedDatagrams += 1
            } else {
                droppedLines += max(1, bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
            }
            return
        }
        pending.append(contentsOf: bytes)
        if !started {
            started = true
            DetachedThread.start(name: "udp stdout") { [self] in writerLoop() }
        }
        condition.broadcast()
    }

    /// Wakes waiters so they look at their deadlines again (a signal arrived).
    func wake() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until the queue is empty and the writer idle, or until `deadline()` (monotonic nanoseconds, nil for
    /// no limit) passes; then, with `abandon`, what is still queued is dropped and counted (the process is about
    /// to end).
    func drain(deadline: () -> UInt64?, abandon: Bool) {
        condition.lock()
        defer { condition.unlock() }
        while !pending.isEmpty || writing {
            if let limit = deadline() {
                let now = MonotonicClock.nanoseconds
                if now >= limit {
                    guard abandon else { return }
                    droppedLines += pending.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                    pending.removeAll()
                    return
                }
                condition.wait(seconds: min(0.05, Double(limit - now) / 1e9))
            } else {
                // Re-checked every 100 ms, so that a signal (which makes the wait bounded) is seen promptly.
                condition.wait(seconds: 0.05)
            }
        }
    }

    /// "display fell behind: N lines not shown", once, when anything was dropped.
    func takeDropReport() -> String? {
        condition.lock()
        defer { condition.unlock() }
        guard !reported, droppedLines > 0 || droppedDatagrams > 0 else { return nil }
        reported = true
        var parts: [String] = []
        if droppedLines > 0 { parts.append("\(droppedLines) line\(droppedLines == 1 ? "" : "s")") }
        if droppedDatagrams > 0 { parts.append("\(droppedDatagrams) datagram\(droppedDatagrams == 1 ? "" : "s")") }
        return "display fell behind: \(parts.joined(separator: " and ")) not shown"
    }

    private func writerLoop() {
        while true {
            condition.lock()
            while pending.isEmpty { condition.wait() }
            let chunk = pending
            pending.removeAll(keepingCapacity: true)
            writing = true
            condition.unlock()
            Terminal.writeAll(fd, chunk)
            condition.lock()
            writing = false
            condition.broadcast()
            condition.unlock()
        }
    }
}

/// Standard input as lines of raw bytes (newline removed, a trailing "\r" kept), read on a thread of its own
/// so that waiting for the keyboard never blocks the tasks that talk to the network.
enum StandardInput {
    /// The lines of stdin; the stream ends at end of file.
    static func lines() -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .unbounded)
        DetachedThread.start {
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = readSome(into: &chunk)
                if n < 0 {
                    Terminal.writeStderr("udp: reading standard input failed: \(String(cString: strerror(errno)))\n")
                    break
                }
                if n == 0 { break }
                var start = 0
                for i in 0..<n where chunk[i] == UInt8(ascii: "\n") {
                    pending.append(contentsOf: chunk[start..<i])
                    continuation.yield(pending)
                    pending.removeAll(keepingCapacity: true)
                    start = i + 1
                }
                pending.append(contentsOf: chunk[start..<n])
            }
            if !pending.isEmpty { continuation.yield(pending) }
            continuation.finish()
        }
        return stream
    }

    /// All of stdin, up to end of file (`udp send --file -`).
    static func readAll() throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = readSome(into: &chunk)
            if n < 0 { throw CLIFailure.data("reading standard input failed: \(String(cString: strerror(errno)))") }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[..<n])
        }
    }

    /// One read of stdin into `buffer`: the bytes read, 0 at end of file, -1 (errno set) when reading failed. A
    /// signal during the read is retried, and a non-blocking stdin inherited from the parent is waited for.
    private static func readSome(into buffer: inout [UInt8]) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                var poller = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
                _ = poll(&poller, 1, -1)
                continue
            }
            return n
        }
    }

    /// Turns one line into text for encoding: valid UTF-8 decodes; other bytes are returned as they are.
    static func text(_ line: [UInt8]) -> String? {
        String(validating: line, as: UTF8.self)
    }
}

/// A status line redrawn once a second on stderr while some work runs, only when stderr is a terminal.
struct LiveLine: Sendable {
    let render: @Sendable () -> String

    init(_ render: @escaping @Sendable () -> String) {
        self.render = render
    }

    /// Runs `body` with the line shown, and erases the line when `body` ends.
    func `while`<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        guard Terminal.stderrIsTTY else { return try await body() }
        let render = self.render
        let task = Task {
            while true {
                try await Task.sleep(for: .seconds(1))
                Terminal.writeStderr("\r\u{1B}[K" + render(), afterStdout: false)
            }
        }
        defer {
            task.cancel()
            Terminal.writeStderr("\r\u{1B}[K", afterStdout: false)
        }
        return try await body()
    }
}
