/// The receiving half of one reliable, ordered stream: turns datagrams that arrive lost,
/// duplicated and out of order into the original items, each exactly once and in order.
/// Pure: no I/O, no clock.
///
/// Items numbered `cumulative + 1 ... cumulative + window` are accepted; the next one in order
/// is delivered at once together with any buffered successors, later ones wait in a buffer of
/// at most `window` items. Anything at or below `cumulative`, or already buffered, is a
/// duplicate; anything further ahead is dropped (the sender retransmits it later). Whatever
/// the outcome, the caller should answer with an ACK carrying `acknowledgement`: a duplicate
/// usually means the previous ACK was lost.
public struct ReliableReceiver<Payload> {
    /// What became of one received item.
    public enum Disposition: Hashable, Sendable {
        /// It was next in order and is delivered (possibly with buffered successors).
        case delivered
        /// It arrived early and waits in the buffer for the gap before it to fill.
        case buffered
        /// It was received before; nothing is delivered.
        case duplicate
        /// It is more than `window` ahead of `cumulative`; dropped without trace.
        case beyondWindow
    }

    /// The outcome of `receive`.
    public struct Receipt {
        /// What became of the item.
        public let disposition: Disposition
        /// Items now deliverable, in order: empty, or the received item followed by the
        /// buffered items that it unblocked.
        public let deliverable: [Payload]
    }

    /// How far beyond `cumulative` items are accepted (and the buffer's size bound).
    public let window: Int
    /// Every sequence number up to and including this one has been delivered.
    public private(set) var cumulative: UInt64
    private var buffer: [UInt64: Payload] = [:]

    /// Items delivered so far.
    public private(set) var deliveredCount = 0
    /// Duplicates received so far.
    public private(set) var duplicateCount = 0
    /// Items dropped for being beyond the window.
    public private(set) var beyondWindowCount = 0

    /// A receiver expecting `firstSequence` first. Traps unless `window >= 1` and
    /// `firstSequence >= 1`.
    public init(window: Int = ReliableStreamConfiguration.standard.window, firstSequence: UInt64 = 1) {
        precondition(window >= 1, "window must be at least 1")
        precondition(firstSequence >= 1, "sequence numbers start at 1 or later")
        self.window = window
        cumulative = firstSequence - 1
    }

    /// Items waiting for an earlier gap to fill.
    public var bufferedCount: Int { buffer.count }

    /// The acknowledgement to send now: `cumulative`, plus a bit for every buffered item
    /// within 65 of it.
    public var acknowledgement: Acknowledgement {
        var selective: UInt64 = 0
        for sequence in buffer.keys {
            let distance = sequence - cumulative
            if distance >= 2 && distance <= 65 { selective |= 1 << (distance - 2) }
        }
        return Acknowledgement(cumulative: cumulative, selective: selective)
    }

    /// Takes in item `sequence` and says what became of it and what is now deliverable.
    public mutating func receive(sequence: UInt64, payload: Payload) -> Receipt {
        guard sequence > cumulative, buffer[sequence] == nil else {
            duplicateCount += 1
            return Receipt(disposition: .duplicate, deliverable: [])
        }
        guard sequence - cumulative <= UInt64(window) else {
            beyondWindowCount += 1
            return Receipt(disposition: .beyondWindow, deliverable: [])
        }
        guard sequence == cumulative + 1 else {
            buffer[sequence] = payload
            return Receipt(disposition: .buffered, deliverable: [])
        }
        var deliverable = [payload]
        cumulative = sequence
        while cumulative < .max, let next = buffer.removeValue(forKey: cumulative + 1) {
            deliverable.append(next)
            cumulative += 1
        }
        deliveredCount += deliverable.count
        return Receipt(disposition: .delivered, deliverable: deliverable)
    }
}

extension ReliableReceiver: Sendable where Payload: Sendable {}
extension ReliableReceiver.Receipt: Sendable where Payload: Sendable {}
extension ReliableReceiver.Receipt: Equatable where Payload: Equatable {}
