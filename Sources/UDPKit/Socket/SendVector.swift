#if UDPKIT_LINUX_FAST_PATH
import CUDPSys
import Glibc
import NIOCore
import NIOPosix

/// Builds and sends one `sendmmsg` batch, reused from batch to batch.
///
/// With `segmenting` on, a run of datagrams to one address whose sizes are equal (the last may be shorter)
/// becomes a single message that the kernel cuts apart again (UDP generic segmentation offload): the receiver
/// still gets separate datagrams, and the sending side pays the stack's per-message cost once per run. When the
/// system refuses such a message (no checksum offload on the route, a segment larger than the path allows, an
/// old kernel), its datagrams are sent one by one and `segmenting` stays off.
///
/// `append` records pointers into the payloads' storage: the caller keeps the `ByteBuffer`s alive and
/// unmodified until `transmit` has returned.
struct SendVector {
    /// Whether runs are joined into segmentation-offload messages.
    var segmenting = System.supportsUDPSegmentationOffload
    /// Datagrams appended since the last `reset`.
    private(set) var payloadCount = 0
    /// Messages the datagrams make: fewer than the datagrams where runs were joined.
    private(set) var messageCount = 0
    private var capacity = 0
    private var messages = UnsafeMutablePointer<cudp_mmsghdr>.allocate(capacity: 0)
    private var vectors = UnsafeMutablePointer<iovec>.allocate(capacity: 0)
    private var names = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 0)
    private var controls = UnsafeMutableRawPointer.allocate(byteCount: 0, alignment: 16)
    /// Per message: the index of its first datagram, and its segment size.
    private var firstPayload = UnsafeMutablePointer<Int>.allocate(capacity: 0)
    private var segmentSize = UnsafeMutablePointer<Int>.allocate(capacity: 0)
    /// Whether the last message can take another segment (it ends at a shorter one).
    private var lastIsOpen = false
    private var lastBytes = 0
    private static let controlSpace = Int(cudp_segment_control_space())
    /// The batched send: `sendmmsg`, or in tests a stand-in that refuses like a system without offload on the route.
    var sendMessages: (CInt, UnsafeMutablePointer<cudp_mmsghdr>, CUnsignedInt) -> CInt = {
        cudp_sendmmsg($0, $1, $2, 0)
    }

    /// Empties the batch and makes room for `count` datagrams.
    mutating func reset(reserving count: Int) {
        payloadCount = 0
        messageCount = 0
        lastIsOpen = false
        guard count > capacity else { return }
        deallocate()
        capacity = max(count, 64)
        messages = .allocate(capacity: capacity)
        vectors = .allocate(capacity: capacity)
        names = .allocate(capacity: capacity)
        controls = .allocate(byteCount: capacity * Self.controlSpace, alignment: 16)
        firstPayload = .allocate(capacity: capacity)
        segmentSize = .allocate(capacity: capacity)
    }

    /// Frees the memory; the vector must not be used afterwards.
    func deallocate() {
        messages.deallocate()
        vectors.deallocate()
        names.deallocate()
        controls.deallocate()
        firstPayload.deallocate()
        segmentSize.deallocate()
    }

    /// Adds `payload` for the address in `name` (of `nameLength` bytes). `reset` must have made room.
    mutating func append(_ payload: ByteBuffer, name: UnsafeRawPointer, nameLength: socklen_t) {
        precondition(payloadCount < capacity, "SendVector: reset(reserving:) was too small")
        let size = payload.readableBytes
        payload.withUnsafeReadableBytesWithStorageManagement { bytes, _ in
            vectors[payloadCount] = iovec(
                iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
        }
        defer { payloadCount += 1 }
        if segmenting, lastIsOpen, joins(size: size, name: name, nameLength: nameLength) {
            let last = messageCount - 1
            messages[last].msg_hdr.msg_iovlen += 1
            lastBytes += size
            if messages[last].msg_hdr.msg_iovlen == 2 {
                let control = controls + last * Self.controlSpace
                messages[last].msg_hdr.msg_control = control
                messages[last].msg_hdr.msg_controllen = Int(cudp_segment_control(control, UInt16(segmentSize[last])))
            }
            // A shorter segment can only be the last one.
            if size < segmentSize[last] || messages[last].msg_hdr.msg_iovlen == UDPSocket.maximumSegments {
                lastIsOpen = false
            }
            return
        }
        let index = messageCount
        messageCount += 1
        UnsafeMutableRawPointer(names + index).copyMemory(from: name, byteCount: Int(nameLength))
        firstPayload[index] = payloadCount
        segmentSize[index] = size
        lastBytes = size
        lastIsOpen = size > 0
        messages[index] = cudp_mmsghdr(
            msg_hdr: msghdr(
                msg_name: UnsafeMutableRawPointer(names + index),
                msg_namelen: nameLength,
                msg_iov: vectors + payloadCount,
                msg_iovlen: 1,
                msg_control: nil,
                msg_controllen: 0,
                msg_flags: 0
            ),
            msg_len: 0
        )
    }

    /// Adds `payload` for `address`.
    mutating func append(_ payload: ByteBuffer, to address: SocketAddress) {
        address.withSockAddr { pointer, length in
            append(payload, name: UnsafeRawPointer(pointer), nameLength: socklen_t(length))
        }
    }

    /// Whether a datagram of `size` bytes to `name` can join the last message.
    private func joins(size: Int, name: UnsafeRawPointer, nameLength: socklen_t) -> Bool {
        let last = messageCount - 1
        guard size > 0, size <= segmentSize[last], lastBytes + size <= DatagramLimits.largestIPPayload,
            messages[last].msg_hdr.msg_namelen == nameLength
        else { return false }
        return memcmp(names + last, name, Int(nameLength)) == 0
    }

    /// Sends the datagrams appended, from datagram `start` on (an index in append order, such as one `transmit`
    /// returned), with as few `sendmmsg` calls as it takes. A datagram the system refuses is reported to `refused`
    /// (its index, errno) and skipped. Returns the index of the first datagram not sent because the socket would
    /// block (`payloadCount` when every datagram was dealt with).
    mutating func transmit(fd: CInt, from start: Int = 0, refused: (Int, CInt) -> Void) -> Int {
        guard start < payloadCount else { return payloadCount }
        // The message holding datagram `start`; when it starts inside a joined message, the rest of that one goes
        // datagram by datagram.
        var done = 0
        while done + 1 < messageCount && firstPayload[done + 1] <= start { done += 1 }
        if start > firstPayload[done] {
            if let blocked = sendSeparately(done, from: start, fd: fd, refused: refused) { return blocked }
            done += 1
        }
        while done < messageCount {
            // sendmmsg takes at most 1,024 messages per call.
            let code: CInt
            do throws(SystemCallError) {
                let (messages, count, sendMessages) = (
                    self.messages + done, CUnsignedInt(min(messageCount - done, 1024)), self.sendMessages
                )
                guard let sent = try SystemCall.nonBlocking("sendmmsg", { sendMessages(fd, messages, count) }) else {
                    return firstPayload[done]
                }
                done += Int(sent)
                continue
            } catch {
                code = error.errno
            }
            switch code {
            case EBADF, ENOTSOCK:
                for i in firstPayload[done]..<payloadCount { refused(i, code) }
                return payloadCount
            default:
                let first = firstPayload[done]
                if messages[done].msg_hdr.msg_iovlen > 1
                    && [EIO, EINVAL, EMSGSIZE, ENOPROTOOPT, EOPNOTSUPP].contains(code)
                {
                    // The joined send itself was refused: send its datagrams one by one, and join no more.
                    segmenting = false
                    if let blocked = sendSeparately(done, from: first, fd: fd, refused: refused) { return blocked }
                } else {
                    // Refused for its destination (or an error left by an earlier datagram): as for one datagram,
                    // the first is skipped and reported; the rest of a joined message still goes.
                    refused(first, code)
                    if messages[done].msg_hdr.msg_iovlen > 1,
                        let blocked = sendSeparately(done, from: first + 1, fd: fd, refused: refused)
                    {
                        return blocked
                    }
                }
                done += 1
            }
        }
        return payloadCount
    }

    /// Sends the datagrams of message `index` from datagram `start` on, one by one; the index of the first that
    /// would block, if one did.
    private func sendSeparately(_ index: Int, from start: Int, fd: CInt, refused: (Int, CInt) -> Void) -> Int? {
        var header = messages[index].msg_hdr
        header.msg_control = nil
        header.msg_controllen = 0
        header.msg_iovlen = 1
        var i = start
        let end = firstPayload[index] + Int(messages[index].msg_hdr.msg_iovlen)
        while i < end {
            header.msg_iov = vectors + i
            do throws(SystemCallError) {
                guard try SystemCall.nonBlocking("sendmsg", { sendmsg(fd, &header, 0) }) != nil else { return i }
            } catch {
                refused(i, error.errno)
            }
            i += 1
        }
        return nil
    }
}
#endif
