import ArgumentParser
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import UDPKit
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

/// How message words and lines become bytes, and how received bytes are shown: what every payload option group
/// shares. Each command takes the group whose help fits it: `PayloadOptions` (it sends and shows),
/// `MessageOptions` (it only sends), `DisplayOptions` (it only shows).
protocol PayloadCoding {
    var hex: Bool { get }
    /// The --encoding given, if any (utf8 when none).
    var encodingName: String? { get }
    var escapes: Bool { get }
}

extension PayloadCoding {
    func textEncoding() throws -> TextEncoding {
        try TextEncoding(name: encodingName ?? "utf8")
    }

    /// The bytes of one line of stdin. UTF-8 text is encoded like a message; a line that is not UTF-8 (already in
    /// another encoding, or binary) is sent exactly as it is, never altered.
    func bytes(fromLine line: [UInt8]) throws -> [UInt8] {
        if let text = StandardInput.text(line) { return try bytes(from: text) }
        if hex { throw CLIFailure.data("standard input is not text; hex input must be ASCII") }
        return line
    }

    /// The bytes of a message typed on the command line.
    func bytes(from message: String) throws -> [UInt8] {
        if hex { return try Hex.parse(message) }
        if escapes { return try Escapes.bytes(from: message, encoding: try textEncoding()) }
        return try textEncoding().encode(message)
    }

    /// Refuses options that would be ignored for the messages sent: with --hex the bytes are the hex digits'
    /// values, so neither a text encoding nor backslash escapes take part.
    func checkMessageOptions() throws {
        guard hex else { return }
        if let encodingName {
            throw CLIFailure.usage(
                "--encoding \(encodingName) does not apply to --hex messages (hex gives the bytes themselves); drop one of them"
            )
        }
        if escapes {
            throw CLIFailure.usage(
                "-e does not apply to --hex messages (hex gives the bytes themselves); drop one of them")
        }
    }
}

/// For commands that send and show: message words are encoded (or hex), received payloads decoded (or dumped).
struct PayloadOptions: ParsableArguments, PayloadCoding {
    @Flag(help: "Messages are hex (spaces, colons, 0x prefixes allowed); received payloads are shown as a hex dump.")
    var hex = false

    @Option(
        name: .customLong("encoding"),
        help: ArgumentHelp(
            "Text encoding of messages and of what is shown: utf8 (the default), gb18030, gbk (gb2312), shift-jis, latin1.",
            valueName: "name"))
    var encodingName: String?

    @Flag(
        name: [.customShort("e"), .long],
        help: "Interpret backslash escapes in messages: \\n \\t \\r \\0 \\\\ \\xNN \\u{NNNN}.")
    var escapes = false
}

/// For commands that only send (send, broadcast).
struct MessageOptions: ParsableArguments, PayloadCoding {
    @Flag(help: "MESSAGE words and stdin lines are hex (spaces, colons, 0x prefixes allowed).")
    var hex = false

    @Option(
        name: .customLong("encoding"),
        help: ArgumentHelp(
            "Text encoding of the message: utf8 (the default), gb18030, gbk (gb2312), shift-jis, latin1.",
            valueName: "name"))
    var encodingName: String?

    @Flag(
        name: [.customShort("e"), .long],
        help: "Interpret backslash escapes in messages: \\n \\t \\r \\0 \\\\ \\xNN \\u{NNNN}.")
    var escapes = false
}

/// `MessageOptions` as plain values, for `OutgoingSettings`.
struct MessageSettings: PayloadCoding, Equatable, Sendable {
    var hex = false
    var encodingName: String?
    var escapes = false
}

extension MessageSettings {
    /// What the parsed options say.
    init(_ parsed: MessageOptions) {
        self.init(hex: parsed.hex, encodingName: parsed.encodingName, escapes: parsed.escapes)
    }
}

/// For commands that only show what they receive (listen, proxy --log).
struct DisplayOptions: ParsableArguments, PayloadCoding {
    @Flag(help: "Show each payload as a hex dump.")
    var hex = false

    @Option(
        name: .customLong("encoding"),
        help: ArgumentHelp(
            "Text encoding to decode payloads with: utf8 (the default), gb18030, gbk (gb2312), shift-jis, latin1.",
            valueName: "name"))
    var encodingName: String?

    var escapes: Bool { false }
}

