#if UDPKIT_LINUX_FAST_PATH
import CUDPSys
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Linux's fast path for one socket, in one place: the descriptor UDPKit made and handed to SwiftNIO (IP sockets),
/// the `DirectSender` on a duplicate of it (`sendmmsg`, UDP GSO), the `UnixReader` thread of a Unix-domain socket,
/// and the `BatchResponder` thread of a running `respond` (`recvmmsg`). It owns all of them, and `close()` is the
/// one place that closes them.
///
/// Its portable counterpart (UDPSocket+Portable.swift) has the same interface; `UDPSocket` knows only that.
final class FastPath: Sendable {
    /// Whether this build has Linux's fast path (`UDPSocket.fastPathAvailable`).
    static let isAvailable = true

    /// SwiftNIO's descriptor for the socket, when UDPKit created it (IP sockets). Only used on the event loop while
    /// the channel is open, where it cannot be closed underneath.
    private let descriptor: CInt?
    /// Sends from the calling task.
    /// Sends from the calling task (IP sockets; on Linux Unix-domain sockets too); nil where SwiftNIO sends.
    let sender: DirectSender?
    /// Receives a Unix-domain socket, which SwiftNIO cannot read when a sender is unbound; and its thread's end.
    private let unixReader: UnixReader?
    private let unixReaderDone: EventLoopFuture<Void>?
    /// The thread answering while a `respond` runs on it.
    private let runningResponder = NIOLockedValueBox<BatchResponder?>(nil)
    /// What reads for tasks that receive on the event loop (`readOnEventLoop`): made at its first use, used only on
    /// the event loop, released there when the channel closes.
    private let loopReader: NIOLoopBoundBox<LoopReader?>

    private init(descriptor: CInt?, sender: DirectSender?, unixReader: UnixReader?, eventLoop: any EventLoop) {
        self.descriptor = descriptor
        self.sender = sender
        self.unixReader = unixReader
        loopReader = .makeEmptyBox(valueType: LoopReader.self, eventLoop: eventLoop)
        unixReaderDone = unixReader?.start(on: eventLoop)
    }

    /// Datagrams per read system call. SwiftNIO's vector reads (`recvmmsg`) cannot carry the empty sender address of
    /// an unbound Unix-domain peer.
    static func readBatch(for local: UDPAddress, options: UDPSocketOptions) -> Int {
        local.family != .unix ? options.receiveBatchSize : 1
    }

    /// A socket bound to `local`, its channel made by `bootstrap` on a descriptor made here, with the parts this path
    /// adds to it.
    static func open(_ local: UDPAddress, options: UDPSocketOptions, inbox: Inbox, bootstrap: DatagramBootstrap)
        async throws -> OpenedSocket
    {
        var ownedPath: String?
        var sender: DirectSender?
        var unixReader: UnixReader?
        do {
            let channel: any Channel
            let descriptor: CInt?
            if let path = local.path {
                if UnixSocketFile.isLive(path) { throw UDPError.addressInUse(path) }
                // Made here so that its datagrams are read by a `UnixReader`, never by SwiftNIO.
                let fd = try makeBoundUnixSocket(path, removeExisting: options.removeExistingSocketFile)
                ownedPath = path
                do {
                    let copy = try SocketDescriptor.duplicate(fd)
                    unixReader = try UnixReader(
                        fd: copy, inbox: inbox,
                        limits: DatagramLimits(maximumSize: options.maximumDatagramSize, family: .unix))
                } catch {
                    SocketDescriptor.close(fd)
                    if let error = error as? SystemCallError {
                        throw UDPError.system(operation: "receive (dup)", errno: error.errno)
                    }
                    throw error
                }
                // Sends go straight out too: a reply to a sender whose path is gone fails alone, where a failed
                // SwiftNIO write would close the socket. Unix-domain datagrams are never joined (no UDP GSO there).
                if let sending = try? SocketDescriptor.duplicate(fd) {
                    var transmitter = DirectSender.Transmitter()
                    transmitter.vector.segmenting = false
                    sender = DirectSender(fd: sending, transmitter: transmitter)
                }
                channel = try await bootstrap.channelOption(.autoRead, value: false).withBoundSocket(fd).get()
                descriptor = nil
            } else {
                // Made here and handed to SwiftNIO, so that `respond` can reach the descriptor.
                let fd = try SocketDescriptor.boundIPSocket(
                    local, options: options, packetInfo: options.receivePacketInfo)
                // Without a second descriptor (none left) sends go through SwiftNIO.
                if let copy = try? SocketDescriptor.duplicate(fd) { sender = DirectSender(fd: copy) }
                channel = try await bootstrap.withBoundSocket(fd).get()
                descriptor = fd
            }
            let fastPath = FastPath(
                descriptor: descriptor, sender: sender, unixReader: unixReader, eventLoop: channel.eventLoop)
            fastPath.attach(to: channel, inbox: inbox)
            return OpenedSocket(channel: channel, fastPath: fastPath, ownedPath: ownedPath)
        } catch {
            sender?.close()
            unixReader?.discard()
            if let ownedPath { unlink(ownedPath) }
            throw UDPError.from(error, address: local.description, operation: "bind")
        }
    }

