import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A datagram that arrived: its payload, who sent it, when, and whether it was cut.
public struct Datagram: Sendable {
    /// The payload. Zero bytes is a valid datagram, not the end of anything.
    public var payload: ByteBuffer
    /// The sender's address (IPv4-mapped IPv6 senders are shown as IPv4).
    public var sender: UDPAddress
    /// When the datagram was read from the socket (one reading per receive batch).
    public var receivedAt: Date
    /// True when the datagram was longer than the socket's `maximumDatagramSize` and `payload` holds only its
    /// first `maximumDatagramSize` bytes. With the default maximum (65,535) no UDP datagram is ever cut.
    public var truncated: Bool
    /// Where the datagram was addressed and which interface it came in on; nil unless the socket was opened with
    /// `UDPSocketOptions.receivePacketInfo` (and for Unix-domain sockets).
    public var arrival: Arrival?

    /// A datagram with the given contents.
    public init(
        payload: ByteBuffer, sender: UDPAddress, receivedAt: Date = Date(), truncated: Bool = false,
        arrival: Arrival? = nil
    ) {
        self.payload = payload
        self.sender = sender
        self.receivedAt = receivedAt
        self.truncated = truncated
        self.arrival = arrival
    }

    /// The payload as an array of bytes (a copy).
    public var bytes: [UInt8] { Array(payload.readableBytesView) }
}

/// A datagram to send: a payload and its destination; or, with a segment size, a run of equal-sized
/// datagrams handed to the kernel as one (UDP generic segmentation offload).
public struct OutgoingDatagram: Sendable {
    /// The bytes to send.
    public var payload: ByteBuffer
    /// Where to send them.
    public var destination: UDPAddress
    /// When set, `payload` is cut by the kernel into datagrams of this many bytes (the last one may be
    /// shorter), all to `destination`, with the cost of one send. Linux only: see
    /// `UDPSocket.supportsSegmentationOffload` and `UDPSocket.maximumSegments`.
    public var segmentSize: Int?

    /// A datagram carrying `payload` to `destination`.
    public init(payload: ByteBuffer, to destination: UDPAddress) {
        self.payload = payload
        self.destination = destination
    }

    /// Datagrams of `segmentSize` bytes each, cut from `payload` by the kernel (UDP GSO, Linux only). The
    /// payload may hold at most `UDPSocket.maximumSegments` segments and at most the destination's
    /// `maximumPayload` bytes in total; sending checks both and throws `UDPError.messageTooLarge`.
    public init(segments payload: ByteBuffer, segmentSize: Int, to destination: UDPAddress) {
        self.payload = payload
        self.destination = destination
        self.segmentSize = segmentSize
    }

    /// A datagram carrying `bytes` to `destination`.
    public init(bytes: some Sequence<UInt8>, to destination: UDPAddress) {
        self.payload = ByteBuffer(bytes: bytes)
        self.destination = destination
    }
}
