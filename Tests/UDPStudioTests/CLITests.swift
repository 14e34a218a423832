import Foundation
import UDPStudio
import XCTest

/// `udp studio`, `udp packets` and `udp send @NAME` as a user runs them.
final class StudioCLITests: XCTestCase {
    private func udp(_ arguments: [String], config: URL, timeout: Double = 10) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: udpBinaryPath)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["XDG_CONFIG_HOME": config.path]) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            process.terminate()
            XCTFail("udp \(arguments) did not finish")
        }
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        )
    }

    private func configDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("udp-studio-cli-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Starts `udp studio` on a free port and returns it with the page's URL (the first line of its stdout) and the
    /// pipe its stderr goes to.
    private func startStudio() throws -> (process: Process, url: String, stderr: Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: udpBinaryPath)
        process.arguments = ["studio", "--http", "127.0.0.1:0", "--no-browser"]
        process.environment = ProcessInfo.processInfo.environment.merging(["XDG_CONFIG_HOME": configDirectory().path]) {
            $1
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        var line = Data()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0a]) { break }
            line.append(byte)
        }
        return (process, String(decoding: line, as: UTF8.self), err)
    }

    func testPrintsTheURLAndStopsCleanlyOnSIGTERM() throws {
        let (process, url, _) = try startStudio()
        XCTAssertNotNil(
            url.range(of: #"^http://127\.0\.0\.1:[0-9]+/\?token=[0-9a-f]{64}$"#, options: .regularExpression), url)
        // A second studio on the same port is a clear error.
        let port = url.split(separator: ":")[2].split(separator: "/")[0]
        let busy = try udp(["studio", "--http", "127.0.0.1:\(port)", "--no-browser"], config: configDirectory())
        XCTAssertEqual(busy.status, 1)
        XCTAssertTrue(busy.stderr.hasPrefix("udp: TCP port \(port) on 127.0.0.1 is already in use"), busy.stderr)
        kill(process.processIdentifier, SIGTERM)
        let stop = Date().addingTimeInterval(10)
        while process.isRunning && Date() < stop { usleep(10_000) }
        XCTAssertFalse(process.isRunning)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
    }

    /// A graceful shutdown waits for the requests in progress; a client that stalls in the middle of one (half a
    /// body sent) would keep the studio alive, so a second SIGINT stops it at once, killed by the signal, and says so.
    func testASecondSIGINTStopsAShutdownThatAStalledClientHolds() throws {
        let (process, url, err) = try startStudio()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        guard
            let match = url.range(
                of: #"^http://127\.0\.0\.1:([0-9]+)/\?token=([0-9a-f]{64})$"#, options: .regularExpression)
        else {
            return XCTFail("no URL: \(url)")
        }
        let parts = url[match].split(separator: ":")[2].split(separator: "/")
        let port = String(parts[0])
        let token = String(url.split(separator: "=").last ?? "")
        // A POST whose head arrives but whose body stops after 7 of its 1,000 bytes, held open for at most 20 s.
        let client = try PythonPeer(
            """
            import socket, sys, time
            port, token = sys.argv[1], sys.argv[2]
            s = socket.create_connection(("127.0.0.1", int(port)))
            head = "POST /api/send HTTP/1.1\\r\\nHost: 127.0.0.1:%s\\r\\nAuthorization: Bearer %s\\r\\n" % (port, token)
            head += "Content-Type: application/json\\r\\nContent-Length: 1000\\r\\n\\r\\n"
            s.sendall(head.encode() + b'{"to":"')
            print("stalled", flush=True)
            time.sleep(20)
            """, [port, token])
        defer { client.process.terminate() }
        XCTAssertEqual(client.firstLine(), "stalled")
        usleep(300_000)

        kill(process.processIdentifier, SIGINT)
        let held = Date().addingTimeInterval(1.5)
        while process.isRunning && Date() < held { usleep(10_000) }
        XCTAssertTrue(process.isRunning, "the graceful shutdown did not wait for the request in progress")

        let second = Date()
        kill(process.processIdentifier, SIGINT)
        let stop = Date().addingTimeInterval(5)
        while process.isRunning && Date() < stop { usleep(10_000) }
        XCTAssertFalse(process.isRunning, "a second SIGINT did not stop the studio")
        process.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(second), 2)
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        XCTAssertEqual(process.terminationStatus, SIGINT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(stderr.contains("udp: SIGINT again: stopping now"), stderr)
    }

    /// The web server is linked into `udp-studio` only; `udp studio` runs it from `udp`'s own directory, and says
    /// so plainly when it is not there.
    func testWithoutUDPStudioBesideItUDPStudioSaysWhatIsMissing() throws {
        let directory = configDirectory()
        let lone = directory.appendingPathComponent("udp")
        do {
            try FileManager.default.linkItem(atPath: udpBinaryPath, toPath: lone.path)
        } catch {
            try FileManager.default.copyItem(atPath: udpBinaryPath, toPath: lone.path)
        }
        let process = Process()
        process.executableURL = lone
        process.arguments = ["studio", "--http", "127.0.0.1:0", "--no-browser"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 69)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(
            stderr,
            "udp: the studio's web server is not installed: no udp-studio beside udp in \(directory.path) (build it with 'swift build', or install both with 'make install')\n"
        )
        XCTAssertEqual(out.fileHandleForReading.readDataToEndOfFile(), Data())
        // Beside it, the same arguments serve the page.
        let (studio, url, _) = try startStudio()
        defer {
            kill(studio.processIdentifier, SIGTERM)
            studio.waitUntilExit()
        }
        XCTAssertTrue(url.hasPrefix("http://127.0.0.1:"), url)
    }

    func testNonLoopbackNeedsAllowRemote() throws {
        let result = try udp(["studio", "--http", "0.0.0.0:0", "--no-browser"], config: configDirectory())
        XCTAssertEqual(result.status, 64)
        XCTAssertTrue(result.stderr.contains("--allow-remote"), result.stderr)
        XCTAssertEqual(result.stdout, "")
    }

    func testSavedPacketsFromTheCommandLine() throws {
        let config = configDirectory()
        var library = PacketLibrary()
        let receiver = try PythonPeer(pythonReceiver, ["3", "2"])
        let port = receiver.firstLine()
        try library.put(SavedPacket(name: "hello", to: "127.0.0.1:\(port)", text: "hi\\x00\\n", escapes: true))
        try library.put(SavedPacket(name: "bin", to: "127.0.0.1:\(port)", hex: "de ad be ef", count: 2, interval: 10))
        try library.save(to: config.appendingPathComponent("udp/packets.json"))

        let list = try udp(["packets"], config: config)
        XCTAssertEqual(list.status, 0)
        XCTAssertTrue(
            list.stdout.contains("hello") && list.stdout.contains("127.0.0.1:\(port)")
                && list.stdout.contains("hex de ad be ef"), list.stdout)
        let json = try udp(["packets", "--json"], config: config)
        XCTAssertEqual(json.stdout.split(separator: "\n").count, 2)

        XCTAssertEqual(try udp(["send", "@hello"], config: config).status, 0)
        XCTAssertEqual(try udp(["send", "@bin"], config: config).status, 0)
        let missing = try udp(["send", "@nope"], config: config)
        XCTAssertEqual(missing.status, 64)
        XCTAssertTrue(missing.stderr.hasPrefix("udp: no saved packet named 'nope'"), missing.stderr)
        let lines = receiver.finish().split(separator: "\n").map { String($0.split(separator: " ")[0]) }
        XCTAssertEqual(lines, ["6869000a", "deadbeef", "deadbeef"])
    }

    func testAnExplicitCountOfOneOverridesTheSavedCount() throws {
        let config = configDirectory()
        var library = PacketLibrary()
        let receiver = try PythonPeer(pythonReceiver, ["4", "1"])
        let port = receiver.firstLine()
        try library.put(SavedPacket(name: "bin", to: "127.0.0.1:\(port)", hex: "de ad be ef", count: 3, interval: 10))
        try library.put(SavedPacket(name: "end", to: "127.0.0.1:\(port)", text: "end"))
        try library.save(to: config.appendingPathComponent("udp/packets.json"))
        XCTAssertEqual(try udp(["send", "@bin", "--count", "1"], config: config).status, 0)
        XCTAssertEqual(try udp(["send", "@end"], config: config).status, 0)
        let lines = receiver.finish().split(separator: "\n").map { String($0.split(separator: " ")[0]) }
        XCTAssertEqual(lines, ["deadbeef", "656e64"], "--count 1 sends the saved packet once, not its saved 3 times")
    }

    func testSendHelpMentionsSavedPackets() throws {
        let help = try udp(["send", "--help"], config: configDirectory())
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("@NAME"), help.stdout)
        XCTAssertTrue(help.stdout.contains("udp packets"), help.stdout)
    }
}
