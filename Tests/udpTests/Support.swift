import Foundation
import XCTest

/// Runs the built `udp` binary and other programs, with a time limit, capturing output in files.
enum Run {
    /// The `udp` executable built next to this test bundle.
    static let udpPath: String = {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("udp").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/udp").path
    }()

    struct Result {
        var status: Int32
        var stdout: Data
        var stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// A started process whose output goes to temporary files.
    final class Handle: @unchecked Sendable {
        // Only touched from the test's own thread.
        let process = Process()
        let outURL: URL
        let errURL: URL
        let inPipe = Pipe()

        init(_ executable: String, _ arguments: [String], stdinData: Data?) throws {
            let tmp = FileManager.default.temporaryDirectory
            outURL = tmp.appendingPathComponent("udp-test-\(UUID().uuidString).out")
            errURL = tmp.appendingPathComponent("udp-test-\(UUID().uuidString).err")
            _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardOutput = try FileHandle(forWritingTo: outURL)
            process.standardError = try FileHandle(forWritingTo: errURL)
            process.standardInput = inPipe
            try process.run()
            if let stdinData {
                inPipe.fileHandleForWriting.write(stdinData)
                try? inPipe.fileHandleForWriting.close()
            }
        }

        var stdout: Data { (try? Data(contentsOf: outURL)) ?? Data() }
        var text: String { String(decoding: stdout, as: UTF8.self) }
        var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

        func closeInput() { try? inPipe.fileHandleForWriting.close() }

        /// Waits for stderr (or stdout) to contain `text`, up to `timeout` seconds.
        func waitForOutput(_ text: String, timeout: Double = 5) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if stderr.contains(text) || String(decoding: stdout, as: UTF8.self).contains(text) { return true }
                if !process.isRunning {
                    return stderr.contains(text) || String(decoding: stdout, as: UTF8.self).contains(text)
                }
                usleep(10_000)
            }
            return false
        }

        /// Waits for exit, killing the process after `timeout` seconds.
        func finish(timeout: Double = 10, signal: Int32? = nil) -> Result {
            if let signal, process.isRunning { kill(process.processIdentifier, signal) }
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(5_000) }
            if process.isRunning {
                process.terminate()
                usleep(100_000)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
                XCTFail("process \(process.arguments ?? []) did not finish within \(timeout) s")
            }
            process.waitUntilExit()
            let result = Result(status: process.terminationStatus, stdout: stdout, stderr: stderr)
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
            return result
        }
    }

    /// Starts `udp` with arguments.
    static func start(_ arguments: [String], stdin: Data? = nil) throws -> Handle {
        try Handle(udpPath, arguments, stdinData: stdin)
    }

    /// Runs `udp` to completion.
    static func udp(_ arguments: [String], stdin: Data? = Data(), timeout: Double = 10) throws -> Result {
        try start(arguments, stdin: stdin).finish(timeout: timeout)
    }

    /// Starts another program found on PATH.
    static func program(_ name: String, _ arguments: [String], stdin: Data? = nil) throws -> Handle {
        guard let path = which(name) else { throw XCTSkip("\(name) is not installed") }
        return try Handle(path, arguments, stdinData: stdin)
    }

    /// Starts python3 running `script` with arguments.
    static func python(_ script: String, _ arguments: [String] = []) throws -> Handle {
        try program("python3", ["-u", "-c", script] + arguments)
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Skips when a tool is missing, except on CI where its absence is a failure.
    static func require(_ name: String) throws {
        if which(name) == nil {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                XCTFail("\(name) is required on CI (.ci/run installs it)")
            }
            throw XCTSkip("\(name) is not installed")
        }
    }
}

/// Python peers written the classic way, with the socket module. Each prints "ready PORT" once bound and stops by
/// itself after a few seconds of silence.
enum Peer {
    /// Whether a socket is bound to `port` (IPv4 or IPv6), waiting up to 5 s: the kernel's own tables, so no
    /// datagram is sent before anyone can receive it.
    static func waitBound(_ port: Int) -> Bool {
        let needle = String(format: ":%04X ", port)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            for table in ["/proc/net/udp", "/proc/net/udp6"] {
                if let text = try? String(contentsOfFile: table, encoding: .utf8), text.contains(needle) { return true }
            }
            usleep(20_000)
        }
        return false
    }

    /// Receives `count` datagrams and prints each as hex, one per line, then "done".
    static let receiver = """
        import socket, sys
        fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((sys.argv[1], 0))
        s.settimeout(5)
        print('ready', s.getsockname()[1], flush=True)
        for _ in range(int(sys.argv[2])):
            data, addr = s.recvfrom(70000)
            print(data.hex(), flush=True)
        print('done', flush=True)
        """

    /// An echo server that ignores the first `skip` datagrams (a lost reply), then echoes; exits after 5 s idle.
    static let echo = """
        import socket, sys
        fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((sys.argv[1], 0))
        s.settimeout(5)
        skip = int(sys.argv[2]) if len(sys.argv) > 2 else 0
        print('ready', s.getsockname()[1], flush=True)
        seen = 0
        while True:
            try:
                data, addr = s.recvfrom(70000)
            except socket.timeout:
                break
            seen += 1
            print('got', seen, data.hex(), flush=True)
            if seen > skip:
                s.sendto(data, addr)
        """

    /// Sends each hex argument as a datagram to HOST PORT.
    static let sender = """
        import socket, sys
        fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        for h in sys.argv[3:]:
            s.sendto(bytes.fromhex(h), (sys.argv[1], int(sys.argv[2])))
        print('sent', len(sys.argv) - 3, flush=True)
        """

    /// Waits for the "ready PORT" line and returns the port.
    static func port(of handle: Run.Handle, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            let text = String(decoding: handle.stdout, as: UTF8.self)
            if let readyLine = text.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }),
                let port = Int(readyLine.dropFirst(6))
            {
                return port
            }
            usleep(10_000)
        }
        XCTFail("peer did not start: \(handle.stderr)", file: file, line: line)
        throw XCTSkip("peer did not start")
    }

    /// Waits until the bound address line (`udp listen --show-port`, or another command's `prefix`) appears on
    /// stderr and returns the port.
    /// Starts `udp echo 127.0.0.1:0 --show-port` with `extra` options; returns it and the port it reported.
    static func startEcho(
        _ extra: [String] = [], stdin: Data? = nil, file: StaticString = #filePath, line: UInt = #line
    ) throws -> (Run.Handle, Int) {
        let server = try Run.start(["echo", "127.0.0.1:0", "--show-port"] + extra, stdin: stdin)
        return (server, try listenPort(of: server, prefix: "echo server on ", file: file, line: line))
    }

    static func listenPort(
        of handle: Run.Handle, prefix: String = "listening on ", file: StaticString = #filePath, line: UInt = #line
    ) throws -> Int {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if let line = handle.stderr.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }),
                let address = line.dropFirst(prefix.count).split(separator: " ").first,
                let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...])
            {
                return port
            }
            usleep(10_000)
        }
        XCTFail("udp listen did not start: \(handle.stderr)", file: file, line: line)
        throw XCTSkip("listener did not start")
    }
}

