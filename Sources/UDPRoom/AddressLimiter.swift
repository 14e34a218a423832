import RoomProtocol
import UDPKit

/// Per-source-address token buckets for traffic that carries no valid session token (JOINs, packets with an
/// unknown token), with a bounded table.
///
/// Such packets can come with any source address, so what the server sends back (WELCOME, REFUSED, ENDED)
/// must be limited per address, or the server could be made to send a stranger a stream of packets.
/// An address is keyed without its port: changing ports does not earn a new bucket.
struct AddressLimiter {
    let capacity: Int
    let refillInterval: UInt64
    let maximumAddresses: Int
    private var buckets: [UDPAddress: TokenBucket] = [:]

    init(capacity: Int, refillInterval: UInt64, maximumAddresses: Int = 65_536) {
        self.capacity = capacity
        self.refillInterval = refillInterval
        self.maximumAddresses = maximumAddresses
    }

    /// Takes one token from `address`'s bucket; false when it is empty.
    mutating func allow(_ address: UDPAddress, now: UInt64) -> Bool {
        let key = address.withPort(0)
        if buckets[key] == nil, buckets.count >= maximumAddresses {
            // Forget full buckets first: they carry no state worth keeping.
            buckets = buckets.filter { $0.value.available(now: now) < capacity }
            if buckets.count >= maximumAddresses { buckets.removeAll() }
        }
        var bucket = buckets[key] ?? TokenBucket(capacity: capacity, refillInterval: refillInterval, now: now)
        let allowed = bucket.tryTake(now: now)
        buckets[key] = bucket
        return allowed
    }
}
