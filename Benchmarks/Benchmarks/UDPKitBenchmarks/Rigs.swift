import NIOConcurrencyHelpers
import NIOCore
import UDPKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Datagrams per benchmark iteration: one batch, the most one `recvmmsg`/`sendmmsg` of UDPKit moves.
let batchSize = 64
/// The payload of every datagram the benchmarks send (the size `benchmarks/run` measures with).
let payload = ByteBuffer(repeating: UInt8(ascii: "a"), count: 64)
/// How long a benchmark iteration waits for a datagram before counting the rest of its batch as lost.
let patience: Duration = .seconds(1)

struct BenchmarkFailure: Error, CustomStringConvertible {
    var description: String
}

/// Holds what a benchmark's setup opened until its teardown closes it: package-benchmark's hooks take no state.
final class Rig<Value: Sendable>: Sendable {
    private let value = NIOLockedValueBox<Value?>(nil)

    func set(_ newValue: Value?) { value.withLockedValue { $0 = newValue } }

    func get() throws -> Value {
        guard let current = value.withLockedValue({ $0 }) else {
            throw BenchmarkFailure(description: "setup did not run")
        }
        return current
    }

    func take() -> Value? {
        value.withLockedValue { current in
            defer { current = nil }
            return current
        }
    }
}

/// A loopback address of this host with the port the system picks.
func loopback() throws -> UDPAddress { try UDPAddress(ip: "127.0.0.1", port: 0) }

/// An echo server on loopback and a client socket that talks to it.
struct EchoPair: Sendable {
    let server: UDPSocket
    let client: UDPSocket
    let serving: Task<Void, any Error>

    enum Style: Sendable {
        /// `UDPSocket.respond`: answered where the datagrams arrive (on Linux, a thread of the socket's own).
        case respond
        /// A task iterating `UDPSocket.batches` and answering each batch with one `send`.
        case batches
    }

    static func open(_ style: Style) async throws -> EchoPair {
        let server = try await UDPSocket.bind(to: try loopback())
        let serving: Task<Void, any Error>
        switch style {
        case .respond:
            serving = Task {
                try await server.respond { batch in batch.map { OutgoingDatagram(payload: $0.payload, to: $0.sender) } }
            }
        case .batches:
            serving = Task {
                for try await batch in server.batches {
                    try await server.send(batch.map { OutgoingDatagram(payload: $0.payload, to: $0.sender) })
                }
            }
        }
        let client = try await UDPSocket.bind(to: try loopback())
        return EchoPair(server: server, client: client, serving: serving)
    }

    /// One batch out, every reply back; fails when a reply is missing for longer than `patience`.
    func exchange(_ batch: [OutgoingDatagram]) async throws {
        try await client.send(batch)
        try await client.receive(count: batch.count)
    }

    func close() async {
        serving.cancel()
        await client.close()
        await server.close()
        _ = await serving.result
    }
}

extension UDPSocket {
    /// Receives exactly `count` datagrams, a batch at a time; throws when one is missing for longer than `patience`.
    func receive(count: Int) async throws {
        var received = 0
        while received < count {
            let batch = try await receiveBatch(maximum: count - received, timeout: patience)
            guard !batch.isEmpty else {
                throw BenchmarkFailure(
                    description: "\(count - received) of \(count) datagrams did not arrive within \(patience)")
            }
            received += batch.count
        }
    }
}

/// A bound UDP socket on loopback that is never read: the kernel drops what overflows its buffer, so sends to it
/// cost the sender alone and allocate nothing in this process.
final class Sink: Sendable {
    let address: UDPAddress
    private let descriptor: CInt

    init() throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, CInt(SOCK_DGRAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else { throw BenchmarkFailure(description: "socket: errno \(errno)") }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, named == 0 else {
            let code = errno
            _ = Self.closeDescriptor(fd)
            throw BenchmarkFailure(description: "binding the sink: errno \(code)")
        }
        descriptor = fd
        address = try UDPAddress(ip: "127.0.0.1", port: Int(UInt16(bigEndian: local.sin_port)))
    }

    func close() { _ = Self.closeDescriptor(descriptor) }

    private static func closeDescriptor(_ fd: CInt) -> CInt {
        #if canImport(Glibc)
        Glibc.close(fd)
        #else
        Darwin.close(fd)
        #endif
    }
}
