#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension String {
    /// Numbers formatted as C's `printf` formats them (`"%.2f"`, `"%g"`): the text `String(format:)` gives for these
    /// conversions (it hands them to the C library too), without needing Foundation proper for it.
    init(cFormat format: String, _ arguments: CVarArg...) {
        var capacity = 64
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            // A va_list is consumed by use, so each attempt makes its own.
            let length = withVaList(arguments) { list in
                buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, capacity, format, list) }
            }
            if length < 0 {
                self = ""
                return
            }
            if Int(length) < capacity {
                self = String(decoding: buffer[..<Int(length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                return
            }
            capacity = Int(length) + 1
        }
    }
}
