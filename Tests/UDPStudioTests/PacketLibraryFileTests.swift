import Foundation
import XCTest

@testable import UDPStudio

/// The saved-packets file: reading and writing it, and saying why either failed.
final class PacketLibraryFileTests: XCTestCase {
    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("udp-library-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// A library path that is a directory: the system's reason, not an error domain and code.
    func testReadingADirectorySaysSo() throws {
        let url = try temporaryDirectory()
        XCTAssertThrowsError(try PacketLibrary.load(from: url)) { error in
            XCTAssertEqual(
                (error as? LibraryError)?.message, "cannot read \(url.path): \(String(cString: strerror(EISDIR)))")
        }
    }

    /// Saving below a regular file cannot create the directory; the message says why.
    func testSavingWhereNoDirectoryCanBeMadeSaysWhy() throws {
        let file = try temporaryDirectory().appendingPathComponent("plain")
        XCTAssertTrue(FileManager.default.createFile(atPath: file.path, contents: Data("x".utf8)))
        let url = file.appendingPathComponent("udp/packets.json")
        XCTAssertThrowsError(try PacketLibrary().save(to: url)) { error in
            XCTAssertEqual(
                (error as? LibraryError)?.message, "cannot save \(url.path): \(String(cString: strerror(ENOTDIR)))")
        }
    }
}
