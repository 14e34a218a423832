#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOCore

/// Sits in the channel pipeline: turns each read cycle's datagrams into one batch for the `Inbox`, flags
/// datagrams that did not fit, reports ICMP errors, and pauses reading while the inbox is full.
final class DatagramHandler: ChannelDuplexHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let inbox: Inbox
    private let maximumSize: Int
    private var pending: [Datagram] = []
    private var pendingBytes = 0

    init(inbox: Inbox, maximumSize: Int) {
        self.inbox = inbox
        self.maximumSize = maximumSize
        pending.reserveCapacity(64)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        var payload = envelope.data
        var truncated = false
        if payload.readableBytes > maximumSize {
            // The receive slots are one byte larger than the maximum, so a full slot means the datagram was cut.
            truncated = true
            payload.moveWriterIndex(to: payload.readerIndex + maximumSize)
        }
        pendingBytes += payload.readableBytes
        pending.append(Datagram(payload: payload, sender: UDPAddress(envelope.remoteAddress), receivedAt: .distantPast, truncated: truncated))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushPending(context: context)
        context.fireChannelReadComplete()
    }

    private func flushPending(context: ChannelHandlerContext) {
        guard !pending.isEmpty else { return }
        let now = Date()
        // Datagrams are slices of large receive buffers; copy them into one compact buffer so that queued
        // datagrams hold only their own bytes and the receive buffers can be reused at once.
        var compact = context.channel.allocator.buffer(capacity: pendingBytes)
        var batch = pending
        for i in batch.indices {
            let start = compact.writerIndex
            compact.writeImmutableBuffer(batch[i].payload)
            batch[i].receivedAt = now
            batch[i].payload = compact.getSlice(at: start, length: batch[i].payload.readableBytes)!
        }
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

    func read(context: ChannelHandlerContext) {
        // While the inbox is over its limit, hold reads back; `UDPSocket` calls `channel.read()` once it drains.
        if inbox.isPaused { return }
        context.read()
    }
}
