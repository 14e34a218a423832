#if canImport(Glibc)
import Glibc
#endif

/// Unmaps the pages of the binary that a long-running command touched only while starting.
///
/// Most of a server's resident memory is not its own data but pages of the `udp` binary itself (and of the system
/// libraries) that start-up touched once: the Swift runtime scans every protocol conformance record while the
/// arguments are parsed, and the kernel maps up to 64 KiB around every page it faults in. Measured on `udp echo`
/// (release build): about 2.5 MiB of data and 22 MiB of mapped file pages, most of them never used again.
///
/// What this changes is what the process maps, not what the system caches: the pages stay in the page cache,
/// shared and clean, the first memory the kernel reclaims once no process maps them. The peak (VmHWM) still
/// includes start-up.
enum ResidentMemory {
    /// Unmaps the pages of read-only file mappings (code and constants of the binary and its libraries) that hold no
    /// private copy, so that only the pages used from now on come back (from the page cache, at the cost of a
    /// minor fault each). Nothing is lost: those pages are identical to the file. A mapping with any private
    /// (anonymous) page, such as relocated data made read-only after start-up, is left alone, since discarding it
    /// would bring back the file's unrelocated bytes. Does nothing where `/proc/self/smaps` cannot be read.
    static func releaseStartupPages() {
        #if os(Linux)
        guard let smaps = readAll("/proc/self/smaps") else { return }
        var candidate: (start: UInt, end: UInt)?
        for line in smaps.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            let range = fields.first?.split(separator: "-") ?? []
            if range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16) {
                // A mapping's header: "start-end perms offset dev inode [path]". Read-only and backed by a file?
                let readOnlyFile = fields.count >= 6 && fields[1].hasPrefix("r") && !fields[1].contains("w") && fields[5].hasPrefix("/")
                candidate = readOnlyFile ? (start, end) : nil
            } else if line.hasPrefix("Anonymous:"), let mapping = candidate {
                candidate = nil
                let kib = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
                guard kib == 0 else { continue }
                _ = madvise(UnsafeMutableRawPointer(bitPattern: mapping.start), Int(mapping.end - mapping.start), MADV_DONTNEED)
            }
        }
        #endif
    }

    #if os(Linux)
    /// The whole of a file that reports no size (as the files in /proc do).
    private static func readAll(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
    #endif
}
