import ArgumentParser
import UDPKit
import UDPServers
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `udp echo`'s other servers: replies by rule, a command per datagram, a checksum on every reply.
struct EchoReplyOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Reply by rule, 'MATCH => TEMPLATE' (repeatable; first match wins). MATCH: TEXT (whole payload), prefix:TEXT, contains:TEXT, regex:PATTERN (groups are {1}..{9}), hex:BYTES (payload starts with them). Unmatched datagrams get no reply (no-rule) unless --reply is given too.",
            valueName: "rule"))
    var rule: [String] = []

    @Option(
        help: ArgumentHelp(
            "Load rules from a JSON file: an array of \"MATCH => TEMPLATE\" strings or {\"match\": ..., \"reply\": ...} objects; tried after --rule.",
            valueName: "file"))
    var rules: String?

    @Option(
        help: ArgumentHelp(
            "Answer each datagram with the output of COMMAND (run by /bin/sh -c; payload on stdin; UDP_PEER_ADDR, UDP_PEER_PORT, UDP_LOCAL_PORT set).",
            valueName: "command"))
    var exec: String?

    @Option(
        help:
            "With --exec: at most this many commands at once (1 to 256, default 8); datagrams beyond are dropped and counted (exec-limit)."
    )
    var execLimit: Int?

    @Option(
        help: ArgumentHelp(
            "With --exec: kill a command (and what it started) after this long (default 5s).", valueName: "duration"))
    var execTimeout: DurationArgument?

    @Option(help: ArgumentHelp("Append a checksum to every reply (see 'udp send --help').", valueName: "checksum"))
    var append: String?

    func validate(interactive: Bool) throws {
        if let execLimit, !(1...256).contains(execLimit) { throw ValidationError("--exec-limit must be from 1 to 256") }
        if let execTimeout, execTimeout.seconds <= 0 { throw ValidationError("--exec-timeout must be more than 0") }
        // Given without --exec they would change nothing, silently.
        if exec == nil && (execLimit != nil || execTimeout != nil) {
            throw ValidationError("--exec-limit and --exec-timeout apply with --exec COMMAND")
        }
        if let exec, exec.allSatisfy(\.isWhitespace) {
            throw ValidationError("--exec needs a command, e.g. --exec 'tr a-z A-Z'")
        }
        if exec != nil && (!rule.isEmpty || rules != nil) {
            throw ValidationError("--exec and --rule/--rules cannot be used together")
        }
        if interactive && (exec != nil || !rule.isEmpty || rules != nil) {
            throw ValidationError("--interactive cannot be used with --exec, --rule or --rules")
        }
    }

    func configure(_ config: inout EchoServer.Configuration, encoding: TextEncoding, reply: String?) throws {
        config.append = try parseChecksum(append)
        if let exec {
            if reply != nil { throw CLIFailure.usage("--exec and --reply cannot be used together") }
            var settings = ExecSettings(command: exec)
            if let execLimit { settings.limit = execLimit }
            if let execTimeout { settings.timeout = execTimeout.duration }
            config.exec = settings
        }
        do {
            var list = try ReplyRules(parsing: rule, encoding: encoding)
            if let rules {
                guard let data = FileManager.default.contents(atPath: rules) else {
                    throw CLIFailure.usage("cannot read rules file '\(rules)': \(unreadableReason(rules))")
                }
                let loaded = try ReplyRules(json: Array(data), file: rules, encoding: encoding).rules
                // An empty file would quietly leave a plain echo answering everything.
                if loaded.isEmpty { throw CLIFailure.usage("\(rules): the rules file holds no rules") }
                list.rules += loaded
            }
            if !list.rules.isEmpty { config.rules = list }
        } catch let error as RuleError {
            throw CLIFailure.usage(error.description)
        }
    }
}
