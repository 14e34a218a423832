import ArgumentParser
import Foundation
import NIOCore
import UDPKit

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send datagrams: the message words as one datagram, or one datagram per line of stdin.",
        discussion: """
        Replaces the seed sender (socket + sendto). With no MESSAGE, each line of standard input (without its newline) is sent as one datagram.

        Examples:
          udp send 127.0.0.1 9999 hello world        one datagram: "hello world"
          udp send [::1]:9999 --each Tom Jerry Spike three datagrams
          udp send localhost 9999 --hex '48 65 6c 6c 6f 0a'
          udp send 127.0.0.1 2425 -e '1:100:will:will-pc:32:hi\\x00'
          printf 'a\\nb\\n' | udp send 127.0.0.1 9999  two datagrams
          udp send 127.0.0.1 9999 --file packet.bin --count 10 --interval 100ms
          udp send unix:/tmp/app.sock ping
        """
    )

    @Argument(help: ArgumentHelp("HOST PORT or HOST:PORT, then the message words.", valueName: "target-and-message"))
    var words: [String] = []

    @Flag(help: "Send each MESSAGE word as its own datagram.")
    var each = false

    @Option(help: ArgumentHelp("Send the whole file as one datagram ('-' for stdin).", valueName: "path"))
    var file: String?

    @Option(help: "Send each datagram this many times.")
    var count: Int = 1

    @Option(help: ArgumentHelp("Pause between datagrams, e.g. 100ms, 1s.", valueName: "duration"))
    var interval: DurationArgument?

    @Option(help: ArgumentHelp("Local address to send from: [HOST:]PORT.", valueName: "address"))
    var from: String?

    @Flag(help: "Print the local address, with the port the system chose, on stderr.")
    var showPort = false

    @Flag(help: "Allow sending to a broadcast address (SO_BROADCAST).")
    var broadcast = false

    @Option(help: "IP time-to-live / hop limit (1-255).")
    var ttl: Int?

    @Flag(name: .shortAndLong, help: "Say nothing on stderr.")
    var quiet = false

    @OptionGroup var payload: PayloadOptions
    @OptionGroup var network: NetworkOptions

    func validate() throws {
        guard (1...1_000_000_000).contains(count) else { throw ValidationError("--count must be from 1 to 1000000000") }
        if file != nil && each { throw ValidationError("--file and --each cannot be used together") }
        if let ttl, !(1...255).contains(ttl) { throw ValidationError("--ttl must be from 1 to 255") }
    }

    func run() async throws {
        let (endpoint, message) = try parseTarget(words)
        if file != nil && !message.isEmpty { throw CLIFailure.usage("give either MESSAGE words or --file, not both") }
        let family = try network.family()
        _ = try payload.textEncoding()
        let destination = try await resolveOne(endpoint, family: family)

        var options = UDPSocketOptions()
        options.broadcast = broadcast || destination.isLimitedBroadcast
        options.timeToLive = ttl
        let local: UDPAddress?
        if let from {
            local = try await resolveOne(try UDPEndpoint.parse(from, defaultHost: .any), family: destination.family == .unix ? nil : destination.family)
        } else {
            local = nil
        }
        // Check every message before sending anything, so bad input sends nothing.
        var datagrams: [[UInt8]] = []
        if let file {
            datagrams.append(try readFile(file))
        } else if each {
            datagrams = try message.map { try payload.bytes(from: $0) }
        } else if !message.isEmpty {
            datagrams = [try payload.bytes(from: message.joined(separator: " "))]
        }
        for datagram in datagrams { try checkSize(datagram, destination) }

        let socket = try await UDPSocket.client(for: destination, from: local, options: options)
        if showPort { Terminal.writeStderr("local address \(socket.localAddress)\n") }
        let pause = interval?.duration
        var sent = 0
        var bytes = 0
        func deliver(_ datagram: [UInt8]) async throws {
            let buffer = ByteBuffer(bytes: datagram)
            for _ in 0..<count {
                if sent > 0, let pause { try await Task.sleep(for: pause) }
                try await socket.send(buffer, to: destination)
                sent += 1
                bytes += datagram.count
            }
        }
        try await closing(socket) {
            if file != nil || !message.isEmpty {
                for datagram in datagrams { try await deliver(datagram) }
            } else {
                for await line in StandardInput.lines() {
                    try Task.checkCancellation()
                    let datagram = try payload.bytes(fromLine: line)
                    try checkSize(datagram, destination)
                    try await deliver(datagram)
                }
            }
        }
        if !quiet && Terminal.stderrIsTTY {
            Terminal.writeStderr("sent \(sent) datagram\(sent == 1 ? "" : "s") (\(bytes) bytes) to \(destination)\n")
        }
    }

    private func checkSize(_ datagram: [UInt8], _ destination: UDPAddress) throws {
        if let limit = destination.maximumPayload, datagram.count > limit {
            throw UDPError.messageTooLarge(size: datagram.count, limit: limit)
        }
    }

    private func readFile(_ path: String) throws -> [UInt8] {
        if path == "-" { return Array(FileHandle.standardInput.readDataToEndOfFile()) }
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                throw CLIFailure.data(isDirectory.boolValue ? "cannot send '\(path)': it is a directory" : "cannot read '\(path)': permission denied")
            }
            throw CLIFailure.data("cannot read '\(path)': no such file")
        }
        return Array(data)
    }
}
