import Foundation
import XCTest

/// A python3 peer: runs `script` with `arguments`, waits up to `timeout` seconds, returns its exit status and stdout.
func python(_ script: String, _ arguments: [String] = [], timeout: Double = 10) throws -> (
    status: Int32, output: String
) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(5_000) }
    if process.isRunning {
        process.terminate()
        process.waitUntilExit()
        XCTFail("python3 peer did not finish within \(timeout) s")
    }
    process.waitUntilExit()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Starts a python3 peer in the background; `finish` waits for it.
final class PythonPeer: @unchecked Sendable {
    // Only touched from the test's own task, one call at a time.
    let process = Process()
    private let out = Pipe()

    init(_ script: String, _ arguments: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", script] + arguments
        process.standardOutput = out
        try process.run()
    }

    /// Reads the first line the peer prints (it prints its port first).
    func firstLine(timeout: Double = 5) -> String {
        var line = Data()
        let handle = out.fileHandleForReading
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0a]) { break }
            line.append(byte)
        }
        return String(decoding: line, as: UTF8.self)
    }

    func finish(timeout: Double = 10) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            process.terminate()
            XCTFail("python3 peer did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}

/// A receiver on 127.0.0.1 that prints its port, then one hex line per datagram until `count` arrived or `seconds`
/// passed with nothing.
let pythonReceiver = """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1], flush=True)
    s.settimeout(float(sys.argv[2]))
    n = int(sys.argv[1])
    try:
        for _ in range(n):
            data, addr = s.recvfrom(65535)
            print(data.hex(), addr[1], flush=True)
    except socket.timeout:
        pass
    """

/// Polls `condition` every 10 ms for up to `timeout` seconds.
func eventually(timeout: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// A fresh directory for a library file.
func temporaryLibrary() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("udp-studio-test-\(UUID().uuidString)")
        .appendingPathComponent("udp").appendingPathComponent("packets.json")
}