/// Address family and local binding.
struct NetworkOptions: ParsableArguments {
    @Flag(name: .customShort("4"), help: "Use IPv4 only.")
    var ipv4 = false

    @Flag(name: .customShort("6"), help: "Use IPv6 only.")
    var ipv6 = false

    /// `NetworkSettings.family()` with these options.
    func family() throws -> UDPAddress.Family? {
        try NetworkSettings(self).family()
    }
}

/// `NetworkOptions` as plain values, for `SendSettings`.
struct NetworkSettings: Equatable, Sendable {
    var ipv4 = false
    var ipv6 = false

    /// The address family -4 or -6 asks for; nil for either.
    func family() throws -> UDPAddress.Family? {
        if ipv4 && ipv6 { throw CLIFailure.usage("-4 and -6 cannot be used together") }
        return ipv4 ? .ipv4 : ipv6 ? .ipv6 : nil
    }
}

extension NetworkSettings {
    /// What the parsed options say.
    init(_ parsed: NetworkOptions) {
        self.init(ipv4: parsed.ipv4, ipv6: parsed.ipv6)
    }
}

/// A parsed timeout or interval: "250ms", "2s", "500us", "1.5m". One rule for every command: a number needs a
/// unit (only 0 may go without), because a bare "5" read as seconds by one command and as milliseconds by another
/// is how people end up waiting 5,000 times longer than they meant.
struct DurationArgument: ExpressibleByArgument, Equatable, Sendable {
    var duration: Duration
    var seconds: Double

    /// The units a duration may carry, as the error message lists them.
    static let unitList = "us (or µs), ms, s, m: 100us, 250ms, 5s, 2m"

    init?(argument: String) {
        guard case .success(let seconds) = Self.parse(argument) else { return nil }
        self.init(seconds: seconds)
    }

    init(seconds: Double) {
        self.seconds = seconds
        self.duration = .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    /// Seconds, or why the text is not a duration (a phrase that follows "--option VALUE: ").
    static func parse(_ text: String) -> Result<Double, DurationProblem> {
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("s", 1), ("m", 60)]
        let trimmed = text.trimmingHorizontalWhitespace()
        guard !trimmed.isEmpty else {
            return .failure(DurationProblem("missing duration; give one with a unit: \(unitList)"))
        }
        // The number is the leading run of digits, sign and point; the rest is the unit.
        let unitStart =
            trimmed.firstIndex { !($0.isASCII && ($0.isNumber || $0 == "." || $0 == "-" || $0 == "+")) }
            ?? trimmed.endIndex
        let number = String(trimmed[..<unitStart])
        let unit = String(trimmed[unitStart...]).trimmingHorizontalWhitespace()
        guard let value = Double(number), value.isFinite else {
            return .failure(DurationProblem("not a duration; give a number with a unit: \(unitList)"))
        }
        var scale: Double?
        if !unit.isEmpty {
            guard let factor = units.first(where: { $0.0 == unit })?.1 else {
                return .failure(DurationProblem("unknown unit '\(unit)'; the units are \(unitList)"))
            }
            scale = factor
        }
        if value < 0 { return .failure(DurationProblem("a duration cannot be negative")) }
        guard let scale else {
            if value == 0 { return .success(0) }
            let n = Self.example(value)
            return .failure(DurationProblem("add a unit: \(n)s, \(n)ms or \(n)us (the units are us, ms, s, m)"))
        }
        guard value * scale <= 86_400 * 365 else { return .failure(DurationProblem("longer than a year")) }
        return .success(value * scale)
    }

    private static func example(_ value: Double) -> String {
        value == value.rounded() && value < 1e15 ? String(Int(value)) : String(value)
    }

    static var defaultCompletionKind: CompletionKind { .default }

    /// How a default shows in --help: "1s", "250ms".
    var defaultValueDescription: String { Self.format(seconds: seconds, separator: "") }

    /// "2s", "1.5s", "250ms", "1.5ms", "250us" (with `separator` " ": "250 us"); never "0 ms" for a short time.
    static func format(seconds: Double, separator: String = " ") -> String {
        func trimmed(_ value: Double) -> String {
            let rounded = (value * 1000).rounded() / 1000
            return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
        }
        if seconds == 0 { return "0\(separator)s" }
        if seconds >= 1 { return trimmed(seconds) + separator + "s" }
        if seconds >= 1e-3 { return trimmed(seconds * 1e3) + separator + "ms" }
        return trimmed(seconds * 1e6) + separator + "us"
    }
}

