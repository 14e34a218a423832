import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A UDP (or Unix-domain datagram) socket with an async API that moves datagrams in batches.
///
/// Receiving hands over everything one read cycle brought in with a single synchronization, and
/// `send(_:)` with several datagrams sends them all with one system call where the system has one (`sendmmsg`,
/// straight from the calling task on Linux), so a task-based server pays per batch, not per datagram:
///
/// ```swift
/// let socket = try await UDPSocket.bind(to: .parse("*:9999"))
/// for try await batch in socket.batches {
///     try await socket.send(batch.map { OutgoingDatagram(payload: $0.payload, to: $0.sender) })
/// }
/// ```
///
/// Datagrams are never cut silently: the receive size defaults to the UDP maximum, and when a smaller
/// `UDPSocketOptions.maximumDatagramSize` is chosen, a longer datagram arrives flagged `truncated`.
/// Oversized sends are refused before any system call. Errors are `UDPError`s.
///
/// An IP socket holds two descriptors (one for SwiftNIO, one for sending straight from tasks); on Linux (see
/// `fastPathAvailable`) three while `respond` runs, and a Unix-domain socket three (the third for the thread that
/// receives it).
public final class UDPSocket: Sendable {
    /// The SwiftNIO channel underneath, for interoperating with SwiftNIO code.
    public let channel: any Channel
    /// The address this socket is bound to (for port 0, the port the system chose).
    public let localAddress: UDPAddress
    /// The peer of a connected socket, else nil.
    public let remoteAddress: UDPAddress?
    /// The options the socket was opened with.
    public let options: UDPSocketOptions

    private let inbox: Inbox
    private let isIPv6Socket: Bool
    private let ownedSocketFile: UnixSocketFile?
    /// The size rules of this socket's datagrams, for every path that receives them.
    let limits: DatagramLimits
    /// What the system path adds: Linux's fast path (UDPSocket+LinuxFastPath.swift), or its portable
    /// counterpart (UDPSocket+Portable.swift). It owns the descriptors and threads it opened.
    private let fastPath: FastPath
    /// Whether a `respond` runs.
    private let responding = NIOLockedValueBox(false)

    private init(
        channel: any Channel, inbox: Inbox, options: UDPSocketOptions, limits: DatagramLimits, ownedSocketPath: String?,
        fastPath: FastPath
    ) throws {
        self.channel = channel
        self.fastPath = fastPath
        self.limits = limits
        self.inbox = inbox
        self.options = options
        self.ownedSocketFile = ownedSocketPath.flatMap(UnixSocketFile.init(path:))
        guard let local = channel.localAddress else { throw UDPError.closed }
        self.localAddress = UDPAddress(local)
        if case .v6 = local { isIPv6Socket = true } else { isIPv6Socket = false }
        self.remoteAddress = channel.remoteAddress.map(UDPAddress.init)
    }

    // MARK: - Opening

