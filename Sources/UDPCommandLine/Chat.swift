import ArgumentParser
import NIOConcurrencyHelpers
import NIOCore
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Two-way chat: lines you type go to the peer, the peer's lines appear as they arrive.",
        discussion: """
            Replaces the classic Python two-thread chat (a receive thread and a send thread). Give the peer, or only --from PORT to wait for the first message and answer whoever sent it (the Python chat's server side). Messages are plain text lines, so such Python peers work unchanged (use --encoding gb18030 or gbk for their gb2312). On a terminal, an incoming message never garbles the line being typed. /quit or Ctrl-D ends the chat; piped input is sent line by line and the chat ends at its end (after --linger).

            Examples:
              udp chat 127.0.0.1 4567 --from 4568
              udp chat --from 4567             wait for someone to write first
              udp chat 127.0.0.1 4567 --encoding gb18030 --nick will
            """
    )

    @Argument(
        help: ArgumentHelp(
            "PEER_HOST PEER_PORT or HOST:PORT; omit to learn the peer from the first message.", valueName: "peer"))
    var words: [String] = []

    @Option(
        help: ArgumentHelp(
            "Local address to chat from: [HOST:]PORT (default: any free port when a peer is given).",
            valueName: "address"))
    var from: String?

    // The older names of --from's two halves.
    @Option(name: .customLong("port"), parsing: .unconditional, help: .hidden)
    var portOption: Int?

    @Option(name: .customLong("bind"), help: .hidden)
    var bindOption: String?

    var port: Int? { (try? LocalAddress(from: from, port: portOption, bind: bindOption))?.port }
    var bind: String? { (try? LocalAddress(from: from, port: portOption, bind: bindOption))?.host }

    @Option(help: "Prefix each message you send with 'NICK: '.")
    var nick: String?

    @Option(
        help: ArgumentHelp("At end of piped input, keep showing incoming messages this long.", valueName: "duration"))
    var linger: DurationArgument = DurationArgument(seconds: 0)

    @OptionGroup var payload: PayloadOptions
    @OptionGroup var network: NetworkOptions

    func validate() throws {
        if let portOption, !(0...65_535).contains(portOption) {
            throw ValidationError("--port must be from 0 to 65535")
        }
        _ = try LocalAddress(from: from, port: portOption, bind: bindOption)
        if words.isEmpty && port == nil {
            throw ValidationError("give the peer's address, or --from PORT to wait for one")
        }
        if nick != nil && payload.hex { throw ValidationError("--nick and --hex cannot be used together") }
    }

    func run() async throws {
        let encoding = try payload.textEncoding()
        let family = try network.family()
        var peer: UDPAddress?
        if !words.isEmpty {
            let (endpoint, extra) = try parseTarget(words, what: "peer address")
            guard extra.isEmpty else {
                throw CLIFailure.usage("unexpected argument '\(extra[0])': type messages on standard input")
            }
            peer = try await resolveOne(endpoint, family: family)
        }
        let host = bind ?? (peer?.family == .ipv6 ? "::" : peer == nil ? "*" : "0.0.0.0")
        let local = try UDPEndpoint.parse(
            host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port ?? 0)" : "\(host):\(port ?? 0)")
        let socket = try await UDPSocket.bind(to: local, family: family)
        let known = NIOLockedValueBox(peer)
        let console = Console(prompt: "> ")
        defer { console.close() }
        if Terminal.stdinIsTTY {
            console.show(
                peer.map { "chatting with \($0) from \(socket.localAddress); /quit or Ctrl-D to end" }
                    ?? "waiting on \(socket.localAddress) for someone to write; /quit or Ctrl-D to end")
        }
        let payload = self.payload
        let hex = payload.hex
        let prefix = try nick.map { try payload.bytes(from: $0 + ": ") } ?? []
        let linger = self.linger.duration
        try await closing(socket) {
            try await withSignalCancellation {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await datagram in socket.datagrams {
                            let learned = known.withLockedValue { current -> Bool in
                                guard current == nil else { return false }
                                current = datagram.sender
                                return true
                            }
                            if learned { console.show("peer is \(datagram.sender)") }
                            console.show("\(datagram.sender): " + Self.text(datagram, encoding: encoding, hex: hex))
                        }
                    }
                    group.addTask {
                        for await line in console.lines {
                            if line == Array("/quit".utf8) { break }
                            guard let peer = known.withLockedValue({ $0 }) else {
                                console.show("no peer yet: wait for a message, or give the peer's address")
                                continue
                            }
                            do {
                                try await socket.send(bytes: prefix + payload.bytes(fromLine: line), to: peer)
                            } catch let error as UDPError {
                                if !socket.channel.isActive { throw error }
                                console.show("udp: \(error)")
                            } catch let error as PayloadError {
                                console.show("udp: \(error)")
                            }
                        }
                        if !Terminal.stdinIsTTY && linger > .zero { try await Task.sleep(for: linger) }
                    }
                    // Whichever ends first (input or the socket) ends the chat.
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
        }
    }

    /// A received message as one line: decoded, control characters escaped, or hex with --hex.
    static func text(_ datagram: Datagram, encoding: TextEncoding, hex: Bool) -> String {
        if hex { return Hex.encode(datagram.bytes) }
        var text = encoding.decode(datagram.payload.readableBytesView).escaped
        if text.hasSuffix("\\n") { text.removeLast(2) }
        if text.hasSuffix("\\r") { text.removeLast(2) }
        return text
    }
}
