import ArgumentParser
import Dispatch
import NIOConcurrencyHelpers
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

/// Payloads that change and check themselves: `--template` and `--append`, for `send`, `broadcast` and `request`.
struct ShapingOptions: ParsableArguments {
    @Flag(
        help:
            "The message is a template: {counter} (1, 2, 3... per datagram), {time}, {unixtime}, {random:N} (N random bytes as hex), {hex:...} (those bytes); {{ and }} are literal braces."
    )
    var template = false

    @Option(
        help: ArgumentHelp(
            "Append a checksum to every datagram: sum8, xor8, crc8, crc16-modbus (low byte first), crc16-ccitt, crc16-xmodem, crc32 (big-endian); add :le or :be to choose the byte order.",
            valueName: "checksum"))
    var append: String?

    /// `ShapingSettings.shaper(for:encoding:hex:)` with these options.
    func shaper(for message: [UInt8], encoding: TextEncoding, hex: Bool) throws -> Shaper {
        try ShapingSettings(self).shaper(for: message, encoding: encoding, hex: hex)
    }
}

/// `ShapingOptions` as plain values, for `OutgoingSettings`.
struct ShapingSettings: Equatable, Sendable {
    var template = false
    var append: String?

    /// Turns the message bytes (already encoded with `encoding`) into what makes each datagram.
    func shaper(for message: [UInt8], encoding: TextEncoding, hex: Bool) throws -> Shaper {
        let checksum = try parseChecksum(append)
        guard template else { return Shaper(fixed: message, template: nil, checksum: checksum) }
        if hex {
            throw CLIFailure.usage(
                "--template applies to text messages; write bytes as {hex:...} inside the template instead of --hex")
        }
        guard let text = encoding.decode(message).string else {
            throw CLIFailure.data("the template is not valid \(encoding.rawValue) text")
        }
        return Shaper(fixed: message, template: try SendTemplate(text, encoding: encoding), checksum: checksum)
    }
}

extension ShapingSettings {
    /// What the parsed options say.
    init(_ parsed: ShapingOptions) {
        self.init(template: parsed.template, append: parsed.append)
    }
}

/// Makes the bytes of the n-th datagram from a message: rendered when it is a template, then the checksum.
struct Shaper: Sendable {
    var fixed: [UInt8]
    var template: SendTemplate?
    var checksum: Checksum?

    /// The datagram numbered `counter` (from 1).
    func bytes(counter: Int) -> [UInt8] {
        let body = template?.render(counter: counter) ?? fixed
        return checksum?.appended(to: body) ?? body
    }

    /// Whether every datagram is the same.
    var isConstant: Bool { template?.isConstant ?? true }
}

/// Parses `--append`'s value; nil stays nil. A bad name is a usage error that lists the names.
func parseChecksum(_ text: String?) throws -> Checksum? {
    guard let text else { return nil }
    do {
        return try Checksum(parsing: text)
    } catch {
        throw CLIFailure.usage(error.description)
    }
}

/// Set by SIGINT or SIGTERM, for loops that must finish their own way (print a count) rather than be cancelled.
final class StopSignal {
    private let stopped = NIOLockedValueBox(false)
    private var sources: [any DispatchSourceSignal] = []

    init() {
        var list: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [stopped] in stopped.withLockedValue { $0 = true } }
            source.resume()
            list.append(source)
        }
        sources = list
    }

    var isSet: Bool { stopped.withLockedValue { $0 } }

    /// Sleeps `duration` in short slices, returning early when the signal came.
    func sleep(for duration: Duration) async {
        let end = ContinuousClock.now + duration
        while !isSet {
            let left = end - ContinuousClock.now
            if left <= .zero { return }
            try? await Task.sleep(for: min(left, .milliseconds(50)))
        }
    }

    func cancel() { sources.forEach { $0.cancel() } }
}