/// Runs short commands with posix_spawn and waitpid. For tools that daemonize (tmux), whose exit
/// Foundation's `Process` can miss.
enum Spawn {
    struct Output {
        var status: Int32
        var text: String
    }

    /// Runs `arguments` (the first is looked up on PATH) with stdin from /dev/null, stdout and stderr to a
    /// temporary file; kills it after `timeout` seconds.
    static func run(_ arguments: [String], timeout: Double = 5) throws -> Output {
        guard let path = Run.which(arguments[0]) else { throw XCTSkip("\(arguments[0]) is not installed") }
        let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("spawn-\(UUID().uuidString).out")
            .path
        defer { unlink(outPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments.dropFirst()).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, &argv, environ)
        guard spawned == 0 else { throw XCTSkip("cannot start \(path): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(timeout)
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                XCTFail("\(arguments) did not finish within \(timeout) s")
                break
            }
            usleep(5_000)
        }
        let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let code: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Output(status: code, text: text)
    }
}

/// A command running on a terminal of its own: a detached tmux session whose screen the test reads, and
/// into which it types, as a person would.
final class TerminalSession {
    let session: String
    /// The screen as last read.
    private(set) var screen = ""

    /// Starts `command` on a `width` x `height` terminal. Skips the test when tmux is missing.
    init(_ command: String, width: Int = 120, height: Int = 20) throws {
        try Run.require("tmux")
        session = "udp-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        _ = try Spawn.run([
            "tmux", "new-session", "-d", "-s", session, "-x", String(width), "-y", String(height), command,
        ])
    }

    deinit {
        _ = try? Spawn.run(["tmux", "kill-session", "-t", session])
    }

    /// The screen's lines as last read.
    var lines: [String] { screen.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }

    /// Reads the screen until it shows `text`, for up to `timeout` seconds.
    func waitForScreen(_ text: String, timeout: Double = 5) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            screen = try Spawn.run(["tmux", "capture-pane", "-p", "-t", session]).text
            if screen.contains(text) { return true }
            usleep(50_000)
        }
        return false
    }

    /// Types `text` without pressing Enter.
    func type(_ text: String) throws {
        _ = try Spawn.run(["tmux", "send-keys", "-t", session, "-l", text])
    }

    /// Types `line` and presses Enter.
    func enter(_ line: String) throws {
        try type(line)
        _ = try Spawn.run(["tmux", "send-keys", "-t", session, "Enter"])
    }

    /// Waits up to `timeout` seconds for the command (and with it the session) to end.
    func waitForExit(timeout: Double = 5) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try Spawn.run(["tmux", "has-session", "-t", session]).status != 0 { return true }
            usleep(50_000)
        }
        return false
    }
}

/// A `udp` command whose stdout is a pipe that nobody reads (a stalled consumer), with stderr in a file.
final class StalledStdout {
    let process = Process()
    let pipe = Pipe()
    let errURL: URL

    init(_ arguments: [String]) throws {
        errURL = FileManager.default.temporaryDirectory.appendingPathComponent("udp-stalled-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: Run.udpPath)
        process.arguments = arguments
        process.standardOutput = pipe
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: errURL)
    }

    var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

    /// Sends `signal` and returns the seconds until the process ended (nil if it had not after `limit` seconds,
    /// when it is killed).
    func secondsToExit(after signal: Int32, limit: Double) -> Double? {
        let start = Date()
        kill(process.processIdentifier, signal)
        while process.isRunning && Date().timeIntervalSince(start) < limit { usleep(2_000) }
        let elapsed = Date().timeIntervalSince(start)
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        process.waitUntilExit()
        return elapsed
    }
}

/// Sends `count` datagrams of `size` bytes to 127.0.0.1:`port` from python3, at about `rate` per second (in bursts
/// of 5, small enough for a default receive buffer), so that even a debug build keeps up; prints "sent N" when done.
let burstSender = """
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rate = float(sys.argv[4]) if len(sys.argv) > 4 else 20000
    payload = b'x' * size
    start = time.time()
    for i in range(count):
        s.sendto(payload, ('127.0.0.1', port))
        if i % 5 == 4:
            time.sleep(max(0, start + (i + 1) / rate - time.time()))
    print('sent', count, flush=True)
    """
