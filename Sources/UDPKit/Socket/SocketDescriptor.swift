#if canImport(Glibc)
import CUDPSys
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The descriptors UDPKit makes itself, on either path: an IP socket is made and bound here and handed to
/// SwiftNIO (`DatagramBootstrap.withBoundSocket`), so that UDPKit keeps a duplicate to send from (and, on Linux,
/// to answer from). The system differences stay in this file.
enum SocketDescriptor {
    /// Closes `fd` (the C library's `close`, which types with a `close()` of their own cannot call by name).
    static func close(_ fd: CInt) {
        #if canImport(Glibc)
        _ = Glibc.close(fd)
        #elseif canImport(Darwin)
        _ = Darwin.close(fd)
        #endif
    }

    /// A duplicate of `fd`, sharing its socket.
    static func duplicate(_ fd: CInt) throws(SystemCallError) -> CInt {
        try SystemCall.run("dup") { dup(fd) }
    }

    /// A non-blocking, close-on-exec datagram socket of `family`.
    static func datagramSocket(family: CInt) throws(SystemCallError) -> CInt {
        #if canImport(Glibc)
        return try SystemCall.run("socket") {
            socket(family, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        }
        #else
        let fd = try SystemCall.run("socket") { socket(family, SOCK_DGRAM, 0) }
        do {
            _ = try SystemCall.run("fcntl") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
            let flags = try SystemCall.run("fcntl") { fcntl(fd, F_GETFL, 0) }
            _ = try SystemCall.run("fcntl") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        } catch {
            close(fd)
            throw error
        }
        return fd
        #endif
    }

    /// A non-blocking IP socket bound to `local`, with the options that must be set before binding.
    /// - Parameter packetInfo: ask for packet information here (Linux: `respond`'s thread reads it too).
    static func boundIPSocket(_ local: UDPAddress, options: UDPSocketOptions, packetInfo: Bool) throws(UDPError) -> CInt
    {
        let fd: CInt
        do {
            fd = try datagramSocket(family: local.family == .ipv6 ? AF_INET6 : AF_INET)
        } catch {
            throw .from(errno: error.errno, address: local.description, operation: "socket")
        }
        // Each step's errno is the one its call left: the wrapper reads it before anything else runs.
        func step(_ operation: String, _ call: () throws(SystemCallError) -> Void) throws(UDPError) {
            do {
                try call()
            } catch {
                close(fd)
                throw .from(errno: error.errno, address: local.description, operation: operation)
            }
        }
        func enable(_ level: CInt, _ name: CInt, _ what: String) throws(UDPError) {
            var one: CInt = 1
            try step("setting \(what)") { () throws(SystemCallError) in
                _ = try SystemCall.run("setsockopt") {
                    setsockopt(fd, level, name, &one, socklen_t(MemoryLayout<CInt>.size))
                }
            }
        }
        if options.reuseAddress { try enable(SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR") }
        if options.reusePort { try enable(SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT") }
        if local.family == .ipv6 && options.ipv6Only { try enable(CInt(IPPROTO_IPV6), IPV6_V6ONLY, "IPV6_V6ONLY") }
        #if canImport(Glibc)
        if packetInfo {
            let ipv6: CInt = local.family == .ipv6 ? 1 : 0
            try step("setting packet information (IP_PKTINFO)") { () throws(SystemCallError) in
                _ = try SystemCall.run("setsockopt") { cudp_enable_packet_info(fd, ipv6) }
            }
        }
        #endif
        try step("bind") { () throws(SystemCallError) in
            _ = try SystemCall.run("bind") {
                local.socketAddress.withSockAddr { address, length in bind(fd, address, socklen_t(length)) }
            }
        }
        return fd
    }
}
