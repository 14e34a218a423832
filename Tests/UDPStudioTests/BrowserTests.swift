import Foundation
import XCTest

/// Runs Browser/studio_browser.py: headless Chromium (Selenium) against the built `udp studio`, with Python peers.
/// Skips where Chromium, chromedriver or Selenium are missing, except under CI (`.ci/run` installs them).
/// `STUDIO_SCREENSHOT=docs/studio.png` keeps the screenshot the script takes.
final class BrowserTests: XCTestCase {
    func testThePageInHeadlessChromium() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Browser/studio_browser.py"
        ).path
        let ready =
            (try? python(
                "import selenium, shutil, sys; sys.exit(0 if shutil.which('chromium') and shutil.which('chromedriver') else 1)"
            ).status) == 0
        if !ready {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                XCTFail("CI needs chromium, chromium-driver and selenium (.ci/run installs them)")
            }
            throw XCTSkip("chromium, chromedriver or selenium missing")
        }
        let screenshot =
            ProcessInfo.processInfo.environment["STUDIO_SCREENSHOT"]
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("udp-studio-\(UUID().uuidString).png").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", script, udpBinaryPath, screenshot]
        let output = FileManager.default.temporaryDirectory.appendingPathComponent(
            "udp-studio-browser-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            XCTFail("the browser test did not finish within 120 s")
        }
        process.waitUntilExit()
        let log = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        XCTAssertEqual(process.terminationStatus, 0, log)
        XCTAssertTrue(log.contains("all browser checks passed"), log)
        XCTAssertTrue(FileManager.default.fileExists(atPath: screenshot))
    }
}
