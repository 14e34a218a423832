import ArgumentParser
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns the argument parser's generic messages into ones that say what is wrong, and finds which command's
/// `--help` to point to.
enum CommandLineHelp {
    /// The command names at the start of `arguments` (after `udp`), as far as they name commands:
    /// `["room", "serve"]` for `udp room serve 9000`.
    static func commandPath(_ arguments: [String]) -> (path: [String], command: any ParsableCommand.Type) {
        var command: any ParsableCommand.Type = UDPCommand.self
        var path: [String] = []
        var words = arguments[...]
        if words.first == "help" { words = words.dropFirst() }
        for word in words {
            guard let next = command.configuration.subcommands.first(where: { $0._commandName == word }) else { break }
            command = next
            path.append(word)
        }
        return (path, command)
    }

    /// `udp room serve --help` for arguments that start `room serve`.
    static func helpCommand(for arguments: [String]) -> String {
        (["udp"] + commandPath(arguments).path + ["--help"]).joined(separator: " ")
    }

    /// A usage error for a command word that names no command (`udp frobnicate`, `udp help frobnicate`,
    /// `udp room frobnicate`), or for a command that only groups others given alone (`udp room`); nil when the
    /// command words are fine.
    static func commandWordProblem(_ arguments: [String]) -> CLIFailure? {
        var words = arguments[...]
        let asksForHelp = words.first == "help"
        if asksForHelp { words = words.dropFirst() }
        var command: any ParsableCommand.Type = UDPCommand.self
        var path = ["udp"]
        while true {
            let subcommands = command.configuration.subcommands
            if subcommands.isEmpty { return nil }
            // Only for the messages.
            var names: [String] { subcommands.map { $0._commandName } }
            guard let word = words.first else {
                // `udp` alone prints its help; a group such as `udp room` names what it groups.
                if path.count == 1 || asksForHelp { return nil }
                return CLIFailure.usage(
                    "'\(path.joined(separator: " "))' needs a subcommand: \(names.map { "\(path.joined(separator: " ")) \($0)" }.joined(separator: ", ")) (see '\(path.joined(separator: " ")) --help')"
                )
            }
            if word.hasPrefix("-") { return nil }
            guard let next = subcommands.first(where: { $0._commandName == word }) else {
                if path.count == 1 && word == "help" { return nil }
                let whose =
                    path.count == 1 ? "the commands are" : "the subcommands of '\(path.joined(separator: " "))' are"
                return CLIFailure.usage(
                    "unknown command '\(TerminalText.escape(word))'; \(whose) \(names.joined(separator: ", ")) (see '\(path.joined(separator: " ")) --help')"
                )
            }
            command = next
            path.append(word)
            words = words.dropFirst()
        }
    }

    /// Rewrites a parser message so it names what is wrong: a negative number read as an option, a value the
    /// option's type cannot take.
    static func explain(_ message: String, arguments: [String]) -> String {
        // "Unknown option '-1'": a negative number is never one of our options.
        if let value = quoted(message, after: "Unknown option '"), isNegativeNumber(value) {
            if isPortPosition(value, arguments: arguments) {
                return "invalid port '\(value)': expected a number from 0 to 65535"
            }
            return
                "'\(value)' is a negative number, not an option; message words that start with '-' go after '--' (as in: udp send HOST PORT -- \(value))"
        }
        // "Missing expected argument '<address>'" when the address given was a negative number (`udp listen -1`).
        if message.hasPrefix("Missing expected argument"),
            let value = arguments.first(where: { isNegativeNumber($0) && isPortPosition($0, arguments: arguments) })
        {
            return "invalid port '\(value)': expected a number from 0 to 65535"
        }
        // "Missing value for '--count <count>'" when the value given was a negative number.
        if let option = quoted(message, after: "Missing value for '").map({ String($0.split(separator: " ")[0]) }),
            let index = arguments.firstIndex(of: option), index + 1 < arguments.count,
            isNegativeNumber(arguments[index + 1])
        {
            return "\(option) \(arguments[index + 1]): must not be negative"
        }
        // "The value '5' is invalid for '--timeout <duration>'"
        if let value = quoted(message, after: "The value '"), let rest = message.firstRange(of: "' is invalid for '") {
            let target = message[rest.upperBound...].prefix { $0 != "'" }
            let parts = target.split(separator: " ")
            let option = parts.first.map(String.init) ?? ""
            let valueName = parts.count > 1 ? String(parts[1]) : option
            let shown = "\(option.hasPrefix("-") ? option + " " : "")\(TerminalText.escape(value))"
            if valueName == "<duration>" || valueName == "<timeout>" || valueName == "<interval>" {
                if case .failure(let problem) = DurationArgument.parse(value) { return "\(shown): \(problem)" }
            }
            if isNegativeNumber(value) { return "\(shown): must not be negative" }
            if message.hasSuffix("'") || message.hasSuffix("'.") {
                // Only numbers (and durations, above) can fail to parse: every other value is taken as text.
                if valueName == "<rate>" { return "\(shown): expected datagrams per second (10k, 1.5M) or 'max'" }
                return "\(shown): expected a number"
            }
        }
        return message
    }

    /// Whether `value` stands where a port is expected: the first word after a command that takes [HOST:]PORT or
    /// PORT first, or the second after one that takes HOST PORT (before any option).
    static func isPortPosition(_ value: String, arguments: [String]) -> Bool {
        let (path, _) = commandPath(arguments)
        guard let index = arguments.firstIndex(of: value), index >= path.count else { return false }
        let before = arguments[path.count..<index]
        guard !before.contains(where: { $0.hasPrefix("-") }) else { return false }
        switch path.joined(separator: " ") {
        case "listen", "echo", "broadcast", "bench sink", "room serve":
            return before.isEmpty
        case "proxy":
            return before.count == 0 || before.count == 2
        case "send", "request", "client", "chat", "bench ping", "bench flood", "room join":
            return before.count == 1 && !before[before.startIndex].contains(":")
        default:
            return false
        }
    }

    static func isNegativeNumber(_ text: String) -> Bool {
        text.count > 1 && text.hasPrefix("-") && text.dropFirst().first.map { $0.isNumber || $0 == "." } == true
    }

    private static func quoted(_ message: String, after prefix: String) -> String? {
        guard let start = message.firstRange(of: prefix) else { return nil }
        let rest = message[start.upperBound...]
        guard let end = rest.firstIndex(of: "'") else { return nil }
        return String(rest[..<end])
    }
}
