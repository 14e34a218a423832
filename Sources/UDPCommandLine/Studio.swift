import ArgumentParser
import NIOConcurrencyHelpers
import ServiceLifecycle
import UDPKit
import UDPStudio
import UDPText

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

struct StudioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "studio",
        abstract:
            "The network debugging assistant as a local web page: listen, send, auto-reply, saved packets, charts.",
        discussion: """
            Serves the page on 127.0.0.1 and prints its address, with a new access token, on stdout; opens a browser when a desktop session is running (not with --no-browser). Ctrl-C or SIGTERM stop it once its requests are answered; a second Ctrl-C stops it at once.

            The page and its JSON API need the token (Authorization: Bearer TOKEN, or ?token=TOKEN); requests naming another Host, or coming from another origin, are refused. Saved packets live in $XDG_CONFIG_HOME/udp/packets.json (else ~/.config/udp/packets.json); 'udp send @NAME' sends one.

            Examples:
              udp studio                                 page on http://127.0.0.1:8425/
              udp studio --udp 9000 --udp '[::1]:9001'   with two listeners from the start
              udp studio --http 127.0.0.1:0 --no-browser any free port, no browser
            """
    )

    @Option(help: ArgumentHelp("Where the page is served: HOST:PORT (port 0: any free port).", valueName: "address"))
    var http: String = "127.0.0.1:8425"

    @Option(
        name: .customLong("udp"),
        help: ArgumentHelp("Listen for UDP on [HOST:]PORT from the start (repeatable).", valueName: "address"))
    var listeners: [String] = []

    @Flag(help: "Do not open a browser.")
    var noBrowser = false

    @Flag(
        help:
            "Allow --http on an address other than loopback (anyone who can reach it and has the token controls the studio)."
    )
    var allowRemote = false

    @Option(help: "How many datagrams the studio remembers for the page (1-1000000).")
    var history: Int = 10_000

    func validate() throws {
        guard (1...1_000_000).contains(history) else { throw ValidationError("--history must be from 1 to 1000000") }
    }

    func run() async throws {
        guard case .linked(let makeWebServer) = Self.webPart.withLockedValue({ $0 }) else {
            try Self.runSeparateExecutable()
        }
        let endpoint = try UDPEndpoint.parse(http, defaultHost: .name("127.0.0.1"))
        guard case .ip(let hostKind, let port) = endpoint.kind, case .name(let host) = hostKind,
            (try? UDPAddress(ip: host, port: 0)) != nil || host == "localhost"
        else {
            throw CLIFailure.usage("--http takes a numeric address and a port, as in 127.0.0.1:8425")
        }
        let bindHost = host == "localhost" ? "127.0.0.1" : host
        let loopback = bindHost.hasPrefix("127.") || bindHost == "::1"
        if !loopback {
            guard allowRemote else {
                throw CLIFailure.usage(
                    "--http \(http) is not a loopback address; add --allow-remote to serve the studio to other hosts")
            }
            Terminal.writeStderr(
                "warning: the studio is reachable from other hosts on \(http); anyone with the token can send from this host\n"
            )
        }

        var configuration = Studio.Configuration()
        configuration.historyCapacity = history
        let studio = try Studio(configuration: configuration)
        do {
            for address in listeners {
                let info = try await studio.addListener(ListenerSpec(address: address))
                Terminal.writeStderr("listening on \(info.address) (UDP)\n")
            }
        } catch {
            await studio.shutdown()
            throw error
        }

        let openBrowser = !noBrowser
        let application = makeWebServer(studio, bindHost, port) { url in
            Terminal.writeStdout(url + "\n")
            Terminal.flushStdout()
            if openBrowser { Self.openBrowser(url) }
        }
        do {
            // The web server is stopped first (it is listed last), then the studio: a page's live stream ends
            // before the listeners it shows close.
            try await runServices([studio, application])
        } catch {
            await studio.shutdown()
            if "\(error)".contains("Address already in use") || "\(error)".contains("EADDRINUSE") {
                throw CLIFailure(
                    message:
                        "TCP port \(port) on \(bindHost) is already in use; choose another with --http \(bindHost):PORT or stop the program using it",
                    code: ExitCode32.other)
            }
            throw CLIFailure(message: "the studio's web server stopped: \(error)", code: ExitCode32.other)
        }
    }

    /// Where the page's web server is: linked into this executable (`udp-studio`), or in `udp-studio` beside it
    /// (`udp`). Set once, before the command line is parsed.
    static let webPart = NIOLockedValueBox(StudioWebPart.separate)

    /// Replaces this process with `udp-studio` from the directory this executable is in, given the same arguments,
    /// so that it parses and runs this command with the web server linked in. Returns only by throwing.
    static func runSeparateExecutable() throws -> Never {
        let name = StudioWebPart.executableName
        let directory = executableDirectory()
        let path = directory + "/" + name
        guard access(path, X_OK) == 0 else {
            throw CLIFailure(
                message:
                    "the studio's web server is not installed: no \(name) beside udp in \(TerminalText.escape(directory)) (build it with 'swift build', or install both with 'make install')",
                code: ExitCode32.unavailable)
        }
        Terminal.flushStdout()
        let arguments = [path] + CommandLine.arguments.dropFirst()
        let argv = arguments.map { strdup($0) } + [nil]
        execv(path, argv)
        let problem = errno
        throw CLIFailure(
            message: "cannot run \(TerminalText.escape(path)): \(String(cString: strerror(problem)))",
            code: ExitCode32.unavailable)
    }

    /// The directory of the running executable, symbolic links resolved.
    private static func executableDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        #if os(Linux)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let path = count > 0 ? String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        #else
        var size = UInt32(buffer.count)
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let path =
            _NSGetExecutablePath(&buffer, &size) == 0 && realpath(buffer, &resolved) != nil
            ? String(cString: resolved) : nil
        #endif
        let executable = path ?? CommandLine.arguments[0]
        guard let slash = executable.lastIndex(of: "/") else { return "." }
        return slash == executable.startIndex ? "/" : String(executable[..<slash])
    }

    /// Opens `url` in the desktop's browser, if there is a desktop session.
    static func openBrowser(_ url: String) {
        let environment = ProcessInfo.processInfo.environment
        #if os(macOS)
        let opener = "/usr/bin/open"
        #else
        guard environment["DISPLAY"] != nil || environment["WAYLAND_DISPLAY"] != nil else { return }
        let opener = "/usr/bin/xdg-open"
        #endif
        guard FileManager.default.isExecutableFile(atPath: opener) else { return }
        // The opener hands the page to the browser and exits; its output would mix with ours.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = [strdup(opener), strdup(url), nil]
        defer { for argument in argv { free(argument) } }
        var child = pid_t()
        guard posix_spawn(&child, opener, &actions, nil, argv, environ) == 0 else { return }
        // Reaped when it exits, so it does not linger as a zombie while the studio runs.
        DetachedThread.start { [child] in
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1 && errno == EINTR {}
        }
    }
}

/// How `udp studio` serves its page. The web server (Hummingbird and what it brings) is linked only into the
/// `udp-studio` executable, so that no other command pays for it in start-up time and memory; `udp studio` replaces
/// itself with `udp-studio studio …`, which runs this same command line.
public enum StudioWebPart: Sendable {
    /// The executable that has the web server linked in, installed in the same directory as `udp`.
    public static let executableName = "udp-studio"

    /// The web server is in this executable: the closure makes the service serving `studio`'s page on a host and
    /// a port, which calls its last argument with the page's address (with its access token) once it listens.
    case linked(
        @Sendable (
            _ studio: Studio, _ host: String, _ port: Int, _ ready: @escaping @Sendable (String) -> Void
        ) -> any Service
    )
    /// The web server is in `udp-studio`, beside this executable.
    case separate
}
