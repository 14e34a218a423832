#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import UDPKit

/// How message arguments become bytes, and how received bytes are shown.
struct PayloadOptions: ParsableArguments {
    @Flag(help: "Messages are hex (spaces, colons, 0x prefixes allowed); received payloads are shown as a hex dump.")
    var hex = false

    @Option(help: ArgumentHelp("Text encoding: utf8, gb18030, gbk (gb2312), shift-jis, latin1.", valueName: "name"))
    var encoding: String = "utf8"

    @Flag(name: [.customShort("e"), .long], help: "Interpret backslash escapes in messages: \\n \\t \\r \\0 \\\\ \\xNN \\u{NNNN}.")
    var escapes = false

    func textEncoding() throws -> TextEncoding {
        try TextEncoding(name: encoding)
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
}

/// Address family and local binding.
struct NetworkOptions: ParsableArguments {
    @Flag(name: .customShort("4"), help: "Use IPv4 only.")
    var ipv4 = false

    @Flag(name: .customShort("6"), help: "Use IPv6 only.")
    var ipv6 = false

    func family() throws -> UDPAddress.Family? {
        if ipv4 && ipv6 { throw CLIFailure.usage("-4 and -6 cannot be used together") }
        return ipv4 ? .ipv4 : ipv6 ? .ipv6 : nil
    }
}

/// A parsed timeout or interval: "1", "1.5", "250ms", "2s", "500us".
struct DurationArgument: ExpressibleByArgument, Sendable {
    var duration: Duration
    var seconds: Double

    init?(argument: String) {
        guard let seconds = Self.parse(argument) else { return nil }
        self.seconds = seconds
        self.duration = .nanoseconds(Int64(seconds * 1e9))
    }

    init(seconds: Double) {
        self.seconds = seconds
        self.duration = .nanoseconds(Int64(seconds * 1e9))
    }

    static func parse(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("s", 1), ("m", 60)]
        var number = text
        var scale = 1.0
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            number = String(text.dropLast(suffix.count))
            scale = factor
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0, value * scale <= 86_400 * 365 else { return nil }
        return value * scale
    }

    static var defaultCompletionKind: CompletionKind { .default }

    /// How a default shows in --help: "1s", "250ms".
    var defaultValueDescription: String {
        if seconds >= 1 || seconds == 0 { return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s" }
        let millis = seconds * 1000
        return millis == millis.rounded() ? "\(Int(millis))ms" : "\(Int((seconds * 1e6).rounded()))us"
    }
}

/// Splits `HOST PORT rest...` or `HOST:PORT rest...` into an endpoint and the remaining words.
func parseTarget(_ words: [String], what: String = "destination") throws -> (UDPEndpoint, [String]) {
    guard let first = words.first else { throw CLIFailure.usage("missing \(what): give HOST PORT or HOST:PORT") }
    if let endpoint = try? UDPEndpoint.parse(first) {
        return (endpoint, Array(words.dropFirst()))
    }
    if words.count >= 2, words[1].allSatisfy(\.isNumber) {
        return (try UDPEndpoint(host: first, port: words[1]), Array(words.dropFirst(2)))
    }
    if words.count >= 2, !words[1].isEmpty, words[1].first!.isNumber || words[1].hasPrefix("-") {
        throw UDPError.invalidPort(words[1])
    }
    // Let the parser explain what is wrong with the single form.
    _ = try UDPEndpoint.parse(first)
    throw CLIFailure.usage("missing \(what)")
}

/// Resolves an endpoint to one address (the first the resolver gives, after the family filter).
func resolveOne(_ endpoint: UDPEndpoint, family: UDPAddress.Family?) async throws -> UDPAddress {
    try await endpoint.resolve(family: family)[0]
}

/// Runs `body` until it returns or SIGINT/SIGTERM arrives; on a signal the body's task is cancelled and
/// `body` is expected to finish (print its summary) promptly.
func withSignalCancellation<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    signal(SIGPIPE, SIG_IGN)
    let task = Task { try await body() }
    SignalWatch.install()
    SignalWatch.current.withLockedValue { $0 = { task.cancel() } }
    defer { SignalWatch.current.withLockedValue { $0 = nil } }
    return try await task.value
}

/// SIGINT and SIGTERM, watched from the first `withSignalCancellation` to the end of the process: a signal cancels
/// the running body, and, even after the body ended (while the last output is written), bounds how long output may
/// still take (`Terminal.noteSignal()`), so a stalled stdout cannot keep the process alive.
enum SignalWatch {
    /// What a signal does besides bounding output: cancel the body running now, if any.
    static let current = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)
    private static let lock = NIOLock()
    /// Read and written only with `lock` held; the sources live as long as the process.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func install() {
        lock.withLock {
            guard sources.isEmpty else { return }
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler {
                    Terminal.noteSignal()
                    current.withLockedValue { $0 }?()
                }
                source.resume()
                sources.append(source)
            }
        }
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
