import ArgumentParser
import NIOCore
import UDPKit
import UDPStudio
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `udp packets`: the saved-packets library that `udp studio` edits, from the command line.
struct Packets: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "packets",
        abstract: "List the saved packets and sequences (the library udp studio keeps); 'udp send @NAME' sends one.",
        discussion: """
            The library is $XDG_CONFIG_HOME/udp/packets.json, else ~/.config/udp/packets.json.

            Examples:
              udp packets                 name, destination and payload of each saved packet
              udp packets --json          one JSON object per packet
              udp send @greeting          send the saved packet "greeting"
            """
    )

    @Flag(help: "One JSON object per line.")
    var json = false

    func run() throws {
        let location = PacketLibrary.defaultLocation()
        let library: PacketLibrary
        do { library = try PacketLibrary.load(from: location) } catch { throw CLIFailure.data(error.message) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for packet in library.packets {
                Terminal.writeStdout(String(decoding: try encoder.encode(packet), as: UTF8.self) + "\n")
            }
            return
        }
        if library.packets.isEmpty && library.sequences.isEmpty {
            Terminal.writeStdout("no saved packets in \(location.path) (save some in udp studio)\n")
            return
        }
        let width = min(24, library.packets.map { $0.name.count }.max() ?? 4)
        for packet in library.packets {
            let payload = packet.hex.map { "hex " + $0 } ?? TerminalText.escape(packet.text ?? "")
            let repeats = (packet.count ?? 1) > 1 ? "  ×\(packet.count!)" : ""
            let name = TerminalText.escape(packet.name)
            Terminal.writeStdout(
                "\(name + String(repeating: " ", count: max(0, width - name.count)))  \(TerminalText.escape(packet.to))  \(payload)\(repeats)\n"
            )
        }
        for sequence in library.sequences {
            let steps = sequence.steps.map { "\(TerminalText.escape($0.packet)) +\(Int($0.delay))ms" }.joined(
                separator: ", ")
            Terminal.writeStdout("sequence \(TerminalText.escape(sequence.name)): \(steps)\n")
        }
    }
}

extension SendSettings {
    /// `udp send @NAME`: sends a saved packet (its destination, payload, count and interval; --count and --interval
    /// given here take precedence).
    func sendSaved(_ words: [String]) async throws {
        let name = String(words[0].dropFirst())
        guard words.count == 1 else {
            throw CLIFailure.usage("'@\(name)' sends a saved packet as it is; give no other destination or message")
        }
        let library: PacketLibrary
        do { library = try PacketLibrary.load(from: PacketLibrary.defaultLocation()) } catch {
            throw CLIFailure.data(error.message)
        }
        guard let packet = library.packet(named: name) else {
            throw CLIFailure.usage("no saved packet named '\(TerminalText.escape(name))' (see 'udp packets')")
        }
        let payload: [UInt8]
        do { payload = try packet.request.payload() } catch {
            throw CLIFailure.data("saved packet '\(name)': \(error)")
        }
        let endpoint = try UDPEndpoint.parse(packet.to)
        let family = try network.family()
        let destinations: [UDPAddress]
        var options = UDPSocketOptions()
        if case .ip(.broadcast, let port) = endpoint.kind {
            destinations = try UDPAddress.broadcastAddresses(port: port, interface: interface)
            options.broadcast = true
        } else {
            destinations = [try await resolveOne(endpoint, family: family)]
        }
        if let limit = destinations[0].maximumPayload, payload.count > limit {
            throw UDPError.messageTooLarge(size: payload.count, limit: limit)
        }
        options.timeToLive = ttl
        options.broadcast = options.broadcast || broadcast
        let count = outgoing.givenCount ?? max(1, packet.count ?? 1)
        let pause = outgoing.interval?.duration ?? packet.interval.map { Duration.nanoseconds(Int64($0 * 1e6)) }
        let socket = try await UDPSocket.client(for: destinations[0], options: options)
        if outgoing.showPort { Terminal.writeStderr("local address \(socket.localAddress)\n") }
        try await closing(socket) {
            var sent = 0
            for _ in 0..<count {
                for destination in destinations {
                    if sent > 0, let pause { try await Task.sleep(for: pause) }
                    try await socket.send(ByteBuffer(bytes: payload), to: destination)
                    sent += 1
                }
            }
            if !outgoing.quiet && Terminal.stderrIsTTY {
                Terminal.writeStderr(
                    "sent \(sent) datagram\(sent == 1 ? "" : "s") (\(sent * payload.count) bytes) of '\(name)' to \(packet.to)\n"
                )
            }
        }
    }
}