    /// Binds a socket to `endpoint` (resolving a name first).
    ///
    /// `*`, `""` and `::` bind the dual-stack IPv6 wildcard (IPv4 is received too); where IPv6 is unavailable,
    /// `*` falls back to `0.0.0.0`. Port 0 picks a free port: read it from `localAddress`.
    /// - Parameters:
    ///   - endpoint: where to bind.
    ///   - family: restrict name resolution to IPv4 or IPv6.
    ///   - options: socket options.
    ///   - group: the event loop group; the shared singleton by default.
    /// - Throws: `UDPError` (`.addressInUse`, `.permissionDenied`, `.addressNotAvailable`, `.nameNotFound`, ...).
    public static func bind(
        to endpoint: UDPEndpoint,
        family: UDPAddress.Family? = nil,
        options: UDPSocketOptions = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> UDPSocket {
        let addresses = try await endpoint.resolve(family: family)
        var options = options
        if family == .ipv6 && endpoint.isAnyHost { options.ipv6Only = true }
        do {
            return try await bind(to: addresses[0], options: options, group: group)
        } catch UDPError.addressNotAvailable(_) where endpoint.isAnyHost && family == nil {
            // No IPv6 on this host: the wildcard falls back to IPv4.
            return try await bind(
                to: try UDPAddress(ip: "0.0.0.0", port: addresses[0].port ?? 0), options: options, group: group)
        } catch UDPError.system(_, let code) where code == EAFNOSUPPORT && endpoint.isAnyHost && family == nil {
            return try await bind(
                to: try UDPAddress(ip: "0.0.0.0", port: addresses[0].port ?? 0), options: options, group: group)
        }
    }

    /// Binds a socket to a resolved address. See `bind(to:family:options:group:)`.
    public static func bind(
        to address: UDPAddress,
        options: UDPSocketOptions = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> UDPSocket {
        try await open(bind: address, connect: nil, options: options, group: group)
    }

    /// Opens a socket connected to `peer`: it sends only there, receives only from there, and an ICMP
    /// "port unreachable" from the peer is reported as `UDPError.connectionRefused` by the next receive.
    ///
    /// - Parameters:
    ///   - peer: the peer.
    ///   - local: the local address to bind first; nil picks a free port on the wildcard of the peer's family
    ///     (for a Unix-domain peer, a temporary socket path that is removed on close).
    ///   - options: socket options.
    ///   - group: the event loop group; the shared singleton by default.
    public static func connect(
        to peer: UDPAddress,
        from local: UDPAddress? = nil,
        options: UDPSocketOptions = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> UDPSocket {
        var options = options
        // Broadcast permission for the destination the caller named (never for addresses learnt from the network).
        if peer.isLimitedBroadcast || BroadcastAddresses.shared.isBroadcast(peer) { options.broadcast = true }
        return try await open(bind: local ?? ephemeralAddress(for: peer), connect: peer, options: options, group: group)
    }

    /// Opens an unconnected socket suitable for talking to `peer`: bound to `local`, or to a free port on the
    /// wildcard address of `peer`'s family (for a Unix-domain peer, a temporary path removed on close).
    ///
    /// When `peer` is 255.255.255.255 or the broadcast address of one of this host's subnets, the socket gets
    /// broadcast permission (SO_BROADCAST): the caller named that destination. Other broadcast addresses need
    /// `options.broadcast`.
    public static func client(
        for peer: UDPAddress,
        from local: UDPAddress? = nil,
        options: UDPSocketOptions = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> UDPSocket {
        var options = options
        if peer.isLimitedBroadcast || BroadcastAddresses.shared.isBroadcast(peer) { options.broadcast = true }
        return try await open(bind: local ?? ephemeralAddress(for: peer), connect: nil, options: options, group: group)
    }

    static func ephemeralAddress(for peer: UDPAddress) throws -> UDPAddress {
        switch peer.family {
        case .ipv4: return try UDPAddress(ip: "0.0.0.0", port: 0)
        case .ipv6: return try UDPAddress(ip: "::", port: 0)
        case .unix:
            let name = "udp-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
            return try UDPAddress(unixPath: FileManager.default.temporaryDirectory.appendingPathComponent(name).path)
        }
    }

    private static func open(
        bind local: UDPAddress,
        connect peer: UDPAddress?,
        options: UDPSocketOptions,
        group: any EventLoopGroup
    ) async throws -> UDPSocket {
        do { try options.validate() } catch {
            throw UDPError.invalidAddress(local.description, reason: error.description)
        }
        let inbox = Inbox(limit: options.receiveQueueLimit)
        let offload = options.receiveOffload && System.supportsUDPReceiveOffload && local.family != .unix
        let limits = DatagramLimits(
            maximumSize: options.maximumDatagramSize, family: local.family, receiveOffload: offload)
        let batch = FastPath.readBatch(for: local, options: options)
        var bootstrap = DatagramBootstrap(group: group)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: limits.slot * batch))
            .channelOption(.maxMessagesPerRead, value: 4)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        DatagramHandler(
                            inbox: inbox, limits: limits, packetInfo: options.receivePacketInfo && local.family != .unix
                        )
                    )
                }
            }
        if batch > 1 { bootstrap = bootstrap.channelOption(.datagramVectorReadMessageCount, value: batch) }
        if offload {
            bootstrap = bootstrap.channelOption(.datagramReceiveOffload, value: true)
                .channelOption(.datagramReceiveSegmentSize, value: true)
        }
        // IP sockets are made and bound by `FastPath.open`, with these options, before SwiftNIO gets them.
        if local.family == .unix, options.reuseAddress {
            bootstrap = bootstrap.channelOption(.socketOption(.so_reuseaddr), value: 1)
        }
        if options.broadcast { bootstrap = bootstrap.channelOption(.socketOption(.so_broadcast), value: 1) }
        if let size = options.receiveBufferSize {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: .init(size))
        }
        if let size = options.sendBufferSize {
            bootstrap = bootstrap.channelOption(.socketOption(.so_sndbuf), value: .init(size))
        }

        let opened = try await FastPath.open(local, options: options, inbox: inbox, bootstrap: bootstrap)
        let channel = opened.channel
        do {
            try await applyIPOptions(options, family: local.family, channel: channel)
            if let peer {
                let target = local.family == .ipv6 ? peer.mappedToIPv6 : peer.socketAddress
                if local.family == .ipv4 && peer.family == .ipv6 {
                    throw UDPError.invalidAddress(
                        peer.description, reason: "cannot reach an IPv6 address from an IPv4 socket")
                }
                do {
                    try await channel.connect(to: target).get()
                } catch {
                    throw UDPError.from(error, address: peer.description, operation: "connect")
                }
            }
            return try UDPSocket(
                channel: channel, inbox: inbox, options: options, limits: limits, ownedSocketPath: opened.ownedPath,
                fastPath: opened.fastPath)
        } catch {
            try? await channel.close()
            await opened.fastPath.close()
            if let ownedPath = opened.ownedPath { unlink(ownedPath) }
            throw error
        }
    }

    private static func applyIPOptions(_ options: UDPSocketOptions, family: UDPAddress.Family, channel: any Channel)
        async throws
    {
        func set(_ option: ChannelOptions.Types.SocketOption, _ value: Int, _ name: String) async throws {
            try await Self.set(option: option, .init(value), name, on: channel)
        }
        switch family {
        case .ipv4:
            if let ttl = options.timeToLive { try await set(RawSocketOption.ipTTL, ttl, "TTL") }
            if let tos = options.typeOfService { try await set(RawSocketOption.ipTOS, tos, "TOS") }
        case .ipv6:
            if let ttl = options.timeToLive {
                try await set(RawSocketOption.ipv6Hops, ttl, "hop limit")
                // Dual-stack sockets also send IPv4; set the IPv4 TTL where the system allows it.
                try? await set(RawSocketOption.ipTTL, ttl, "TTL")
            }
            if let tos = options.typeOfService {
                try await set(RawSocketOption.ipv6TrafficClass, tos, "traffic class")
                try? await set(RawSocketOption.ipTOS, tos, "TOS")
            }
        case .unix:
            return
        }
        try await applyMulticastOptions(options, family: family, channel: channel)
        if options.receivePacketInfo {
            try await Self.set(option: ChannelOptions.receivePacketInfo, true, "packet information", on: channel)
        }
    }

    static func set<Option: ChannelOption>(
        option: Option, _ value: Option.Value, _ name: String, on channel: any Channel
    ) async throws {
        do {
            try await channel.setOption(option, value: value).get()
        } catch {
            throw UDPError.from(error, address: name, operation: "setting \(name)")
        }
    }

    // MARK: - Sending

    /// Sends one datagram to `destination` and waits until the system accepted it.
    ///
    /// - Throws: `UDPError.messageTooLarge` before any system call when the payload exceeds
    ///   `destination.maximumPayload`; `UDPError.permissionDenied` for a broadcast address when the socket has no
    ///   broadcast permission (`UDPSocketOptions.broadcast`); otherwise the system's error as a `UDPError`.
    public func send(_ payload: ByteBuffer, to destination: UDPAddress) async throws {
        try await send(CollectionOfOne(OutgoingDatagram(payload: payload, to: destination)))
    }

    /// Sends `bytes` as one datagram to `destination`. See `send(_:to:)`.
    public func send(bytes: some Sequence<UInt8>, to destination: UDPAddress) async throws {
        try await send(ByteBuffer(bytes: bytes), to: destination)
    }

    /// Sends one datagram on a connected socket.
    /// - Throws: `UDPError.invalidAddress` when the socket is not connected; see `send(_:to:)` for the rest.
    public func send(_ payload: ByteBuffer) async throws {
        guard let remoteAddress else {
            throw UDPError.invalidAddress(
                localAddress.description, reason: "the socket is not connected; give a destination")
        }
        try await send(payload, to: remoteAddress)
    }

    /// Sends several datagrams at once and returns when the system accepted them. Every datagram is checked for
    /// size, and for broadcast permission, before anything is sent.
    ///
    /// Broadcast permission is never turned on here: a socket sends to 255.255.255.255 or to a broadcast address of
    /// this host's subnets only when it was opened with `UDPSocketOptions.broadcast` (or by `client(for:)` or
    /// `connect(to:)` for such a destination). A server answering a spoofed "sender" of 10.1.1.255 thus fails
    /// instead of reaching a whole subnet.
    ///
    /// Datagrams to IP addresses go out straight from the calling task, in order with every earlier send: on Linux
    /// with one `sendmmsg` (Unix-domain datagrams too), and a run of IP datagrams of one size to one address as a
    /// single UDP GSO send (the receiver still gets separate datagrams; where a route refuses that, the socket sends
    /// one by one from then on); elsewhere with one `sendto` each. When the send buffer is full, the rest wait in
    /// SwiftNIO's queue. A datagram the system refuses (unreachable, too large for the path, permission denied for a
    /// broadcast address) is skipped, the others are still sent, and the first refusal is thrown; the socket stays
    /// open.
    ///
    /// Segmentation-offload datagrams, and Unix-domain datagrams outside Linux, go with one hop to the event loop
    /// and one flush. There, a datagram too large for the path, or to an unreachable host, fails that send only;
    /// other system errors close the socket, as SwiftNIO does; the error thrown says which.
    public func send<S: Sequence>(_ datagrams: S) async throws where S.Element == OutgoingDatagram {
        let outgoing = Array(datagrams)
        let envelopes = try outgoing.map { try envelope(for: $0) }
        guard !envelopes.isEmpty else { return }
        if localAddress.family != .unix, !options.broadcast,
            let refused = outgoing.first(where: { BroadcastAddresses.shared.isBroadcast($0.destination) })
        {
            throw UDPError.from(errno: EACCES, address: refused.destination.description, operation: "send")
        }
        let direct = directlySendable(outgoing)
        let isUnix = localAddress.family == .unix
        let failure = try await fastPath.send(envelopes, direct: direct, connected: remoteAddress != nil) { rest in
            if isUnix && rest.count > 1 {
                // SwiftNIO cannot batch (sendmmsg) Unix-domain datagrams: send them one at a time.
                for envelope in rest { try await write(CollectionOfOne(envelope)) }
            } else {
                try await write(rest)
            }
        }
        if let (index, code) = failure {
            let destination = remoteAddress?.description ?? outgoing[index].destination.description
            throw UDPError.from(errno: code, address: destination, operation: "send")
        }
    }

    /// Whether `outgoing` can go straight out through the socket's sender: segmentation-offload runs are SwiftNIO's
    /// to send, and a connected socket sends only to its peer (anything else is SwiftNIO's to refuse).
    private func directlySendable(_ outgoing: [OutgoingDatagram]) -> Bool {
        outgoing.allSatisfy { $0.segmentSize == nil }
            && (remoteAddress == nil || outgoing.allSatisfy { $0.destination == remoteAddress })
    }

    /// Writes through SwiftNIO and waits until the system took the datagrams. Only `FastPath.send` calls this, as the
    /// one owner of the order of sends.
    private func write<C: Collection & Sendable>(_ envelopes: C) async throws
    where C.Element == AddressedEnvelope<ByteBuffer> {
        let channel = self.channel
        let loop = channel.eventLoop
        let future: EventLoopFuture<Void>
        if loop.inEventLoop {
            future = Self.write(envelopes, on: channel)
        } else {
            future = loop.flatSubmit { Self.write(envelopes, on: channel) }
        }
        do {
            try await future.get()
        } catch {
            let destination =
                remoteAddress?.description
                ?? (envelopes.count == 1 ? UDPAddress(envelopes.first!.remoteAddress).description : "the destination")
            throw UDPError.from(error, address: destination, operation: "send")
        }
    }

    /// Writes every envelope with its own promise (so a failure of any one is reported) and flushes once.
    private static func write<C: Collection>(_ envelopes: C, on channel: any Channel) -> EventLoopFuture<Void>
    where C.Element == AddressedEnvelope<ByteBuffer> {
        var futures: [EventLoopFuture<Void>] = []
        futures.reserveCapacity(envelopes.count)
        for envelope in envelopes {
            futures.append(channel.write(envelope))
        }
        channel.flush()
        if futures.count == 1 { return futures[0] }
        return EventLoopFuture.andAllSucceed(futures, on: channel.eventLoop)
    }

    /// `datagram` addressed for this socket, checked against `DatagramLimits`.
    func envelope(for datagram: OutgoingDatagram) throws -> AddressedEnvelope<ByteBuffer> {
        if let refusal = DatagramLimits.refusal(of: datagram) { throw refusal }
        let metadata = datagram.segmentSize.map {
            AddressedEnvelope<ByteBuffer>.Metadata(ecnState: .transportNotCapable, packetInfo: nil, segmentSize: $0)
        }
        return AddressedEnvelope(
            remoteAddress: try target(for: datagram.destination), data: datagram.payload, metadata: metadata)
    }

    /// `destination` as this socket addresses it: IPv4 becomes IPv4-mapped IPv6 on an IPv6 socket.
    func target(for destination: UDPAddress) throws(UDPError) -> SocketAddress {
        switch (isIPv6Socket, destination.family) {
        case (true, .ipv4): return destination.mappedToIPv6
        case (false, .ipv6) where localAddress.family == .ipv4:
            throw .invalidAddress(destination.description, reason: "cannot send to an IPv6 address from an IPv4 socket")
        default: return destination.socketAddress
        }
    }

    /// Whether this build sends and receives through UDPKit's Linux fast path: its own descriptors, `sendmmsg` and
    /// `recvmmsg` straight from tasks and from `respond`'s thread, a reader thread for Unix-domain sockets (so
    /// unbound senders are received), and `kernelDrops`.
    ///
    /// False on other systems, and on Linux in a build made with `UDPKIT_PORTABLE=1` in the environment, which
    /// compiles the code the other systems run (SwiftNIO's path) so that it is built and tested on Linux too.
    public static var fastPathAvailable: Bool { FastPath.isAvailable }

    /// Whether `OutgoingDatagram(segments:segmentSize:to:)` works here (Linux 4.18 and later).
    public static var supportsSegmentationOffload: Bool { System.supportsUDPSegmentationOffload }

    /// The most segments one segmentation-offload send may carry: 64, the limit of every Linux kernel
    /// with UDP GSO (newer kernels allow more, but do not say so).
    public static let maximumSegments = 64

    // MARK: - Answering in place

    /// Answers datagrams as fast as the system allows: from now on, `reply` gets the datagrams as they arrive, a
    /// batch at a time, and the datagrams it returns are sent at once, without a hop to a task in either direction.
    /// The fastest way to run a server whose answer needs no waiting (echo, greeting, time); `reply` must not
    /// block. Datagrams that were already queued are answered first.
    ///
    /// On Linux, IP sockets are answered by a thread of their own: one `recvmmsg` takes up to 64 datagrams, one
    /// `sendmmsg` sends the replies (runs of one size to one address as single UDP GSO sends, as with `send`), and
    /// a reply the system refuses (unreachable, too large) is skipped. With `receivePacketInfo`, each datagram carries its `arrival` there too.
    /// Elsewhere, and with `receiveOffload`, `reply` runs on the socket's event loop for each read cycle, and its
    /// replies go out from there as `send` sends them (a reply the system refuses is skipped; where SwiftNIO sends,
    /// as for Unix-domain sockets outside Linux, send errors other than "too large" and "host unreachable" close
    /// the socket).
    /// Either way `reply` is called for one batch at a time, never concurrently.
    ///
    /// While this runs, `receive` and the async sequences get nothing.
    ///
    /// - Parameters:
    ///   - refused: when given, gets the replies that were not sent: refused by the system (unreachable, a
    ///     broadcast address without permission), too large for their destination, or dropped when the send buffer
    ///     stayed full. A server counts these as failed rather than answered. Called after the batch's sends, on
    ///     the thread or event loop that runs `reply`, or (for a reply SwiftNIO sent) on the event loop.
    ///   - reply: the replies to a batch of datagrams.
    ///
    /// Returns when the socket closes.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled (the socket stays open and queues
    ///   datagrams again); `UDPError` when the socket is already answering through another `respond`, and
    ///   `UDPError.system` with the call and its errno when answering failed (the system refused to receive on
    ///   the socket or to wait for it: the socket stays open and queues datagrams again).
    public func respond(
        refused: (@Sendable ([OutgoingDatagram]) -> Void)? = nil,
        _ reply: @escaping @Sendable ([Datagram]) -> [OutgoingDatagram]
    ) async throws {
        let claimed = responding.withLockedValue { running -> Bool in
            guard !running else { return false }
            running = true
            return true
        }
        guard claimed else {
            throw UDPError.system(operation: "respond (this socket is already answering)", errno: EBUSY)
        }
        defer { responding.withLockedValue { $0 = false } }
        if try await fastPath.respond(for: self, refused: refused, reply) { return }
        let channel = self.channel
        let convert: @Sendable ([Datagram]) -> [(AddressedEnvelope<ByteBuffer>, EventLoopPromise<Void>?)] = {
            [self] batch in
            sendNow(reply(batch), refused: refused)
        }
        let stopped = channel.eventLoop.makePromise(of: Void.self)
        channel.closeFuture.whenComplete { _ in stopped.succeed() }
        let inbox = self.inbox
        try await channel.eventLoop.submit {
            // On the event loop, between read cycles: what was queued is answered before anything read from now
            // on, and nothing can arrive in between.
            let queued = inbox.takeQueued()
            if !queued.isEmpty {
                for (envelope, promise) in convert(queued) { channel.write(envelope, promise: promise) }
                channel.flush()
            }
            try channel.pipeline.syncOperations.handler(type: DatagramHandler.self).responder = convert
        }.get()
        try await withTaskCancellationHandler {
            try await stopped.futureResult.get()
        } onCancel: {
            channel.eventLoop.execute {
                (try? channel.pipeline.syncOperations.handler(type: DatagramHandler.self))?.responder = nil
                stopped.succeed()
            }
        }
        try Task.checkCancellation()
    }

    /// Sends `datagrams` from the calling thread without waiting, in order with every other send of the socket: for
    /// a thread that is not a task (a reader thread relaying what it read) and must not block. What goes straight
    /// out goes as `send` sends it; what the system cannot take at once (the send buffer full, or SwiftNIO still
    /// holding earlier writes) waits in SwiftNIO's queue, written from the event loop.
    ///
    /// - Parameters:
    ///   - datagrams: the datagrams, sent in this order.
    ///   - done: called once every datagram was sent or failed, with the ones that failed (refused by the system, too
    ///     large, a broadcast address without permission, or the socket closed): before this returns when all went
    ///     straight out, else on the event loop.
    public func sendWithoutWaiting(
        _ datagrams: [OutgoingDatagram], done: @escaping @Sendable ([OutgoingDatagram]) -> Void = { _ in }
    ) {
        let failures = NIOLockedValueBox<[OutgoingDatagram]>([])
        let writes = sendNow(datagrams) { failed in failures.withLockedValue { $0 += failed } }
        guard !writes.isEmpty else {
            done(failures.withLockedValue { $0 })
            return
        }
        let channel = self.channel
        let futures = writes.compactMap { $0.1?.futureResult }
        channel.eventLoop.execute {
            for (envelope, promise) in writes { channel.write(envelope, promise: promise) }
            channel.flush()
        }
        EventLoopFuture.andAllComplete(futures, on: channel.eventLoop).whenComplete { _ in
            done(failures.withLockedValue { $0 })
        }
    }

    /// Sends `outgoing` from the calling thread or event loop, as `respond` sends replies: what the socket cannot
    /// carry (too large, wrong family, a broadcast address without permission) or the system refuses goes to
    /// `refused`; the rest goes straight out where it can.
    /// - Returns: what is left to write through SwiftNIO, with a promise each when `refused` is given (it then also
    ///   gets the ones SwiftNIO fails to write).
    private func sendNow(
        _ outgoing: [OutgoingDatagram], refused: (@Sendable ([OutgoingDatagram]) -> Void)?
    ) -> [(AddressedEnvelope<ByteBuffer>, EventLoopPromise<Void>?)] {
        var failed: [OutgoingDatagram] = []
        var sending: [OutgoingDatagram] = []
        var envelopes: [AddressedEnvelope<ByteBuffer>] = []
        for datagram in outgoing {
            guard let envelope = try? self.envelope(for: datagram),
                options.broadcast || localAddress.family == .unix
                    || !BroadcastAddresses.shared.isBroadcast(datagram.destination)
            else {
                failed.append(datagram)
                continue
            }
            sending.append(datagram)
            envelopes.append(envelope)
        }
        let (rest, written) = fastPath.sendNow(
            envelopes, direct: directlySendable(sending), connected: remoteAddress != nil
        ) {
            failed.append(sending[$0])
        }
        if let refused, !failed.isEmpty { refused(failed) }
        guard !rest.isEmpty else { return [] }
        let loop = channel.eventLoop
        var writes: [(AddressedEnvelope<ByteBuffer>, EventLoopPromise<Void>?)] = []
        var futures: [EventLoopFuture<Void>] = []
        for index in rest.indices {
            var promise: EventLoopPromise<Void>?
            if refused != nil || written != nil {
                let done = loop.makePromise(of: Void.self)
                let datagram = sending[index]
                if let refused { done.futureResult.whenFailure { _ in refused([datagram]) } }
                futures.append(done.futureResult)
                promise = done
            }
            writes.append((rest[index], promise))
        }
        if let written {
            EventLoopFuture.andAllComplete(futures, on: loop).whenComplete { _ in written() }
        }
        return writes
    }

    /// Answers what the inbox already holds.
    func answerQueued(
        _ reply: @Sendable ([Datagram]) -> [OutgoingDatagram], refused: (@Sendable ([OutgoingDatagram]) -> Void)?
    ) async throws {
        while case let queued = try await receiveBatch(timeout: .zero), !queued.isEmpty {
            try await answer(queued, reply, refused: refused)
        }
    }

    /// Sends the replies to `batch` from the calling task.
    func answer(
        _ batch: [Datagram], _ reply: @Sendable ([Datagram]) -> [OutgoingDatagram],
        refused: (@Sendable ([OutgoingDatagram]) -> Void)?
    ) async throws {
        let replies = reply(batch)
        guard !replies.isEmpty else { return }
        do {
            try await send(replies)
        } catch let error as UDPError where error != .closed {
            // Which ones the system refused is not known here: try each alone, so only those count as failed.
            for outgoing in replies {
                do { try await send(CollectionOfOne(outgoing)) } catch { refused?([outgoing]) }
            }
        }
    }

    // MARK: - Receiving

    /// Waits for the next datagram.
    /// - Throws: `UDPError.connectionRefused` (connected sockets, after an ICMP port unreachable),
    ///   `UDPError.closed` once the socket is closed and nothing is left, `CancellationError`.
    public func receive() async throws -> Datagram {
        try await inbox.take(maximum: 1, deadline: nil, eventLoop: channel.eventLoop)![0]
    }

    /// Waits at most `timeout` for the next datagram; nil when none came in time.
    public func receive(timeout: Duration) async throws -> Datagram? {
        try await inbox.take(maximum: 1, deadline: .now() + .init(timeout), eventLoop: channel.eventLoop)?.first
    }

    /// Waits for at least one datagram and returns all that are waiting, up to `maximum`.
    /// With a `timeout`, returns an empty array when nothing came in time.
    ///
    /// A task that runs on this socket's event loop (see `taskExecutor`) reads the socket itself while datagrams
    /// keep coming, up to 64 at a time.
    public func receiveBatch(maximum: Int = .max, timeout: Duration? = nil) async throws -> [Datagram] {
        if channel.eventLoop.inEventLoop, inbox.isEmpty {
            try Task.checkCancellation()
            if let batch = try fastPath.readOnEventLoop(maximum: maximum, for: self) { return batch }
        }
        let deadline = timeout.map { NIODeadline.now() + .init($0) }
        return try await inbox.take(maximum: Swift.max(1, maximum), deadline: deadline, eventLoop: channel.eventLoop)
            ?? []
    }

    /// Every datagram, one at a time, until the socket closes (the sequence then ends without error).
    public var datagrams: Datagrams { Datagrams(socket: self) }

    /// Every datagram, a read cycle's worth at a time, until the socket closes. The fastest way to receive.
    public var batches: Batches { Batches(socket: self) }

    // MARK: - Kernel drops

    /// How many datagrams the system dropped for this socket since it was opened, before this program could read
    /// them (above all: the receive buffer was full); nil where the system does not say (before Linux 4.6, not
    /// Linux, or a build without the fast path: see `fastPathAvailable`) or once the socket is closed.
    ///
    /// Nil for Unix-domain sockets too: there a full receive buffer makes the sender wait instead of dropping.
    ///
    /// This is the counter Linux reports with each datagram under SO_RXQ_OVFL, read at once with SO_MEMINFO. A
    /// receiver that reports it makes loss on its own host visible: datagrams a sender counted as sent, yet
    /// never shown, were dropped here rather than on the way.
    public var kernelDrops: Int? { fastPath.kernelDrops }

    // MARK: - Closing

    /// Closes the socket. Receivers waiting get the datagrams already queued, then the sequences end.
    /// A Unix-domain socket file this socket created is removed. Closing twice is harmless.
    public func close() async {
        try? await channel.close()
        await fastPath.close()
        ownedSocketFile?.removeIfStillOurs()
    }
}