    /// Ties the parts to the channel: they stop when it closes, whoever closes it; a paused reader resumes when a
    /// receiver drained the inbox.
    private func attach(to channel: any Channel, inbox: Inbox) {
        channel.closeFuture.whenComplete { [self] _ in
            stop()
            // On the event loop, after the last read there.
            loopReader.value?.receiver.deallocate()
            loopReader.value = nil
        }
        if let unixReader {
            inbox.setResume { unixReader.resume() }
        } else {
            // The pipeline (and with it this closure) is torn down when the channel closes.
            inbox.setResume { channel.read() }
        }
    }

    /// Stops what runs and closes the sending descriptor, at once (from any thread).
    private func stop() {
        sender?.close()
        unixReader?.stop()
        runningResponder.withLockedValue { $0 }?.stop()
    }

    /// Closes everything this path opened and waits until its threads have let go of the socket.
    func close() async {
        stop()
        try? await unixReaderDone?.get()
        // A responder thread holds the socket until its loop has stopped.
        if let running = runningResponder.withLockedValue({ $0 }) {
            try? await running.finished.futureResult.get()
        }
    }

    /// The kernel's drop count for an IP socket (see `UDPSocket.kernelDrops`); nil for Unix-domain sockets, whose
    /// senders wait instead, and once closed.
    var kernelDrops: Int? {
        guard unixReader == nil else { return nil }
        return sender?.withDescriptor { fd in
            var drops: CUnsignedInt = 0
            return cudp_socket_drops(fd, &drops) == 0 ? Int(drops) : nil
        } ?? nil
    }

    /// Consecutive reads on the event loop after which SwiftNIO reads (and the loop's other work runs) once.
    static let loopTurns = 16

    /// Datagrams read straight from the socket by a task that runs on its event loop (`UDPSocket.taskExecutor`):
    /// there SwiftNIO cannot be reading at the same time, so the order stays the socket's, and a batch needs no
    /// hand-over from SwiftNIO's read to the task. The caller checked that nothing is queued in the inbox.
    /// - Returns: nil when this path does not read here (a Unix-domain socket, receive offload, a running
    ///   `respond`, a closed channel), when nothing is waiting, and after `loopTurns` reads in a row, so that a
    ///   receiver that always finds datagrams still leaves the event loop's other work its turn. Then the caller
    ///   waits for SwiftNIO's read.
    /// - Throws: the error the receive reported (an ICMP error for an earlier send), as SwiftNIO's read would.
    func readOnEventLoop(maximum: Int, for socket: UDPSocket) throws(UDPError) -> [Datagram]? {
        guard let descriptor, !socket.options.receiveOffload, socket.channel.isActive,
            runningResponder.withLockedValue({ $0 == nil })
        else { return nil }
        let reader: LoopReader
        if let made = loopReader.value {
            reader = made
        } else {
            reader = LoopReader(
                receiver: BatchReceiver(
                    limits: socket.limits, packetInfo: socket.options.receivePacketInfo,
                    localPort: socket.localAddress.port ?? 0))
            loopReader.value = reader
        }
        reader.turns += 1
        guard reader.turns < Self.loopTurns else {
            reader.turns = 0
            return nil
        }
        do throws(SystemCallError) {
            guard let count = try reader.receiver.receive(fd: descriptor, maximum: maximum) else {
                reader.turns = 0
                return nil
            }
            return reader.receiver.datagrams(count, compact: true)
        } catch {
            throw .from(
                errno: error.errno, address: socket.remoteAddress?.description ?? "the peer", operation: "receive")
        }
    }

    /// Runs `socket.respond` here when this path can: on a `BatchResponder` thread for an IP socket (unless it
    /// receives with offload, which SwiftNIO reads), or from the `UnixReader`'s queue for a Unix-domain socket.
    /// - Returns: false when `respond` should answer on the event loop instead.
    func respond(
        for socket: UDPSocket,
        refused: (@Sendable ([OutgoingDatagram]) -> Void)?,
        _ reply: @escaping @Sendable ([Datagram]) -> [OutgoingDatagram]
    ) async throws -> Bool {
        if let descriptor, !socket.options.receiveOffload {
            try await respondInBatches(socket, reply, refused: refused, descriptor: descriptor)
            return true
        }
        guard unixReader != nil else { return false }
        // SwiftNIO does not read this socket: answer what the reader queues, a batch at a time.
        while true {
            let batch: [Datagram]
            do { batch = try await socket.receiveBatch() } catch UDPError.closed { return true }
            try await socket.answer(batch, reply, refused: refused)
        }
    }

