#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOConcurrencyHelpers

/// Output to the standard streams. Stdout is buffered and flushed per line when it is a terminal, or when the
/// caller asks (before waiting for the network), so pipes get data promptly without a syscall per datagram.
enum Terminal {
    static let stdoutIsTTY = isatty(STDOUT_FILENO) == 1
    static let stderrIsTTY = isatty(STDERR_FILENO) == 1
    static let stdinIsTTY = isatty(STDIN_FILENO) == 1

    private static let buffer = NIOLockedValueBox([UInt8]())

    static func writeStdout(_ text: String) {
        writeStdout(bytes: Array(text.utf8))
    }

    static func writeStdout(bytes: [UInt8]) {
        buffer.withLockedValue { pending in
            pending.append(contentsOf: bytes)
            if stdoutIsTTY || pending.count >= 64 * 1024 { drain(&pending) }
        }
    }

    static func flushStdout() {
        buffer.withLockedValue { drain(&$0) }
    }

    private static func drain(_ pending: inout [UInt8]) {
        writeAll(STDOUT_FILENO, pending)
        pending.removeAll(keepingCapacity: true)
    }

    static func writeStderr(_ text: String) {
        flushStdout()
        writeAll(STDERR_FILENO, Array(text.utf8))
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                // The reader is gone (`udp listen | head -1`): nothing more can be delivered, so stop.
                if errno == EPIPE { _exit(0) }
                return
            }
            offset += n
        }
    }
}

/// Standard input as lines of raw bytes (newline removed, a trailing "\r" kept), read on a thread of its own
/// so that waiting for the keyboard never blocks the tasks that talk to the network.
enum StandardInput {
    /// The lines of stdin; the stream ends at end of file.
    static func lines() -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .unbounded)
        let thread = Thread {
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && errno == EAGAIN {
                    // A non-blocking stdin inherited from the parent: wait until it is readable.
                    var poller = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
                    _ = poll(&poller, 1, -1)
                    continue
                }
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
        thread.start()
        return stream
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
                Terminal.writeStderr("\r\u{1B}[K" + render())
            }
        }
        defer {
            task.cancel()
            Terminal.writeStderr("\r\u{1B}[K")
        }
        return try await body()
    }
}