/// What `FastPath.open` made: the channel, the path's parts, and the Unix-domain socket file it created.
struct OpenedSocket {
    let channel: any Channel
    let fastPath: FastPath
    let ownedPath: String?
}

extension UDPEndpoint {
    var isAnyHost: Bool {
        if case .ip(.any, _) = kind { return true }
        return false
    }
}

extension UDPSocket {
    /// An async sequence of single datagrams. See `UDPSocket.datagrams`.
    public struct Datagrams: AsyncSequence, Sendable {
        public typealias Element = Datagram
        let socket: UDPSocket

        public func makeAsyncIterator() -> Iterator { Iterator(socket: socket) }

        /// Iterates a socket's datagrams, taking a batch at a time underneath.
        public struct Iterator: AsyncIteratorProtocol {
            let socket: UDPSocket
            var buffer: [Datagram] = []
            var index = 0

            public mutating func next() async throws -> Datagram? {
                if index == buffer.count {
                    guard let batch = try await Batches.nextBatch(socket) else { return nil }
                    buffer = batch
                    index = 0
                }
                defer { index += 1 }
                return buffer[index]
            }
        }
    }

    /// An async sequence of datagram batches. See `UDPSocket.batches`.
    public struct Batches: AsyncSequence, Sendable {
        public typealias Element = [Datagram]
        let socket: UDPSocket

        public func makeAsyncIterator() -> Iterator { Iterator(socket: socket) }

        /// Iterates a socket's datagrams a read cycle at a time.
        public struct Iterator: AsyncIteratorProtocol {
            let socket: UDPSocket
            public mutating func next() async throws -> [Datagram]? { try await Batches.nextBatch(socket) }
        }

        static func nextBatch(_ socket: UDPSocket) async throws -> [Datagram]? {
            do {
                return try await socket.receiveBatch()
            } catch UDPError.closed {
                return nil
            }
        }
    }
}
