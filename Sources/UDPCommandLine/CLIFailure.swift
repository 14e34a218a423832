import ArgumentParser
import UDPKit
import UDPServers
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

/// Exit codes, as documented in `udp --help`.
enum ExitCode32 {
    static let success: Int32 = 0
    static let other: Int32 = 1
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let unavailable: Int32 = 69
    static let timedOut: Int32 = 75
}

/// An error the CLI reports with a specific exit code.
struct CLIFailure: Error, CustomStringConvertible {
    var message: String
    var code: Int32

    var description: String { message }

    static func usage(_ message: String) -> CLIFailure { CLIFailure(message: message, code: ExitCode32.usage) }
    static func data(_ message: String) -> CLIFailure { CLIFailure(message: message, code: ExitCode32.dataError) }

    /// Prints one `udp: ` line on stderr (help and version go to stdout) and returns the exit code.
    static func report(_ error: any Error, command: any ParsableCommand.Type) -> Int32 {
        let (message, code) = classify(error, command: command)
        if code == 0 {
            if !message.isEmpty { Terminal.writeStdout(message + "\n") }
            Terminal.flushStdout()
            return 0
        }
        let oneLine = message.split(whereSeparator: \.isNewline).map { $0.trimmingHorizontalWhitespace() }
            .filter { !$0.isEmpty }.joined(separator: " ")
        // An empty message is a failure already reported, or one --quiet asked to keep quiet: the code says it.
        if !oneLine.isEmpty { Terminal.writeStderr("udp: \(oneLine)\n") }
        return code
    }

    static func classify(_ error: any Error, command: any ParsableCommand.Type) -> (String, Int32) {
        switch error {
        case let failure as CLIFailure:
            return (failure.message, failure.code)
        case let udp as UDPError:
            if let failure = unixSocketFailure(udp) { return (failure.message, failure.code) }
            // A name that is not an interface here is a typing mistake (usage), not an unreachable network.
            if case .interfaceUnavailable(let name, _) = udp, !name.isEmpty, (try? NetworkInterface.lookup(name)) == nil
            {
                return (udp.description, ExitCode32.usage)
            }
            return (udp.description, code(for: udp))
        case let payload as PayloadError:
            if case .unknownEncoding = payload { return (payload.description, ExitCode32.usage) }
            return (payload.description, ExitCode32.dataError)
        case let interfaces as InterfaceError:
            return (interfaces.description, ExitCode32.other)
        case let option as UDPOptionError:
            return (option.description, ExitCode32.usage)
        case let template as TemplateError:
            return (template.message, ExitCode32.usage)
        case is CancellationError:
            return ("interrupted", 130)
        default:
            let code = command.exitCode(for: error).rawValue
            var message = command.message(for: error)
            if code == 0 {
                // --help, --version: print the full text.
                return (command.fullMessage(for: error), 0)
            }
            if message.hasPrefix("Error: ") { message.removeFirst(7) }
            let arguments = Array(CommandLine.arguments.dropFirst())
            message = CommandLineHelp.explain(message, arguments: arguments)
            if let first = message.first { message = first.lowercased() + message.dropFirst() }
            return (
                "\(message) (see '\(CommandLineHelp.helpCommand(for: arguments))')", code == 1 ? ExitCode32.usage : code
            )
        }
    }

    /// A socket error on a Unix-domain socket, said with the path and what to do (the errno text alone names
    /// neither); nil when no Unix socket path is on the command line or the error is not one of these.
    static func unixSocketFailure(_ error: UDPError) -> CLIFailure? {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let (path, _) = CommandLineHelp.commandPath(arguments)
        let words = arguments.dropFirst(path.count)
        guard
            let index = words.indices.first(where: { i in
                let word = words[i]
                let isPath =
                    word.hasPrefix("unix:") || word.hasPrefix("/") || word.hasPrefix("./") || word.hasPrefix("../")
                return isPath && (i == words.startIndex || words[i - 1] != "--file")
            })
        else { return nil }
        let socketPath = words[index].hasPrefix("unix:") ? String(words[index].dropFirst(5)) : words[index]
        let shown = TerminalText.escape(socketPath)
        let directory = directoryPart(of: socketPath)
        let binds = ["listen", "echo", "bench sink", "room serve"].contains(path.joined(separator: " "))
        switch error {
        case .system(_, ENOENT) where binds:
            return CLIFailure(
                message:
                    "cannot create the Unix socket \(shown): the directory \(TerminalText.escape(directory.isEmpty ? "." : directory)) does not exist; create it or choose another path",
                code: ExitCode32.other)
        case .system(_, ENOENT):
            return CLIFailure(
                message:
                    "no Unix socket at \(shown): start the receiver first (udp listen unix:\(shown)) or check the path",
                code: ExitCode32.unavailable)
        case .connectionRefused:
            return CLIFailure(
                message:
                    "nothing is receiving on the Unix socket \(shown) (a file left over by a program that stopped, or not a socket); start the receiver, or remove the file",
                code: ExitCode32.unavailable)
        case .system(_, ENOTDIR):
            return CLIFailure(
                message: "cannot use the Unix socket \(shown): a part of the path is not a directory",
                code: binds ? ExitCode32.other : ExitCode32.unavailable)
        default:
            return nil
        }
    }

    static func code(for error: UDPError) -> Int32 {
        switch error {
        case .invalidAddress, .invalidPort: return ExitCode32.usage
        case .messageTooLarge: return ExitCode32.dataError
        case .nameNotFound, .networkUnreachable, .hostUnreachable, .connectionRefused, .interfaceUnavailable:
            return ExitCode32.unavailable
        case .timedOut: return ExitCode32.timedOut
        case .addressInUse, .addressNotAvailable, .permissionDenied, .closed, .unaddressableSender, .system:
            return ExitCode32.other
        }
    }
}
