import ArgumentParser
import NIOCore
import UDPKit
import UDPText

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "A short tour on loopback: receive, echo, request/reply, truncation, encodings.",
        discussion: """
            Everything runs in this one process on 127.0.0.1 and ::1, on free ports; nothing leaves the machine. It prints what each step did and exits 0, in well under two seconds.

            Examples:
              udp demo
            """
    )

    func run() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let out = DemoTranscript()
        let loopback4 = try UDPAddress(ip: "127.0.0.1", port: 0)

        out.step("1. A receiver binds a free port (a Python receiver's bind + recvfrom)")
        let receiver = try await UDPSocket.bind(to: loopback4)
        out.say("receiver listening on \(receiver.localAddress)")

        out.step("2. A sender sends one datagram (a Python sender's sendto)")
        let sender = try await UDPSocket.client(for: receiver.localAddress)
        try await sender.send(bytes: Array("Hello, UDP!".utf8), to: receiver.localAddress)
        let first = try await mustReceive(receiver)
        out.show(first)

        out.step("3. An empty datagram is data too, not end-of-file")
        try await sender.send(bytes: [], to: receiver.localAddress)
        out.show(try await mustReceive(receiver))

        out.step("4. An echo responder and a request with timeout and retry")
        let echo = try await UDPSocket.bind(to: try UDPAddress(ip: "::1", port: 0))
        let echoTask = Task {
            for try await batch in echo.batches {
                try await echo.send(batch.map { OutgoingDatagram(payload: $0.payload, to: $0.sender) })
            }
        }
        let client = try await UDPSocket.connect(to: echo.localAddress)
        let reply = try await client.request(
            ByteBuffer(string: "ping"), policy: RequestPolicy(timeout: .milliseconds(200), retries: 2))
        out.show(reply.datagram, note: String(cFormat: "round trip %.3f ms", reply.roundTrip.milliseconds))

        out.step("5. Nobody listening: ICMP port unreachable is reported, not a silent wait")
        let deadPort = try await freePort()
        let lonely = try await UDPSocket.connect(to: try UDPAddress(ip: "127.0.0.1", port: deadPort))
        do {
            _ = try await lonely.request(
                ByteBuffer(string: "anyone?"), policy: RequestPolicy(timeout: .milliseconds(200), retries: 0))
            out.say("unexpected reply")
        } catch let error as UDPError {
            out.say("error: \(error)")
        }
        await lonely.close()

        out.step("6. A receiver that accepts at most 16 bytes: the cut is flagged, not silent")
        var small = UDPSocketOptions()
        small.maximumDatagramSize = 16
        let tiny = try await UDPSocket.bind(to: loopback4, options: small)
        try await sender.send(bytes: Array("0123456789abcdefOVERFLOW".utf8), to: tiny.localAddress)
        out.show(try await mustReceive(tiny))
        await tiny.close()

        out.step("7. Encodings: classic Python chat scripts speak GB2312; we speak GB18030, GBK, Shift-JIS, Latin-1")
        let chinese = "你好，世界"
        let encoded = try TextEncoding.gb18030.encode(chinese)
        try await sender.send(bytes: encoded, to: receiver.localAddress)
        let gb = try await mustReceive(receiver)
        out.say("sent \"\(chinese)\" as gb18030: \(Hex.encode(encoded))")
        out.show(gb, encoding: .gb18030)
        out.say("the same bytes read as UTF-8 are not text, and are shown, not dropped:")
        out.show(gb)

        out.step("8. Terminal safety: escape sequences from the network are shown, not obeyed")
        try await sender.send(bytes: Array("\u{1B}[2J\u{1B}[31mgotcha\u{07}".utf8), to: receiver.localAddress)
        out.show(try await mustReceive(receiver))

        echoTask.cancel()
        await client.close()
        await echo.close()
        await sender.close()
        await receiver.close()
        let elapsed = (clock.now - started).milliseconds
        out.step(String(cFormat: "Done in %.0f ms. Try: udp listen 9999, then udp send 127.0.0.1 9999 hello", elapsed))
    }

    private func mustReceive(_ socket: UDPSocket) async throws -> Datagram {
        guard let datagram = try await socket.receive(timeout: .seconds(1)) else {
            throw UDPError.timedOut(seconds: 1)
        }
        return datagram
    }

    /// A port that was free a moment ago: bind port 0, note the port, close.
    private func freePort() async throws -> Int {
        let probe = try await UDPSocket.bind(to: try UDPAddress(ip: "127.0.0.1", port: 0))
        let port = probe.localAddress.port ?? 0
        await probe.close()
        return port
    }
}

/// The demo's printed story.
private struct DemoTranscript {
    func step(_ title: String) { Terminal.writeStdout("\n" + title + "\n") }
    func say(_ text: String) { Terminal.writeStdout("   " + text + "\n") }
    func show(_ datagram: Datagram, encoding: TextEncoding = .utf8, note: String? = nil) {
        var line = DatagramFormatter(style: .text, encoding: encoding).render(datagram)
        if let note { line = line.dropLast() + "  (\(note))\n" }
        Terminal.writeStdout("   " + line)
    }
}
