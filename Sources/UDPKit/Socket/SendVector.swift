#if os(Linux)
import CUDPSys
import Glibc
import NIOCore

/// Message headers, payload vectors and addresses for `sendmmsg`, reused from call to call and grown as needed.
///
/// `set` records a pointer into a payload's storage: the caller keeps the `ByteBuffer`s alive and unmodified until
/// `transmit` has returned.
struct SendVector {
    private(set) var capacity = 0
    private var messages = UnsafeMutablePointer<cudp_mmsghdr>.allocate(capacity: 0)
    private var vectors = UnsafeMutablePointer<iovec>.allocate(capacity: 0)
    private var names = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 0)

    /// Makes room for `count` messages (the contents are lost when it grows).
    mutating func reserve(_ count: Int) {
        guard count > capacity else { return }
        deallocate()
        capacity = max(count, 64)
        messages = .allocate(capacity: capacity)
        vectors = .allocate(capacity: capacity)
        names = .allocate(capacity: capacity)
    }

    /// Frees the memory; the vector must not be used afterwards.
    func deallocate() {
        messages.deallocate()
        vectors.deallocate()
        names.deallocate()
    }

    /// Message `i`: `payload` to the address in `name`.
    func set(_ i: Int, payload: ByteBuffer, name: sockaddr_storage, nameLength: socklen_t) {
        names[i] = name
        payload.withUnsafeReadableBytesWithStorageManagement { bytes, _ in
            vectors[i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
        }
        messages[i] = cudp_mmsghdr(
            msg_hdr: msghdr(
                msg_name: UnsafeMutableRawPointer(names + i),
                msg_namelen: nameLength,
                msg_iov: vectors + i,
                msg_iovlen: 1,
                msg_control: nil,
                msg_controllen: 0,
                msg_flags: 0
            ),
            msg_len: 0
        )
    }

    /// Message `i`: `payload` to `address`.
    func set(_ i: Int, payload: ByteBuffer, to address: SocketAddress) {
        var name = sockaddr_storage()
        let length = address.withSockAddr { pointer, length in
            withUnsafeMutableBytes(of: &name) { $0.baseAddress!.copyMemory(from: pointer, byteCount: length) }
            return socklen_t(length)
        }
        set(i, payload: payload, name: name, nameLength: length)
    }

    /// Sends messages `start..<end` with as few `sendmmsg` calls as it takes. A message the system refuses is
    /// reported to `refused` (index, errno) and skipped. Returns the index of the first message not sent because
    /// the socket would block (`end` when every message was dealt with).
    func transmit(fd: CInt, from start: Int, to end: Int, refused: (Int, CInt) -> Void) -> Int {
        var done = start
        while done < end {
            // sendmmsg takes at most 1,024 messages per call.
            let sent = cudp_sendmmsg(fd, messages + done, CUnsignedInt(min(end - done, 1024)), 0)
            if sent >= 0 {
                done += Int(sent)
                continue
            }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return done
            case EBADF, ENOTSOCK:
                for i in done..<end { refused(i, code) }
                return end
            default:
                refused(done, code)
                done += 1
            }
        }
        return end
    }
}
#endif