/// A rate such as 20 or 0.5 (per second), shown in --help as written ("20", not "20.0").
struct PerSecond: ExpressibleByArgument, Sendable {
    var value: Double

    init(_ value: Double) { self.value = value }

    init?(argument: String) {
        guard let value = Double(argument), value.isFinite else { return nil }
        self.value = value
    }

    var defaultValueDescription: String { String(cFormat: "%g", value) }
}

/// Why a value is not a duration.
struct DurationProblem: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Splits `HOST PORT rest...` or `HOST:PORT rest...` into an endpoint and the remaining words.
///
/// The endpoint is somewhere to send to, so port 0 ("any free port", which only means something when binding) is
/// refused. When `HOST:PORT` is followed by a number, the number is a message word, which is easy to mean otherwise:
/// a warning says so on stderr.
func parseTarget(_ words: [String], what: String = "destination") throws -> (UDPEndpoint, [String]) {
    guard let first = words.first else { throw CLIFailure.usage("missing \(what): give HOST PORT or HOST:PORT") }
    let endpoint: UDPEndpoint
    let rest: [String]
    if let single = try? UDPEndpoint.parse(first) {
        endpoint = single
        rest = Array(words.dropFirst())
        if case .ip = single.kind, let next = rest.first, !next.isEmpty, next.allSatisfy({ $0.isASCII && $0.isNumber })
        {
            Terminal.writeStderr(
                "udp: warning: '\(next)' after \(first) is part of the message, not a port (give HOST PORT or HOST:PORT, not both)\n"
            )
        }
    } else if words.count >= 2, !first.contains(":") || words[1].first.map({ $0.isNumber || $0 == "-" }) == true {
        // HOST PORT: check the host first, so the error names the word that is wrong.
        _ = try UDPEndpoint.parseHost(first)
        endpoint = try UDPEndpoint(host: first, port: words[1])
        rest = Array(words.dropFirst(2))
    } else if first.contains(":") {
        // Let the parser explain what is wrong with the single form.
        _ = try UDPEndpoint.parse(first)
        throw CLIFailure.usage("missing \(what)")
    } else {
        _ = try UDPEndpoint.parseHost(first)
        throw CLIFailure.usage("missing port after '\(first)': give HOST PORT or HOST:PORT")
    }
    if case .ip(_, 0) = endpoint.kind {
        throw CLIFailure.usage(
            "port 0 is not a destination (it means any free port when binding); give the port the \(what) uses")
    }
    return (endpoint, rest)
}

/// The local address options of a command that binds where it is told: `--from [HOST:]PORT`, the one name every
/// command uses, and the older `--port PORT` / `--bind HOST`, kept working but out of the help.
struct LocalAddress {
    var host: String?
    var port: Int?

    /// - Parameter what: how the command's help names the [HOST:]PORT form, for error messages.
    init(from: String?, port: Int?, bind: String?, what: String = "--from [HOST:]PORT") throws {
        self.host = bind
        self.port = port
        guard let from else { return }
        if port != nil || bind != nil { throw CLIFailure.usage("give the local address once: \(what)") }
        let endpoint = try UDPEndpoint.parse(from, defaultHost: .any)
        guard case .ip(let host, let number) = endpoint.kind else {
            throw CLIFailure.usage("\(what) is an IP address and port, not a Unix socket path")
        }
        self.port = number
        if case .name(let name) = host { self.host = name }
    }
}

/// Resolves an endpoint to one address (the first the resolver gives, after the family filter).
func resolveOne(_ endpoint: UDPEndpoint, family: UDPAddress.Family?) async throws -> UDPAddress {
    try await endpoint.resolve(family: family)[0]
}

/// Runs `services` in a `ServiceGroup` until they have all returned. SIGINT and SIGTERM shut them down gracefully,
/// the last one first (so list a web server after the engine it serves); a service that returns or throws by itself
/// shuts the others down gracefully too, and its error is rethrown. A second SIGINT or SIGTERM ends the process at
/// once, whatever a shutdown is still waiting for (`SignalWatch`).
func runServices(_ services: [any Service]) async throws {
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(
            services: services.map {
                .init(
                    service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigint, .sigterm],
            // The group only logs its own steps (at debug level); stderr belongs to the command.
            logger: Logger(label: "udp", factory: { _ in SwiftLogNoOpLogHandler() })
        ))
    // The group watches the signals itself once it runs; a signal that came before (while the command was
    // starting) is passed on here, so it is not missed.
    if SignalWatch.attach({ Task { await group.triggerGracefulShutdown() } }) {
        await group.triggerGracefulShutdown()
    }
    defer { SignalWatch.detach() }
    try await group.run()
}

