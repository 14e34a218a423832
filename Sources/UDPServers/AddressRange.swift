import UDPKit

/// An IP address range in CIDR notation (`10.0.0.0/8`, `::1/128`, or a single address), for `--allow`/`--deny`.
public struct AddressRange: Hashable, Sendable, CustomStringConvertible {
    private let network: [UInt8]
    /// The prefix length in bits.
    public let prefixLength: Int

    /// Parses `ADDRESS[/PREFIX]`. A bare address is a range of one (/32 or /128).
    /// - Throws: `UDPError.invalidAddress` naming the problem.
    public init(_ text: String) throws(UDPError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = parts.first else {
            throw .invalidAddress(text, reason: "expected ADDRESS or ADDRESS/PREFIX, as in 10.0.0.0/8")
        }
        let address = try UDPAddress(ip: String(first), port: 0)
        guard let bytes = address.rawBytes else { throw .invalidAddress(text, reason: "not an IP address") }
        let maximum = bytes.count * 8
        var length = maximum
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...maximum).contains(n), parts[1].allSatisfy(\.isNumber) else {
                throw .invalidAddress(text, reason: "prefix length must be 0 to \(maximum)")
            }
            length = n
        }
        prefixLength = length
        network = Self.masked(bytes, length)
    }

    /// True when `address` falls inside the range (IPv4 and IPv6 ranges never match each other).
    public func contains(_ address: UDPAddress) -> Bool {
        guard let bytes = address.rawBytes, bytes.count == network.count else { return false }
        return Self.masked(bytes, prefixLength) == network
    }

    public var description: String {
        let text: String
        if network.count == 4 {
            text = network.map(String.init).joined(separator: ".")
        } else {
            text = (try? UDPAddress(rawBytes: network))?.ip ?? "?"
        }
        return "\(text)/\(prefixLength)"
    }

    private static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        var out = bytes
        for i in 0..<out.count {
            let bitsHere = max(0, min(8, length - i * 8))
            out[i] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
        }
        return out
    }
}

/// Allow and deny lists of address ranges. A deny match always refuses; when any allow range is given, an
/// address must match one of them.
public struct AccessControl: Sendable, Equatable {
    /// Ranges that may be answered; empty means everyone not denied.
    public var allow: [AddressRange]
    /// Ranges that are never answered.
    public var deny: [AddressRange]

    /// Access control with the given lists.
    public init(allow: [AddressRange] = [], deny: [AddressRange] = []) {
        self.allow = allow
        self.deny = deny
    }

    /// Whether `address` may be answered.
    public func permits(_ address: UDPAddress) -> Bool {
        if deny.contains(where: { $0.contains(address) }) { return false }
        return allow.isEmpty || allow.contains { $0.contains(address) }
    }
}
