import Foundation
import UDPKit
import XCTest

/// The thread the blocking readers and writers of the command-line tool run on.
final class DetachedThreadTests: XCTestCase {
    /// What the started threads saw.
    ///
    /// `@unchecked Sendable`: every stored property is read and written only with `lock` held.
    private final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var names: [String] = []
        private var onCaller = false

        func record(name: String, onCaller: Bool) {
            lock.lock()
            defer { lock.unlock() }
            names.append(name)
            self.onCaller = self.onCaller || onCaller
        }

        var snapshot: (names: [String], onCaller: Bool) {
            lock.lock()
            defer { lock.unlock() }
            return (names, onCaller)
        }
    }

    /// The calling thread's name as the system shows it.
    private static func currentThreadName() -> String {
        #if os(Linux)
        let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return String(comm.dropLast(comm.hasSuffix("\n") ? 1 : 0))
        #else
        var buffer = [CChar](repeating: 0, count: 64)
        pthread_getname_np(pthread_self(), &buffer, buffer.count)
        return String(cString: buffer)
        #endif
    }

    private func run(count: Int, name: String?) -> Seen {
        let seen = Seen()
        let finished = DispatchSemaphore(value: 0)
        let caller = pthread_self()
        for _ in 0..<count {
            XCTAssertTrue(
                DetachedThread.start(name: name) {
                    seen.record(name: Self.currentThreadName(), onCaller: pthread_equal(pthread_self(), caller) != 0)
                    finished.signal()
                })
        }
        for _ in 0..<count { XCTAssertEqual(finished.wait(timeout: .now() + 5), .success) }
        return seen
    }

    /// The body runs, on a thread other than the caller's, and the name is what the system shows for that thread.
    func testRunsTheBodyOnANamedThreadOfItsOwn() throws {
        let seen = run(count: 1, name: "udp test thread").snapshot
        XCTAssertEqual(seen.names, ["udp test thread"])
        XCTAssertFalse(seen.onCaller)
    }

    #if os(Linux)
    /// Linux refuses a thread name of 16 bytes or more; the name is shortened rather than left unset.
    func testALongNameIsShortenedToWhatLinuxKeeps() throws {
        XCTAssertEqual(run(count: 1, name: "a name well over fifteen bytes").snapshot.names, ["a name well ove"])
    }
    #endif

    /// Detached: many short threads come and go without anyone joining them, and every body runs once.
    func testManyThreadsEachRunOnce() throws {
        let seen = run(count: 200, name: nil).snapshot
        XCTAssertEqual(seen.names.count, 200)
        XCTAssertFalse(seen.onCaller)
    }
}
