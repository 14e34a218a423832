import UDPKit
import XCTest

extension XCTestCase {
    /// The next datagram on `socket`; a test failure (and a thrown timeout) when none comes within `seconds`.
    func receive(_ socket: UDPSocket, within seconds: Double = 2, file: StaticString = #filePath, line: UInt = #line)
        async throws -> Datagram
    {
        guard let datagram = try await socket.receive(timeout: .milliseconds(Int(seconds * 1000))) else {
            XCTFail("nothing arrived on \(socket.localAddress)", file: file, line: line)
            throw UDPError.timedOut(seconds: seconds)
        }
        return datagram
    }
}

/// Skips a test of something only UDPKit's Linux fast path does, in a build without it (other systems, or
/// Linux built with `UDPKIT_PORTABLE=1`), saying what is missing.
func skipWithoutFastPath(_ feature: String) throws {
    try XCTSkipUnless(UDPSocket.fastPathAvailable, "\(feature) needs the Linux fast path, which this build leaves out")
}
