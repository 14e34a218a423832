/// The studio's memory of recent datagrams: a ring bounded both in records and in payload bytes, oldest dropped
/// first, so a flood of large datagrams cannot grow the process without limit.
public struct History: Sendable {
    /// The most records kept.
    public let capacity: Int
    /// The most payload bytes kept, summed over the records.
    public let byteLimit: Int
    private var ring: [StudioRecord?]
    private var start = 0
    /// How many records are kept now.
    public private(set) var count = 0
    /// The payload bytes kept now.
    public private(set) var bytes = 0
    /// The id the next record gets.
    public private(set) var nextID = 1

    /// An empty history. A capacity below 1 is taken as 1.
    public init(capacity: Int = 10_000, byteLimit: Int = 64 << 20) {
        self.capacity = max(1, capacity)
        self.byteLimit = max(1, byteLimit)
        ring = Array(repeating: nil, count: self.capacity)
    }

    /// Appends a record, giving it the next id, and drops the oldest records beyond the bounds.
    @discardableResult
    public mutating func append(_ record: StudioRecord) -> Int {
        var record = record
        record.id = nextID
        nextID += 1
        if count == capacity { dropOldest() }
        ring[(start + count) % capacity] = record
        count += 1
        bytes += record.bytes.count
        // Keep at least the newest record, however large.
        while bytes > byteLimit && count > 1 { dropOldest() }
        return record.id
    }

    /// The id of the oldest record kept, or nil when empty.
    public var firstID: Int? { count == 0 ? nil : nextID - count }

    /// Records with an id greater than `id`, oldest first, at most `limit` of them (the newest when there are more).
    public func records(after id: Int = 0, limit: Int = .max) -> [StudioRecord] {
        guard let first = firstID else { return [] }
        let from = max(first, id + 1)
        let last = nextID - 1
        guard from <= last else { return [] }
        let wanted = max(0, min(last - from + 1, limit))
        guard wanted > 0 else { return [] }
        var out: [StudioRecord] = []
        out.reserveCapacity(wanted)
        for n in (last - wanted + 1)...last {
            if let record = ring[(start + (n - first)) % capacity] { out.append(record) }
        }
        return out
    }

    /// The record with this id, if still kept.
    public func record(_ id: Int) -> StudioRecord? {
        guard let first = firstID, id >= first, id < nextID else { return nil }
        return ring[(start + (id - first)) % capacity]
    }

    /// Forgets every record; ids keep counting up.
    public mutating func removeAll() {
        ring = Array(repeating: nil, count: capacity)
        start = 0
        count = 0
        bytes = 0
    }

    private mutating func dropOldest() {
        guard count > 0 else { return }
        bytes -= ring[start]?.bytes.count ?? 0
        ring[start] = nil
        start = (start + 1) % capacity
        count -= 1
    }
}
