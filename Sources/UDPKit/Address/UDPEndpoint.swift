/// An address as a person writes it, before name resolution: `host:port`, `[v6]:port`, `host port`,
/// a special word for "any address" or "broadcast", or a Unix-domain socket path.
///
/// Accepted forms (see `parse(_:defaultHost:)`):
/// - `127.0.0.1:9999`, `example.org:53`, `[::1]:9999`, `[fe80::1%eth0]:9999`
/// - `:9999`, `*:9999`, `0.0.0.0:9999`, `[::]:9999` (any address)
/// - `<broadcast>:9999`, `broadcast:9999`
/// - `9999` alone when the caller supplies a default host (as `udp listen` does)
/// - `unix:/path/to/socket`, or any text starting with `/` or `./` (a Unix-domain datagram socket)
public struct UDPEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// The host part of an IP endpoint.
    public enum Host: Hashable, Sendable {
        /// Any local address: `""`, `*`, or a family-specific wildcard (`0.0.0.0` is `.name("0.0.0.0")`).
        case any
        /// Every broadcast address (`<broadcast>`, `broadcast`).
        case broadcast
        /// A host name or a numeric address.
        case name(String)
    }

    /// What the endpoint names.
    public enum Kind: Hashable, Sendable {
        /// A host and a port.
        case ip(host: Host, port: Int)
        /// A Unix-domain datagram socket path.
        case unix(path: String)
    }

    /// What the endpoint names.
    public var kind: Kind

    /// An endpoint of the given kind.
    public init(kind: Kind) { self.kind = kind }

    /// An endpoint from separate host and port texts, as in `udp send HOST PORT`.
    ///
    /// The host may be a name, a numeric address (IPv6 with or without brackets), `""`/`*` (any), or
    /// `<broadcast>`/`broadcast`.
    /// - Throws: `UDPError.invalidPort` or `UDPError.invalidAddress` naming what is wrong.
    public init(host: String, port: String) throws(UDPError) {
        self.init(kind: .ip(host: try Self.parseHost(host), port: try Self.parsePort(port)))
    }

    /// Parses `HOST:PORT`, `[V6]:PORT`, a Unix path, or (with `defaultHost`) a bare `PORT`.
    ///
    /// - Parameters:
    ///   - text: the address as written.
    ///   - defaultHost: the host to use when `text` is only a port; when nil, a bare port is an error.
    /// - Throws: `UDPError.invalidAddress` or `UDPError.invalidPort` with a reason that names the problem,
    ///   for example an IPv6 address without brackets.
    public static func parse(_ text: String, defaultHost: Host? = nil) throws(UDPError) -> UDPEndpoint {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw .invalidAddress(text, reason: "empty Unix socket path after 'unix:'") }
            return UDPEndpoint(kind: .unix(path: path))
        }
        if text.hasPrefix("/") || text.hasPrefix("./") || text.hasPrefix("../") {
            return UDPEndpoint(kind: .unix(path: text))
        }
        if text.isEmpty { throw .invalidAddress(text, reason: "empty address; expected HOST:PORT") }
        if text.allSatisfy(\.isASCIIDigit) || text.hasPrefix("-") {
            guard let defaultHost else {
                throw .invalidAddress(text, reason: "missing host; expected HOST:PORT or HOST PORT")
            }
            return UDPEndpoint(kind: .ip(host: defaultHost, port: try parsePort(text)))
        }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw .invalidAddress(text, reason: "missing ']' after the IPv6 address")
            }
            let inside = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), rest.count > 1 else {
                throw .invalidAddress(text, reason: "expected :PORT after ']'")
            }
            guard inside.contains(":") else {
                throw .invalidAddress(text, reason: "brackets are for IPv6 addresses; write HOST:PORT without them")
            }
            return UDPEndpoint(kind: .ip(host: try parseHost(inside), port: try parsePort(String(rest.dropFirst()))))
        }
        guard let colon = text.lastIndex(of: ":") else {
            throw .invalidAddress(text, reason: "missing port; expected HOST:PORT")
        }
        let hostText = String(text[..<colon])
        if hostText.contains(":") {
            throw .invalidAddress(text, reason: "put an IPv6 address in brackets, as in [::1]:9999")
        }
        let portText = String(text[text.index(after: colon)...])
        guard !portText.isEmpty else { throw .invalidAddress(text, reason: "missing port after ':'") }
        return UDPEndpoint(kind: .ip(host: try parseHost(hostText), port: try parsePort(portText)))
    }

    /// Parses a port: a decimal number from 0 to 65535 (0 means "any free port" when binding).
    /// - Throws: `UDPError.invalidPort`.
    public static func parsePort(_ text: String) throws(UDPError) -> Int {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy(\.isASCIIDigit), let port = Int(text), port <= 65535
        else {
            throw .invalidPort(text)
        }
        return port
    }

    /// Parses a host: the special words, a bracketed or bare numeric address, or a name.
    /// - Throws: `UDPError.invalidAddress` for text that cannot be a host (spaces, control characters, ...).
    public static func parseHost(_ text: String) throws(UDPError) -> Host {
        switch text {
        case "", "*": return .any
        case "<broadcast>", "broadcast": return .broadcast
        default: break
        }
        var host = text
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw .invalidAddress(text, reason: "empty host") }
        guard host.utf8.count <= 253 else {
            throw .invalidAddress(text, reason: "host name longer than 253 characters")
        }
        if let bad = host.unicodeScalars.first(where: {
            !($0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-_:%".unicodeScalars.contains($0))
        }) {
            throw .invalidAddress(text, reason: "unexpected character '\(bad.escaped(asASCII: true))' in host")
        }
        return .name(host)
    }

    public var description: String {
        switch kind {
        case .unix(let path): return path
        case .ip(let host, let port):
            switch host {
            case .any: return "*:\(port)"
            case .broadcast: return "<broadcast>:\(port)"
            case .name(let name): return name.contains(":") ? "[\(name)]:\(port)" : "\(name):\(port)"
            }
        }
    }

    /// Resolves to socket addresses, without blocking the caller's thread.
    ///
    /// `.any` resolves to `::` (dual-stack: IPv4 and IPv6) unless `family` is `.ipv4`, which gives `0.0.0.0`;
    /// `.broadcast` resolves to the directed broadcast address of every interface that is up and can broadcast,
    /// one address per subnet: send to each (`UDPAddress.broadcastAddresses(port:interface:)` says more, and
    /// picks one interface); numeric addresses resolve without a lookup; names go through
    /// the system resolver on a background thread and may give several addresses, IPv4 ones first (on a
    /// dual-stack host most UDP services listen on IPv4, and UDP cannot tell a lost datagram from a wrong family).
    /// - Parameter family: restrict to IPv4 or IPv6 (`-4` / `-6`); nil accepts both.
    /// - Throws: `UDPError.nameNotFound` when a name has no address of the wanted family;
    ///   `UDPError.interfaceUnavailable` for `.broadcast` when no interface has a broadcast address.
    public func resolve(family: UDPAddress.Family? = nil) async throws(UDPError) -> [UDPAddress] {
        switch kind {
        case .unix(let path):
            return [try UDPAddress(unixPath: path)]
        case .ip(let host, let port):
            switch host {
            case .any:
                return [try UDPAddress(ip: family == .ipv4 ? "0.0.0.0" : "::", port: port)]
            case .broadcast:
                if family == .ipv6 {
                    throw .invalidAddress(
                        description, reason: "IPv6 has no broadcast; use a multicast group such as ff02::1")
                }
                return try UDPAddress.broadcastAddresses(port: port)
            case .name(let name):
                if let literal = try? UDPAddress(ip: name, port: port) {
                    if let family, literal.family != family {
                        throw .nameNotFound(
                            name,
                            reason:
                                "it is an \(literal.family == .ipv4 ? "IPv4" : "IPv6") address, but \(family == .ipv4 ? "IPv4" : "IPv6") was asked for"
                        )
                    }
                    return [literal]
                }
                if name.contains(":") {
                    // Not a host name, and not a valid IPv6 literal either: say so rather than asking DNS.
                    throw .invalidAddress(name, reason: "not a valid IPv6 address")
                }
                return try await Resolver.resolve(name, port: port, family: family)
            }
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
