#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Datagrams the kernel dropped at a socket because its receive buffer was full: the difference between what was
/// sent to a listener and what it could count. Read from /proc/net/udp and /proc/net/udp6 (Linux); elsewhere unknown.
enum KernelDrops {
    /// Drops per local port, for the unconnected UDP sockets bound to `ports`.
    static func read(ports: Set<Int>) -> [Int: Int] {
        guard !ports.isEmpty else { return [:] }
        var drops: [Int: Int] = [:]
        for file in ["/proc/net/udp", "/proc/net/udp6"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            drops.merge(parse(text, ports: ports), uniquingKeysWith: +)
        }
        return drops
    }

    /// Parses the table: `sl local_address rem_address st ... drops`, addresses as `HEXADDR:HEXPORT`.
    static func parse(_ table: String, ports: Set<Int>) -> [Int: Int] {
        var drops: [Int: Int] = [:]
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 13,
                let local = fields[1].split(separator: ":").last, let port = Int(local, radix: 16),
                ports.contains(port),
                let remote = fields[2].split(separator: ":").last, remote == "0000",
                let count = Int(fields[fields.count - 1])
            else { continue }
            drops[port, default: 0] += count
        }
        return drops
    }
}
