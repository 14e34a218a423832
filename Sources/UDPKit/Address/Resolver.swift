import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Name resolution through the system resolver (getaddrinfo), run on NIO's blocking-I/O thread pool so that
/// neither an event loop nor the cooperative thread pool waits on DNS.
enum Resolver {
    static func resolve(_ name: String, port: Int, family: UDPAddress.Family?) async throws(UDPError) -> [UDPAddress] {
        // RFC 6761: names under "invalid." never exist, and resolvers answer that at once, without asking DNS.
        if isReservedInvalid(name) { throw .nameNotFound(name, reason: "no such host") }
        let outcome: Result<[UDPAddress], UDPError>
        do {
            outcome = try await NIOThreadPool.singleton.runIfActive {
                Self.lookup(name, port: port, family: family, flags: 0)
            }
        } catch {
            throw .nameNotFound(name, reason: "resolver unavailable (\(error))")
        }
        return try outcome.get()
    }

    /// Whether `name` is "invalid" or ends in ".invalid" (with or without the root's dot), in any case.
    static func isReservedInvalid(_ name: String) -> Bool {
        let labels = name.lowercased().split(separator: ".", omittingEmptySubsequences: true)
        return labels.last == "invalid"
    }

    /// A scoped numeric IPv6 literal such as `fe80::1%eth0`, which `inet_pton` does not accept.
    static func numericScoped(_ text: String, port: Int) -> SocketAddress? {
        guard case .success(let found) = lookup(text, port: port, family: .ipv6, flags: AI_NUMERICHOST) else {
            return nil
        }
        return found.first?.socketAddress
    }

    private static func lookup(_ name: String, port: Int, family: UDPAddress.Family?, flags: Int32) -> Result<
        [UDPAddress], UDPError
    > {
        var hints = addrinfo()
        hints.ai_flags = flags
        switch family {
        case .ipv4: hints.ai_family = AF_INET
        case .ipv6: hints.ai_family = AF_INET6
        default: hints.ai_family = AF_UNSPEC
        }
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        #else
        hints.ai_socktype = SOCK_DGRAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(name, String(port), &hints, &result)
        guard status == 0, let first = result else {
            let reason: String
            switch status {
            case EAI_NONAME: reason = "no such host"
            case EAI_AGAIN: reason = "temporary failure in name resolution; try again"
            case EAI_FAMILY: reason = "no address of the requested family"
            default: reason = String(cString: gai_strerror(status))
            }
            let familyNote = family.map { " (\($0 == .ipv4 ? "IPv4" : "IPv6") only)" } ?? ""
            return .failure(.nameNotFound(name, reason: reason + familyNote))
        }
        defer { freeaddrinfo(first) }
        var addresses: [UDPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let sa = info.pointee.ai_addr {
                let address: SocketAddress?
                switch info.pointee.ai_family {
                case AF_INET:
                    address = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        SocketAddress($0.pointee, host: name)
                    }
                case AF_INET6:
                    address = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        SocketAddress($0.pointee, host: name)
                    }
                default:
                    address = nil
                }
                if let address {
                    let wrapped = UDPAddress(address)
                    if !addresses.contains(wrapped) { addresses.append(wrapped) }
                }
            }
            cursor = info.pointee.ai_next
        }
        if addresses.isEmpty { return .failure(.nameNotFound(name, reason: "no usable address")) }
        return .success(addresses.filter { $0.family == .ipv4 } + addresses.filter { $0.family != .ipv4 })
    }
}
