import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that can go wrong with a UDP socket, in words that say what to do next.
///
/// `description` is one line, suitable for an error message after a program name.
public enum UDPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The text given as an address could not be understood; `reason` says why.
    case invalidAddress(String, reason: String)
    /// The text given as a port is not a number from 0 to 65535.
    case invalidPort(String)
    /// The host name could not be resolved (or has no address of the requested family).
    case nameNotFound(String, reason: String)
    /// Another socket is already bound to this address and port.
    case addressInUse(String)
    /// The address is not one of this host's addresses, so it cannot be bound.
    case addressNotAvailable(String)
    /// The operating system refused: a privileged port, or broadcast without permission.
    case permissionDenied(String, hint: String)
    /// No route to the network of this address.
    case networkUnreachable(String)
    /// No route to this host.
    case hostUnreachable(String)
    /// The peer answered with ICMP "port unreachable": nothing listens on that port.
    case connectionRefused(String)
    /// The payload is larger than one datagram can carry to this destination.
    case messageTooLarge(size: Int?, limit: Int?)
    /// No datagram arrived in time.
    case timedOut(seconds: Double)
    /// The socket was closed.
    case closed
    /// A datagram came from a Unix-domain socket that is not bound to a path. SwiftNIO cannot represent such a
    /// sender and closes the socket; senders to a Unix-domain socket must bind a path of their own.
    case unaddressableSender
    /// A network interface needed for the operation is missing or lacks what it needs (an IPv4 address, a
    /// broadcast address); `interface` is its name, or empty when no interface at all qualifies.
    case interfaceUnavailable(String, reason: String)
    /// Any other system error, with the operation that failed.
    case system(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .invalidAddress(let text, let reason):
            return "invalid address '\(text)': \(reason)"
        case .invalidPort(let text):
            return "invalid port '\(text)': expected a number from 0 to 65535"
        case .nameNotFound(let host, let reason):
            return "cannot resolve host '\(host)': \(reason)"
        case .addressInUse(let address):
            return "address \(address) is already in use (UDP); choose another port or stop the program using it"
        case .addressNotAvailable(let address):
            return "cannot bind \(address): that address is not on this host; use one of its addresses, or * for any"
        case .permissionDenied(let what, let hint):
            return "permission denied for \(what): \(hint)"
        case .networkUnreachable(let address):
            return "network unreachable for \(address): no route to it (check the address and the routing table)"
        case .hostUnreachable(let address):
            return "host \(address) is unreachable"
        case .connectionRefused(let address):
            return "\(address) refused the datagram (ICMP port unreachable): nothing is listening on that port"
        case .messageTooLarge(let size, let limit):
            let what = size.map { "message of \($0) bytes" } ?? "message"
            let bound = limit.map { " (at most \($0) bytes here)" } ?? ""
            return "\(what) is too large for one UDP datagram\(bound)"
        case .timedOut(let seconds):
            return "timed out after \(Self.formatSeconds(seconds)) with no reply"
        case .closed:
            return "the socket is closed"
        case .unaddressableSender:
            return
                "a datagram came from an unbound Unix-domain socket, which cannot be answered; the socket was closed (senders must bind a path)"
        case .interfaceUnavailable(let interface, let reason):
            return interface.isEmpty ? reason : "interface '\(interface)': \(reason)"
        case .system(let operation, let code):
            return "\(operation) failed: \(String(cString: strerror(code))) (errno \(code))"
        }
    }

    /// "3 s", "1.5 s", "250 ms", "1.5 ms", "250 us": never "0 ms" for a time under half a millisecond.
    static func formatSeconds(_ seconds: Double) -> String {
        func trimmed(_ value: Double) -> String {
            let rounded = (value * 1000).rounded() / 1000
            return rounded == rounded.rounded() ? "\(Int(rounded))" : "\(rounded)"
        }
        if seconds >= 1 || seconds == 0 { return "\(trimmed(seconds)) s" }
        if seconds >= 1e-3 { return "\(trimmed(seconds * 1000)) ms" }
        return "\(trimmed(seconds * 1e6)) us"
    }

    /// Maps an error from the socket layer to a `UDPError`, naming `address` and `operation` in the message.
    static func from(_ error: any Error, address: String, operation: String) -> UDPError {
        if let error = error as? UDPError { return error }
        if let io = error as? IOError { return from(errno: io.errnoCode, address: address, operation: operation) }
        if case .unsupported? = error as? SocketAddressError { return .unaddressableSender }
        if error is ChannelError {
            switch error as! ChannelError {
            case .ioOnClosedChannel, .alreadyClosed, .eof: return .closed
            case .writeMessageTooLarge: return .messageTooLarge(size: nil, limit: nil)
            case .writeHostUnreachable: return .hostUnreachable(address)
            default: break
            }
        }
        return .system(operation: "\(operation) (\(error))", errno: 0)
    }

    /// The answering loop of `UDPSocket.respond` stopped because a system call failed.
    static func answeringFailed(_ failure: SystemCallError) -> UDPError {
        .system(operation: "answering datagrams (\(failure.call))", errno: failure.errno)
    }

    static func from(errno code: Int32, address: String, operation: String) -> UDPError {
        switch code {
        case EADDRINUSE: return .addressInUse(address)
        case EADDRNOTAVAIL: return .addressNotAvailable(address)
        case EACCES, EPERM:
            if operation == "bind" {
                return .permissionDenied(
                    "binding \(address)",
                    hint: "ports below 1024 need root (or CAP_NET_BIND_SERVICE); use a port of 1024 or more")
            }
            return .permissionDenied(
                "sending to \(address)", hint: "it looks like a broadcast address; enable broadcast (--broadcast)")
        case ENETUNREACH: return .networkUnreachable(address)
        case EHOSTUNREACH: return .hostUnreachable(address)
        case ECONNREFUSED: return .connectionRefused(address)
        case EMSGSIZE: return .messageTooLarge(size: nil, limit: nil)
        default: return .system(operation: operation, errno: code)
        }
    }
}
