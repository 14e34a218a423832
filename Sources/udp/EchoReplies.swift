import ArgumentParser
import Foundation
import UDPKit
import UDPServers

/// `udp echo`'s other servers: replies by rule, a command per datagram, a checksum on every reply.
struct EchoReplyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Reply by rule, 'MATCH => TEMPLATE' (repeatable; first match wins). MATCH: TEXT (whole payload), prefix:TEXT, contains:TEXT, regex:PATTERN (groups are {1}..{9}), hex:BYTES (payload starts with them). Unmatched datagrams get no reply (no-rule) unless --reply is given too.", valueName: "rule"))
    var rule: [String] = []

    @Option(help: ArgumentHelp("Load rules from a JSON file: an array of \"MATCH => TEMPLATE\" strings or {\"match\": ..., \"reply\": ...} objects; tried after --rule.", valueName: "file"))
    var rules: String?

    @Option(help: ArgumentHelp("Answer each datagram with the output of COMMAND (run by /bin/sh -c; payload on stdin; UDP_PEER_ADDR, UDP_PEER_PORT, UDP_LOCAL_PORT set).", valueName: "command"))
    var exec: String?

    @Option(help: "With --exec: at most this many commands at once; datagrams beyond are dropped and counted (exec-limit).")
    var execLimit: Int = 8

    @Option(help: ArgumentHelp("With --exec: kill a command (and what it started) after this long.", valueName: "duration"))
    var execTimeout: DurationArgument = DurationArgument(seconds: 5)

    @Option(help: ArgumentHelp("Append a checksum to every reply (see 'udp send --help').", valueName: "checksum"))
    var append: String?

    func validate(interactive: Bool) throws {
        guard (1...256).contains(execLimit) else { throw ValidationError("--exec-limit must be from 1 to 256") }
        guard execTimeout.seconds > 0 else { throw ValidationError("--exec-timeout must be more than 0") }
        if exec != nil && (!rule.isEmpty || rules != nil) { throw ValidationError("--exec and --rule/--rules cannot be used together") }
        if interactive && (exec != nil || !rule.isEmpty || rules != nil) { throw ValidationError("--interactive cannot be used with --exec, --rule or --rules") }
    }

    func configure(_ config: inout EchoServer.Configuration, encoding: TextEncoding, reply: String?) throws {
        config.append = try parseChecksum(append)
        if let exec {
            if reply != nil { throw CLIFailure.usage("--exec and --reply cannot be used together") }
            var settings = ExecSettings(command: exec)
            settings.limit = execLimit
            settings.timeout = execTimeout.duration
            config.exec = settings
        }
        do {
            var list = try ReplyRules(parsing: rule, encoding: encoding)
            if let rules {
                guard let data = FileManager.default.contents(atPath: rules) else { throw CLIFailure.usage("cannot read rules file '\(rules)'") }
                list.rules += try ReplyRules(json: Array(data), file: rules, encoding: encoding).rules
            }
            if !list.rules.isEmpty { config.rules = list }
        } catch let error as RuleError {
            throw CLIFailure.usage(error.description)
        }
    }
}