    /// `respond` on a `BatchResponder` thread: SwiftNIO's reads pause, the responder reads a duplicate of the
    /// descriptor until the socket closes or the task is cancelled, then SwiftNIO reads again.
    private func respondInBatches(
        _ socket: UDPSocket,
        _ reply: @escaping @Sendable ([Datagram]) -> [OutgoingDatagram],
        refused: (@Sendable ([OutgoingDatagram]) -> Void)?,
        descriptor: CInt
    ) async throws {
        let channel = socket.channel
        // On the event loop the channel cannot close underneath: the descriptor is still SwiftNIO's open socket.
        let duplicate: CInt = try await channel.eventLoop.submit {
            guard channel.isActive else { throw UDPError.closed }
            let handler = try channel.pipeline.syncOperations.handler(type: DatagramHandler.self)
            let duplicate: CInt
            do throws(SystemCallError) {
                duplicate = try SocketDescriptor.duplicate(descriptor)
            } catch {
                throw UDPError.system(operation: "respond (dup)", errno: error.errno)
            }
            do {
                try channel.syncOptions?.setOption(.autoRead, value: false)
            } catch {
                SocketDescriptor.close(duplicate)
                throw UDPError.from(error, address: "autoRead", operation: "respond")
            }
            handler.readsSuspended = true
            return duplicate
        }.get()
        let responder: BatchResponder
        do {
            responder = try BatchResponder(
                fd: duplicate,
                limits: socket.limits,
                eventLoop: channel.eventLoop,
                reply: reply,
                target: { try? socket.target(for: $0) },
                envelope: { try? socket.envelope(for: $0) },
                handOver: { envelopes in
                    channel.eventLoop.execute {
                        for envelope in envelopes { channel.write(envelope, promise: nil) }
                        channel.flush()
                    }
                },
                packetInfo: socket.options.receivePacketInfo,
                localPort: socket.localAddress.port ?? 0,
                refused: refused
            )
        } catch {
            await resumeReading(channel, after: nil)
            throw error
        }
        runningResponder.withLockedValue { $0 = responder }
        channel.closeFuture.whenComplete { [weak responder] _ in responder?.stop() }
        let failure: SystemCallError?
        do {
            try await socket.answerQueued(reply, refused: refused)
            let thread = NIOThreadPool(numberOfThreads: 1)
            thread.start()
            failure = await withTaskCancellationHandler {
                do {
                    try await thread.runIfActive { try responder.run() }
                    return nil
                } catch {
                    // The loop's own failure; the pool's (it was shut down) cannot happen while this waits.
                    return error as? SystemCallError
                }
            } onCancel: {
                responder.stop()
            }
            try? await thread.shutdownGracefully()
        } catch {
            await resumeReading(channel, after: responder)
            throw error
        }
        await resumeReading(channel, after: responder)
        if let failure { throw UDPError.answeringFailed(failure) }
        try Task.checkCancellation()
    }

    /// Hands reading back to SwiftNIO once `responder` has stopped (releasing the socket).
    private func resumeReading(_ channel: any Channel, after running: BatchResponder?) async {
        running?.finish()
        try? await channel.eventLoop.submit {
            guard channel.isActive else { return }
            try channel.pipeline.syncOperations.handler(type: DatagramHandler.self).readsSuspended = false
            try channel.syncOptions?.setOption(.autoRead, value: true)
        }.get()
    }

    /// A non-blocking Unix-domain datagram socket bound to `path`; a stale socket file there is removed first when
    /// `removeExisting` (the caller checked that no program is bound to it).
    private static func makeBoundUnixSocket(_ path: String, removeExisting: Bool) throws(UDPError) -> CInt {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw .invalidAddress(
                path,
                reason: "a Unix socket path must be shorter than \(MemoryLayout.size(ofValue: address.sun_path)) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        if removeExisting {
            var info = stat()
            if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
        }
        let fd: CInt
        do {
            fd = try SocketDescriptor.datagramSocket(family: AF_UNIX)
        } catch {
            throw .from(errno: error.errno, address: path, operation: "socket")
        }
        do {
            _ = try SystemCall.run("bind") {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
            }
        } catch {
            SocketDescriptor.close(fd)
            throw .from(errno: error.errno, address: path, operation: "bind")
        }
        return fd
    }
}

/// The receiver of the tasks that receive on a socket's event loop, and how many times in a row they found datagrams.
/// Not `Sendable`: only the event loop uses it (`NIOLoopBoundBox`).
private final class LoopReader {
    var receiver: BatchReceiver
    var turns = 0

    init(receiver: BatchReceiver) {
        self.receiver = receiver
    }
}

extension DirectSender {
    /// Sends with `sendmmsg`, joining runs into UDP GSO sends: a `SendVector` kept from send to send.
    struct Transmitter {
        var vector = SendVector()

        /// Sends `envelopes` in order; see `SendVector.transmit`. A connected socket's peer is named anyway: Linux
        /// accepts its own peer's address on a connected socket.
        mutating func transmit(_ envelopes: [Envelope], fd: CInt, connected: Bool, refused: (Int, CInt) -> Void) -> Int
        {
            vector.reset(reserving: envelopes.count)
            for envelope in envelopes {
                vector.append(envelope.data, to: envelope.remoteAddress)
            }
            return withExtendedLifetime(envelopes) {
                vector.transmit(fd: fd, refused: refused)
            }
        }

        func deallocate() {
            vector.deallocate()
        }
    }

}
#endif
