import ArgumentParser
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
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

struct PipeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipe",
        abstract: "netcat's -u, binary-safe: stdin goes out as datagrams, the payloads that come back go to stdout.",
        discussion: """
            Replaces nc -u HOST PORT and socat - UDP:HOST:PORT. Each read of standard input (up to --size bytes, default 1,472: one Ethernet frame's worth) is sent as one datagram; the payload of every datagram that comes back is written to standard output as it is, in order, with nothing added. After standard input ends, replies are still received for --linger (default 1 s). Truncation, refusals and other errors go to stderr, never into the data. On a terminal, control characters are shown escaped.

            With --listen it is nc -u -l: it receives from anyone, writes the payloads to stdout, and sends standard input to the last sender (--first: to the first one), waiting for a sender before sending anything. It runs until interrupted, or until nothing arrives for --timeout (exit 75 if nothing arrived at all, as udp listen --timeout).

            Examples:
              printf 'ping' | udp pipe 127.0.0.1 9999                one datagram, prints the reply
              udp pipe 127.0.0.1 9999 < request.bin > reply.bin      binary in, binary out
              printf '01 03 00 00 00 01' | xxd -r -p | udp pipe 127.0.0.1 502 --append crc16-modbus | xxd
              udp pipe --listen 9999 > received.bin                  nc -u -l 9999
              udp pipe --listen 127.0.0.1:9999 --first < greeting.txt
            """
    )

    @Argument(
        help: ArgumentHelp(
            "HOST PORT or HOST:PORT to talk to; with --listen, the [HOST:]PORT to bind.", valueName: "address"))
    var words: [String] = []

    @Flag(help: "Bind and receive from anyone (nc -u -l); stdin goes to the last sender.")
    var listen = false

    @Flag(help: "With --listen: send stdin to the first sender, not the last.")
    var first = false

    @Option(help: "Read stdin in pieces of at most this many bytes, one datagram each (1-65507).")
    var size: Int = 1472

    @Option(help: ArgumentHelp("After stdin ends, keep receiving this long (0: stop at once).", valueName: "duration"))
    var linger: DurationArgument = DurationArgument(seconds: 1)

    @Option(help: ArgumentHelp("With --listen: stop when nothing arrives for this long.", valueName: "duration"))
    var timeout: DurationArgument?

    @Option(
        help: ArgumentHelp("Append a checksum to every datagram sent (see 'udp send --help').", valueName: "checksum"))
    var append: String?

    @Option(help: ArgumentHelp("Local address to send from: [HOST:]PORT.", valueName: "address"))
    var from: String?

    @Flag(help: "Print the local address on stderr.")
    var showPort = false

    @OptionGroup var network: NetworkOptions

    func validate() throws {
        guard (1...65_507).contains(size) else { throw ValidationError("--size must be from 1 to 65507") }
        if first && !listen { throw ValidationError("--first applies to --listen") }
        if timeout != nil && !listen {
            throw ValidationError("--timeout applies to --listen (use --linger for how long to wait after stdin ends)")
        }
        if let timeout, timeout.seconds <= 0 { throw ValidationError("--timeout must be more than 0") }
        if listen && from != nil {
            throw ValidationError("--from applies to HOST PORT; with --listen, give the address to bind")
        }
    }

    func run() async throws {
        let checksum = try parseChecksum(append)
        let family = try network.family()
        var options = UDPSocketOptions()
        options.maximumDatagramSize = 65_535
        let socket: UDPSocket
        var destination: UDPAddress?
        if listen {
            guard words.count == 1 else { throw CLIFailure.usage("--listen takes one address: [HOST:]PORT") }
            options.receiveBufferSize = 1 << 20
            socket = try await UDPSocket.bind(
                to: try UDPEndpoint.parse(words[0], defaultHost: .any), family: family, options: options)
            if showPort || Terminal.stderrIsTTY { Terminal.writeStderr("listening on \(socket.localAddress)\n") }
        } else {
            let (endpoint, rest) = try parseTarget(words)
            guard rest.isEmpty else {
                throw CLIFailure.usage(
                    "udp pipe sends standard input; unexpected '\(rest[0])' (use udp send for messages)")
            }
            let peer = try await resolveOne(endpoint, family: family)
            var local: UDPAddress?
            if let from {
                local = try await resolveOne(
                    try UDPEndpoint.parse(from, defaultHost: .any), family: peer.family == .unix ? nil : peer.family)
            }
            socket = try await UDPSocket.connect(to: peer, from: local, options: options)
            destination = peer
            if showPort { Terminal.writeStderr("local address \(socket.localAddress)\n") }
        }
        let session = PipeSession(
            socket: socket, destination: destination, first: first, checksum: checksum, size: size)
        let linger = listen ? nil : self.linger.duration
        let idle = timeout?.duration
        try await closing(socket) {
            try await withSignalCancellation {
                do {
                    try await session.run(linger: linger, idle: idle)
                } catch is CancellationError {}
            }
        }
        Terminal.flushStdout()
        if let error = session.failure {
            // Already reported on stderr when it happened: only the exit status is left to give.
            exitProcess(CLIFailure.classify(error, command: Self.self).1)
        }
    }
}

