#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why `path` could not be read, in words for an error message: "no such file", "it is a directory",
/// "permission denied" (anything else that exists but cannot be read).
func unreadableReason(_ path: String) -> String {
    guard let directory = isDirectory(path) else { return "no such file" }
    return directory ? "it is a directory" : "permission denied"
}

/// Whether `path` names a directory; nil when nothing is there.
func isDirectory(_ path: String) -> Bool? {
    // FoundationEssentials reports it as a Bool, Foundation as an ObjCBool.
    #if canImport(FoundationEssentials)
    var directory = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &directory) else { return nil }
    return directory
    #else
    var directory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &directory) else { return nil }
    return directory.boolValue
    #endif
}

/// The directory part of `path`, as `NSString.deletingLastPathComponent` gives it: "/a/b/c" and "/a/b/c/" give
/// "/a/b", "/a" and "/" give "/", "name" gives "" (repeated slashes count as one).
func directoryPart(of path: String) -> String {
    var bytes: [UInt8] = []
    for byte in path.utf8 where !(byte == UInt8(ascii: "/") && bytes.last == UInt8(ascii: "/")) { bytes.append(byte) }
    if bytes.count > 1 && bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
    guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return "" }
    return slash == 0 ? "/" : String(decoding: bytes[..<slash], as: UTF8.self)
}
