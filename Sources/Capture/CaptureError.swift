/// A capture that cannot be read (or a packet that cannot be written), with where and why.
public struct CaptureError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong, in one line, naming the record (from 1) and its byte offset where there is one.
    public var message: String
    /// The record (counting from 1) where reading stopped, when the error is about one.
    public var record: Int?

    init(message: String, record: Int? = nil) {
        self.message = message
        self.record = record
    }

    /// A packet that cannot be written as pcap.
    static func unwritable(_ reason: String) -> CaptureError {
        CaptureError(message: "cannot write the packet to a capture: \(reason)")
    }

    public var description: String { message }
}
