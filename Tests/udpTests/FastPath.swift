import UDPKit
import XCTest

/// Skips a test of something only UDPKit's Linux fast path does, in a build without it (other systems, or
/// Linux built with `UDPKIT_PORTABLE=1`), saying what is missing. The `udp` under test is built with the same
/// settings as this bundle, so the bundle's UDPKit answers for it.
func skipWithoutFastPath(_ feature: String) throws {
    try XCTSkipUnless(UDPSocket.fastPathAvailable, "\(feature) needs the Linux fast path, which this build leaves out")
}

/// Whether the `udp` under test has UDPKit's Linux fast path (see `skipWithoutFastPath`).
let buildHasFastPath = UDPSocket.fastPathAvailable
