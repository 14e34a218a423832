import Foundation
import NIOCore
import UDPKit

extension Request {
    /// `--all`: sends the request once from an unconnected socket and prints every reply from any address until
    /// the timeout, each with its round trip. For a broadcast or multicast request: who is out there.
    func requestAll(_ bytes: [UInt8], to destination: UDPAddress, formatter: DatagramFormatter) async throws {
        var options = UDPSocketOptions()
        if destination.family == .ipv4 { options.broadcast = true }
        var local: UDPAddress?
        if let from = request.from {
            local = try await resolveOne(try UDPEndpoint.parse(from, defaultHost: .any), family: destination.family == .unix ? nil : destination.family)
        }
        let socket = try await UDPSocket.client(for: destination, from: local, options: options)
        let raw = request.raw, quiet = request.json || request.raw
        let wait = request.timeout
        let (replies, senders) = try await closing(socket) {
            try await withSignalCancellation {
                let sentAt = Date()
                let deadline = ContinuousClock.now + wait.duration
                try await socket.send(ByteBuffer(bytes: bytes), to: destination)
                var replies = 0
                var senders = Set<UDPAddress>()
                do {
                    while true {
                        let left = deadline - ContinuousClock.now
                        if left <= .zero { break }
                        let batch = try await socket.receiveBatch(timeout: left)
                        if batch.isEmpty { break }
                        for datagram in batch {
                            replies += 1
                            if senders.count < 100_000 { senders.insert(datagram.sender) }
                            if raw {
                                Terminal.writeStdout(bytes: datagram.bytes)
                            } else {
                                let rtt = datagram.receivedAt.timeIntervalSince(sentAt) * 1000
                                let extra: [(key: String, value: JSONText.Value)] = [("rtt_ms", .double((rtt * 1000).rounded() / 1000))]
                                Terminal.writeStdout(formatter.render(datagram, event: "reply", extra: extra))
                            }
                        }
                        Terminal.flushStdout()
                    }
                } catch is CancellationError {}
                return (replies, senders.count)
            }
        }
        Terminal.flushStdout()
        if !quiet && replies > 0 { Terminal.writeStderr("\(replies) repl\(replies == 1 ? "y" : "ies") from \(senders) address\(senders == 1 ? "" : "es") in \(wait.defaultValueDescription)\n") }
        if replies == 0 { throw UDPError.timedOut(seconds: wait.seconds) }
    }
}
