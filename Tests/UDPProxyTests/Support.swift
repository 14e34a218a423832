import UDPKit

/// An echo server on 127.0.0.1 over UDPKit's `batches`, the upstream the proxy tests relay to; returns its socket
/// and the task that runs it.
func startEchoUpstream() async throws -> (UDPSocket, Task<Void, any Error>) {
    let socket = try await UDPSocket.bind(to: UDPAddress(ip: "127.0.0.1", port: 0))
    let task = Task {
        for try await batch in socket.batches {
            try await socket.send(batch.map { OutgoingDatagram(payload: $0.payload, to: $0.sender) })
        }
    }
    return (socket, task)
}
