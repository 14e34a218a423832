import ArgumentParser
import Foundation
import NIOCore
import UDPKit

struct Listen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every datagram that arrives: time, sender, length, and the text or a hex dump.",
        discussion: """
        Replaces the seed receiver (bind + recvfrom(1024)), without its silent truncation: datagrams up to 65,535 bytes arrive whole, and with --max-size a cut datagram is always marked. Text is shown escaped, so a datagram cannot drive your terminal. On exit (Ctrl-C, --count, --timeout) a summary goes to stderr.

        Examples:
          udp listen 9999                          any address (IPv4 and IPv6), port 9999
          udp listen 127.0.0.1:9999 --hex          hex dump of each datagram
          udp listen 9999 --json | jq .text        one JSON object per datagram
          udp listen 9999 --raw > capture.bin      payload bytes only, for pipes
          udp listen 9999 --count 1 --timeout 5s   wait for one datagram, at most 5 s
          udp listen 9999 --encoding gb18030       decode Chinese text sent as GBK/GB18030
          udp listen unix:/tmp/app.sock            a Unix-domain datagram socket
        """
    )

    @Argument(help: ArgumentHelp("[HOST:]PORT to bind, or a Unix socket path.", valueName: "address"))
    var address: String

    @Flag(help: "One JSON object per datagram: time, from, port, length, truncated, payload (base64), text.")
    var json = false

    @Flag(help: "Write only the payload bytes, nothing else (for pipes).")
    var raw = false

    @Option(help: "Stop after this many datagrams.")
    var count: Int?

    @Option(help: ArgumentHelp("Stop when no datagram arrives for this long (exit 75 if none arrived at all).", valueName: "duration"))
    var timeout: DurationArgument?

    @Option(help: "Receive at most this many bytes per datagram; longer ones are cut and marked truncated.")
    var maxSize: Int = 65_535

    @Flag(help: "Let other sockets bind the same port too (SO_REUSEADDR and SO_REUSEPORT).")
    var reuse = false

    @Flag(help: "Print the bound address, with the port the system chose, on stderr (always shown on a terminal).")
    var showPort = false

    @Flag(name: .shortAndLong, help: "No summary on exit.")
    var quiet = false

    @OptionGroup var payload: PayloadOptions
    @OptionGroup var network: NetworkOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        guard (1...1_048_576).contains(maxSize) else { throw ValidationError("--max-size must be from 1 to 1048576") }
        if [json, raw, payload.hex].filter({ $0 }).count > 1 { throw ValidationError("choose one of --json, --raw and --hex") }
    }

    func run() async throws {
        let endpoint = try UDPEndpoint.parse(address, defaultHost: .any)
        let encoding = try payload.textEncoding()
        var options = UDPSocketOptions()
        options.maximumDatagramSize = maxSize
        options.reuseAddress = reuse
        options.reusePort = reuse
        let socket = try await UDPSocket.bind(to: endpoint, family: try network.family(), options: options)
        if showPort || (!quiet && Terminal.stderrIsTTY) {
            Terminal.writeStderr("listening on \(socket.localAddress)\n")
        }
        let formatter = DatagramFormatter(style: json ? .json : payload.hex ? .hex : .text, encoding: encoding)
        let limit = count
        let idle = timeout?.duration
        let raw = self.raw
        let summary = try await closing(socket) { try await withSignalCancellation {
            var summary = TrafficSummary()
            var interrupted = false
            do {
                receiving: while true {
                    let batch = try await socket.receiveBatch(timeout: idle)
                    if batch.isEmpty { break }
                    for datagram in batch {
                        summary.record(datagram)
                        if raw {
                            Terminal.writeStdout(bytes: Array(datagram.payload.readableBytesView))
                        } else {
                            Terminal.writeStdout(formatter.render(datagram))
                        }
                        if let limit, summary.datagrams >= limit { break receiving }
                    }
                    Terminal.flushStdout()
                }
            } catch is CancellationError {
                interrupted = true
            } catch UDPError.closed {
            }
            summary.interrupted = interrupted
            return summary
        } }
        Terminal.flushStdout()
        if !quiet { Terminal.writeStderr(summary.line + "\n") }
        if summary.datagrams == 0, !summary.interrupted, let timeout {
            throw UDPError.timedOut(seconds: timeout.seconds)
        }
    }
}

/// Counts what a listener saw, for the summary line printed on exit.
struct TrafficSummary: Sendable {
    var datagrams = 0
    var bytes = 0
    var truncated = 0
    var senders = Set<UDPAddress>()
    var interrupted = false

    mutating func record(_ datagram: Datagram) {
        datagrams += 1
        bytes += datagram.payload.readableBytes
        if datagram.truncated { truncated += 1 }
        if senders.count < 100_000 { senders.insert(datagram.sender) }
    }

    var line: String {
        var text = "\(datagrams) datagram\(datagrams == 1 ? "" : "s"), \(bytes) byte\(bytes == 1 ? "" : "s") from \(senders.count) sender\(senders.count == 1 ? "" : "s")"
        if truncated > 0 { text += ", \(truncated) truncated" }
        return text
    }
}
