import RoomProtocol

/// A simulated datagram path that loses, duplicates and reorders, driven by a seeded
/// generator so every run is reproducible. Base delay 10-15 ms; a "reordered" datagram is held
/// back another 20-120 ms, so later ones overtake it.
struct LossyChannel<Item> {
    private var rng: SplitMix64
    let loss: Double
    let duplicate: Double
    let reorder: Double
    private var inTransit: [(arrival: UInt64, serial: Int, item: Item)] = []
    private var serial = 0
    private(set) var sent = 0
    private(set) var dropped = 0
    private(set) var duplicated = 0
    private(set) var delayed = 0

    init(seed: UInt64, loss: Double = 0.20, duplicate: Double = 0.05, reorder: Double = 0.10) {
        rng = SplitMix64(seed: seed)
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
    }

    mutating func send(_ item: Item, now: UInt64) {
        sent += 1
        if rng.chance(loss) {
            dropped += 1
            return
        }
        let copies = rng.chance(duplicate) ? 2 : 1
        if copies == 2 { duplicated += 1 }
        for _ in 0..<copies {
            var delay = 10 * ms + UInt64.random(in: 0...5 * ms, using: &rng)
            if rng.chance(reorder) {
                delay += UInt64.random(in: 20 * ms...120 * ms, using: &rng)
                delayed += 1
            }
            inTransit.append((now + delay, serial, item))
            serial += 1
        }
    }

    /// Everything due by `now`, in arrival order.
    mutating func arrivals(now: UInt64) -> [Item] {
        guard inTransit.contains(where: { $0.arrival <= now }) else { return [] }
        let ready = inTransit.filter { $0.arrival <= now }.sorted { ($0.arrival, $0.serial) < ($1.arrival, $1.serial) }
        inTransit.removeAll { $0.arrival <= now }
        return ready.map(\.item)
    }

    var isEmpty: Bool { inTransit.isEmpty }
}
