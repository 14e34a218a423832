#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// A failure to list the host's network interfaces.
///
/// `description` is a single line such as
/// `getifaddrs failed: Cannot allocate memory (errno 12)`.
public struct InterfaceError: Error, Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The system call that failed, such as `"getifaddrs"`.
    public var operation: String

    /// The `errno` value the call left behind.
    public var code: Int32

    /// Creates an error for `operation` having failed with the `errno` value `code`.
    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    public var description: String {
        "\(operation) failed: \(Self.message(for: code)) (errno \(code))"
    }

    private static func message(for code: Int32) -> String {
        guard let text = strerror(code) else { return "unknown error" }
        // Messages are single sentences today; folding any line break keeps the
        // one-line promise even if a C library changes that.
        return String(cString: text).split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
