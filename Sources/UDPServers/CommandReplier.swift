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

/// Settings for answering each datagram with a program's output (`udp echo --exec`), as inetd and socat's
/// `UDP-RECVFROM,fork EXEC:` do. A server with these settings ignores SIGPIPE process-wide.
public struct ExecSettings: Sendable {
    /// The command, run as `/bin/sh -c COMMAND`.
    public var command: String
    /// At most this many commands run at once; a datagram arriving when all are busy is dropped (`exec-limit`).
    public var limit: Int = 8
    /// A command still running after this long is killed, with everything it started (`exec-timeout`).
    public var timeout: Duration = .seconds(5)

    /// Runs `command` for each datagram, with the defaults (8 at once, 5 s each).
    public init(command: String) { self.command = command }
}

/// Runs one command per datagram on a thread of its own, at most `limit` at a time.
///
/// The command gets the payload on stdin and `UDP_PEER_ADDR`, `UDP_PEER_PORT`, `UDP_LOCAL_PORT` in its environment;
/// its stdout is the reply. It runs in a process group of its own, so a timeout kills whatever it started too, and
/// the group is killed when the command ends, so nothing it left behind outlives the request.
final class CommandRunner: Sendable {
    /// What a command run produced.
    enum Outcome: Sendable {
        case reply([UInt8])
        case dropped(EchoServer.DropReason)
    }

    let settings: ExecSettings
    let localPort: Int
    /// The largest reply: the largest UDP payload. More output than that is refused, not cut.
    let maximumOutput = 65_507
    private let running = NIOLockedValueBox(0)

    init(settings: ExecSettings, localPort: Int) {
        self.settings = settings
        self.localPort = localPort
        // A command that exits without reading its stdin closes the pipe we write the payload to; that must be an
        // EPIPE to ignore, not a signal that ends the server.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Starts the command for `datagram`, or returns false when `limit` are already running. `done` is called on the
    /// command's thread when it has finished.
    func start(_ datagram: Datagram, done: @escaping @Sendable (Outcome) -> Void) -> Bool {
        let admitted = running.withLockedValue { count in
            guard count < settings.limit else { return false }
            count += 1
            return true
        }
        guard admitted else { return false }
        let payload = datagram.bytes
        let environment = [
            "UDP_PEER_ADDR=\(datagram.sender.ip ?? datagram.sender.path ?? "")",
            "UDP_PEER_PORT=\(datagram.sender.port.map(String.init) ?? "")",
            "UDP_LOCAL_PORT=\(localPort)",
        ]
        let started = DetachedThread.start { [self] in
            let outcome = run(payload: payload, environment: environment)
            running.withLockedValue { $0 -= 1 }
            done(outcome)
        }
        // No thread to be had: as busy as at the limit, and the slot is free again.
        if !started { running.withLockedValue { $0 -= 1 } }
        return started
    }

    /// Commands running now.
    var active: Int { running.withLockedValue { $0 } }

    /// This process's open descriptors, from /proc/self/fd (Linux) or /dev/fd.
    private static func openDescriptors() -> [Int32] {
        let names =
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))
            ?? (try? FileManager.default.contentsOfDirectory(atPath: "/dev/fd")) ?? []
        return names.compactMap { Int32($0) }
    }

    private func run(payload: [UInt8], environment extra: [String]) -> Outcome {
        var input: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        guard pipe(&input) == 0 else { return .dropped(.execFailed) }
        guard pipe(&output) == 0 else {
            close(input[0])
            close(input[1])
            return .dropped(.execFailed)
        }
        // Only the child's copies (made by dup2) may survive exec: a command must not hold another's pipe open.
        for fd in input + output { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        // The server's socket, event loop descriptors and other commands' pipes are not the command's business
        // (nor should a command that lingers keep the port bound): only stdin, stdout and stderr go through.
        // (A descriptor closed meanwhile is harmless: posix_spawn ignores closing one that is not open.)
        for fd in Self.openDescriptors() where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group (to kill all of it), default signal handling (we ignore SIGINT, SIGTERM and SIGPIPE,
        // and ignored signals would be inherited), and no blocked signals.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var environment: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if !text.hasPrefix("UDP_PEER_ADDR=") && !text.hasPrefix("UDP_PEER_PORT=")
                && !text.hasPrefix("UDP_LOCAL_PORT=")
            {
                environment.append(text)
            }
            entry += 1
        }
        environment += extra
        let arguments = ["/bin/sh", "-c", settings.command]
        var pid: pid_t = 0
        let spawned = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, envp) }
        }
        close(input[0])
        close(output[1])
        guard spawned == 0 else {
            close(input[1])
            close(output[0])
            return .dropped(.execFailed)
        }

        let deadline = ContinuousClock.now + settings.timeout
        var written = 0
        var writeEnd: Int32 = input[1]
        if payload.isEmpty {
            close(writeEnd)
            writeEnd = -1
        } else {
            _ = fcntl(writeEnd, F_SETFL, O_NONBLOCK)
        }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        var result: Outcome?
        while result == nil {
            let left = deadline - ContinuousClock.now
            if left <= .zero {
                result = .dropped(.execTimeout)
                break
            }
            var fds = [pollfd(fd: output[0], events: Int16(POLLIN), revents: 0)]
            if writeEnd >= 0 { fds.append(pollfd(fd: writeEnd, events: Int16(POLLOUT), revents: 0)) }
            let millis = Int32(
                min(1000, max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            let ready = poll(&fds, nfds_t(fds.count), millis)
            if ready < 0 && errno != EINTR {
                result = .dropped(.execFailed)
                break
            }
            if ready <= 0 { continue }
            if writeEnd >= 0 && fds[1].revents != 0 {
                let n = payload[written...].withUnsafeBytes { write(writeEnd, $0.baseAddress, $0.count) }
                // A command that exits without reading stdin closes the pipe: that is its business.
                if n > 0 { written += n }
                if n < 0 && errno != EAGAIN && errno != EINTR { written = payload.count }
                if written >= payload.count {
                    close(writeEnd)
                    writeEnd = -1
                }
            }
            if fds[0].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(output[0], $0.baseAddress, $0.count) }
                if n > 0 {
                    reply += chunk[0..<n]
                    if reply.count > maximumOutput { result = .dropped(.execOversize) }
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    break
                }
            }
        }
        if writeEnd >= 0 { close(writeEnd) }
        close(output[0])
        // Whatever happened, nothing the command started may outlive the request.
        if result != nil { kill(-pid, SIGKILL) }
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { break }
            if ContinuousClock.now >= deadline && result == nil {
                // Closed its stdout but kept running: that is a timeout too.
                result = .dropped(.execTimeout)
                kill(-pid, SIGKILL)
            }
            usleep(2_000)
        }
        kill(-pid, SIGKILL)
        if let result { return result }
        // exited normally with status 0?
        let exited = status & 0x7F == 0
        let code = (status >> 8) & 0xFF
        guard exited && code == 0 else { return .dropped(.execFailed) }
        return reply.isEmpty ? .dropped(.execEmpty) : .reply(reply)
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return body(pointers)
}
