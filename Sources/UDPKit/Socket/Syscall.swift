#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A system call that failed: its name and the errno it left.
package struct SystemCallError: Error, Equatable, CustomStringConvertible {
    /// The call, as the C library names it (`recvmmsg`, `poll`, ...).
    package let call: String
    /// The errno read right after the call returned.
    package let errno: CInt

    package init(call: String, errno: CInt) {
        self.call = call
        self.errno = errno
    }

    package var description: String { UDPError.system(operation: call, errno: errno).description }
}

/// The one place UDPKit (and the modules above it) makes a raw system call: errno is read right after the call,
/// before any other code can overwrite it, EINTR (a signal arrived during the call) is retried here rather than
/// by each caller, and EAGAIN/EWOULDBLOCK is told apart from a failure.
package enum SystemCall {
    /// Runs `body`, a call that returns a negative value and sets errno when it fails. An EINTR repeats the call.
    /// - Returns: the call's result, or nil when the descriptor is non-blocking and the call would block.
    /// - Throws: `SystemCallError` for any other errno.
    @inline(__always)
    package static func nonBlocking<T: BinaryInteger>(_ call: StaticString, _ body: () -> T) throws(SystemCallError)
        -> T?
    {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return nil
            default: throw SystemCallError(call: "\(call)", errno: code)
            }
        }
    }

    /// Runs `body` like `nonBlocking`, for calls that cannot block (socket, bind, setsockopt, dup, poll...): an
    /// EAGAIN is a failure like any other.
    @inline(__always)
    package static func run<T: BinaryInteger>(_ call: StaticString, _ body: () -> T) throws(SystemCallError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR { continue }
            throw SystemCallError(call: "\(call)", errno: code)
        }
    }
}
