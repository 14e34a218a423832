import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The outcome of running an external command to completion.
struct CommandResult {
    var status: Int32
    var standardOutput: String
    var standardError: String

    var succeeded: Bool { status == 0 }

    /// Both output streams, for failure messages.
    var transcript: String { "exit \(status)\n--- stdout ---\n\(standardOutput)\n--- stderr ---\n\(standardError)" }
}

enum Command {
    /// Where iproute2's `ip` lives on this machine, if it is installed.
    static var ipTool: String? {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// Runs `executable` and waits for it, killing it after `timeout` seconds.
    ///
    /// Uses posix_spawn and waitpid rather than Foundation's `Process`, whose
    /// Linux implementation needs a run-loop wakeup socket over loopback and
    /// hangs in a network namespace whose loopback interface is down. Output
    /// goes to temporary files rather than pipes so that a chatty child can
    /// never block on a full pipe while the other stream is being drained.
    static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        timeout: Double = 120
    ) throws -> CommandResult {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("interfaces-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outputPath = directory.appendingPathComponent("stdout").path
        let errorPath = directory.appendingPathComponent("stderr").path

        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t?
        #else
        var actions = posix_spawn_file_actions_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

        let mergedEnvironment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = mergedEnvironment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }

        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw CocoaError(
                .executableLoad, userInfo: [NSLocalizedDescriptionKey: "posix_spawn \(executable): \(spawned)"])
        }

        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var timedOut = false
        while true {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { break }
            if waited == -1 && errno != EINTR {
                throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "waitpid: errno \(errno)"])
            }
            if !timedOut && Date() > deadline {
                timedOut = true
                kill(pid, SIGKILL)
            }
            usleep(10_000)
        }

        // A normal exit leaves the signal bits clear and the code in bits 8...15;
        // a signal death is reported shell-style as 128 + signal.
        let signal = status & 0x7F
        var result = CommandResult(
            status: signal == 0 ? (status >> 8) & 0xFF : 128 + signal,
            standardOutput: String(
                decoding: (try? Data(contentsOf: URL(fileURLWithPath: outputPath))) ?? Data(), as: UTF8.self),
            standardError: String(
                decoding: (try? Data(contentsOf: URL(fileURLWithPath: errorPath))) ?? Data(), as: UTF8.self)
        )
        if timedOut { result.standardError += "\n(killed after \(timeout) seconds)" }
        return result
    }
}

/// The subset of `ip -j addr` output the tests compare against.
struct IPLink: Decodable {
    var ifindex: Int
    var ifname: String
    var flags: [String]
    var mtu: Int
    var addressInfo: [IPAddress]

    // `ip -j` names the address list `addr_info`.
    enum CodingKeys: String, CodingKey {
        case ifindex, ifname, flags, mtu
        case addressInfo = "addr_info"
    }

    struct IPAddress: Decodable {
        var family: String?
        var local: String?
        var prefixlen: Int?
        var broadcast: String?
        var scope: String?
    }

    static func current(ip: String) throws -> [IPLink] {
        let result = try Command.run(ip, ["-j", "addr", "show"])
        guard result.succeeded else {
            throw XCTSkip("`ip -j addr show` did not succeed:\n\(result.transcript)")
        }
        return try JSONDecoder().decode([IPLink].self, from: Data(result.standardOutput.utf8))
    }
}

/// A network namespace made by a test, with its loopback interface up.
///
/// Names carry this process's id, so namespaces left behind by a run that crashed are recognized and deleted
/// by the next run. Where namespaces cannot be made (not root, no iproute2) the test skips, except with
/// `CI=true`, where that is a failure.
struct TestNamespace {
    let name: String

    private static let prefix = "udpkit-"

    init(purpose: String) throws {
        _ = try Self.requireIPTool()
        guard geteuid() == 0 else { throw Self.unavailable("creating a network namespace needs root") }
        Self.removeStale()
        name = "\(Self.prefix)\(getpid())-\(purpose)"
        // A namespace of the same name can only be left over from this process: start clean.
        _ = try? Command.run(Self.ipPath, ["netns", "del", name])
        let created = try Command.run(Self.ipPath, ["netns", "add", name])
        guard created.succeeded else {
            throw Self.unavailable("cannot create a network namespace:\n\(created.transcript)")
        }
        do {
            // Foundation's run loop needs a working loopback inside the namespace.
            try Self.ip(["-n", name, "link", "set", "lo", "up"])
        } catch {
            remove()
            throw error
        }
    }

    /// Deletes the namespace and everything in it; a failure to delete fails the test.
    func remove() {
        let removed = try? Command.run(Self.ipPath, ["netns", "del", name])
        XCTAssertEqual(
            removed?.succeeded, true, "namespace \(name) was not deleted: \(removed?.transcript ?? "ip did not run")")
    }

    /// Runs `ip` with arguments; a failure is reported as an unusable environment.
    static func ip(_ arguments: [String]) throws {
        let result = try Command.run(ipPath, arguments)
        guard result.succeeded else {
            throw unavailable(
                "namespace setup step `ip \(arguments.joined(separator: " "))` failed:\n\(result.transcript)")
        }
    }

    /// Runs one test of this bundle inside the namespace (with `variable` set, so that it knows) and checks that
    /// it ran and passed.
    func runTest(_ test: String, variable: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let probe = try Command.run(
            Self.ipPath, ["netns", "exec", name, executable, "UDPKitTests.\(test)"],
            environment: [variable: name], timeout: 60)
        let transcript = probe.transcript
        XCTAssertTrue(probe.succeeded, "\(test) failed inside the namespace:\n\(transcript)", file: file, line: line)
        XCTAssertTrue(
            transcript.contains("Executed 1 test"), "\(test) did not run:\n\(transcript)", file: file, line: line)
        XCTAssertFalse(transcript.contains("skipped"), "\(test) skipped:\n\(transcript)", file: file, line: line)
    }

    static var ipPath: String { Command.ipTool ?? "ip" }

    static func requireIPTool() throws -> String {
        guard let ip = Command.ipTool else { throw unavailable("iproute2's `ip` is not installed") }
        return ip
    }

    /// A skip, which with `CI=true` is also recorded as a failure: CI must run the namespace tests.
    static func unavailable(_ message: String, file: StaticString = #filePath, line: UInt = #line) -> XCTSkip {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("\(message) (required on CI)", file: file, line: line)
        }
        return XCTSkip(message)
    }

    private static func removeStale() {
        guard let listed = try? Command.run(ipPath, ["netns", "list"]) else { return }
        for line in listed.standardOutput.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(prefix), let pid = Int32(name.dropFirst(prefix.count).prefix { $0.isNumber }) else {
                continue
            }
            if kill(pid, 0) != 0 && errno == ESRCH { _ = try? Command.run(ipPath, ["netns", "del", name]) }
        }
    }
}
