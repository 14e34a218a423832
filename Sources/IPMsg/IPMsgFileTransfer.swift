import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import UDPKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
// The C library's close, which inside IPMsgFileServer its own `close()` would otherwise hide.
private let systemClose = Glibc.close
#elseif canImport(Darwin)
import Darwin
private let systemClose = Darwin.close
#endif

/// Why a file transfer failed.
public struct IPMsgFileError: Error, Sendable, CustomStringConvertible {
    /// One line saying what went wrong and, where it helps, what to do.
    public var description: String
    /// Makes an error.
    public init(_ description: String) { self.description = description }
}

/// Serves offered files over TCP on the IP Messenger port: a peer connects, sends a GETFILEDATA packet whose
/// Extra is `packetNo:fileID:offset` (hex), and reads the raw bytes from that offset to the end.
///
/// Only files this client offered are served, only to the address they were offered to, and only as a whole
/// regular file named when it was offered; a request that does not match gets the connection closed.
public final class IPMsgFileServer: Sendable {
    /// One served file.
    public struct Served: Sendable, Hashable {
        /// The offer's packet number.
        public var packetNumber: UInt32
        /// The file's id in the offer.
        public var fileID: UInt32
        /// Bytes sent.
        public var bytes: UInt64
        /// The peer's IP address.
        public var peer: String
    }

    private struct Offered: Sendable {
        var peer: String
        var path: String
        var size: UInt64
    }

    private let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let offers = NIOLockedValueBox<[UInt64: Offered]>([:])
    /// Completed transfers, in order.
    public let served: AsyncStream<Served>
    private let continuation: AsyncStream<Served>.Continuation

    /// The TCP port it listens on.
    public var port: Int { server.channel.localAddress?.port ?? 0 }

    private init(server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>) {
        self.server = server
        (served, continuation) = AsyncStream.makeStream(of: Served.self)
    }

    /// Listens on TCP `port` on every IPv4 address.
    public static func start(port: Int) async throws -> IPMsgFileServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "0.0.0.0", port: port) { child in
                child.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: child)
                }
            }
        return IPMsgFileServer(server: channel)
    }

    /// Makes the files of the message `packetNumber` fetchable by `peer` (an IP address).
    public func offer(packetNumber: UInt32, to peer: String, files: [(entry: IPMsgFileEntry, path: String)]) {
        offers.withLockedValue { offers in
            for (entry, path) in files {
                offers[UInt64(packetNumber) << 32 | UInt64(entry.id)] = Offered(
                    peer: peer, path: path, size: entry.size)
            }
        }
    }

    /// Accepts and serves connections until cancelled; at most 16 at once.
    public func run() async throws {
        defer { continuation.finish() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            try await server.executeThenClose { inbound in
                var running = 0
                for try await connection in inbound {
                    if running >= 16 {
                        _ = try? await group.next()
                        running -= 1
                    }
                    running += 1
                    group.addTask { await self.serve(connection) }
                }
            }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let peer = connection.channel.remoteAddress?.ipAddress ?? ""
        try? await connection.executeThenClose { inbound, outbound in
            // The request: one packet, up to its NUL, within 10 s and 8 KiB.
            let request = try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
                group.addTask {
                    var bytes: [UInt8] = []
                    for try await buffer in inbound {
                        bytes += buffer.readableBytesView
                        if bytes.contains(0) || bytes.count >= IPMsgPacket.maximumSize { break }
                    }
                    return bytes
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first
            }
            guard let request, let packet = try? IPMsgPacket.decode(request), packet.command.mode == .getFileData,
                let wanted = IPMsgFileRequest(extra: packet.extra)
            else { return }
            let key = UInt64(wanted.packetNumber) << 32 | UInt64(wanted.fileID)
            guard let offered = offers.withLockedValue({ $0[key] }), offered.peer == peer,
                wanted.offset <= offered.size,
                case let fd = open(offered.path, O_RDONLY | O_CLOEXEC), fd >= 0
            else { return }
            defer { _ = systemClose(fd) }
            var sent: UInt64 = 0
            var left = offered.size - wanted.offset
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while left > 0 {
                let want = Int(min(left, UInt64(chunk.count)))
                let offset = off_t(wanted.offset + sent)
                let n = try SystemCall.run("pread") {
                    chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, offset) }
                }
                if n == 0 { break }
                // Straight on the channel: its future completes once the bytes are in the socket, so closing
                // afterwards cannot drop a queued tail (a close fails writes still pending).
                try await connection.channel.writeAndFlush(ByteBuffer(bytes: chunk[..<n]))
                sent += UInt64(n)
                left -= UInt64(n)
            }
            continuation.yield(
                Served(packetNumber: wanted.packetNumber, fileID: wanted.fileID, bytes: sent, peer: peer))
        }
    }

    /// Stops listening.
    public func close() async { try? await server.channel.close() }
}

/// Fetching an offered file.
public enum IPMsgFileFetch {
    /// Connects to `host`:`port` over TCP, sends `request` (a GETFILEDATA packet) and writes exactly `size` bytes
    /// to a new file `name` inside `directory`.
    ///
    /// The name must pass ``IPMsgFileName/problem(_:)``; an existing file is never overwritten; a short transfer
    /// removes the partial file. Returns the path written.
    public static func fetch(
        from host: String, port: Int, request: [UInt8], size: UInt64, name: String, directory: String,
        timeout: Duration = .seconds(30)
    ) async throws -> String {
        if let problem = IPMsgFileName.problem(name) { throw IPMsgFileError("refused file name '\(name)': \(problem)") }
        let path = URL(fileURLWithPath: directory).appendingPathComponent(name).path
        guard
            URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL.path
                == URL(fileURLWithPath: directory).standardizedFileURL.path
        else {
            throw IPMsgFileError("refused file name '\(name)': it leaves the download directory")
        }
        // O_EXCL: never replace or follow anything already there.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw IPMsgFileError("cannot create \(path): \(String(cString: strerror(errno)))") }
        var received: UInt64 = 0
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            received = try await withThrowingTaskGroup(of: UInt64?.self) { group in
                group.addTask {
                    try await channel.executeThenClose { inbound, outbound in
                        try await outbound.write(ByteBuffer(bytes: request))
                        var got: UInt64 = 0
                        for try await buffer in inbound where got < size {
                            let take = Int(min(UInt64(buffer.readableBytes), size - got))
                            try buffer.withUnsafeReadableBytes { bytes in
                                var written = 0
                                while written < take {
                                    written += try SystemCall.run("write") {
                                        write(fd, bytes.baseAddress! + written, take - written)
                                    }
                                }
                            }
                            got += UInt64(take)
                            if got == size { break }
                        }
                        return got
                    }
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first ?? received
            }
        } catch {
            _ = systemClose(fd)
            unlink(path)
            throw IPMsgFileError("fetching '\(name)' from \(host) failed: \(error)")
        }
        _ = systemClose(fd)
        guard received == size else {
            unlink(path)
            throw IPMsgFileError(
                "'\(name)' from \(host): got \(received) of \(size) bytes; the partial file was removed")
        }
        return path
    }
}
