import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The size rules of a socket's datagrams, in one place for every path that receives or sends them: SwiftNIO's
/// read cycles (`DatagramHandler`), `respond`'s thread (`BatchResponder`), the Unix-domain reader (`UnixReader`),
/// and every send (`UDPSocket.send`, `respond`'s replies, `SendVector`'s joined runs).
///
/// Receiving: each datagram is read into a slot one byte larger than the maximum the socket keeps, so a datagram
/// that fills its slot was longer than the maximum; it is cut to the maximum and flagged `truncated`. Sending: a
/// payload larger than its destination can carry is refused before any system call.
struct DatagramLimits: Sendable, Equatable {
    /// The most payload bytes a received datagram keeps (`UDPSocketOptions.maximumDatagramSize`).
    let maximumSize: Int
    /// Bytes per receive slot.
    let slot: Int

    /// The largest IP datagram payload: 65,535 less the IP and UDP headers (IPv4's 20 and 8).
    static let largestIPPayload = 65_507
    /// The largest read one IP receive can bring: a datagram of 65,535 bytes with its headers, or a run of
    /// datagrams coalesced by receive offload (GRO), which the kernel keeps within the same bound.
    static let largestIPRead = 65_536

    /// The limits of a socket keeping up to `maximumSize` bytes per datagram.
    /// - Parameters:
    ///   - family: IP datagrams are never longer than 65,535 bytes, so their slots need never be larger; a
    ///     Unix-domain datagram can be as long as the system's buffers allow.
    ///   - receiveOffload: whether reads may coalesce several datagrams (GRO), which need a full-size slot.
    init(maximumSize: Int, family: UDPAddress.Family, receiveOffload: Bool = false) {
        self.maximumSize = maximumSize
        switch family {
        case .unix: slot = maximumSize + 1
        case .ipv4, .ipv6: slot = receiveOffload ? Self.largestIPRead : min(maximumSize + 1, Self.largestIPRead)
        }
    }

    /// What a receive of `length` bytes (as the system reported it, at most `slot`) keeps: how many bytes, and
    /// whether the datagram was cut.
    @inline(__always)
    func received(_ length: Int) -> (kept: Int, truncated: Bool) {
        length > maximumSize ? (maximumSize, true) : (length, false)
    }

    /// `payload` as received: cut to the maximum (moving its writer index back), and whether it was.
    @inline(__always)
    func received(_ payload: inout ByteBuffer) -> Bool {
        let (kept, truncated) = received(payload.readableBytes)
        if truncated { payload.moveWriterIndex(to: payload.readerIndex + kept) }
        return truncated
    }

    /// Why `datagram` cannot be sent at all, checked before any system call: a payload larger than its
    /// destination can carry, or a segmentation-offload run that breaks the offload's rules. Nil when it can go.
    static func refusal(of datagram: OutgoingDatagram) -> UDPError? {
        let size = datagram.payload.readableBytes
        if let limit = datagram.destination.maximumPayload, size > limit {
            return .messageTooLarge(size: size, limit: limit)
        }
        guard let segmentSize = datagram.segmentSize else { return nil }
        guard UDPSocket.supportsSegmentationOffload, datagram.destination.family != .unix else {
            return .system(operation: "send with segmentation offload (UDP GSO)", errno: EOPNOTSUPP)
        }
        let segments = (size + segmentSize - 1) / max(1, segmentSize)
        guard segmentSize > 0, segments <= UDPSocket.maximumSegments else {
            return .messageTooLarge(size: size, limit: max(1, segmentSize) * UDPSocket.maximumSegments)
        }
        return nil
    }
}
