/// Finds the UDP datagram in one captured frame.
enum PacketDecoder {
    enum Result: Equatable {
        case udp(source: [UInt8], sourcePort: UInt16, destination: [UInt8], destinationPort: UInt16, payload: [UInt8])
        case skip(String)
    }

    static func decode(linkType: UInt32, frame: ArraySlice<UInt8>) -> Result {
        let f = frame
        let s = f.startIndex
        func be16(_ at: Int) -> Int { Int(f[s + at]) << 8 | Int(f[s + at + 1]) }
        switch linkType {
        case 1:  // Ethernet II, possibly VLAN-tagged
            guard f.count >= 14 else { return .skip("frame shorter than its link header") }
            var type = be16(12)
            var at = 14
            while type == 0x8100 || type == 0x88A8 || type == 0x9100 {
                guard f.count >= at + 4 else { return .skip("frame shorter than its link header") }
                type = be16(at + 2)
                at += 4
            }
            return ip(etherType: type, f.dropFirst(at))
        case 113:  // Linux cooked v1: protocol at 14
            guard f.count >= 16 else { return .skip("frame shorter than its link header") }
            return ip(etherType: be16(14), f.dropFirst(16))
        case 276:  // Linux cooked v2: protocol at 0
            guard f.count >= 20 else { return .skip("frame shorter than its link header") }
            return ip(etherType: be16(0), f.dropFirst(20))
        case 0, 108:  // BSD loopback: address family, host byte order (0) or network order (108)
            guard f.count >= 4 else { return .skip("frame shorter than its link header") }
            let b = Array(f.prefix(4))
            let family =
                linkType == 108 || (b[0] == 0 && b[1] == 0)
                ? Int(b[0]) << 24 | Int(b[1]) << 16 | Int(b[2]) << 8 | Int(b[3])
                : Int(b[3]) << 24 | Int(b[2]) << 16 | Int(b[1]) << 8 | Int(b[0])
            switch family {
            case 2: return ipv4(f.dropFirst(4))
            case 10, 24, 28, 30: return ipv6(f.dropFirst(4))
            default: return .skip("not IP")
            }
        case 12, 14, 101:
            return rawIP(f)
        case 228: return ipv4(f)
        case 229: return ipv6(f)
        default:
            return .skip("link type \(linkType)")
        }
    }

    static func ip(etherType: Int, _ packet: ArraySlice<UInt8>) -> Result {
        switch etherType {
        case 0x0800: return ipv4(packet)
        case 0x86DD: return ipv6(packet)
        default: return .skip("not IP")
        }
    }

    static func rawIP(_ packet: ArraySlice<UInt8>) -> Result {
        guard let first = packet.first else { return .skip("empty packet") }
        switch first >> 4 {
        case 4: return ipv4(packet)
        case 6: return ipv6(packet)
        default: return .skip("not IP")
        }
    }

    static func ipv4(_ p: ArraySlice<UInt8>) -> Result {
        let s = p.startIndex
        guard p.count >= 20, p[s] >> 4 == 4 else { return .skip("not IP") }
        let headerLength = Int(p[s] & 0x0F) * 4
        let total = Int(p[s + 2]) << 8 | Int(p[s + 3])
        guard headerLength >= 20, total >= headerLength, p.count >= headerLength else {
            return .skip("corrupt IPv4 header")
        }
        guard p[s + 9] == 17 else { return .skip("not UDP") }
        let flagsOffset = Int(p[s + 6]) << 8 | Int(p[s + 7])
        if flagsOffset & 0x3FFF != 0 { return .skip("IP fragment") }
        let source = Array(p[(s + 12)..<(s + 16)])
        let destination = Array(p[(s + 16)..<(s + 20)])
        // A capture may pad a short frame (Ethernet minimum): the IP total length says where the packet ends.
        return udp(
            p[(s + headerLength)..<(s + min(total, p.count))], source: source, destination: destination,
            ipCut: total > p.count)
    }

    static func ipv6(_ p: ArraySlice<UInt8>) -> Result {
        let s = p.startIndex
        guard p.count >= 40, p[s] >> 4 == 6 else { return .skip("not IP") }
        let payloadLength = Int(p[s + 4]) << 8 | Int(p[s + 5])
        var next = p[s + 6]
        let source = Array(p[(s + 8)..<(s + 24)])
        let destination = Array(p[(s + 24)..<(s + 40)])
        let end = s + min(40 + payloadLength, p.count)
        var at = s + 40
        // Extension headers that may come before UDP.
        while next == 0 || next == 43 || next == 60 {
            guard at + 2 <= end else { return .skip("corrupt IPv6 header") }
            let size = (Int(p[at + 1]) + 1) * 8
            next = p[at]
            at += size
        }
        if next == 44 { return .skip("IP fragment") }
        guard next == 17 else { return .skip("not UDP") }
        guard at <= end else { return .skip("corrupt IPv6 header") }
        return udp(p[at..<end], source: source, destination: destination, ipCut: 40 + payloadLength > p.count)
    }

    static func udp(_ u: ArraySlice<UInt8>, source: [UInt8], destination: [UInt8], ipCut: Bool) -> Result {
        let s = u.startIndex
        guard u.count >= 8 else { return ipCut ? .skip("cut by the snap length") : .skip("corrupt UDP header") }
        let length = Int(u[s + 4]) << 8 | Int(u[s + 5])
        // A UDP length of 0 over IPv6 means a jumbogram: take what the IP layer holds.
        let end = length == 0 ? u.count : length
        guard end >= 8 else { return .skip("corrupt UDP header") }
        guard end <= u.count else { return ipCut ? .skip("cut by the snap length") : .skip("corrupt UDP header") }
        return .udp(
            source: source, sourcePort: UInt16(u[s]) << 8 | UInt16(u[s + 1]),
            destination: destination, destinationPort: UInt16(u[s + 2]) << 8 | UInt16(u[s + 3]),
            payload: Array(u[(s + 8)..<(s + end)]))
    }
}
