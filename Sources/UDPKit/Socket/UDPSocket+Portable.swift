#if !UDPKIT_LINUX_FAST_PATH
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix

/// The portable path, what every system but Linux runs (and Linux built with `UDPKIT_PORTABLE=1`): SwiftNIO reads
/// and answers. The same small interface as the Linux fast path's `FastPath` (UDPSocket+LinuxFastPath.swift); what
/// only Linux has says it is not available here.
///
/// An IP socket is still made by UDPKit and handed to SwiftNIO, so that sends from tasks go out on a duplicate
/// descriptor one `sendto` at a time (`DirectSender`): a datagram the system refuses then fails alone, as on
/// Linux, where a failed SwiftNIO write would close the socket. Unix-domain sockets are SwiftNIO's alone.
final class FastPath: Sendable {
    /// Whether this build has Linux's fast path (`UDPSocket.fastPathAvailable`).
    static let isAvailable = false

    /// Sends from the calling task (IP sockets; on Linux Unix-domain sockets too); nil where SwiftNIO sends.
    let sender: DirectSender?

    private init(sender: DirectSender?) {
        self.sender = sender
    }

    /// Datagrams per read system call: SwiftNIO reads vectors on Linux only; the portable path reads what every
    /// system can, one at a time.
    static func readBatch(for local: UDPAddress, options: UDPSocketOptions) -> Int { 1 }

    /// Reading on the event loop is Linux's (see its `FastPath`): here SwiftNIO reads.
    func readOnEventLoop(maximum: Int, for socket: UDPSocket) throws(UDPError) -> [Datagram]? { nil }

    /// A socket bound to `local`, its channel made by `bootstrap`, with the parts this path adds to it.
    static func open(_ local: UDPAddress, options: UDPSocketOptions, inbox: Inbox, bootstrap: DatagramBootstrap)
        async throws -> OpenedSocket
    {
        var ownedPath: String?
        var sender: DirectSender?
        do {
            let channel: any Channel
            if let path = local.path {
                if UnixSocketFile.isLive(path) { throw UDPError.addressInUse(path) }
                channel = try await bootstrap.bind(
                    unixDomainSocketPath: path, cleanupExistingSocketFile: options.removeExistingSocketFile
                ).get()
                ownedPath = path
            } else {
                let fd = try SocketDescriptor.boundIPSocket(local, options: options, packetInfo: false)
                // Without a second descriptor (none left) sends go through SwiftNIO.
                if let copy = try? SocketDescriptor.duplicate(fd) { sender = DirectSender(fd: copy) }
                channel = try await bootstrap.withBoundSocket(fd).get()
            }
            let fastPath = FastPath(sender: sender)
            fastPath.attach(to: channel, inbox: inbox)
            return OpenedSocket(channel: channel, fastPath: fastPath, ownedPath: ownedPath)
        } catch {
            sender?.close()
            if let ownedPath { unlink(ownedPath) }
            throw UDPError.from(error, address: local.description, operation: "bind")
        }
    }

    /// Ties the sender to the channel: it stops when the channel closes, whoever closes it.
    private func attach(to channel: any Channel, inbox: Inbox) {
        channel.closeFuture.whenComplete { [self] _ in stop() }
        // The pipeline (and with it this closure) is torn down when the channel closes.
        inbox.setResume { channel.read() }
    }

    /// Not available: the kernel's drop counter is Linux's.
    var kernelDrops: Int? { nil }

    /// Not available: `respond` answers on the event loop. Returns false.
    func respond(
        for socket: UDPSocket,
        refused: (@Sendable ([OutgoingDatagram]) -> Void)?,
        _ reply: @escaping @Sendable ([Datagram]) -> [OutgoingDatagram]
    ) async throws -> Bool {
        false
    }

    /// Closes the sending descriptor, at once (from any thread).
    private func stop() {
        sender?.close()
    }

    /// Closes what this path opened (the sending duplicate); the channel is the socket's to close.
    func close() async {
        stop()
    }
}

extension DirectSender {
    /// Sends one datagram per `sendto`, what every system has.
    struct Transmitter {
        /// Sends `envelopes` in order. A datagram the system refuses is reported to `refused` (its index, errno)
        /// and skipped. Returns the index of the first datagram not sent because the socket would block (the
        /// count when every datagram was dealt with).
        mutating func transmit(_ envelopes: [Envelope], fd: CInt, connected: Bool, refused: (Int, CInt) -> Void) -> Int
        {
            for (index, envelope) in envelopes.enumerated() {
                let result = envelope.data.withUnsafeReadableBytes { bytes -> Result<Int?, SystemCallError> in
                    // A connected socket is not told its peer again (some systems refuse that with EISCONN).
                    if connected {
                        return Result { () throws(SystemCallError) -> Int? in
                            try SystemCall.nonBlocking("sendto") {
                                sendto(fd, bytes.baseAddress, bytes.count, 0, nil, 0)
                            }
                        }
                    }
                    return envelope.remoteAddress.withSockAddr { address, length in
                        Result { () throws(SystemCallError) -> Int? in
                            try SystemCall.nonBlocking("sendto") {
                                sendto(fd, bytes.baseAddress, bytes.count, 0, address, socklen_t(length))
                            }
                        }
                    }
                }
                switch result {
                case .success(nil): return index
                case .success: continue
                case .failure(let error): refused(index, error.errno)
                }
            }
            return envelopes.count
        }

        /// Nothing to free.
        func deallocate() {}
    }
}
#endif
