import UDPKit
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one system call wrapper: errno read right after the call, EINTR retried, EAGAIN as "would block".
final class SystemCallTests: XCTestCase {
    func testAnInterruptedCallIsRepeated() throws {
        var calls = 0
        let result = try SystemCall.run("poll") { () -> CInt in
            calls += 1
            if calls == 1 {
                // What a signal arriving during the call leaves.
                errno = EINTR
                return -1
            }
            return 1
        }
        XCTAssertEqual(result, 1)
        XCTAssertEqual(calls, 2)
    }

    func testWouldBlockIsNilForANonBlockingCall() throws {
        var ends: [CInt] = [-1, -1]
        _ = try SystemCall.run("pipe") { pipe(&ends) }
        defer {
            close(ends[0])
            close(ends[1])
        }
        _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
        var byte: UInt8 = 0
        // An empty non-blocking pipe: the read would block.
        XCTAssertNil(try SystemCall.nonBlocking("read") { read(ends[0], &byte, 1) })
        // Through `run`, a would-block is a failure with its errno.
        XCTAssertThrowsError(try SystemCall.run("read") { read(ends[0], &byte, 1) }) { error in
            XCTAssertEqual((error as? SystemCallError)?.errno, EAGAIN)
        }
    }

    func testAFailureCarriesTheCallAndItsErrno() {
        do throws(SystemCallError) {
            _ = try SystemCall.run("dup") { dup(-1) }
            XCTFail("dup(-1) succeeded")
        } catch {
            XCTAssertEqual(error, SystemCallError(call: "dup", errno: EBADF))
            XCTAssertTrue(error.description.contains("dup failed"), error.description)
        }
    }
}
