import ArgumentParser
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

/// Runs the `udp` command line on this process's arguments and ends the process with its exit code (see
/// `UDPCommand`'s discussion for the codes). `studioWebPart` says where `udp studio`'s web server is.
public func runUDPCommandLine(studioWebPart: StudioWebPart) async -> Never {
    StudioCommand.webPart.withLockedValue { $0 = studioWebPart }
    await UDPCommand.main()
    // `main` ends the process itself.
    exit(0)
}

struct UDPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "udp",
        abstract: "UDP done properly: send, listen, request, and a debugging toolkit for UDP services.",
        discussion: """
            Addresses: HOST PORT or HOST:PORT, [v6addr]:PORT; "", *, 0.0.0.0 and :: mean any address; <broadcast> means every interface's broadcast address; port 0 means any free port (when binding; it is no destination).

            Durations (--timeout, --interval, --delay, ...): a number and its unit, 100us, 250ms, 5s, 2m; only 0 goes without.

            Shell completions: udp --generate-completion-script bash (or zsh, fish).

            Exit codes: 0 success, 64 bad usage, 65 bad input data, 69 unreachable or refused, 75 timed out, 1 anything else.
            """,
        version: UDPKitVersion.current,
        subcommands: [
            Send.self, Listen.self, Request.self, Client.self, Echo.self, Chat.self, Room.self, Broadcast.self,
            IPMsgCLI.self, Interfaces.self, Bench.self, Proxy.self, PipeCommand.self, Replay.self, StudioCommand.self,
            Packets.self, Demo.self,
        ]
    )

    static func main() async {
        // `udp --version` alone is answered before ArgumentParser builds the command tree, which is most of the time
        // a short command spends starting (the runtime looks up protocol conformances for every command type).
        if CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "--version" {
            print(UDPKitVersion.current)
            exitProcess(0)
        }
        raiseDescriptorLimit()
        do {
            let arguments = Array(CommandLine.arguments.dropFirst())
            if let send = SendSettings.plain(arguments) {
                // `udp send HOST PORT MESSAGE...` runs what parsing would give, without the parser's start-up cost.
                try await send.run()
            } else {
                if let problem = CommandLineHelp.commandWordProblem(arguments) { throw problem }
                var command = try parseAsRoot()
                if var asyncCommand = command as? any AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run()
                }
            }
            Terminal.flushStdout()
            exitProcess(0)
        } catch {
            Terminal.flushStdout()
            exitProcess(CLIFailure.report(error, command: Self.self))
        }
    }
}

extension UDPCommand {
    /// Lets the process open as many descriptors as its hard limit allows (at most 65,536): a proxy or a server
    /// keeps a socket per client, and on Linux each socket holds two descriptors (one for SwiftNIO, one for
    /// sending straight from tasks). Many systems start programs with a soft limit of 1,024.
    static func raiseDescriptorLimit() {
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return }
        #if canImport(Darwin)
        let ceiling = min(limit.rlim_max, rlim_t(OPEN_MAX))
        #else
        let ceiling = min(limit.rlim_max, 65_536)
        #endif
        guard limit.rlim_cur < ceiling else { return }
        limit.rlim_cur = ceiling
        _ = setrlimit(resource, &limit)
    }
}

/// Ends the process with `code` (the C library's `exit`, which flushes stdio; inside a command type a plain `exit`
/// would name ArgumentParser's `exit(withError:)`).
func exitProcess(_ code: Int32) -> Never {
    #if canImport(Glibc)
    Glibc.exit(code)
    #else
    Darwin.exit(code)
    #endif
}