/// One `udp pipe` run: a task receiving to stdout, and stdin sent as datagrams.
final class PipeSession: Sendable {
    let socket: UDPSocket
    let first: Bool
    let checksum: Checksum?
    let size: Int
    /// Where stdin goes: the peer, or (listening) the sender chosen so far.
    private let peer: NIOLockedValueBox<UDPAddress?>
    private let connected: Bool
    private let errors = NIOLockedValueBox<(any Error)?>(nil)
    private let refusedShown = NIOLockedValueBox(false)

    init(socket: UDPSocket, destination: UDPAddress?, first: Bool, checksum: Checksum?, size: Int) {
        self.socket = socket
        self.first = first
        self.checksum = checksum
        self.size = size
        self.connected = destination != nil
        self.peer = NIOLockedValueBox(destination)
    }

    /// An error that should decide the exit status.
    var failure: (any Error)? { errors.withLockedValue { $0 } }

    /// Receives until `idle` passes without a datagram (listening), or until `linger` after stdin ends (talking to a
    /// peer); cancelled by a signal.
    func run(linger: Duration?, idle: Duration?) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.receive(idle: idle) }
            group.addTask {
                try await self.sendStandardInput()
                guard let linger else {
                    try await Task.sleep(for: .seconds(86_400 * 365))
                    return
                }
                try await Task.sleep(for: linger)
            }
            // Whichever ends first (linger after stdin, or the idle timeout) ends the run.
            _ = try await group.next()
            group.cancelAll()
        }
    }

    private func receive(idle: Duration?) async throws {
        while true {
            let batch: [Datagram]
            do {
                batch = try await socket.receiveBatch(timeout: idle)
            } catch UDPError.connectionRefused(let who) {
                note(refused: who)
                continue
            } catch UDPError.closed {
                return
            }
            if batch.isEmpty {
                // Listening, and nobody ever came: as for udp listen --timeout, that is a timeout, not a success.
                if !connected, let idle, peer.withLockedValue({ $0 == nil }) {
                    let seconds = Double(idle.components.seconds) + Double(idle.components.attoseconds) / 1e18
                    Terminal.writeStderr(
                        "udp: no datagram arrived within \(DurationArgument.format(seconds: seconds))\n")
                    errors.withLockedValue { $0 = $0 ?? UDPError.timedOut(seconds: seconds) }
                }
                return
            }
            for datagram in batch {
                if !connected {
                    peer.withLockedValue { if $0 == nil || !first { $0 = datagram.sender } }
                }
                if datagram.truncated {
                    Terminal.writeStderr(
                        "udp: a datagram from \(datagram.sender) was cut to \(datagram.payload.readableBytes) bytes\n")
                }
                if Terminal.stdoutIsTTY {
                    Terminal.writeStdout(
                        TerminalText.escapeKeepingLines(String(decoding: datagram.bytes, as: UTF8.self)))
                } else {
                    Terminal.writeStdout(bytes: datagram.bytes)
                }
            }
            Terminal.flushStdout()
        }
    }

    private func sendStandardInput() async throws {
        let reader = ChunkReader(size: size)
        for await chunk in reader.chunks {
            reader.consumed()
            var target = peer.withLockedValue { $0 }
            while target == nil {
                // Listening: nothing to send to until someone has sent something.
                try await Task.sleep(for: .milliseconds(20))
                target = peer.withLockedValue { $0 }
            }
            let bytes = checksum?.appended(to: chunk) ?? chunk
            do {
                if connected {
                    try await socket.send(ByteBuffer(bytes: bytes))
                } else {
                    try await socket.send(ByteBuffer(bytes: bytes), to: target!)
                }
            } catch UDPError.connectionRefused(let who) {
                note(refused: who)
            } catch let error as UDPError {
                if case .closed = error { return }
                Terminal.writeStderr("udp: \(error)\n")
                errors.withLockedValue { $0 = $0 ?? error }
            }
        }
    }

    private func note(refused who: String) {
        let first = refusedShown.withLockedValue { shown in
            defer { shown = true }
            return !shown
        }
        if first { Terminal.writeStderr("udp: \(UDPError.connectionRefused(who))\n") }
        errors.withLockedValue { $0 = $0 ?? UDPError.connectionRefused(who) }
    }
}

/// Standard input in pieces of at most `size` bytes (what one read returns), read on a thread of its own. The
/// thread stays at most a few pieces ahead of the sender, so a large file never sits in memory whole.
final class ChunkReader: Sendable {
    let chunks: AsyncStream<[UInt8]>
    // Starts at 0 and is raised to 8 below: libdispatch refuses to free a semaphore whose count is below its
    // initial value, which a reader that stopped early would leave.
    private let room = DispatchSemaphore(value: 0)

    init(size: Int) {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .unbounded)
        chunks = stream
        let room = self.room
        for _ in 0..<8 { room.signal() }
        DetachedThread.start {
            var buffer = [UInt8](repeating: 0, count: size)
            while true {
                room.wait()
                let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, size) }
                if n < 0 && errno == EINTR {
                    room.signal()
                    continue
                }
                if n < 0 && errno == EAGAIN {
                    var poller = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
                    _ = poll(&poller, 1, -1)
                    room.signal()
                    continue
                }
                if n < 0 {
                    Terminal.writeStderr("udp: reading standard input failed: \(String(cString: strerror(errno)))\n")
                    break
                }
                if n == 0 { break }
                continuation.yield(Array(buffer[0..<n]))
            }
            continuation.finish()
        }
    }

    /// Lets the reader read one more piece.
    func consumed() { room.signal() }
}
