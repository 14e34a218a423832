import ArgumentParser
import Foundation
import UDPKit
import UDPStudio
import UDPStudioWeb

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

        let server = StudioWebServer(studio: studio, host: bindHost, port: port)
        let openBrowser = !noBrowser
        let application = server.application { bound in
            let url = server.pageURL(port: bound)
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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: opener)
        process.arguments = [url]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
    }
}
