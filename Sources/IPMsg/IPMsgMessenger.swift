import NIOConcurrencyHelpers
import NIOCore
import UDPKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An IP Messenger client on a UDP socket: ``IPMsgCore`` driven by real datagrams and a real clock.
///
/// It binds the IP Messenger port (2425 unless told otherwise) on every IPv4 address, broadcasts to the
/// directed broadcast address of every interface (or one, `interface`) as `udp broadcast` does, so no default
/// route is needed, and ignores its own broadcasts coming back. ``run()`` receives and resends until the task is
/// cancelled; ``events`` reports what happened.
public final class IPMsgMessenger: Sendable {
    /// How to run.
    public struct Configuration: Sendable {
        /// Who we are.
        public var identity: IPMsgIdentity
        /// Limits, timing and the default encoding.
        public var settings = IPMsgCore.Settings()
        /// The port to bind and to broadcast to (every client uses 2425).
        public var port = IPMsgPacket.defaultPort
        /// Broadcast on this interface only; nil for every interface that can broadcast.
        public var interface: String?

        /// Makes a configuration with the defaults above.
        public init(identity: IPMsgIdentity) { self.identity = identity }
    }

    /// The bound socket.
    public let socket: UDPSocket
    /// Where broadcasts go.
    public let broadcastAddresses: [UDPAddress]
    /// Everything that happens, in order. Buffers the newest 10,000 events when nobody reads.
    public let events: AsyncStream<IPMsgCore.IPMsgEvent>

    private let core: NIOLockedValueBox<IPMsgCore>
    private let continuation: AsyncStream<IPMsgCore.IPMsgEvent>.Continuation

    private init(socket: UDPSocket, broadcastAddresses: [UDPAddress], core: IPMsgCore) {
        self.socket = socket
        self.broadcastAddresses = broadcastAddresses
        self.core = NIOLockedValueBox(core)
        (events, continuation) = AsyncStream.makeStream(
            of: IPMsgCore.IPMsgEvent.self, bufferingPolicy: .bufferingNewest(10_000))
    }

    /// Binds the port and prepares; nothing is sent until ``announce()``.
    ///
    /// - Throws: `UDPError.addressInUse` when another client holds the port (an IP Messenger client on this
    ///   host), `UDPError.interfaceUnavailable` when there is nowhere to broadcast.
    public static func start(_ configuration: Configuration) async throws -> IPMsgMessenger {
        let targets = try UDPAddress.broadcastAddresses(port: configuration.port, interface: configuration.interface)
        var options = UDPSocketOptions()
        options.broadcast = true
        let socket = try await UDPSocket.bind(
            to: try UDPAddress(ip: "0.0.0.0", port: configuration.port), options: options)
        let port = socket.localAddress.port ?? configuration.port
        var core = IPMsgCore(
            identity: configuration.identity, settings: configuration.settings,
            lastPacketNumber: UInt32(clamping: Int(Date().timeIntervalSince1970)))
        // Our broadcasts come back to us on every interface; they are recognised by source address and port.
        let own = (try? NetworkInterface.all()) ?? []
        core.ownAddresses = Set(
            own.flatMap(\.addresses).filter { $0.family == .ipv4 }.compactMap { try? UDPAddress($0, port: port) })
        return IPMsgMessenger(
            socket: socket, broadcastAddresses: targets.map { $0.withPort(configuration.port) }, core: core)
    }

    /// Receives, answers and resends until cancelled; then ends ``events``.
    public func run() async throws {
        defer { continuation.finish() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await batch in self.socket.batches {
                    for datagram in batch where !datagram.truncated {
                        let outputs = self.core.withLockedValue {
                            $0.receive(
                                datagram.bytes, from: datagram.sender, now: MonotonicClock.nanoseconds,
                                unixSeconds: Self.unixSeconds)
                        }
                        await self.perform(outputs)
                    }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(100))
                    let outputs = self.core.withLockedValue { $0.tick(now: MonotonicClock.nanoseconds) }
                    await self.perform(outputs)
                }
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// Broadcasts BR_ENTRY.
    public func announce() async {
        await perform(core.withLockedValue { $0.announce(unixSeconds: Self.unixSeconds) })
    }

    /// Broadcasts BR_EXIT.
    public func leave() async {
        await perform(core.withLockedValue { $0.leave(unixSeconds: Self.unixSeconds) })
    }

    /// Changes nick or away text and broadcasts BR_ABSENCE.
    public func update(nick: String? = nil, absence: String?? = nil) async {
        await perform(core.withLockedValue { $0.update(nick: nick, absence: absence, unixSeconds: Self.unixSeconds) })
    }

    /// Sends a message that must be acknowledged; the result names it in later events.
    public func send(_ text: String, to address: UDPAddress, files: [IPMsgFileEntry] = []) async throws -> UInt32 {
        let (id, outputs) = try core.withLockedValue {
            try $0.send(text, to: address, files: files, now: MonotonicClock.nanoseconds, unixSeconds: Self.unixSeconds)
        }
        await perform(outputs)
        return id
    }

    /// Sends a message to everyone (not acknowledged).
    public func sendToAll(_ text: String) async throws {
        let outputs = try core.withLockedValue { try $0.sendToAll(text, unixSeconds: Self.unixSeconds) }
        await perform(outputs)
    }

    /// The GETFILEDATA packet for a file a peer offered.
    public func fileRequest(_ request: IPMsgFileRequest) -> [UInt8] {
        core.withLockedValue { $0.fileRequest(request, unixSeconds: Self.unixSeconds) }
    }

    /// The presence table, ordered by address.
    public var peers: [IPMsgPeer] {
        core.withLockedValue { Array($0.peers.values) }.sorted { $0.address.description < $1.address.description }
    }

    /// Peers with this nick.
    public func peers(named nick: String) -> [IPMsgPeer] { core.withLockedValue { $0.peers(named: nick) } }

    /// The counters.
    public var counters: IPMsgCore.Counters { core.withLockedValue { $0.counters } }

    /// Our identity now.
    public var identity: IPMsgIdentity { core.withLockedValue { $0.identity } }

    /// Messages still waiting for an acknowledgement.
    public var unacknowledged: Int { core.withLockedValue { $0.unacknowledged } }

    /// Closes the socket.
    public func close() async { await socket.close() }

    private func perform(_ outputs: [IPMsgCore.Output]) async {
        for output in outputs {
            switch output {
            case .send(let bytes, let to):
                try? await socket.send(bytes: bytes, to: to)
            case .broadcast(let bytes):
                for target in broadcastAddresses { try? await socket.send(bytes: bytes, to: target) }
            case .event(let event):
                continuation.yield(event)
            }
        }
    }

    static var unixSeconds: UInt32 { UInt32(clamping: Int(Date().timeIntervalSince1970)) }
}
