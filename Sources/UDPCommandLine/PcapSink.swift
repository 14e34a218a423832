import Capture
import NIOConcurrencyHelpers
import UDPKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `udp listen --pcap FILE`: every datagram also goes to a pcap file (raw IP link type, real addresses and ports,
/// receive timestamps) that Wireshark and tshark open. `-` writes the capture to stdout, which then carries
/// nothing else.
final class PcapSink: Sendable {
    /// Whether the capture is written to stdout.
    let ownsStdout: Bool
    private let descriptor: Int32
    private let local: UDPAddress
    private let writer: NIOLockedValueBox<PcapWriter>

    /// Opens (creating or truncating) `path` and writes the file header. `local` is the destination recorded for
    /// datagrams whose own destination address the system did not report.
    init(path: String, local: UDPAddress) throws {
        guard local.family != .unix else {
            throw CLIFailure.usage("--pcap records IP datagrams; a Unix-domain socket has no addresses to record")
        }
        self.local = local
        if path == "-" {
            if Terminal.stdoutIsTTY {
                throw CLIFailure.usage(
                    "--pcap - writes a binary capture to stdout, which is a terminal; redirect it to a file or a pipe (| tshark -r -)"
                )
            }
            ownsStdout = true
            descriptor = STDOUT_FILENO
        } else {
            ownsStdout = false
            descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                let reason: String
                switch errno {
                case EISDIR: reason = "it is a directory; give a file name such as capture.pcap"
                case ENOENT: reason = "no such directory '\(directoryPart(of: path))'"
                case EACCES: reason = "permission denied"
                default: reason = String(cString: strerror(errno))
                }
                throw CLIFailure(message: "cannot write the capture to '\(path)': \(reason)", code: ExitCode32.other)
            }
        }
        let writer = PcapWriter()
        self.writer = NIOLockedValueBox(writer)
        put(writer.header)
    }

    /// Appends one datagram.
    func write(_ datagram: Datagram) {
        guard let source = datagram.sender.rawBytes, let port = datagram.sender.port else { return }
        let to = datagram.arrival?.destination ?? local
        guard var destination = to.rawBytes else { return }
        // A dual-stack socket reports IPv4 senders as IPv4 but may see itself as IPv6: record one family.
        if source.count == 4 && destination.count == 16 {
            destination =
                destination.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF])
                ? Array(destination.suffix(4)) : [0, 0, 0, 0]
        } else if source.count == 16 && destination.count == 4 {
            destination = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + destination
        }
        let packet = UDPPacket(
            source: source, sourcePort: UInt16(port), destination: destination, destinationPort: UInt16(to.port ?? 0),
            payload: datagram.bytes, time: CaptureTime(secondsSince1970: datagram.receivedAt.timeIntervalSince1970))
        guard let record = try? writer.withLockedValue({ try $0.record(packet) }) else { return }
        if ownsStdout {
            Terminal.writeStdout(bytes: record)
        } else {
            put(record)
        }
    }

    private func put(_ bytes: [UInt8]) {
        if ownsStdout {
            Terminal.writeStdout(bytes: bytes)
            return
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { systemWrite(descriptor, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
    }

    /// Flushes and closes the file.
    func close() {
        if ownsStdout { Terminal.flushStdout() } else { _ = systemClose(descriptor) }
    }
}

// The class's own `write` and `close` hide the C functions of the same names.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buffer, count) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