/// Makes SwiftNIO's shared event loop group one thread rather than one per core, for a command that sends a little
/// and ends (send, request, broadcast): each loop is a thread with its own epoll set to start, which costs such a
/// command more than the loops could give it, and more the more cores the machine has. Called before the first
/// socket opens.
func useOneEventLoop() {
    NIOSingletons.groupLoopCountSuggestion = 1
}

/// Runs `body` until it returns or SIGINT/SIGTERM arrives; on a signal the body's task is cancelled and `body` is
/// expected to finish (print its summary) promptly. For commands that are not services: their work ends when
/// cancelled, with nothing to finish gracefully, and a `ServiceGroup` would only add to their start-up time (it
/// registers its signal sources before it starts anything).
func withSignalCancellation<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let task = Task { try await body() }
    if SignalWatch.attach({ task.cancel() }) { task.cancel() }
    defer { SignalWatch.detach() }
    return try await task.value
}

/// SIGINT and SIGTERM, watched from the first `runServices` or `withSignalCancellation` to the end of the process.
/// The first signal starts what is attached (a cancellation; for services, the `ServiceGroup` watches the signals
/// too) and bounds how long output may still take (`Terminal.noteSignal()`), even after the work ended (while the
/// last output is written), so a stalled stdout cannot keep the process alive; the second ends the process at
/// once, killed by that signal, so a graceful shutdown that hangs (a stalled client, say) can always be cut short.
/// The handlers run on a dispatch queue rather than in a task: the task threads may all be blocked writing to a
/// stalled pipe.
enum SignalWatch {
    private struct State {
        var received = 0
        /// What the first signal starts besides: the graceful shutdown of the `runServices` running now, or the
        /// cancellation of the `withSignalCancellation` body.
        var shutdown: (@Sendable () -> Void)?
    }

    private static let state = NIOLockedValueBox(State())
    private static let lock = NIOLock()
    /// Read and written only with `lock` held; the sources live as long as the process.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    /// Installs the watch (once) and makes `shutdown` what the first signal starts; returns true when a signal
    /// already came (`shutdown` is then not called: the caller starts it).
    static func attach(_ shutdown: @escaping @Sendable () -> Void) -> Bool {
        install()
        return state.withLockedValue { state in
            state.shutdown = shutdown
            return state.received > 0
        }
    }

    /// Forgets the shutdown set by `attach`.
    static func detach() {
        state.withLockedValue { $0.shutdown = nil }
    }

    private static func install() {
        lock.withLock {
            guard sources.isEmpty else { return }
            signal(SIGPIPE, SIG_IGN)
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { received(sig) }
                source.resume()
                sources.append(source)
            }
        }
    }

    private static func received(_ sig: Int32) {
        let (count, shutdown) = state.withLockedValue { state in
            state.received += 1
            return (state.received, state.shutdown)
        }
        guard count > 1 else {
            Terminal.noteSignal()
            shutdown?()
            return
        }
        let name = sig == SIGINT ? "SIGINT" : "SIGTERM"
        // Stderr may be the stalled pipe: the line is given up after 50 ms rather than waited for.
        let deadline = MonotonicClock.nanoseconds + 50_000_000
        Terminal.writeAll(
            STDERR_FILENO, Array("udp: \(name) again: stopping now, without finishing the shutdown\n".utf8),
            deadline: { deadline })
        // Killed by the signal itself, as without a handler, so that the parent (a shell running a loop, say) sees
        // why it ended.
        signal(sig, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, sig)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        raise(sig)
        _exit(128 + sig)
    }
}

/// Runs `body`, then closes `socket` whether `body` returned or threw (so temporary Unix socket files go too).
func closing<T: Sendable>(_ socket: UDPSocket, _ body: () async throws -> T) async throws -> T {
    do {
        let result = try await body()
        await socket.close()
        return result
    } catch {
        await socket.close()
        throw error
    }
}
