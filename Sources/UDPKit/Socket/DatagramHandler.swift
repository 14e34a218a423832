import NIOCore

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

/// Sits in the channel pipeline: turns each read cycle's datagrams into one batch for the `Inbox`, flags
/// datagrams that did not fit, reports ICMP errors, and pauses reading while the inbox is full.
final class DatagramHandler: ChannelDuplexHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let inbox: Inbox
    private let limits: DatagramLimits
    private let classifier: ArrivalClassifier?
    private var localPort: Int?
    private var pending: [Datagram] = []
    private var pendingBytes = 0

    init(inbox: Inbox, limits: DatagramLimits, packetInfo: Bool) {
        self.inbox = inbox
        self.limits = limits
        self.classifier = packetInfo ? ArrivalClassifier() : nil
        pending.reserveCapacity(64)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        var arrival: Datagram.Arrival?
        if let classifier, let info = envelope.metadata?.packetInfo {
            if localPort == nil { localPort = context.channel.localAddress?.port }
            arrival = classifier.arrival(info, port: localPort ?? 0)
        }
        if let segmentSize = envelope.metadata?.segmentSize, segmentSize > 0, envelope.data.readableBytes > segmentSize
        {
            // Receive offload coalesced several datagrams of one sender: hand them on one by one.
            let sender = UDPAddress(envelope.remoteAddress)
            var rest = envelope.data
            while rest.readableBytes > 0, let segment = rest.readSlice(length: min(segmentSize, rest.readableBytes)) {
                append(segment, from: sender, arrival: arrival)
            }
            return
        }
        append(envelope.data, from: UDPAddress(envelope.remoteAddress), arrival: arrival)
    }

    private func append(_ payload: ByteBuffer, from sender: UDPAddress, arrival: Datagram.Arrival?) {
        var payload = payload
        let truncated = limits.received(&payload)
        pendingBytes += payload.readableBytes
        pending.append(
            Datagram(payload: payload, sender: sender, receivedAt: .distantPast, truncated: truncated, arrival: arrival)
        )
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushPending(context: context)
        context.fireChannelReadComplete()
    }

    /// When set, each read cycle's datagrams go to this closure (on the event loop) instead of the inbox, and the
    /// replies it returns leave with one flush. See `UDPSocket.respond(_:)`.
    /// Each reply may come with a promise, completed when the write succeeds or fails.
    var responder: (@Sendable ([Datagram]) -> [(AddressedEnvelope<ByteBuffer>, EventLoopPromise<Void>?)])?

    private func flushPending(context: ChannelHandlerContext) {
        guard !pending.isEmpty else { return }
        let now = Date()
        if let responder {
            // Answered before the next read: the slices of the receive buffer need no copy.
            for i in pending.indices { pending[i].receivedAt = now }
            let replies = responder(pending)
            pending.removeAll(keepingCapacity: true)
            pendingBytes = 0
            for (reply, promise) in replies { context.write(wrapOutboundOut(reply), promise: promise) }
            if !replies.isEmpty { context.flush() }
            return
        }
        var batch = pending
        for i in batch.indices { batch[i].receivedAt = now }
        batch.compactPayloads(totalBytes: pendingBytes)
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
        _ = inbox.push(batch)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let peer = context.channel.remoteAddress.map { UDPAddress($0).description } ?? "the peer"
        if let io = error as? IOError {
            inbox.push(error: UDPError.from(errno: io.errnoCode, address: peer, operation: "receive"))
        } else {
            inbox.push(error: UDPError.from(error, address: peer, operation: "receive"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        flushPending(context: context)
        inbox.finish()
        context.fireChannelInactive()
    }

    /// While true, nothing is read: another reader (`UDPSocket.respond(_:)` on Linux) has the socket.
    var readsSuspended = false

    func read(context: ChannelHandlerContext) {
        // While the inbox is over its limit, hold reads back; `UDPSocket` calls `channel.read()` once it drains.
        if readsSuspended || inbox.isPaused { return }
        context.read()
    }
}

extension Array where Element == Datagram {
    /// Copies the payloads, slices of large receive buffers, into one buffer of their own size, so that kept
    /// datagrams hold only their own bytes and the receive buffers can be reused at once.
    /// - Parameter totalBytes: the payloads' bytes together, when known.
    mutating func compactPayloads(totalBytes: Int? = nil) {
        let total = totalBytes ?? reduce(0) { $0 + $1.payload.readableBytes }
        var compact = ByteBufferAllocator().buffer(capacity: total)
        // Every write goes in before the first slice is taken: a slice shares the storage, so a write after it
        // would copy the whole buffer (quadratic in the batch).
        for datagram in self { compact.writeImmutableBuffer(datagram.payload) }
        var start = 0
        for i in indices {
            let length = self[i].payload.readableBytes
            self[i].payload = compact.getSlice(at: start, length: length)!
            start += length
        }
    }
}
