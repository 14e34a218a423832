import Foundation

/// Why `path` could not be read, in words for an error message: "no such file", "it is a directory",
/// "permission denied" (anything else that exists but cannot be read).
func unreadableReason(_ path: String) -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return "no such file" }
    return isDirectory.boolValue ? "it is a directory" : "permission denied"
}
