import ArgumentParser
import Foundation
import UDPKit
import UDPServers

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
        let oneLine = message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
        Terminal.writeStderr("udp: \(oneLine)\n")
        return code
    }

    static func classify(_ error: any Error, command: any ParsableCommand.Type) -> (String, Int32) {
        switch error {
        case let failure as CLIFailure:
            return (failure.message, failure.code)
        case let udp as UDPError:
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
            if let first = message.first { message = first.lowercased() + message.dropFirst() }
            let known = UDPCommand.configuration.subcommands.compactMap { $0.configuration.commandName }
            let sub = CommandLine.arguments.dropFirst().first.flatMap { known.contains($0) ? $0 : nil }
            let helpHint = sub.map { "udp \($0) --help" } ?? "udp --help"
            return ("\(message) (see '\(helpHint)')", code == 1 ? ExitCode32.usage : code)
        }
    }

    static func code(for error: UDPError) -> Int32 {
        switch error {
        case .invalidAddress, .invalidPort: return ExitCode32.usage
        case .messageTooLarge: return ExitCode32.dataError
        case .nameNotFound, .networkUnreachable, .hostUnreachable, .connectionRefused, .interfaceUnavailable: return ExitCode32.unavailable
        case .timedOut: return ExitCode32.timedOut
        case .addressInUse, .addressNotAvailable, .permissionDenied, .closed, .unaddressableSender, .system: return ExitCode32.other
        }
    }
}
